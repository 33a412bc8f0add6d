"""Watch HelmReleases and feed them to parallel workers, one reconcile per key at a time.

Place in the flow: between the cluster and ``release.reconcile``. A watch thread keeps a cache of
the latest HelmRelease objects (list + watch from a resourceVersion, re-list on 410 Gone) and
enqueues keys; ``workers`` threads take keys from a :class:`WorkQueue` that never hands the same
key to two workers at once (a key re-added while running is processed once more afterwards);
failures come back with exponential backoff (numbers from settings); every key is re-queued at
least every ``resync_interval`` (cheap: an unchanged release costs no helm call). Status-only
updates and the agent's own finalizer being added -- the agent's own writes -- do not enqueue.
Changes to ConfigMaps and Secrets that a HelmRelease reads its values from enqueue that
HelmRelease.

Sharding: with a label selector (``--watch-label-selector``/``--shard``) the list and watch ask
the API server for matching HelmReleases only, and every object is matched again here. One whose
labels leave the selector (the watch sends DELETED) is dropped at once: out of the cache, so a
queued key, a retry, a values change or the resync finds nothing to reconcile, and
:meth:`Controller.watches` tells a run under way to take no further helm step.
"""

from __future__ import annotations

import heapq
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from gitops_helm import log as logging
from gitops_helm.adapters.kube import Kube, KubeError, KubeErrorKind
from gitops_helm.api.selector import parse_selector
from gitops_helm.config import Settings
from gitops_helm.heartbeat import Heartbeats
from gitops_helm.release.identity import FINALIZER
from gitops_helm.release.reconcile import Outcome
from gitops_helm.values import WatchedObject

log = logging.get(__name__)

# A ConfigMap/Secret edit often comes as several events: reconcile once, shortly after the last.
VALUES_CHANGE_DEBOUNCE_S = 0.5


