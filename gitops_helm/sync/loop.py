"""The sync loop: run one sync of the newest checkout on every new commit and every poll interval.

Place in the flow: ``source.GitSource`` fetches the branch and calls :meth:`SyncLoop.on_checkout`
when the head moves; this loop's thread then runs :meth:`sync.apply.Syncer.sync` on that checkout.
It also syncs again every poll interval without a new commit, so hand edits of applied objects
are undone (drift), and records the source's fetch health beside the sync state. A failing sync
never ends the loop: it is logged, counted in the metrics and tried again at the next trigger.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from gitops_helm import log as logging
from gitops_helm import metrics
from gitops_helm.adapters.kube import KubeError
from gitops_helm.source.gitsource import Checkout, GitSource
from gitops_helm.sync.apply import Syncer

log = logging.get(__name__)

SOURCE_STATE_EVERY_S = 1.0  # how often the loop looks for a new fetch outcome to record


class HandoffWatch:
    """The leader's side of a webhook that reached a standby: a new sync request -> fetch now."""

    def __init__(self, syncer: Syncer, source: GitSource) -> None:
        self.syncer = syncer
        self.source = source
        self.every_s = syncer.settings.handoff_poll_s
        self.due = 0.0
        self.seen: str | None = None
        self.started = False

    def look(self) -> None:
        if time.monotonic() < self.due:
            return
        self.due = time.monotonic() + self.every_s
        try:
            requested = self.syncer.sync_requested()
        except KubeError as exc:
            log.debug("cannot read sync requests", error=exc.message)
            return
        if self.started and requested and requested != self.seen:
            log.info("sync requested by a standby (webhook)", requested=requested)
            self.source.trigger()
        self.seen, self.started = requested, True


class SyncLoop:
    """Apply the newest checkout on every new commit, and again every poll interval (drift)."""

    def __init__(
        self,
        syncer: Syncer,
        paths: tuple[str, ...],
        interval_s: float,
        beat: Callable[[], None] | None = None,
    ) -> None:
        self.syncer = syncer
        self.beat = beat or (lambda: None)  # liveness: at least every SOURCE_STATE_EVERY_S when idle
        self.source: GitSource | None = None
        self.paths = paths
        self.interval_s = interval_s
        self.wake = threading.Event()
        self.stop_event = threading.Event()
        self.first_sync = threading.Event()
        self.thread = threading.Thread(target=self._run, name="git-sync", daemon=True)
        # told of each commit synced for the first time, before and after its sync (the agent
        # refreshes Git chart mirrors of the same repository before, and polls them after)
        self.before_new_commit: Callable[[str], None] = lambda sha: None
        self.after_new_commit: Callable[[str], None] = lambda sha: None

    def on_checkout(self, checkout: Checkout) -> None:
        log.info("new commit", revision=checkout.sha[:12], subject=checkout.commit.subject)
        self.wake.set()

    def _run(self) -> None:
        assert self.source is not None  # noqa: S101 - set by agent.Agent before start()
        due = 0.0  # monotonic time of the next sync without a new commit (drift correction)
        noted: tuple[object, ...] | None = None
        synced: str | None = None  # the commit last synced (or attempted)
        handoff = HandoffWatch(self.syncer, self.source)
        while not self.stop_event.is_set():
            self.beat()
            handoff.look()
            if self.wake.is_set() or time.monotonic() >= due:
                self.wake.clear()
                checkout = self.source.checkout
                if checkout is not None:
                    new_commit = checkout.sha != synced
                    synced = checkout.sha
                    try:
                        if new_commit:
                            self.before_new_commit(checkout.sha)
                        self._sync(checkout)
                        if new_commit:
                            self.after_new_commit(checkout.sha)
                    except Exception as exc:  # a bug must not end Git sync while the agent looks healthy
                        log.error("sync crashed", revision=checkout.sha[:12], error=repr(exc))
                        metrics.SYNC_RUNS.labels(result="error").inc()
                due = time.monotonic() + self.interval_s
            latest = self.source.checkout
            if latest is not None and latest.sha != synced:
                # The source records a fetch before it announces the commit it brought: sync that
                # commit first, so whoever reads the state sees a fetch together with its commit
                # (`reconcile --with-source` waits for the fetch, then reads the revision).
                self.wake.set()
                continue
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
