"""The helm CLI boundary: every helm subprocess call of the product goes through this module.

Place in the flow: ``release/reconcile.py`` decides *what* to do; this module turns one action into
one helm invocation (argv built as data, never a shell), handles the differences between the helm 3
and helm 4 command lines, parses JSON output tolerantly, and classifies failures ONCE into
:class:`HelmError` kinds that the rest of the package acts on without reading error strings.

Values are handed to helm through a private temporary file (mode 0600, removed afterwards), never
on the command line, so they cannot leak through ``/proc/*/cmdline``. Every call has a timeout: the
helm operation timeout plus a margin, after which the process is killed.
"""

from __future__ import annotations

import contextlib
import copy
import enum
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitops_helm import metrics, yamlio
from gitops_helm.errors import GitopsHelmError


class HelmErrorKind(enum.Enum):
    # the cluster or network hiccuped, or helm could not be started (missing binary, EAGAIN,
    # ENOMEM): retry with backoff, nothing is wrong with the release
    TEMPORARY = "temporary"
    FAILED = "failed"  # helm ran and the operation failed (render error, wait timeout, hook failure, ...)
    LOCKED = "locked"  # another operation is in progress on this release (pending-*)
    NOT_FOUND = "not-found"  # no such release
    CHART = "chart"  # the chart could not be pulled or read
    # the agent stopped it, or refused to start it, because this replica may no longer act (it
    # lost the leader Lease): not an outcome of the release. A killed operation leaves its
    # revision pending-*, which the next leader's pending grace recovers as an interrupted attempt.
    INTERRUPTED = "interrupted"


class HelmError(GitopsHelmError):
    """A classified helm failure. ``message`` is the useful tail of helm's stderr."""

    def __init__(self, kind: HelmErrorKind, action: str, message: str) -> None:
        super().__init__(f"helm {action}: {message}")
        self.kind = kind
        self.action = action
        self.message = message
        self.temporary = kind in (HelmErrorKind.TEMPORARY, HelmErrorKind.INTERRUPTED)


# Ordered: the first matching pattern decides. Patterns are lower-case substrings of helm's stderr.
_CLASSIFY: tuple[tuple[HelmErrorKind, tuple[str, ...]], ...] = (
    (HelmErrorKind.LOCKED, ("another operation (install/upgrade/rollback) is in progress",)),
    (HelmErrorKind.NOT_FOUND, ("release: not found", "release not found")),
    (
        HelmErrorKind.TEMPORARY,
        (
            "kubernetes cluster unreachable",
            "connection refused",
            "connection reset by peer",
            "i/o timeout",
            "tls handshake timeout",
            "the server is currently unable to handle the request",
            "too many requests",
            "etcdserver: request timed out",
            "http2: client connection lost",
            "unexpected eof",
            "no route to host",
            "server closed idle connection",
            # another writer created the release between our read of storage and this install:
            # observe again rather than count a failure
            "cannot re-use a name that is still in use",
            "release: already exists",
        ),
    ),
    (
        HelmErrorKind.CHART,
        (
            "failed to fetch",
            "failed to download",
            "chart not found",
            "no chart version found",
            "no chart name found",
            "not a valid chart repository",
            "unauthorized",
            "manifest unknown",
        ),
    ),
)

_MAX_MESSAGE = 2000
# Operations that write a release: killed at their deadline, they failed (see Helm._run).
_RELEASE_OPERATIONS = frozenset({"install", "upgrade", "rollback", "uninstall"})
# Operations that act on a release (test hooks run pods): started only while ``may_act`` allows
# it, and killed by ``cancel_all``.
_ACTING_OPERATIONS = _RELEASE_OPERATIONS | {"test"}


def classify(stderr: str) -> HelmErrorKind:
    """Map helm's stderr to an error kind (the only place that reads helm error text)."""
    low = stderr.lower()
    for kind, needles in _CLASSIFY:
        if any(n in low for n in needles):
            return kind
    return HelmErrorKind.FAILED


