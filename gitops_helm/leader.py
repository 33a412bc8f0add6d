"""Leader election on a coordination.k8s.io Lease: only one replica reconciles and syncs.

Place in the flow: with ``--leader-elect``, ``agent.Agent.run`` starts the HTTP server at once
(so probes pass on a standby) and starts the controller and the Git sync only once this replica
holds the Lease. A leader that cannot renew within the lease duration stops itself (the process
exits and is restarted as a standby), so two replicas never run helm against one release.

The decision of one round is :meth:`LeaderElector.step`: read the Lease, then acquire it (none
exists, or its holder stopped renewing), renew it (we hold it), or wait. Writes are guarded by
the Lease's resourceVersion, so of two replicas racing for an expired Lease exactly one wins.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from gitops_helm import log as logging
from gitops_helm.adapters.kube import Kube, KubeError

log = logging.get(__name__)


@dataclass(frozen=True)
class LeaderSettings:
    namespace: str
    name: str = "gitops-helm"
    identity: str = ""
    lease_s: int = 30  # a Lease not renewed for this long may be taken over
    renew_s: float = 10.0  # the leader renews this often
    retry_s: float = 3.0  # a standby checks this often


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
    def __init__(self, kube: Kube, settings: LeaderSettings, clock: Callable[[], float] = time.time) -> None:
        self.kube = kube
        self.settings = settings
        self.clock = clock
        self.leading = threading.Event()
        self.reachable = threading.Event()  # the last round read the Lease (a standby is healthy)
        self.holder = ""  # the holder seen in the last round
        self.last_renewal = 0.0

    def step(self) -> bool:
        """One round; returns whether this replica holds the Lease afterwards."""
        s = self.settings
        now = self.clock()
        stamp = datetime.fromtimestamp(now, UTC)
        lease = self.kube.get_lease(s.namespace, s.name)
        self.reachable.set()
        self.holder = str(((lease or {}).get("spec") or {}).get("holderIdentity") or "")
        try:
            if lease is None:
                self.kube.write_lease(
                    s.namespace,
                    s.name,
                    holder=s.identity,
                    duration_s=s.lease_s,
                    acquired=stamp,
                    renewed=stamp,
                    transitions=0,
                    resource_version=None,
                )
                return self._won(now, "created the lease")
            spec = lease.get("spec") or {}
            meta = lease.get("metadata") or {}
            holder = spec.get("holderIdentity") or ""
            renewed = _parse(spec.get("renewTime")) or 0.0
            duration = float(spec.get("leaseDurationSeconds") or s.lease_s)
            transitions = int(spec.get("leaseTransitions") or 0)
            if holder == s.identity:
                self.kube.write_lease(
                    s.namespace,
                    s.name,
                    holder=s.identity,
                    duration_s=s.lease_s,
                    acquired=datetime.fromtimestamp(_parse(spec.get("acquireTime")) or now, UTC),
                    renewed=stamp,
                    transitions=transitions,
                    resource_version=meta.get("resourceVersion"),
                )
                return self._won(now, "")
            if holder and renewed + duration > now:
                return False  # somebody else holds a live lease
            self.kube.write_lease(
                s.namespace,
                s.name,
                holder=s.identity,
                duration_s=s.lease_s,
                acquired=stamp,
                renewed=stamp,
                transitions=transitions + 1,
                resource_version=meta.get("resourceVersion"),
            )
            return self._won(now, f"took over from {holder or 'nobody'}")
        except KubeError as exc:
            log.debug("lease write lost", error=str(exc))
            return False

    def _won(self, now: float, how: str) -> bool:
        if not self.leading.is_set():
            log.info("became leader", identity=self.settings.identity, how=how)
        self.last_renewal = now
        self.leading.set()
        return True

    def release(self) -> None:
        """Give the Lease up (after a graceful stop), so a standby takes over at its next round
        instead of waiting for the Lease to expire. Nothing happens unless this replica holds it."""
        if not self.leading.is_set():
            return
        self.leading.clear()
        s = self.settings
        try:
            lease = self.kube.get_lease(s.namespace, s.name)
            spec = (lease or {}).get("spec") or {}
            if lease is None or spec.get("holderIdentity") != s.identity:
                return
            now = datetime.fromtimestamp(self.clock(), UTC)
            self.kube.write_lease(
                s.namespace,
                s.name,
                holder="",
                duration_s=s.lease_s,
                acquired=datetime.fromtimestamp(_parse(spec.get("acquireTime")) or self.clock(), UTC),
                renewed=now,
                transitions=int(spec.get("leaseTransitions") or 0),
                resource_version=(lease.get("metadata") or {}).get("resourceVersion"),
            )
            log.info("released leadership", identity=s.identity)
        except KubeError as exc:  # the Lease then expires as usual
            log.warning("cannot release the lease", error=str(exc))

    def run(self, stop: threading.Event, on_lost: Callable[[], None]) -> None:
        """Loop until ``stop``: acquire, then renew; call ``on_lost`` if leadership is lost."""
        s = self.settings
        while not stop.is_set():
            try:
                held = self.step()
            except KubeError as exc:
                log.warning("leader election: API error", error=str(exc))
                self.reachable.clear()
                held = False
            if self.leading.is_set() and not held and self.clock() - self.last_renewal > s.lease_s:
                log.error("lost leadership: stopping so that no two replicas act", identity=s.identity)
                self.leading.clear()
                on_lost()
                return
            stop.wait(s.renew_s if self.leading.is_set() else s.retry_s)
