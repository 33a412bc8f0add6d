"""Leader election on a coordination.k8s.io Lease: only one replica reconciles and syncs, fenced.

Place in the flow: with ``--leader-elect``, ``agent.Agent.run`` starts the HTTP server at once
(so probes pass on a standby) and starts the controller and the Git sync only once this replica
holds the Lease. The semantics are client-go's:

* Time on two clocks. The *wall* clock only stamps the record (``acquireTime``, ``renewTime``,
  read by people and ``gitops-helm status``); every decision is taken on this process's
  *monotonic* clock, so neither a clock step here nor another replica's skewed clock moves it.
* A standby never reads the holder's timestamps as time. It remembers the record it last saw
  (holder, renewTime, leaseTransitions, resourceVersion) and *when it saw it change*, and takes
  the Lease over only once it has seen the record unchanged for ``leaseDurationSeconds``; a
  Lease released on purpose (empty holder) is taken at once.
* The leader counts its renew deadline from the moment it *sent* its last successful renewal
  (the write happened after that, and any standby saw it later still). Once ``renew_deadline_s``
  passes without a renewal, or a read shows another holder, leadership is lost: ``on_lost`` is
  called once, from whichever thread notices first (the renewal loop, or the fence thread that
  watches the deadline even while a Kubernetes request hangs). ``lease_s - renew_deadline_s``
  is the margin in which the old leader stops its helm processes before any standby may act.
* :meth:`LeaderElector.holds` answers "may I start acting now?" from the monotonic clock alone:
  a process frozen (SIGSTOP, a paused VM) and resumed past its deadline is refused at once, before
  its election thread has run again.

Writes are guarded by the Lease's resourceVersion, so of two replicas racing for an expired Lease
exactly one wins.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gitops_helm import log as logging
from gitops_helm.adapters.kube import Kube, KubeError

log = logging.get(__name__)


@dataclass(frozen=True)
class LeaderSettings:
    namespace: str
    name: str = "gitops-helm"
    identity: str = ""
    lease_s: int = 30  # a standby takes over a Lease it has seen unchanged for this long
    renew_deadline_s: float = 20.0  # a leader that has not renewed for this long stops acting
    retry_s: float = 4.0  # the leader renews, and a standby reads the Lease, this often

    def __post_init__(self) -> None:
        # config.py gives the operator the clear message; this guards every other caller
        if not 0 < self.retry_s < self.renew_deadline_s < self.lease_s:
            raise ValueError(
                f"leader election needs 0 < retry ({self.retry_s}s) < renew deadline "
                f"({self.renew_deadline_s}s) < lease duration ({self.lease_s}s)"
            )


@dataclass(frozen=True)
class LeaseRecord:
    """What a replica compares between two reads: any change means the holder is alive."""

    holder: str
    renew_time: str
    transitions: int
    resource_version: str
    duration_s: float

    @classmethod
    def of(cls, lease: dict[str, Any], default_duration_s: float) -> LeaseRecord:
        spec = lease.get("spec") or {}
        meta = lease.get("metadata") or {}
        return cls(
            holder=str(spec.get("holderIdentity") or ""),
            renew_time=str(spec.get("renewTime") or ""),
            transitions=int(spec.get("leaseTransitions") or 0),
            resource_version=str(meta.get("resourceVersion") or ""),
            duration_s=float(spec.get("leaseDurationSeconds") or default_duration_s),
        )


def _parse(ts: object) -> float | None:
    if isinstance(ts, datetime):
        return ts.timestamp()
    if isinstance(ts, str) and ts:
        try:
            return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


class LeaderElector:
    def __init__(
        self,
        kube: Kube,
        settings: LeaderSettings,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kube = kube
        self.settings = settings
        self.wall = wall  # stamps the record only
        self.monotonic = monotonic  # every deadline
        self.leading = threading.Event()
        self.reachable = threading.Event()  # the last round read the Lease (a standby is healthy)
        self.holder = ""  # the holder seen in the last round
        self.renewed_at = 0.0  # monotonic: when the last successful write of ours was sent
        self._observed: LeaseRecord | None = None
        self._observed_at = 0.0  # monotonic: when this replica saw ``_observed`` appear
        self._lost = False
        self._on_lost_called = False
        self._lost_lock = threading.Lock()

    # -- the decisions ------------------------------------------------------------------------

    def holds(self) -> bool:
        """Whether this replica may act now: it leads and its renew deadline has not passed."""
        return self.leading.is_set() and self.monotonic() < self.deadline()

    def deadline(self) -> float:
        """The monotonic instant after which, without a renewal, this replica must not act."""
        return self.renewed_at + self.settings.renew_deadline_s

    def expired(self, record: LeaseRecord) -> bool:
        """Whether a standby may take ``record`` over: released, or seen unchanged for its
        duration (measured from this replica's own observation, never the holder's clock)."""
        if not record.holder:
            return True
        return self.monotonic() >= self._observed_at + record.duration_s

    def _observe(self, record: LeaseRecord) -> None:
        if record != self._observed:
            self._observed = record
            self._observed_at = self.monotonic()

    def step(self) -> bool:
        """One round; returns whether this replica holds the Lease afterwards."""
        s = self.settings
        if self._lost:
            return False
        if self.leading.is_set() and not self.holds():
            # past the deadline is lost, even if the record still names us: whatever this
            # replica was doing has been stopped (or is being stopped) for a standby to act
            self._lose("no renewal within the renew deadline")
            return False
        sent = self.monotonic()  # a write that succeeds below happened after this instant
        stamp = datetime.fromtimestamp(self.wall(), UTC)
        lease = self.kube.get_lease(s.namespace, s.name)
        self.reachable.set()
        try:
            if lease is None:
                self.holder = ""
                self._write(stamp, stamp, 0, None)
                return self._won(sent, "created the lease")
            record = LeaseRecord.of(lease, s.lease_s)
            self._observe(record)
            self.holder = record.holder
            spec = lease.get("spec") or {}
            if record.holder == s.identity:
                acquired = _parse(spec.get("acquireTime"))
                self._write(
                    datetime.fromtimestamp(acquired, UTC) if acquired else stamp,
                    stamp,
                    record.transitions,
                    record.resource_version,
                )
                return self._won(sent, "")
            if self.leading.is_set():
                # another replica holds it: whatever our deadline says, we are not the leader
                self._lose(f"the Lease is held by {record.holder or 'nobody'}")
                return False
            if not self.expired(record):
                return False  # a live holder (or one we have not watched for a lease duration)
            self._write(stamp, stamp, record.transitions + 1, record.resource_version)
            return self._won(sent, f"took over from {record.holder or 'nobody'}")
        except KubeError as exc:
            log.debug("lease write lost", error=str(exc))
            return False

    def _write(self, acquired: datetime, renewed: datetime, transitions: int, rv: str | None) -> None:
        s = self.settings
        self.kube.write_lease(
            s.namespace,
            s.name,
            holder=s.identity,
            duration_s=s.lease_s,
            acquired=acquired,
            renewed=renewed,
            transitions=transitions,
            resource_version=rv,
        )

    def _won(self, sent: float, how: str) -> bool:
        with self._lost_lock:
            if self._lost:
                return False  # leadership once lost is never resumed by this process
            if not self.leading.is_set():
                log.info("became leader", identity=self.settings.identity, how=how)
            self.renewed_at = sent
            self.holder = self.settings.identity
            self.leading.set()
        return True

    def _lose(self, why: str) -> bool:
        """Mark leadership lost (once); True for the caller that did it."""
        with self._lost_lock:
            if self._lost or not self.leading.is_set():
                return False
            self._lost = True
            self.leading.clear()
        log.error(
            "lost leadership: stopping helm actions so that no two replicas act",
            identity=self.settings.identity,
            why=why,
        )
        return True

    # -- the loops ----------------------------------------------------------------------------

    def release(self) -> None:
        """Give the Lease up (after a graceful stop), so a standby takes over at its next round
        instead of waiting for the Lease to expire. Nothing happens unless this replica holds it."""
        if not self.holds():
            self.leading.clear()
            return
        self.leading.clear()
        s = self.settings
        try:
            lease = self.kube.get_lease(s.namespace, s.name)
            spec = (lease or {}).get("spec") or {}
            if lease is None or spec.get("holderIdentity") != s.identity:
                return
            now = datetime.fromtimestamp(self.wall(), UTC)
            self.kube.write_lease(
                s.namespace,
                s.name,
                holder="",
                duration_s=s.lease_s,
                acquired=datetime.fromtimestamp(_parse(spec.get("acquireTime")) or self.wall(), UTC),
                renewed=now,
                transitions=int(spec.get("leaseTransitions") or 0),
                resource_version=(lease.get("metadata") or {}).get("resourceVersion"),
            )
            log.info("released leadership", identity=s.identity)
        except KubeError as exc:  # the Lease then expires as usual
            log.warning("cannot release the lease", error=str(exc))

    def run(self, stop: threading.Event, on_lost: Callable[[], None]) -> None:
        """Loop until ``stop``: acquire, then renew every retry period; call ``on_lost`` once if
        leadership is lost (renew deadline passed, or another holder seen)."""
        fence = threading.Thread(target=self._fence, args=(stop, on_lost), name="leader-fence", daemon=True)
        fence.start()
        while not stop.is_set():
            try:
                self.step()
            except KubeError as exc:
                log.warning("leader election: API error", error=str(exc))
                self.reachable.clear()
            except Exception as exc:  # never let the loop die silently; the fence still watches
                log.error("leader election crashed a round", error=f"{type(exc).__name__}: {exc}")
                self.reachable.clear()
            if self._lost or (self.leading.is_set() and not self.holds()):
                self._lose("no renewal within the renew deadline")
                if self._claim_on_lost():
                    on_lost()
                return
            stop.wait(self.settings.retry_s)

    def _fence(self, stop: threading.Event, on_lost: Callable[[], None]) -> None:
        """Watch the renew deadline on its own: a renewal stuck in a hanging request must not
        keep this replica acting past it."""
        while not stop.is_set() and not self._lost:
            if self.leading.is_set():
                left = self.deadline() - self.monotonic()
                if left <= 0:
                    self._lose("no renewal within the renew deadline")
                    break
                stop.wait(min(left, self.settings.retry_s))
            else:
                stop.wait(min(0.5, self.settings.retry_s))
        if self._lost and self._claim_on_lost():
            on_lost()

    def _claim_on_lost(self) -> bool:
        """True exactly once, for the thread that calls ``on_lost``."""
        with self._lost_lock:
            if not self._lost or self._on_lost_called:
                return False
            self._on_lost_called = True
            return True
