"""Leader election decisions (gitops_helm.leader) on injected clocks, against an in-memory Lease
store that keeps the API server's one rule that matters here: a write names the resourceVersion
it read, and a stale one is refused (409). The real API server is in tests/integration."""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gitops_helm.adapters.kube import KubeError, KubeErrorKind
from gitops_helm.cli import build_parser
from gitops_helm.config import ConfigError, settings_from_args
from gitops_helm.leader import LeaderElector, LeaderSettings


class Store:
    """One Lease, as the API server keeps it."""

    def __init__(self) -> None:
        self.lease: dict[str, Any] | None = None
        self.version = 0
        self.gate: threading.Event | None = None  # when set up, reads block until it opens

    def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        if self.gate is not None:
            self.gate.wait(30)
        return None if self.lease is None else {**self.lease, "spec": dict(self.lease["spec"])}

    def write_lease(
        self,
        namespace: str,
        name: str,
        *,
        holder: str,
        duration_s: int,
        acquired: datetime,
        renewed: datetime,
        transitions: int,
        resource_version: str | None,
    ) -> None:
        current = None if self.lease is None else self.lease["metadata"]["resourceVersion"]
        if resource_version != current:
            raise KubeError(KubeErrorKind.CONFLICT, "lease", "the object has been modified")
        self.version += 1
        self.lease = {
            "metadata": {"resourceVersion": str(self.version)},
            "spec": {
                "holderIdentity": holder,
                "leaseDurationSeconds": duration_s,
                "acquireTime": acquired.isoformat(),
                "renewTime": renewed.isoformat(),
                "leaseTransitions": transitions,
            },
        }

    @property
    def holder(self) -> str:
        return str((self.lease or {}).get("spec", {}).get("holderIdentity") or "")


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def replica(
    store: Store,
    identity: str,
    wall: Clock,
    mono: Clock,
    lease_s: int = 15,
    renew_s: float = 10.0,
    retry_s: float = 2.0,
) -> LeaderElector:
    s = LeaderSettings(
        namespace="ns",
        name="l",
        identity=identity,
        lease_s=lease_s,
        renew_deadline_s=renew_s,
        retry_s=retry_s,
    )
    return LeaderElector(store, s, wall=wall, monotonic=mono)  # type: ignore[arg-type]


def test_the_renew_deadline_runs_on_the_monotonic_clock_from_the_last_renewal() -> None:
    store, wall, mono = Store(), Clock(1_800_000_000.0), Clock(100.0)
    a = replica(store, "a", wall, mono)
    assert a.step()
    mono.now += 9.9
    wall.now -= 3600  # the wall clock is stepped back an hour: no effect on any deadline
    assert a.holds()
    assert a.step()  # renewed at 109.9
    mono.now += 9.9
    wall.now += 7200
    assert a.holds()
    mono.now += 0.1  # 10 s after the renewal was sent, none since
    assert not a.holds()


def test_a_leader_past_its_deadline_never_resumes_even_if_the_record_still_names_it() -> None:
    store, wall, mono = Store(), Clock(1_800_000_000.0), Clock(0.0)
    a = replica(store, "a", wall, mono)
    assert a.step()
    mono.now += 11  # frozen past the renew deadline, no standby came by
    assert store.holder == "a"
    assert not a.step()
    assert not a.leading.is_set()
    mono.now += 1
    assert not a.step()  # lost for good: the process restarts as a standby
    assert store.holder == "a"  # and it wrote nothing more


def test_a_leader_that_sees_another_holder_has_lost_at_once() -> None:
    store, wall, mono = Store(), Clock(1_800_000_000.0), Clock(0.0)
    a = replica(store, "a", wall, mono)
    assert a.step()
    store.lease["spec"]["holderIdentity"] = "b"  # type: ignore[index]
    mono.now += 1  # well within a's renew deadline
    assert not a.step()
    assert not a.holds()


def test_a_standby_counts_the_lease_from_its_own_observation_of_a_change() -> None:
    store, wall, mono = Store(), Clock(1_800_000_000.0), Clock(0.0)
    a, b = replica(store, "a", wall, mono), replica(store, "b", wall, mono)
    assert a.step()
    assert not b.step()  # b sees a's record at 0
    mono.now = 9.9
    assert a.step()  # a renews (then stops): the record changes
    mono.now = 14.5
    assert not b.step()  # b sees the change only now: 15 s from here, not from 9.9
    mono.now = 29.4
    assert not b.step()
    mono.now = 29.5
    assert b.step()
    assert store.holder == "b"
    assert store.lease["spec"]["leaseTransitions"] == 1  # type: ignore[index]


