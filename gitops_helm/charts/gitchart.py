"""Git chart source: ``chart.git`` + ``chart.ref`` + ``chart.path`` -> a chart directory.

Place in the flow: ``charts.resolver`` calls :meth:`GitCharts.fetch` for Git sources. One bare
mirror per repository (and credentials) is shared by every HelmRelease using it; it is fetched at
most once per ``refresh_s`` (and at once when a ref cannot be resolved), so a reconcile of an
unchanged release costs no network and no helm call.

An export holds only the chart path and the charts it names as ``file://`` dependencies in
``Chart.yaml`` / ``requirements.yaml`` (transitively; one outside the repository is refused),
each at its place in the repository. It is keyed by the Git tree ids of those paths, not by the
commit: a commit elsewhere in the repository reuses the export, and ``helm dependency update``
runs once per export (unless ``skipDepUpdate``).

The digest covers the files under ``chart.path`` (and its ``file://`` dependencies) as committed,
before dependency update, so a commit that touches other parts of the repository never upgrades
a release; ``revision`` is the commit SHA, as in the Helm Operator. The mirror and the export are
claimed for the HelmRelease (``charts.usage``) before they are looked at, so the cache janitor
(``charts.evict``) never removes them while in use.

:meth:`GitCharts.poll` (called by the agent every ``refresh_s``) fetches the mirrors in use and
names the HelmReleases whose chart paths changed since their last fetch, so a chart commit is
released within the poll interval rather than at the next resync (the Helm Operator's change loop).
"""

from __future__ import annotations

import hashlib
import math
import os
import posixpath
import shutil
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from gitops_helm import log as logging
from gitops_helm import yamlio
from gitops_helm.adapters.git import (
    GitError,
    GitSettingNames,
    GitSettings,
    HTTPAuth,
    Mirror,
    Remote,
    SSHAuth,
)
from gitops_helm.adapters.helm import Helm, HelmError
from gitops_helm.adapters.http import (
    Destinations,
    HTTPAddressRefusedError,
    HTTPError,
    HTTPNameResolutionError,
    check_destination,
    origin,
    redact_url,
)
from gitops_helm.adapters.kube import KubeError
from gitops_helm.api import GitChartSource
from gitops_helm.charts.access import ssh_key_allowed
from gitops_helm.charts.artifact import FetchedChart
from gitops_helm.charts.auth import SecretReader
from gitops_helm.charts.errors import (
    AddressRefusedError,
    AuthConfigError,
    ChartError,
    ChartNotFoundError,
    RepositoryError,
    RepositoryUnavailableError,
)
from gitops_helm.charts.usage import ChartUsage

log = logging.get(__name__)

_EXPIRED = -math.inf  # a mirror's fetch time after expire(): due now, its last state still served
_MAX_LOCAL_DEPENDENCIES = 50  # file:// charts, transitively: far above any real chart
_MAX_CHART_META_BYTES = 1024 * 1024  # Chart.yaml / requirements.yaml read from the mirror


@dataclass(frozen=True)
class GitChartSettings:
    work_dir: Path
    default_ref: str = "master"
    refresh_s: float = 60.0
    update_deps: bool = True
    ssh_key: str | None = None
    known_hosts: str | None = None
    ssh_key_hosts: tuple[str, ...] = ()  # the key is used only for SSH URLs of these hosts
    git: GitSettings = field(default_factory=GitSettings)
    # which addresses an http(s) chart.git may resolve to (None: any); see ``agent.chart_destinations``
    destinations: Destinations | None = None


@dataclass(frozen=True)
class _Use:
    """What a HelmRelease's last fetch used: mirror, ref, chart path and the commit it resolved."""

    mirror_key: str
    ref: str
    path: str
    sha: str
    paths: tuple[str, ...] = ()  # the chart path and its file:// dependencies


