"""Leader election against the real API server: one holder, takeover after expiry, no double leaders."""

from __future__ import annotations

import uuid

from gitops_helm.adapters.kube import Kube, KubeSettings
from gitops_helm.leader import LeaderElector, LeaderSettings
from tests.conftest import Env


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def _elector(kube: Kube, namespace: str, name: str, identity: str, clock: Clock) -> LeaderElector:
    # one fake clock as both the wall clock (the record's stamps) and the monotonic one (deadlines)
    settings = LeaderSettings(
        namespace=namespace, name=name, identity=identity, lease_s=30, renew_deadline_s=20, retry_s=4
    )
    return LeaderElector(kube, settings, wall=clock, monotonic=clock)


def test_one_leader_and_takeover_after_the_lease_expires(env: Env, namespace: str) -> None:
    kube = Kube(KubeSettings(kubeconfig=env["KUBECONFIG"]))
    clock = Clock()
    name = f"lease-{uuid.uuid4().hex[:6]}"
    a = _elector(kube, namespace, name, "a", clock)
    b = _elector(kube, namespace, name, "b", clock)

    assert a.step() is True
    assert b.step() is False  # a live lease held by a (b watches it from now)
    clock.now += 15
    assert a.step() is True  # a renews, then stops renewing
    clock.now += 10
    assert b.step() is False  # b sees the renewal now: it counts 30 s from here
    clock.now += 29
    assert b.step() is False
    clock.now += 1
    assert b.step() is True  # b watched the record unchanged for the lease duration
    assert a.step() is False  # a is past its renew deadline (and b holds the Lease)
    lease = env.kube_json("lease", name, "-n", namespace)
    assert lease["spec"]["holderIdentity"] == "b"
    assert lease["spec"]["leaseTransitions"] == 1


def test_racing_for_an_expired_lease_has_exactly_one_winner(env: Env, namespace: str) -> None:
    kube = Kube(KubeSettings(kubeconfig=env["KUBECONFIG"]))
    clock = Clock()
    name = f"lease-{uuid.uuid4().hex[:6]}"
    first = _elector(kube, namespace, name, "old", clock)
    assert first.step()
    racers = [_elector(kube, namespace, name, i, clock) for i in "xy"]
    assert [r.step() for r in racers] == [False, False]  # both watch the old holder's record
    clock.now += 60
    # Both candidates read the (now expired) lease before either writes: the resourceVersion
    # guard lets exactly one replace it.
    lease = kube.get_lease(namespace, name)
    for r in racers:
        r.kube = _Frozen(kube, lease)  # type: ignore[assignment]
    wins = [r.step() for r in racers]
    assert wins.count(True) == 1
    assert env.kube_json("lease", name, "-n", namespace)["spec"]["holderIdentity"] in ("x", "y")


class _Frozen:
    """Answers get_lease with a stale read, writes for real: two replicas that read at once."""

    def __init__(self, kube: Kube, lease: object) -> None:
        self._kube = kube
        self._lease = lease

    def get_lease(self, namespace: str, name: str) -> object:
        return self._lease

    def write_lease(self, *args: object, **kwargs: object) -> None:
        self._kube.write_lease(*args, **kwargs)  # type: ignore[arg-type]