def _tail(stderr: str) -> str:
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip() and not ln.startswith("WARNING:")]
    text = "\n".join(lines[-8:])
    text = re.sub(r"^Error: ", "", text)
    return text[-_MAX_MESSAGE:] if text else "(no output)"


@dataclass(frozen=True)
class HelmSettings:
    """How to run helm. ``home`` holds helm's cache/config/data directories, private to the agent."""

    binary: str = "helm"
    home: Path = field(default_factory=lambda: Path(tempfile.gettempdir()) / "gitops-helm" / "helm")
    kubeconfig: str | None = None
    kube_context: str | None = None
    # The subprocess deadline of a release operation follows helm's own semantics: --timeout
    # bounds each phase separately (pre-hooks, the resource wait, post-hooks), so helm may rightly
    # take phases x timeout; the process is killed after that plus the margin.
    timeout_phases: int = 3
    margin_s: float = 30.0
    query_timeout_s: float = 60.0  # status/history/get/version/test-less calls
    plugins_dir: str | None = None  # HELM_PLUGINS for downloader plugins
    # impersonating copies kept (least recently used first out; an evicted one's discovery
    # cache directory is removed)
    max_identities: int = 64


@dataclass(frozen=True)
class UpgradeOptions:
    timeout_s: int = 300
    wait: bool = False
    force: bool = False
    reuse_values: bool = False  # Helm Operator: resetValues=false
    max_history: int = 10
    skip_crds: bool = False
    disable_openapi_validation: bool = False
    create_namespace: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)
    description: str = ""
    # helm 4, releases applied server-side: take back fields another manager (kubectl scale,
    # an HPA) changed, as helm 3's three-way merge does; without it such an upgrade fails.
    force_conflicts: bool = False


@dataclass(frozen=True)
class TemplateOptions:
    include_crds: bool = False  # the chart's crds/ directory in the output
    kube_version: str | None = None  # Capabilities.KubeVersion (helm's default otherwise)
    api_versions: tuple[str, ...] = ()  # added to Capabilities.APIVersions
    timeout_s: float = 120.0  # rendering runs no hooks and reaches no cluster


@dataclass(frozen=True)
class RollbackOptions:
    timeout_s: int = 300
    wait: bool = False
    force: bool = False
    recreate: bool = False
    disable_hooks: bool = False
    max_history: int = 10


@dataclass(frozen=True)
class ReleaseInfo:
    name: str
    namespace: str
    revision: int
    status: str
    chart: str = ""
    app_version: str = ""
    description: str = ""


@dataclass(frozen=True)
class TestOutcome:
    passed: bool
    message: str


def _release_from_json(data: Mapping[str, Any]) -> ReleaseInfo:
    info = data.get("info") or {}
    chart_meta = (data.get("chart") or {}).get("metadata") or {}
    return ReleaseInfo(
        name=str(data.get("name", "")),
        namespace=str(data.get("namespace", "")),
        revision=int(data.get("version", 0) or 0),
        status=str(info.get("status", "unknown")),
        chart=f"{chart_meta.get('name', '')}-{chart_meta.get('version', '')}".strip("-"),
        app_version=str(chart_meta.get("appVersion", "") or ""),
        description=str(info.get("description", "") or ""),
    )


