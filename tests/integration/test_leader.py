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


def test_one_leader_and_takeover_after_the_lease_expires(env: Env, namespace: str) -> None:
    kube = Kube(KubeSettings(kubeconfig=env["KUBECONFIG"]))
    clock = Clock()
    name = f"lease-{uuid.uuid4().hex[:6]}"
    a = LeaderElector(kube, LeaderSettings(namespace=namespace, name=name, identity="a", lease_s=30), clock)
    b = LeaderElector(kube, LeaderSettings(namespace=namespace, name=name, identity="b", lease_s=30), clock)

    assert a.step() is True
    assert b.step() is False  # a live lease held by a
    clock.now += 20
    assert a.step() is True  # a renews
    clock.now += 20
    assert b.step() is False  # 20s after the renewal: still live
    clock.now += 15
    assert b.step() is True  # 35s without renewal: b takes over
    assert a.step() is False  # a sees b's live lease
    lease = env.kube_json("lease", name, "-n", namespace)
    assert lease["spec"]["holderIdentity"] == "b"
    assert lease["spec"]["leaseTransitions"] == 1


def test_racing_for_an_expired_lease_has_exactly_one_winner(env: Env, namespace: str) -> None:
    kube = Kube(KubeSettings(kubeconfig=env["KUBECONFIG"]))
    clock = Clock()
    name = f"lease-{uuid.uuid4().hex[:6]}"
    first = LeaderElector(kube, LeaderSettings(namespace=namespace, name=name, identity="old"), clock)
    assert first.step()
    clock.now += 60
    # Both candidates read the expired lease before either writes: the resourceVersion guard
    # lets exactly one replace it.
    lease = kube.get_lease(namespace, name)
    racers = [
        LeaderElector(kube, LeaderSettings(namespace=namespace, name=name, identity=i), clock) for i in "xy"
    ]
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
