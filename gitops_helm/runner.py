"""What the CLI's commands do, end to end: run the agent, sync once, preview, show status.

Place in the flow: ``cli.py`` parses flags into :class:`Settings` and calls one function here. The
long-running ``run`` wires the Git source (poll, webhook, file watch) to the syncer and starts the
release controller; ``sync --once`` and ``diff`` do one fetch and one apply (or dry run) and exit.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sys
import threading
import time
from pathlib import Path

from gitops_helm import log as logging
from gitops_helm import metrics
from gitops_helm.adapters.git import GitError, HTTPAuth, SSHAuth
from gitops_helm.adapters.git import GitSettings as AdapterGitSettings
from gitops_helm.adapters.kube import Kube, KubeError, KubeSettings
from gitops_helm.api import ConditionType, find_condition, parse_status
from gitops_helm.config import ConfigError, Settings
from gitops_helm.leader import LeaderElector, LeaderSettings
from gitops_helm.server import Hooks
from gitops_helm.source.gitsource import Checkout, GitSource, GitSourceConfig, SourceSettings
from gitops_helm.source.watch import DirectoryWatcher, WatchSettings
from gitops_helm.sync import Syncer, state_configmap_name

log = logging.get(__name__)

DEFAULT_BRANCH = "main"
SOURCE_STATE_EVERY_S = 1.0  # how often the sync loop looks for a new fetch outcome to record


def _is_local_path(url: str) -> bool:
    """Git's rule: no ``scheme://`` and no colon before the first slash (``user@host:path`` is
    an scp-like SSH address, whatever the user name)."""
    if "://" in url:
        return False
    head, colon, _ = url.partition(":")
    return not colon or "/" in head


def _source(settings: Settings, on_checkout: object = None) -> GitSource:
    g = settings.git
    if not g.url:
        raise ConfigError("--git-url is required (or run with --reconcile-only)")
    auth: HTTPAuth | SSHAuth | None = None
    if g.ssh_key:
        if not g.known_hosts:
            raise ConfigError(
                "--git-known-hosts is required with --git-ssh-key (host keys are always verified)"
            )
        auth = SSHAuth(private_key=Path(g.ssh_key), known_hosts=Path(g.known_hosts))
    elif g.user or g.password:
        auth = HTTPAuth(username=g.user or "git", password=g.password or "")
    url = g.url
    if _is_local_path(url):
        url = Path(url).resolve().as_uri()
    key = hashlib.sha256(f"{url}\0{settings.sync.name}".encode()).hexdigest()[:16]
    try:
        config = GitSourceConfig(
            url=url,
            branch=g.branch or DEFAULT_BRANCH,
            paths=g.paths,
            poll_interval_s=g.poll_interval_s,
            auth=auth,
        )
        return GitSource(
            config,
            settings.work_dir / "source" / key,
            SourceSettings(
                backoff_initial_s=settings.retry.base_s,
                backoff_max_s=settings.retry.max_s,
                git=AdapterGitSettings(timeout_s=g.timeout_s),
            ),
            on_checkout=on_checkout,  # type: ignore[arg-type]
        )
    except (ValueError, GitError) as exc:
        raise ConfigError(f"--git-url: {exc}") from None


class SyncLoop:
    """Apply the newest checkout on every new commit, and again every poll interval (drift)."""

    def __init__(self, syncer: Syncer, paths: tuple[str, ...], interval_s: float) -> None:
        self.syncer = syncer
        self.source: GitSource | None = None
        self.paths = paths
        self.interval_s = interval_s
        self.wake = threading.Event()
        self.stop_event = threading.Event()
        self.first_sync = threading.Event()
        self.thread = threading.Thread(target=self._run, name="git-sync", daemon=True)

    def on_checkout(self, checkout: Checkout) -> None:
        log.info("new commit", revision=checkout.sha[:12], subject=checkout.commit.subject)
        self.wake.set()

    def _run(self) -> None:
        assert self.source is not None  # noqa: S101 - set by run_agent before start()
        due = 0.0  # monotonic time of the next sync without a new commit (drift correction)
        noted: tuple[object, ...] | None = None
        while not self.stop_event.is_set():
            if self.wake.is_set() or time.monotonic() >= due:
                self.wake.clear()
                checkout = self.source.checkout
                if checkout is not None:
                    try:
                        self._sync(checkout)
                    except Exception as exc:  # a bug must not end Git sync while the agent looks healthy
                        log.error("sync crashed", revision=checkout.sha[:12], error=repr(exc))
                        metrics.SYNC_RUNS.labels(result="error").inc()
                due = time.monotonic() + self.interval_s
            # The source's health is recorded after every fetch attempt, not only at sync time,
            # so a failing fetch shows even with a long poll interval and webhook triggers.
            status = self.source.status()
            seen = (status.last_attempt_time, status.next_poll, str(status.last_error))
            if seen != noted and status.next_poll is not None:
                fetch_error = str(status.last_error) if status.last_error else None
                self.syncer.note_poll(status.next_poll.timestamp(), fetch_error)
                noted = seen
            self.wake.wait(min(max(due - time.monotonic(), 0.0), SOURCE_STATE_EVERY_S))

    def _sync(self, checkout: Checkout) -> None:
        started = time.monotonic()
        try:
            result = self.syncer.sync(checkout.path, self.paths, checkout.sha)
        except KubeError as exc:
            log.warning("sync failed", revision=checkout.sha[:12], error=str(exc))
            metrics.SYNC_RUNS.labels(result="error").inc()
            return
        metrics.SYNC_RUNS.labels(result="ok" if result.ok else "error").inc()
        metrics.SYNC_OBJECT_ERRORS.set(len(result.errors))
        if result.ok:
            metrics.SYNC_LAST_SUCCESS.set(time.time())
        for err in result.errors:
            log.warning("sync error", revision=checkout.sha[:12], error=err)
        log.info(
            "synced",
            revision=checkout.sha[:12],
            applied=len(result.applied),
            unchanged=len(result.unchanged),
            deleted=len(result.deleted),
            errors=len(result.errors),
            seconds=round(time.monotonic() - started, 2),
        )
        self.first_sync.set()

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        self.wake.set()


def run_agent(settings: Settings, stop: threading.Event) -> int:
    from gitops_helm.agent import Agent

    if not settings.reconcile_only and not settings.git.url:
        raise ConfigError("give --git-url (Git sync and releases) or --reconcile-only (releases only)")
    agent = Agent(settings)
    source: GitSource | None = None
    loop: SyncLoop | None = None
    if not settings.reconcile_only:
        syncer = Syncer(agent.kube, settings.sync)
        loop = SyncLoop(syncer, settings.git.paths, settings.git.poll_interval_s)
        source = _source(settings, loop.on_checkout)
        loop.source = source

    def ready() -> tuple[bool, str]:
        ok, why = agent.ready()
        if ok and loop is not None and not loop.first_sync.is_set():
            return False, "first Git sync not done yet"
        return ok, why

    hooks = Hooks(
        ready=ready,
        git_trigger=source.trigger if source else None,
        git_url=settings.git.url or "",
        git_branch=(lambda: settings.git.branch or DEFAULT_BRANCH),
        webhook_secret=settings.git.webhook_secret,
        before_metrics=agent._refresh_metrics,
    )
    watchers: list[DirectoryWatcher] = []
    lost = threading.Event()  # leadership lost: stop and exit non-zero (restart as a standby)

    def start_acting() -> None:
        agent.start_workers()
        if source is not None and loop is not None:
            source.start()
            loop.start()
            local = Path(settings.git.url or "")
            if local.is_dir() and (local / ".git").exists():
                # .git is watched too: a local commit changes nothing else in the work tree.
                watcher = DirectoryWatcher(local, source.trigger, WatchSettings(ignored_names=()))
                watcher.start()
                watchers.append(watcher)

    try:
        agent.start_server(hooks)
        if settings.leader_elect:
            elector = LeaderElector(
                agent.kube,
                LeaderSettings(
                    namespace=settings.leader_election_namespace or settings.sync.state_namespace,
                    name=settings.leader_election_id,
                    identity=f"{socket.gethostname()}-{os.getpid()}",
                    lease_s=int(settings.leader_election_lease_s),
                    renew_s=settings.leader_election_lease_s / 3,
                    retry_s=max(0.5, settings.leader_election_lease_s / 10),
                ),
            )

            def on_lost() -> None:
                lost.set()
                stop.set()

            threading.Thread(target=elector.run, args=(stop, on_lost), name="leader", daemon=True).start()
            log.info("waiting for leadership", lease=settings.leader_election_id)
            while not stop.is_set() and not elector.leading.wait(1.0):
                pass
            if elector.leading.is_set() and not stop.is_set():
                start_acting()
        else:
            start_acting()
    except KubeError as exc:
        log.error("cannot start", error=str(exc))
        return 1
    log.info("running", port=agent.server.port if agent.server else None)
    stop.wait()
    for w in watchers:
        w.stop()
    if loop is not None:
        loop.stop()
    if source is not None:
        source.stop(timeout=10)
    agent.stop()
    return 1 if lost.is_set() else 0


def run_sync_once(settings: Settings, *, diff_only: bool) -> int:
    """``sync --once`` (apply, exit 1 on any error) and ``diff`` (show, change nothing)."""
    kube = Kube(KubeSettings(kubeconfig=settings.kubeconfig, context=settings.kube_context))
    source = _source(settings)
    checkout = source.poll_once()
    checkout = checkout or source.checkout
    if checkout is None:
        print(f"gitops-helm: cannot fetch {settings.git.url}: {source.last_error}", file=sys.stderr)
        return 1
    syncer = Syncer(kube, settings.sync)
    if diff_only:
        lines, errors = syncer.diff(checkout.path, settings.git.paths)
        print(f"# {settings.git.url} at {checkout.sha[:12]}")
        for line in lines:
            print(line)
        for err in errors:
            print(f"error: {err}", file=sys.stderr)
        return 1 if errors else 0
    result = syncer.sync(checkout.path, settings.git.paths, checkout.sha)
    print(
        f"synced {checkout.sha[:12]}: {len(result.applied)} applied, {len(result.unchanged)} unchanged, "
        f"{len(result.deleted)} deleted, {len(result.errors)} errors"
    )
    for name in result.would_delete:
        print(f"would delete (dry run): {name}")
    if result.gc_skipped and settings.sync.garbage_collection:
        print(f"garbage collection skipped: {result.gc_skipped}")
    for err in result.errors:
        print(f"error: {err}", file=sys.stderr)
    return 0 if result.ok else 1


def print_status(settings: Settings) -> int:
    kube = Kube(KubeSettings(kubeconfig=settings.kubeconfig, context=settings.kube_context))
    try:
        items, _ = kube.list_helmreleases(settings.namespace)
    except KubeError as exc:
        print(f"gitops-helm: {exc}", file=sys.stderr)
        return 1
    rows = [("NAMESPACE", "NAME", "RELEASE", "PHASE", "STATUS", "READY", "MESSAGE")]
    for obj in sorted(items, key=lambda o: (o["metadata"]["namespace"], o["metadata"]["name"])):
        st = parse_status(obj.get("status"))
        ready = find_condition(st.conditions, ConditionType.READY)
        rows.append(
            (
                obj["metadata"]["namespace"],
                obj["metadata"]["name"],
                st.release_name or "-",
                str(st.phase or "-"),
                st.release_status or "-",
                str(ready.status) if ready else "Unknown",
                (ready.message if ready else "")[:80],
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1])
    state = kube.get_configmap_data(settings.sync.state_namespace, state_configmap_name(settings.sync.name))
    if state:
        print()
        print(
            f"git sync '{settings.sync.name}': revision {state.get('revision', '-')[:12]} "
            f"at {state.get('time', '-')} ({state.get('result', '-')}; {state.get('applied', '0')} applied, "
            f"{state.get('unchanged', '0')} unchanged); next poll {state.get('nextPoll', '-')}"
        )
        for name in json.loads(state.get("wouldDelete") or "[]"):
            print(f"  would delete (dry run): {name}")
        if state.get("fetchError"):
            print(f"  fetch error: {state['fetchError']}")
        for err in json.loads(state.get("errors") or "[]"):
            print(f"  error: {err}")
    return 0