class GitCharts:
    def __init__(
        self, settings: GitChartSettings, kube: SecretReader, helm: Helm, usage: ChartUsage | None = None
    ) -> None:
        self.settings = settings
        self.usage = usage or ChartUsage()
        self.kube = kube
        self.helm = helm
        self._mirrors: dict[str, tuple[Mirror, float]] = {}
        self._lock = threading.Lock()
        self._export_locks: dict[str, threading.Lock] = {}
        self._uses: dict[str, _Use] = {}  # HelmRelease key -> its last fetch
        # mirror key -> how often ``expire`` named it: a fetch that was already under way when
        # the mirror expired may predate the new commit, so it does not make the mirror fresh
        self._expiries: dict[str, int] = {}

    def _auth(self, source: GitChartSource, secrets: SecretReader) -> HTTPAuth | SSHAuth | None:
        url = source.git
        if url.startswith("https://") and source.secret_ref is not None:
            ref = source.secret_ref
            try:
                data = secrets.get_secret_data(ref.namespace, ref.name)
            except KubeError as exc:
                # forbidden (the HelmRelease's ServiceAccount may not read it) is not temporary
                error = RepositoryUnavailableError if exc.temporary else AuthConfigError
                raise error(f"chart.secretRef {ref.namespace}/{ref.name}: {exc.message}") from None
            if data is None or "username" not in data or "password" not in data:
                raise AuthConfigError(
                    f"chart.secretRef {ref.namespace}/{ref.name}: needs keys 'username' and 'password'"
                )
            return HTTPAuth(username=data["username"].decode(), password=data["password"].decode())
        if (url.startswith("ssh://") or "@" in url.split("/", 1)[0]) and self.settings.ssh_key:
            if not ssh_key_allowed(url, self.settings.ssh_key_hosts):
                hosts = ", ".join(self.settings.ssh_key_hosts) or "none"
                raise AuthConfigError(
                    f"chart.git {url}: the agent's SSH key is used only for the hosts the operator "
                    f"lists (--git-ssh-key-hosts: {hosts})"
                )
            return SSHAuth(
                private_key=Path(self.settings.ssh_key), known_hosts=Path(self.settings.known_hosts or "")
            )
        return None

    def _names(self) -> GitSettingNames:
        """Where a HelmRelease's author (or the operator) sets what a Git error is about."""
        return GitSettingNames(
            url="spec.chart.git",
            credentials="spec.chart.secretRef (a Secret with keys username and password; used only "
            "with an https:// URL)",
            ssh_key="the agent's --git-ssh-key",
            known_hosts="the agent's --git-known-hosts",
            ref=f"spec.chart.ref (default: {self.settings.default_ref}, the agent's --git-default-ref)",
            timeout="the agent's --git-timeout",
        )

    @staticmethod
    def _mirror_key(source: GitChartSource) -> str:
        secret = f"{source.secret_ref.namespace}/{source.secret_ref.name}" if source.secret_ref else ""
        return hashlib.sha256(f"{source.git}\0{secret}".encode()).hexdigest()[:24]

    def _mirror(self, source: GitChartSource, force: bool, secrets: SecretReader) -> Mirror:
        auth = self._auth(source, secrets)
        key = self._mirror_key(source)
        with self._lock:
            entry = self._mirrors.get(key)
            if entry is None:
                try:
                    remote = Remote(source.git, auth, self._names())
                except GitError as exc:
                    raise RepositoryError(str(exc)) from None
                entry = (Mirror(self.settings.work_dir / "mirrors" / key, remote, self._git_settings()), 0.0)
            mirror, fetched_at = entry
            mirror.remote = Remote(source.git, auth, self._names())
            generation = self._expiries.get(key, 0)
        if force or time.monotonic() - fetched_at >= self.settings.refresh_s:
            self._check_address(source.git)
            try:
                mirror.ensure_mirror()
            except GitError as exc:
                if exc.temporary and fetched_at:  # 0.0: never fetched (an expired one is -inf)
                    return mirror  # keep serving the last fetched state; the next refresh retries
                raise (RepositoryUnavailableError if exc.temporary else RepositoryError)(
                    f"chart.git {source.git}: {exc}"
                ) from None
            self._fetched(key, mirror, generation)
        return mirror

    def _fetched(self, key: str, mirror: Mirror, generation: int) -> None:
        """Record a successful fetch of ``mirror`` that started at expiry ``generation``."""
        with self._lock:
            expired = self._expiries.get(key, 0) != generation
            self._mirrors[key] = (mirror, _EXPIRED if expired else time.monotonic())

    def fetch(self, key: str, source: GitChartSource, *, secrets: SecretReader | None = None) -> FetchedChart:
        """The chart at ``source`` for the HelmRelease ``key`` (namespace/name, remembered for ``poll``).

        ``chart.secretRef`` is read through ``secrets`` (the HelmRelease's identity; default: the
        agent's client), every time, so an identity that may not read it never uses the mirror."""
        ref = source.ref or self.settings.default_ref
        secrets = secrets or self.kube
        mirror_key = self._mirror_key(source)
        self.usage.claim(key, self.settings.work_dir / "mirrors" / mirror_key)
        mirror = self._mirror(source, force=False, secrets=secrets)
        try:
            sha = mirror.resolve(ref)
        except GitError:
            mirror = self._mirror(source, force=True, secrets=secrets)
            try:
                sha = mirror.resolve(ref)
            except GitError as exc:
                raise ChartNotFoundError(f"chart.git {source.git}: ref {ref!r}: {exc}") from None
        path = source.path.strip("/")
        paths, trees = self._chart_paths(mirror, sha, path, source)
        with self._lock:
            self._uses[key] = _Use(mirror_key, ref, path, sha, paths)
        # Keyed by the trees of the chart and its file:// dependencies, not by the commit: a
        # commit elsewhere in the repository reuses the export (and its dependency update).
        identity = "\0".join([mirror_key, *(f"{p}\0{t}" for p, t in zip(paths, trees, strict=True))])
        export_key = hashlib.sha256(identity.encode()).hexdigest()[:32]
        dest = self.settings.work_dir / "exports" / export_key
        self.usage.claim(key, dest)  # before looking: from now on the janitor leaves it alone
        with self._lock:
            lock = self._export_locks.setdefault(export_key, threading.Lock())
        with lock:
            if not (dest / ".digest").exists():
                self._export(mirror, sha, dest, path, paths, source)
        chart_dir = dest / "tree" / path
        digest = (dest / ".digest").read_text()
        return FetchedChart(
            name=_chart_name(chart_dir) or path.rsplit("/", 1)[-1],
            version=chart_version(chart_dir),
            revision=sha,
            digest=digest,
            path=chart_dir,
            chart_dir=chart_dir,
        )

    def _chart_paths(
        self, mirror: Mirror, sha: str, path: str, source: GitChartSource
    ) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The chart path and the paths of its ``file://`` dependencies (transitively), each with
        the id of its tree at ``sha``."""
        found: list[str] = []
        trees: list[str] = []
        todo = [path]
        while todo:
            current = todo.pop(0)
            if current in found:
                continue
            try:
                tree = mirror.tree_id(sha, current)
            except (GitError, ValueError) as exc:
                raise ChartNotFoundError(f"chart.git {source.git}: chart.path {path!r}: {exc}") from None
            if tree is None:
                if current == path:
                    raise ChartNotFoundError(
                        f"chart.git {source.git}: chart.path {path!r}: no such directory at {sha[:12]}"
                    )
                continue  # a missing dependency: helm dependency update names it
            found.append(current)
            trees.append(tree)
            if len(found) > _MAX_LOCAL_DEPENDENCIES:
                raise ChartNotFoundError(
                    f"chart.git {source.git}: chart.path {path!r} has more than "
                    f"{_MAX_LOCAL_DEPENDENCIES} file:// dependencies"
                )
            todo.extend(self._local_dependencies(mirror, sha, current, path, source))
        return tuple(found), tuple(trees)

    def _local_dependencies(
        self, mirror: Mirror, sha: str, chart: str, path: str, source: GitChartSource
    ) -> list[str]:
        """The repository paths of the ``file://`` dependencies that ``chart`` declares."""
        out: list[str] = []
        for name in ("Chart.yaml", "requirements.yaml"):
            file = f"{chart}/{name}" if chart else name
            try:
                raw = mirror.read_file(sha, file, _MAX_CHART_META_BYTES)
            except GitError as exc:
                raise (RepositoryUnavailableError if exc.temporary else ChartNotFoundError)(
                    f"chart.git {source.git}: {file}: {exc}"
                ) from None
            if raw is None:
                continue
            try:
                out += local_dependency_paths(raw, chart, file)
            except DependencyPathError as exc:
                raise ChartNotFoundError(f"chart.git {source.git}, chart.path {path!r}: {exc}") from None
        return out

    def users(self) -> set[str]:
        """The HelmReleases whose Git charts this follows."""
        with self._lock:
            return set(self._uses)

    def forget(self, keys: set[str]) -> None:
        """Drop what this keeps for HelmReleases not in ``keys``, and the mirrors and export
        locks that no remaining HelmRelease uses."""
        claimed = {p.name for p in self.usage.in_use()}
        with self._lock:
            for gone in set(self._uses) - keys:
                del self._uses[gone]
            used = {use.mirror_key for use in self._uses.values()}
            for mirror_key in set(self._mirrors) - used:
                del self._mirrors[mirror_key]
            for mirror_key in set(self._expiries) - set(self._mirrors):
                del self._expiries[mirror_key]
            # a lock is dropped only when no fetch claims its export (a fetch claims it first)
            for export_key in [k for k in self._export_locks if k not in claimed]:
                del self._export_locks[export_key]

    def expire(self, url: str) -> int:
        """Make the next fetch or poll of every mirror of the repository ``url`` fetch it, at
        once, whatever ``refresh_s`` says (the agent's own Git sync just saw a new commit there).
        Each mirror keeps its own credentials: nothing of the sync's is used. The number expired."""
        with self._lock:
            expired = [
                key for key, (mirror, _) in self._mirrors.items() if same_repository(mirror.remote.url, url)
            ]
            for key in expired:
                # not 0.0, which means "never fetched" (no last state to serve on an outage)
                self._mirrors[key] = (self._mirrors[key][0], _EXPIRED)
                self._expiries[key] = self._expiries.get(key, 0) + 1
        return len(expired)

    def poll(self, keys: set[str]) -> list[str]:
        """Fetch the mirrors that the HelmReleases ``keys`` use (each at most every ``refresh_s``)
        and return the keys whose chart path changed since their last fetch; forget other keys."""
        with self._lock:
            for gone in set(self._uses) - keys:
                del self._uses[gone]
            uses = dict(self._uses)
            mirrors = dict(self._mirrors)
        fresh: dict[str, bool] = {}
        changed = []
        for hr_key, use in sorted(uses.items()):
            entry = mirrors.get(use.mirror_key)
            if entry is None:
                continue
            mirror, fetched_at = entry
            if use.mirror_key not in fresh:
                fresh[use.mirror_key] = self._refresh(use.mirror_key, mirror, fetched_at)
            if not fresh[use.mirror_key]:
                continue
            try:
                sha = mirror.resolve(use.ref)
            except GitError:
                sha = ""  # the ref is gone: the reconcile says so on the status
            if sha == use.sha:
                continue
            if self._path_changed(mirror, use, sha):
                changed.append(hr_key)
            with self._lock:  # each new commit is looked at once
                if self._uses.get(hr_key) == use:
                    self._uses[hr_key] = replace(use, sha=sha)
        return changed

    @staticmethod
    def _path_changed(mirror: Mirror, use: _Use, sha: str) -> bool:
        if not sha or not use.sha:
            return True
        try:
            paths = use.paths or (use.path,)
            return mirror.changed_between(use.sha, sha, [] if "" in paths else list(paths))
        except GitError:
            return True

    def _git_settings(self) -> GitSettings:
        """How git runs for a mirror: under a destinations policy it follows no redirect (only
        the URL's own host is checked, by :meth:`_check_address`)."""
        policy = self.settings.destinations
        if policy is None or not policy.checks_addresses:
            return self.settings.git
        return replace(self.settings.git, follow_redirects=False)

    def _check_address(self, url: str) -> None:
        """Refuse an http(s) ``url`` whose host resolves to an address the settings refuse.

        git resolves the name again itself: a DNS answer that changes between this check and
        git's own lookup is not caught (SSH URLs are not checked: the agent's key is already
        limited to the hosts the operator lists)."""
        policy = self.settings.destinations
        if policy is None or not url.lower().startswith(("http://", "https://")):
            return
        try:
            check_destination(url, policy)
        except HTTPAddressRefusedError as exc:
            raise AddressRefusedError.of("spec.chart.git", f"{exc.url}: {exc.detail}") from None
        except HTTPNameResolutionError as exc:
            host = origin(exc.url)[1]
            raise RepositoryUnavailableError(
                f"chart.git {exc.url}: the host {host!r} was not found (DNS); check the host name "
                "in spec.chart.git"
            ) from None
        except HTTPError as exc:
            raise RepositoryUnavailableError(f"chart.git {exc.url}: {exc.detail}") from None

    def _refresh(self, key: str, mirror: Mirror, fetched_at: float) -> bool:
        if time.monotonic() - fetched_at < self.settings.refresh_s:
            return True
        with self._lock:
            generation = self._expiries.get(key, 0)
        try:
            self._check_address(mirror.remote.url)
            mirror.ensure_mirror()
        except ChartError as exc:
            log.warning("Git chart poll refused", url=mirror.remote.display_url, error=str(exc))
            return False
        except GitError as exc:
            log.warning("Git chart poll failed", url=mirror.remote.display_url, error=str(exc))
            return False
        self._fetched(key, mirror, generation)
        return True

    def _export(
        self, mirror: Mirror, sha: str, dest: Path, path: str, paths: tuple[str, ...], source: GitChartSource
    ) -> None:
        """Export the chart and its file:// dependencies (only those paths), record the digest
        of their committed files, then run ``helm dependency update`` once on the export."""
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        try:
            mirror.export_paths(sha, dest / "tree", paths)
        except GitError as exc:
            shutil.rmtree(dest, ignore_errors=True)
            err = RepositoryUnavailableError if exc.temporary else ChartNotFoundError
            raise err(f"chart.git {source.git} at {sha[:12]}: {exc}") from None
        try:
            digest = self._prepare_chart(dest, path, paths, sha, source)
        except BaseException:
            shutil.rmtree(dest, ignore_errors=True)
            raise
        (dest / ".digest").write_text(digest)

    def _prepare_chart(
        self, dest: Path, path: str, paths: tuple[str, ...], sha: str, source: GitChartSource
    ) -> str:
        tree = (dest / "tree").resolve()
        chart_dir = (tree / path).resolve()
        if tree != chart_dir and tree not in chart_dir.parents:
            raise ChartNotFoundError(f"chart.path {path!r} leaves the repository")
        if not (chart_dir / "Chart.yaml").is_file():
            raise ChartNotFoundError(f"chart.git {source.git}: no Chart.yaml under {path!r} at {sha[:12]}")
        # The digest is taken before dependency update: only committed changes under the chart
        # path and its file:// dependencies count, never what a download happens to produce.
        # Without file:// dependencies it is the digest of the chart directory alone.
        digest = _tree_digest(chart_dir, [tree / p for p in paths if p != path])
        wants_deps = self.settings.update_deps and not source.skip_dep_update
        if wants_deps and self.helm.dependency_build_needed(chart_dir):
            self._check_dependency_repositories(chart_dir, path)
            try:
                self.helm.dependency_update(chart_dir)
            except HelmError as exc:
                raise (RepositoryUnavailableError if exc.temporary else ChartNotFoundError)(
                    f"helm dependency update of {source.git} {path}: {exc.message}"
                ) from None
        return digest

    def _check_dependency_repositories(self, chart_dir: Path, path: str) -> None:
        """Refuse a dependency repository whose host the settings refuse, before helm fetches
        its index: helm connects by itself, so the chart sources' address policy is applied to
        the URLs the chart names (as to ``chart.git``; helm follows redirects on its own)."""
        policy = self.settings.destinations
        if policy is None:
            return
        for name in ("Chart.yaml", "requirements.yaml"):
            file = chart_dir / name
            if not file.is_file():
                continue
            try:
                urls = remote_dependency_urls(yamlio.read_file(file))
            except (OSError, yamlio.YAMLError):
                continue  # helm dependency update names what is wrong with the file
            if urls and policy.refuse_internal:
                # Lockdown: helm downloads the archives the repository's index lists, from any
                # host and through redirects, where no address check reaches; a tenant's chart
                # could make the agent fetch from inside the cluster or the cloud's metadata.
                raise AddressRefusedError.of(
                    f"chart.path {path!r}: {name}: dependency repository",
                    f"{redact_url(urls[0])}: refused in lockdown mode, because helm would download "
                    "the archives its index lists from any address, unchecked (vendor the "
                    "dependency into the chart's charts/ directory)",
                )
            for url in urls:
                try:
                    check_destination(url, policy)
                except HTTPAddressRefusedError as exc:
                    field = f"chart.path {path!r}: {name}: dependency repository"
                    raise AddressRefusedError.of(field, f"{exc.url}: {exc.detail}") from None
                except HTTPError as exc:
                    detail = f"dependency repository {exc.url}: {exc.detail}"
                    raise RepositoryUnavailableError(detail) from None
                except ValueError:  # "https://[::1", a DNS label over 63 characters: no address
                    raise ChartNotFoundError(
                        f"chart.path {path!r}: {name}: a dependency repository is not a valid URL"
                    ) from None