def test_a_released_lease_is_taken_at_once() -> None:
    store, wall, mono = Store(), Clock(1_800_000_000.0), Clock(0.0)
    a, b = replica(store, "a", wall, mono), replica(store, "b", wall, mono)
    assert a.step()
    assert not b.step()
    a.release()
    assert store.holder == ""
    assert b.step()


@settings(max_examples=200, deadline=None)
@given(
    skew_s=st.floats(min_value=-86_400, max_value=86_400, allow_nan=False),
    lease_s=st.integers(min_value=2, max_value=120),
    waits=st.lists(st.floats(min_value=0.0, max_value=200.0, allow_nan=False), min_size=1, max_size=8),
)
def test_holder_clock_skew_neither_lets_a_standby_in_early_nor_keeps_it_out(
    skew_s: float, lease_s: int, waits: list[float]
) -> None:
    """The holder's clock is off by up to a day either way (its renewTime in the past or the
    future). The standby takes over exactly when it has watched the record unchanged for the
    lease duration, on its own monotonic clock."""
    store = Store()
    mono = Clock(1000.0)
    holder = replica(
        store,
        "a",
        Clock(1_800_000_000.0 + skew_s),
        mono,
        lease_s=lease_s,
        renew_s=lease_s / 2,
        retry_s=lease_s / 4,
    )
    standby = replica(
        store, "b", Clock(1_800_000_000.0), mono, lease_s=lease_s, renew_s=lease_s / 2, retry_s=lease_s / 4
    )
    assert holder.step()  # a writes its record, then dies
    seen_at = mono.now
    assert not standby.step()
    for wait in waits:
        mono.now += wait
        expected = mono.now >= seen_at + lease_s
        assert standby.step() is expected, (mono.now - seen_at, lease_s)
        if expected:
            break
    else:
        mono.now = seen_at + lease_s
        assert standby.step()  # never blocked forever


def test_losing_is_signalled_once_even_while_a_renewal_hangs() -> None:
    """The fence thread watches the deadline on its own: a GET that never answers must not keep
    the leader acting. Real monotonic time, short numbers; waited for, not timed."""
    store = Store()
    s = LeaderSettings(namespace="ns", name="l", identity="a", lease_s=5, renew_deadline_s=3.0, retry_s=0.5)
    a = LeaderElector(store, s)  # type: ignore[arg-type]
    lost: list[str] = []
    stop = threading.Event()
    thread = threading.Thread(target=a.run, args=(stop, lambda: lost.append("lost")), daemon=True)
    thread.start()
    assert a.leading.wait(10)
    store.gate = threading.Event()  # every read from now on hangs
    try:
        deadline = threading.Event()
        for _ in range(300):
            if lost:
                break
            deadline.wait(0.1)
        assert lost == ["lost"]
        assert not a.holds()
    finally:
        store.gate.set()
        stop.set()
        thread.join(10)
    assert lost == ["lost"]  # the renewal loop, unblocked, did not signal it again


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            ["--leader-election-lease-duration", "15s", "--leader-election-renew-deadline", "15s"],
            "--leader-election-renew-deadline: 15s must be more than 0 and shorter than "
            "--leader-election-lease-duration (15s)",
        ),
        (
            ["--leader-election-renew-deadline", "10s", "--leader-election-retry-period", "10s"],
            "--leader-election-retry-period: 10s must be more than 0 and shorter than "
            "--leader-election-renew-deadline (10s)",
        ),
        (
            ["--leader-election-lease-duration", "500ms"],
            "--leader-election-lease-duration: 0.5s is too short",
        ),
    ],
)
def test_inconsistent_lease_numbers_are_refused_with_the_flags_named(flags: list[str], message: str) -> None:
    ns = build_parser().parse_args(["run", "--reconcile-only", *flags])
    with pytest.raises(ConfigError) as caught:
        settings_from_args(ns, {})
    assert message in str(caught.value)


def test_renew_deadline_and_retry_period_follow_the_lease_duration_unless_given() -> None:
    ns = build_parser().parse_args(["run", "--reconcile-only", "--leader-election-lease-duration", "15s"])
    s = settings_from_args(ns, {})
    assert (s.leader_election_lease_s, s.leader_election_renew_deadline_s) == (15.0, 10.0)
    assert s.leader_election_retry_period_s == pytest.approx(2.0)
    ns = build_parser().parse_args(
        [
            "run",
            "--reconcile-only",
            "--leader-election-renew-deadline",
            "25s",
            "--leader-election-retry-period",
            "1s",
        ]
    )
    s = settings_from_args(ns, {})
    assert (
        s.leader_election_lease_s,
        s.leader_election_renew_deadline_s,
        s.leader_election_retry_period_s,
    ) == (
        30.0,
        25.0,
        1.0,
    )