def key_of(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata", {})
    return f"{meta.get('namespace')}/{meta.get('name')}"


def needs_reconcile(old: dict[str, Any] | None, new: dict[str, Any]) -> bool:
    """False for an update that changed only the status, or only added our finalizer: both are
    our own writes, made by a reconcile that goes on with the object it wrote."""
    if old is None:
        return True
    o, n = old.get("metadata", {}), new.get("metadata", {})
    before, after = o.get("finalizers") or [], n.get("finalizers") or []
    # the first reconcile of a new HelmRelease adds the finalizer and installs in the same run:
    # the event of that write must not queue a second reconcile of every new HelmRelease
    finalizers_changed = after not in (before, [*before, FINALIZER])
    return bool(
        o.get("generation") != n.get("generation")
        or o.get("annotations") != n.get("annotations")
        or o.get("labels") != n.get("labels")
        or finalizers_changed
        or o.get("deletionTimestamp") != n.get("deletionTimestamp")
    )


class WorkQueue:
    """Keys to reconcile: deduplicated, delayed, and never processed by two workers at once."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._cv = threading.Condition()
        self._ready: list[str] = []
        self._queued: set[str] = set()
        self._running: set[str] = set()
        self._again: set[str] = set()
        self._delayed: list[tuple[float, int, str]] = []
        self._due: dict[str, float] = {}  # key -> when its one pending delayed add is due
        self._seq = 0
        self._closed = False

    def add(self, key: str, delay: float = 0.0) -> None:
        with self._cv:
            if self._closed:
                return
            if delay > 0:
                # one pending delayed add per key (the earliest): a key requeued by several
                # reconciles or events must not turn into parallel chains of retries
                due = self._clock() + delay
                if self._due.get(key, due + 1) <= due:
                    return
                self._due[key] = due
                self._seq += 1
                heapq.heappush(self._delayed, (due, self._seq, key))
            elif key in self._running:
                self._again.add(key)
            elif key not in self._queued:
                self._queued.add(key)
                self._ready.append(key)
            self._cv.notify_all()

    def get(self, timeout: float = 1.0) -> str | None:
        deadline = self._clock() + timeout
        with self._cv:
            while True:
                if self._closed:
                    return None  # stopping: no worker takes a new key
                self._promote()
                for i, key in enumerate(self._ready):
                    if key not in self._running:
                        del self._ready[i]
                        self._queued.discard(key)
                        self._running.add(key)
                        return key
                now = self._clock()
                wait = deadline - now
                if self._delayed:
                    wait = min(wait, self._delayed[0][0] - now)
                if deadline <= now:
                    return None
                self._cv.wait(max(0.01, wait))

    def _promote(self) -> None:
        now = self._clock()
        while self._delayed and self._delayed[0][0] <= now:
            due, _, key = heapq.heappop(self._delayed)
            if self._due.get(key) != due:
                continue  # superseded by an earlier add
            del self._due[key]
            if key not in self._queued and key not in self._running:
                self._queued.add(key)
                self._ready.append(key)
            elif key in self._running:
                self._again.add(key)

    def done(self, key: str) -> None:
        with self._cv:
            self._running.discard(key)
            if key in self._again:
                self._again.discard(key)
                if key not in self._queued:
                    self._queued.add(key)
                    self._ready.append(key)
            self._cv.notify_all()

    def running(self) -> set[str]:
        """The keys a worker is processing now."""
        with self._cv:
            return set(self._running)

    def __len__(self) -> int:
        with self._cv:
            return len(self._ready) + len(self._due)

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify_all()


@dataclass
class _RefIndex:
    """Which HelmReleases read their values from which ConfigMaps/Secrets."""

    by_ref: dict[tuple[str, str, str], set[str]] = field(default_factory=dict)
    by_key: dict[str, set[tuple[str, str, str]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def replace(self, key: str, refs: Iterable[WatchedObject]) -> None:
        new: set[tuple[str, str, str]] = {(str(r.kind), r.namespace, r.name) for r in refs}
        with self.lock:
            for old in self.by_key.get(key, set()) - new:
                self.by_ref.get(old, set()).discard(key)
                if not self.by_ref.get(old, True):
                    del self.by_ref[old]
            for ref in new:
                self.by_ref.setdefault(ref, set()).add(key)
            if new:
                self.by_key[key] = new
            else:
                self.by_key.pop(key, None)

    def keys(self) -> set[str]:
        with self.lock:
            return set(self.by_key)

    def keys_for(self, kind: str, namespace: str, name: str) -> set[str]:
        with self.lock:
            return set(self.by_ref.get((kind, namespace, name), set()))


class Controller:
    def __init__(
        self,
        kube: Kube,
        reconcile: Callable[[dict[str, Any]], Outcome],
        settings: Settings,
        heartbeats: Heartbeats | None = None,
    ) -> None:
        self.kube = kube
        self.reconcile_fn = reconcile
        self.namespace = settings.namespace
        self.selector = parse_selector(settings.watch_label_selector)
        self.workers = settings.workers
        self.resync_interval_s = settings.resync_interval_s
        self.resync_jitter_max_s = settings.resync_jitter_max_s
        self.retry = settings.retry  # after a reconcile that crashed
        self.shutdown_grace_s = settings.shutdown_grace_s  # how long stop() waits for workers
        self.watch_retry = settings.watch_retry  # after a failed watch request
        self.liveness = settings.liveness
        self.heartbeats = heartbeats or Heartbeats()
        self.queue = WorkQueue()
        self.cache: dict[str, dict[str, Any]] = {}
        self.refs = _RefIndex()
        self._failures: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.synced = threading.Event()  # the first list has been loaded
        self.reconciles = 0
        self.last_results: dict[str, Outcome] = {}

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        hb, live = self.heartbeats, self.liveness
        beat = hb.register("helmrelease-watch", live.watch_s)
        self._spawn("hr-watch", lambda: self._watch_loop(beat))
        for kind in ("ConfigMap", "Secret"):
            beat_kind = hb.register(f"{kind.lower()}-watch", live.watch_s)
            self._spawn(f"{kind.lower()}-watch", lambda k=kind, b=beat_kind: self._values_watch_loop(k, b))  # type: ignore[misc]
        beat = hb.register("resync", self.resync_interval_s + live.margin_s)
        self._spawn("resync", lambda: self._resync_loop(beat))
        for i in range(self.workers):
            beat_worker = hb.register(f"worker-{i}", live.worker_s)
            self._spawn(f"worker-{i}", lambda b=beat_worker: self._worker(b))  # type: ignore[misc]

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        t = threading.Thread(target=target, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def halt(self) -> None:
        """Hand out no more work, at once (running reconciles go on; see :meth:`stop`)."""
        self._stop.set()
        self.queue.close()

    def stop(self, timeout: float | None = None) -> list[str]:
        """Stop taking work; wait up to ``timeout`` (default: the shutdown grace) for running
        reconciles (helm calls) to finish. Returns the keys still running when it expired."""
        self.halt()
        deadline = time.monotonic() + (self.shutdown_grace_s if timeout is None else timeout)
        for t in self._threads:
            if t.name.startswith("worker"):
                t.join(max(0.0, deadline - time.monotonic()))
        return sorted(self.queue.running())

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def keys(self) -> set[str]:
        """The keys of the HelmReleases currently known."""
        with self._lock:
            return set(self.cache)

    def forget(self, keep: set[str]) -> None:
        """Drop what is kept per HelmRelease for keys not in ``keep`` (deleted ones)."""
        with self._lock:
            for key in set(self.last_results) - keep:
                del self.last_results[key]
            for key in set(self._failures) - keep:
                del self._failures[key]
        for key in self.refs.keys() - keep:
            self.refs.replace(key, ())

    def watches(self, key: str) -> bool:
        """Whether ``key`` is still one of this agent's HelmReleases (present and inside its label
        selector, as the watch last said)."""
        with self._lock:
            return key in self.cache

    def on_refs(self, key: str, refs: tuple[WatchedObject, ...]) -> None:
        # a key dropped while its run read its values may come back here: a values change then
        # finds it out of the cache (no reconcile), and the janitor's forget() removes it
        self.refs.replace(key, refs)

    # -- watch --------------------------------------------------------------------------------

    def _list(self) -> str:
        items, rv = self.kube.list_helmreleases(self.namespace, str(self.selector))
        seen = set()
        with self._lock:
            for obj in items:
                if not self.selector.matches_object(obj):
                    continue  # the server filtered already; never act on what it should not send
                key = key_of(obj)
                seen.add(key)
                old = self.cache.get(key)
                self.cache[key] = obj
                if needs_reconcile(old, obj) or not self.synced.is_set():
                    self.queue.add(key)
            for gone in set(self.cache) - seen:
                del self.cache[gone]
                self.refs.replace(gone, ())
        self.synced.set()
        return rv

    def _watch_loop(self, beat: Callable[[], None]) -> None:
        rv = ""
        failures = 0
        while not self._stop.is_set():
            beat()
            try:
                if not rv:
                    rv = self._list()
                for etype, obj in self.kube.watch_helmreleases(self.namespace, rv, str(self.selector)):
                    beat()
                    if self._stop.is_set():
                        return
                    new_rv = obj.get("metadata", {}).get("resourceVersion")
                    if new_rv:
                        rv = new_rv
                    if etype == "BOOKMARK":
                        continue
                    self._on_event(etype, obj)
                failures = 0
            except KubeError as exc:
                if exc.kind is KubeErrorKind.GONE:
                    rv = ""
                    continue
                failures += 1
                delay = self.watch_retry.delay(failures)
                log.warning("HelmRelease watch failed; retrying", error=str(exc), retry_in=delay)
                self._stop.wait(delay)
                rv = ""

    def _on_event(self, etype: str, obj: dict[str, Any]) -> None:
        key = key_of(obj)
        # A watch with a label selector sends DELETED, with the object as it was before, when
        # the labels stop matching: that DELETED has no deletionTimestamp; a real deletion of
        # one of ours has (our finalizer held it until its release was handled).
        left = bool(self.selector) and not (
            etype == "DELETED" and obj.get("metadata", {}).get("deletionTimestamp")
        )
        with self._lock:
            old = self.cache.get(key)
            if etype == "DELETED" or not self.selector.matches_object(obj):
                self.cache.pop(key, None)
                self.refs.replace(key, ())
                if old is not None and left:
                    log.info("HelmRelease left this agent's label selector: dropped", release=key)
                return
            self.cache[key] = obj
        if needs_reconcile(old, obj):
            self.queue.add(key)

    def _values_watch_loop(self, kind: str, beat: Callable[[], None]) -> None:
        failures = 0
        while not self._stop.is_set():
            beat()
            try:
                for etype, ns, name, _rv in self.kube.watch_values_objects(kind, self.namespace, None):
                    beat()
                    if self._stop.is_set():
                        return
                    if etype in ("MODIFIED", "ADDED", "DELETED"):
                        for key in self.refs.keys_for(kind, ns, name):
                            if etype != "ADDED" or self.synced.is_set():
                                self.queue.add(key, delay=VALUES_CHANGE_DEBOUNCE_S)
                failures = 0
            except KubeError as exc:
                failures += 1
                log.debug("values watch restarted", kind=kind, error=str(exc))
                self._stop.wait(self.watch_retry.delay(failures))

    def _resync_loop(self, beat: Callable[[], None]) -> None:
        while not self._stop.wait(self.resync_interval_s):
            beat()
            with self._lock:
                keys = list(self.cache)
            for key in keys:
                # Jitter spreads a large fleet over the interval instead of one burst.
                jitter = min(self.resync_jitter_max_s, self.resync_interval_s / 4)
                self.queue.add(key, delay=random.uniform(0, jitter))  # noqa: S311

    # -- workers ------------------------------------------------------------------------------

    def _worker(self, beat: Callable[[], None]) -> None:
        while not self._stop.is_set():
            beat()
            key = self.queue.get(timeout=1.0)
            if key is None:
                continue
            try:
                self._process(key)
            finally:
                self.queue.done(key)

    def _process(self, key: str) -> None:
        with self._lock:
            obj = self.cache.get(key)
        if obj is None:
            return
        try:
            outcome = self.reconcile_fn(obj)
        except Exception as exc:
            log.error("reconcile crashed", release=key, error=f"{type(exc).__name__}: {exc}")
            self._failures[key] = self._failures.get(key, 0) + 1
            outcome = Outcome(requeue_after=self._backoff(key), ok=False, message=str(exc))
        else:
            self._failures.pop(key, None)
        with self._lock:
            self.reconciles += 1
            self.last_results[key] = outcome
        if outcome.requeue_after is not None:
            self.queue.add(key, delay=outcome.requeue_after)

    def _backoff(self, key: str) -> float:
        return self.retry.delay(self._failures.get(key, 1))