def same_repository(a: str, b: str) -> bool:
    """Whether two Git URLs name the same repository, as written: the scheme and host
    compared without case, a trailing ``/`` or ``.git`` ignored (no name resolution)."""
    return _repository_id(a) == _repository_id(b)


def _repository_id(url: str) -> str:
    url = url.strip().rstrip("/").removesuffix(".git").rstrip("/")
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    host, slash, path = rest.partition("/")
    return f"{scheme.lower()}://{host.lower()}{slash}{path}"


def _tree_digest(root: Path, dependencies: Sequence[Path] = ()) -> str:
    """Digest of a chart directory (relative names and contents of its regular files), then of
    each local dependency's directory, named by its path relative to the chart."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.is_symlink():
            h.update(p.relative_to(root).as_posix().encode() + b"\0" + p.read_bytes() + b"\0")
    for dep in sorted(dependencies):
        h.update(b"dependency\0" + os.path.relpath(dep, root).encode() + b"\0")
        for p in sorted(dep.rglob("*")):
            if p.is_file() and not p.is_symlink():
                h.update(p.relative_to(dep).as_posix().encode() + b"\0" + p.read_bytes() + b"\0")
    return "sha256:" + h.hexdigest()


class DependencyPathError(ValueError):
    """A ``file://`` dependency that cannot be exported (outside the repository, not relative)."""