class Helm:
    """One helm binary (3.x or 4.x, detected once) bound to one cluster."""

    def __init__(
        self,
        settings: HelmSettings,
        *,
        before_run: Callable[[float], None] | None = None,
        may_act: Callable[[], bool] | None = None,
    ) -> None:
        self.settings = settings
        # told the bound of each subprocess before it starts (the agent's liveness check allows
        # the calling worker to be silent that long)
        self.before_run = before_run
        # asked right before an operation acting on a release starts (the leader's fence)
        self.may_act = may_act or (lambda: True)
        self.calls: Counter[str] = Counter()  # helm subcommands run, for metrics and tests
        self._lock = threading.Lock()
        # the acting helm processes (each leads its own process group), guarded by _lock, so
        # that no operation starts after cancel_all() has run
        self._acting: dict[int, subprocess.Popen[str]] = {}
        self._killed: set[int] = set()
        self._cancelled: str | None = None
        self.user: str | None = None  # set on a copy by impersonating(): helm acts as this user
        # those copies, one per user, least recently used first, guarded by _lock
        self._identities: OrderedDict[str, Helm] = OrderedDict()
        for sub in ("cache", "config", "data"):
            (settings.home / sub).mkdir(parents=True, exist_ok=True)
        self.version = self._detect_version()
        self.major = int(self.version.lstrip("v").split(".")[0])

    def impersonating(self, user: str) -> Helm:
        """This helm, acting as ``user`` on the cluster (``--kube-as-user``) in every call.

        Impersonation rather than a kubeconfig holding a TokenRequest token: no credential is
        minted, written to disk or refreshed, the agent's own connection settings (kubeconfig,
        context, in-cluster) stay the only ones, and the API server audits every request as the
        agent acting for the user. Only the user is passed: for a ServiceAccount user the API
        server itself adds the groups its token would carry (see ``Kube.impersonating``). The
        copy (one per user) shares the binary, version, settings, call counters, the lock and the
        acting processes, so :meth:`cancel_all` on this helm stops the copies' operations too.
        """
        if self.user is not None:
            raise ValueError("an impersonating helm cannot impersonate again")
        evicted: list[Helm] = []
        with self._lock:
            found = self._identities.get(user)
            if found is None:
                found = copy.copy(self)
                found.user = user
                self._identities[user] = found
                while len(self._identities) > max(1, self.settings.max_identities):
                    evicted.append(self._identities.popitem(last=False)[1])
            self._identities.move_to_end(user)
        for old in evicted:
            # a helm of that identity still running tolerates it: client-go rewrites (or does
            # without) its discovery cache
            shutil.rmtree(old.kube_cache_dir, ignore_errors=True)
        return found

    @property
    def kube_cache_dir(self) -> Path:
        """helm's Kubernetes cache (API discovery, and HTTP responses of discovery) for this
        identity: client-go keys it by server URL only, and the answers differ by identity (a
        user sees what RBAC and aggregated APIs show it), so identities never share one."""
        who = "agent" if self.user is None else hashlib.sha256(self.user.encode()).hexdigest()[:32]
        return self.settings.home / "kube-cache" / who

    # -- process plumbing -------------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        home = self.settings.home
        env = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "HOME": str(home),
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_DATA_HOME": str(home / "data"),
            # without it client-go uses $HOME/.kube/cache, one for every identity
            "KUBECACHEDIR": str(self.kube_cache_dir),
            "NO_COLOR": "1",
            "HELM_COLOR": "never",
        }
        if self.settings.plugins_dir:
            env["HELM_PLUGINS"] = self.settings.plugins_dir
        if self.settings.kubeconfig:
            env["KUBECONFIG"] = self.settings.kubeconfig
        elif os.environ.get("KUBECONFIG"):
            env["KUBECONFIG"] = os.environ["KUBECONFIG"]
        for key in (
            "KUBERNETES_SERVICE_HOST",
            "KUBERNETES_SERVICE_PORT",
            "HTTPS_PROXY",
            "HTTP_PROXY",
            "NO_PROXY",
        ):
            if key in os.environ:
                env[key] = os.environ[key]
        return env

    def _release_deadline(self, timeout_s: int) -> float:
        return timeout_s * self.settings.timeout_phases + self.settings.margin_s

    def cancel_all(self, reason: str) -> list[str]:
        """Kill every acting helm process (its whole process group: plugins, post-renderers) and
        start no acting operation from now on; returns what was killed (``action pid``). Each
        killed call raises ``HelmError(INTERRUPTED)`` in its caller."""
        with self._lock:
            for helm in (self, *self._identities.values()):
                helm._cancelled = reason
            victims = {pid: p for pid, p in self._acting.items() if p.returncode is None}
            self._killed.update(victims)
        for pid in victims:
            _kill_group(pid)
        return [f"{_action_of(proc)} {pid}" for pid, proc in victims.items()]

    def _start(self, action: str, argv: list[str]) -> subprocess.Popen[str]:
        acting = action in _ACTING_OPERATIONS
        with self._lock:
            if acting and self._cancelled is not None:
                raise HelmError(HelmErrorKind.INTERRUPTED, action, f"not started: {self._cancelled}")
            if acting and not self.may_act():
                raise HelmError(
                    HelmErrorKind.INTERRUPTED, action, "not started: this replica may no longer act"
                )
            self.calls[action] += 1
            try:
                proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                    env=self._env(),
                    # its own process group, so that a kill reaches helm's children too (and a
                    # terminal's Ctrl-C or a signal to the agent's group does not)
                    start_new_session=True,
                )
            except OSError as exc:
                # helm did not start: the binary is missing or not executable, or fork/exec
                # failed (EAGAIN, ENOMEM). Nothing is wrong with the release: retry with
                # backoff, count no failure, remediate nothing.
                reason = exc.strerror or type(exc).__name__
                raise HelmError(
                    HelmErrorKind.TEMPORARY, action, f"cannot start {self.settings.binary}: {reason}"
                ) from None
            if acting:
                self._acting[proc.pid] = proc
        return proc

    def _run(self, action: str, args: Sequence[str], timeout_s: float) -> str:
        outcome = "error"
        try:
            out = self._run_once(action, args, timeout_s)
            outcome = "ok"
            return out
        except HelmError as exc:
            outcome = exc.kind.value
            raise
        finally:
            metrics.HELM_CALLS_TOTAL.labels(verb=action, outcome=outcome).inc()

    def _run_once(self, action: str, args: Sequence[str], timeout_s: float) -> str:
        argv = [self.settings.binary, *args]
        if self.settings.kube_context:
            argv += ["--kube-context", self.settings.kube_context]
        if self.user is not None:
            argv += ["--kube-as-user", self.user]
        if self.before_run is not None:
            self.before_run(timeout_s)
        proc = self._start(action, argv)
        try:
            stdout, stderr = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(proc.pid)
            proc.communicate()
            if action in _RELEASE_OPERATIONS:
                # helm overran what its own --timeout allows and was killed by us: the attempt
                # failed (it counts, so the retry policy bounds it), it was not interrupted
                raise HelmError(
                    HelmErrorKind.FAILED,
                    action,
                    f"killed after {timeout_s:.0f}s: helm did not finish within its own timeouts",
                ) from None
            raise HelmError(
                HelmErrorKind.TEMPORARY, action, f"did not finish within {timeout_s:.0f}s"
            ) from None
        finally:
            with self._lock:
                self._acting.pop(proc.pid, None)
                killed = proc.pid in self._killed
                self._killed.discard(proc.pid)
        if killed:
            raise HelmError(HelmErrorKind.INTERRUPTED, action, f"killed: {self._cancelled or 'cancelled'}")
        if proc.returncode != 0:
            raise HelmError(classify(stderr), action, _tail(stderr))
        return stdout

    def _detect_version(self) -> str:
        # at start, a helm that cannot be started ends the agent with this error (exit code 1)
        out = self._run("version", ["version", "--template", "{{.Version}}"], self.settings.query_timeout_s)
        version = out.strip()
        if not re.match(r"^v?[34]\.\d+", version):
            raise HelmError(
                HelmErrorKind.FAILED,
                "version",
                f"unsupported helm version {version!r}: helm 3 or 4 is needed",
            )
        return version

    def _wait_args(self, wait: bool) -> list[str]:
        if not wait:
            return []
        # helm 4 takes a strategy and needs '='; helm 3 only knows the boolean flag.
        return ["--wait=watcher"] if self.major >= 4 else ["--wait"]

    @contextmanager
    def _values_file(self, values: Mapping[str, Any]) -> Iterator[str]:
        tmp = Path(tempfile.mkdtemp(prefix="gitops-helm-values-"))
        try:
            path = tmp / "values.yaml"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(yamlio.dump(dict(values)))
            yield str(path)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    # -- release actions --------------------------------------------------------------------

    def upgrade(
        self,
        release: str,
        namespace: str,
        chart: str,
        values: Mapping[str, Any],
        opts: UpgradeOptions,
        *,
        install: bool,
    ) -> ReleaseInfo:
        """``helm install`` (install=True) or ``helm upgrade`` of a local chart path or reference."""
        action = "install" if install else "upgrade"
        with self._values_file(values) as vf:
            args: list[str] = [action, release, chart, "--namespace", namespace, "-f", vf, "-o", "json"]
            args += ["--timeout", f"{opts.timeout_s}s", *self._wait_args(opts.wait)]
            if opts.description:
                args += ["--description", opts.description]
            if opts.labels:
                args += ["--labels", ",".join(f"{k}={v}" for k, v in sorted(opts.labels.items()))]
            if opts.disable_openapi_validation:
                args.append("--disable-openapi-validation")
            if install:
                if opts.skip_crds:
                    args.append("--skip-crds")
                if opts.create_namespace:
                    args.append("--create-namespace")
            else:
                args += ["--history-max", str(opts.max_history)]
                args.append("--reuse-values" if opts.reuse_values else "--reset-values")
                if opts.force:
                    args.append("--force-replace" if self.major >= 4 else "--force")
                if opts.force_conflicts and self.major >= 4:
                    args.append("--force-conflicts")
            out = self._run(action, args, self._release_deadline(opts.timeout_s))
        return _release_from_json(json.loads(_json_part(out)))

    def rollback(self, release: str, namespace: str, revision: int, opts: RollbackOptions) -> None:
        args = [
            "rollback",
            release,
            str(revision),
            "--namespace",
            namespace,
            "--timeout",
            f"{opts.timeout_s}s",
        ]
        args += ["--history-max", str(opts.max_history), *self._wait_args(opts.wait)]
        if opts.disable_hooks:
            args.append("--no-hooks")
        if opts.force:
            args.append("--force-replace" if self.major >= 4 else "--force")
        if opts.recreate and self.major < 4:
            args.append("--recreate-pods")
        self._run("rollback", args, self._release_deadline(opts.timeout_s))

    def uninstall(self, release: str, namespace: str, timeout_s: int, *, wait: bool = False) -> None:
        args = ["uninstall", release, "--namespace", namespace, "--timeout", f"{timeout_s}s"]
        if wait:
            args.append("--wait")
        try:
            self._run("uninstall", args, self._release_deadline(timeout_s))
        except HelmError as exc:
            if exc.kind is not HelmErrorKind.NOT_FOUND:
                raise

    def test(self, release: str, namespace: str, timeout_s: int) -> TestOutcome:
        """Run the release's test hooks. A failing test is an outcome, not an exception."""
        args = ["test", release, "--namespace", namespace, "--timeout", f"{timeout_s}s"]
        try:
            out = self._run("test", args, timeout_s + self.settings.margin_s)
        except HelmError as exc:
            if exc.temporary or exc.kind in (HelmErrorKind.NOT_FOUND, HelmErrorKind.LOCKED):
                raise
            return TestOutcome(False, exc.message)
        suites = re.findall(r"^TEST SUITE:\s+(\S+)", out, flags=re.M)
        return TestOutcome(True, "no tests" if suites == ["None"] else f"{len(suites)} test(s) passed")

    # -- queries ----------------------------------------------------------------------------

    def status(self, release: str, namespace: str) -> ReleaseInfo | None:
        try:
            out = self._run(
                "status",
                ["status", release, "--namespace", namespace, "-o", "json"],
                self.settings.query_timeout_s,
            )
        except HelmError as exc:
            if exc.kind is HelmErrorKind.NOT_FOUND:
                return None
            raise
        return _release_from_json(json.loads(_json_part(out)))

    def history(self, release: str, namespace: str) -> list[ReleaseInfo]:
        try:
            out = self._run(
                "history",
                ["history", release, "--namespace", namespace, "-o", "json", "--max", "256"],
                self.settings.query_timeout_s,
            )
        except HelmError as exc:
            if exc.kind is HelmErrorKind.NOT_FOUND:
                return []
            raise
        rows = json.loads(_json_part(out)) or []
        return [
            ReleaseInfo(
                name=release,
                namespace=namespace,
                revision=int(r.get("revision", 0)),
                status=str(r.get("status", "")),
                chart=str(r.get("chart", "")),
                app_version=str(r.get("app_version", "")),
                description=str(r.get("description", "")),
            )
            for r in rows
        ]

    def template(
        self,
        release: str,
        namespace: str,
        chart: str,
        values: Mapping[str, Any],
        opts: TemplateOptions,
    ) -> str:
        """``helm template``: the chart's manifests rendered client-side, as helm prints them
        (documents separated by ``---``, each with helm's ``# Source:`` comment). No cluster is
        contacted: helm's built-in capabilities stand in for the API server's (``kube_version``
        and ``api_versions`` override them)."""
        with self._values_file(values) as vf:
            args: list[str] = ["template", release, chart, "--namespace", namespace, "-f", vf]
            if opts.include_crds:
                args.append("--include-crds")
            else:
                args.append("--skip-crds")
            if opts.kube_version:
                args += ["--kube-version", opts.kube_version]
            for api_version in opts.api_versions:
                args += ["--api-versions", api_version]
            return self._run("template", args, opts.timeout_s)

    def dependency_update(self, chart_dir: Path, timeout_s: float = 300) -> None:
        # No --skip-refresh: a dependency naming its repository by URL (the usual way; this helm
        # home has no repositories.yaml) is resolved from an index helm downloads during the
        # update, and --skip-refresh skips that download ("no cached repository for
        # helm-manager-...").
        self._run("dependency-update", ["dependency", "update", str(chart_dir)], timeout_s)

    def dependency_build_needed(self, chart_dir: Path) -> bool:
        """True when Chart.yaml declares dependencies (so ``dependency update`` has work to do)."""
        try:
            meta = yamlio.load(yamlio.read_file(chart_dir / "Chart.yaml"), unique_keys=False) or {}
        except (OSError, yamlio.YAMLError):
            return False
        return bool(isinstance(meta, dict) and meta.get("dependencies"))

    def pull(
        self,
        ref: str,
        version: str | None,
        dest: Path,
        *,
        repo: str | None = None,
        plain_http: bool = False,
        ca_file: str | None = None,
        timeout_s: float = 300,
    ) -> Path:
        """``helm pull`` of an OCI reference or a plugin-served chart into ``dest``; returns the .tgz."""
        dest.mkdir(parents=True, exist_ok=True)
        before = set(dest.glob("*.tgz"))
        args = ["pull", ref, "--destination", str(dest)]
        if repo:
            args += ["--repo", repo]
        if version:
            args += ["--version", version]
        if plain_http:
            args.append("--plain-http")
        if ca_file:
            args += ["--ca-file", ca_file]
        try:
            self._run("pull", args, timeout_s)
        except HelmError as exc:
            if exc.kind is HelmErrorKind.FAILED:
                raise HelmError(HelmErrorKind.CHART, exc.action, exc.message) from None
            raise
        new = sorted(set(dest.glob("*.tgz")) - before, key=lambda p: p.stat().st_mtime)
        if not new:
            found = sorted(dest.glob("*.tgz"), key=lambda p: p.stat().st_mtime)
            if not found:
                raise HelmError(HelmErrorKind.CHART, "pull", f"helm pull {ref} produced no chart archive")
            return found[-1]
        return new[-1]


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # already gone
        os.killpg(pid, signal.SIGKILL)


def _action_of(proc: subprocess.Popen[str]) -> str:
    args = proc.args
    return str(args[1]) if isinstance(args, list) and len(args) > 1 else "helm"


def _json_part(out: str) -> str:
    """helm may print warnings before JSON on stdout; keep from the first '{' or '['."""
    starts = [i for i in (out.find("{"), out.find("[")) if i >= 0]
    return out[min(starts) :] if starts else "null"