def local_dependency_paths(chart_meta: bytes, chart_path: str, file: str) -> list[str]:
    """The repository paths of the ``file://`` dependencies declared in ``chart_meta`` (the
    bytes of ``Chart.yaml`` or ``requirements.yaml``, at ``file``, of the chart at
    ``chart_path``); a path outside the repository raises :class:`DependencyPathError`."""
    try:
        meta = yamlio.load(chart_meta, unique_keys=False)
    except yamlio.YAMLError as exc:
        raise DependencyPathError(f"{file}: {exc}") from None
    deps = meta.get("dependencies") if isinstance(meta, dict) else None
    if not isinstance(deps, list):
        return []
    out: list[str] = []
    for i, dep in enumerate(deps):
        repo = dep.get("repository") if isinstance(dep, dict) else None
        if not isinstance(repo, str) or not repo.startswith("file://"):
            continue
        target = repo[len("file://") :]
        where = f"{file}: dependencies[{i}].repository {repo!r}"
        if target.startswith("/"):
            raise DependencyPathError(f"{where} is an absolute path; only paths inside the repository work")
        joined = posixpath.normpath(posixpath.join(chart_path, target)) if target else chart_path
        if joined == ".":
            joined = ""
        if joined == ".." or joined.startswith("../"):
            raise DependencyPathError(f"{where} leaves the repository")
        out.append(joined)
    return out


def remote_dependency_urls(chart_meta: bytes) -> list[str]:
    """The http(s) addresses helm reaches for the dependencies declared in ``chart_meta`` (the
    bytes of ``Chart.yaml`` or ``requirements.yaml``): each repository URL, an ``oci://``
    registry as ``https://`` of its host; ``file://`` and named (``@name``, ``alias:``) ones are
    not fetched by URL."""
    meta = yamlio.load(chart_meta, unique_keys=False)
    deps = meta.get("dependencies") if isinstance(meta, dict) else None
    out: list[str] = []
    for dep in deps if isinstance(deps, list) else []:
        repo = dep.get("repository") if isinstance(dep, dict) else None
        if not isinstance(repo, str):
            continue
        lowered = repo.strip().lower()
        if lowered.startswith(("http://", "https://")):
            out.append(repo.strip())
        elif lowered.startswith("oci://"):
            out.append("https://" + repo.strip()[len("oci://") :])
    return out


def _chart_meta(chart_dir: Path) -> dict[str, object]:
    try:
        meta = yamlio.load(yamlio.read_file(chart_dir / "Chart.yaml"), unique_keys=False)
    except (OSError, yamlio.YAMLError):
        return {}
    return meta if isinstance(meta, dict) else {}


def chart_version(chart_dir: Path) -> str:
    return str(_chart_meta(chart_dir).get("version", ""))


def _chart_name(chart_dir: Path) -> str:
    return str(_chart_meta(chart_dir).get("name", ""))
