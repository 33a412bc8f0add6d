"""Liveness: a loop silent for longer than it may be makes /healthz fail; bounded work extends it."""

from __future__ import annotations

import threading

from gitops_helm.heartbeat import Heartbeats


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_loop_that_beats_is_healthy_and_one_that_falls_silent_is_named() -> None:
    clock = Clock()
    hb = Heartbeats(clock)
    beat_a = hb.register("a", 10)
    hb.register("b", 30)
    clock.now += 9
    beat_a()
    assert hb.check() == (True, "ok")
    clock.now += 11  # a: 11 s since its beat; b: 20 s of 30
    assert hb.stale() == ["a (silent 11s)"]
    ok, why = hb.check()
    assert not ok and why == "not making progress: a (silent 11s)"


def test_bounded_work_extends_the_allowance_of_the_calling_threads_loop_only() -> None:
    clock = Clock()
    hb = Heartbeats(clock)
    beat = hb.register("worker-0", 10)
    hb.register("worker-1", 10)
    beat()  # the loop's thread is known from its beats
    hb.allow(300)  # e.g. a helm upgrade with a 270 s timeout plus margin
    clock.now += 200
    assert hb.stale() == ["worker-1 (silent 200s)"]
    clock.now += 101
    assert hb.stale() == ["worker-0 (silent 301s)", "worker-1 (silent 301s)"]


def test_a_beat_ends_the_extension() -> None:
    clock = Clock()
    hb = Heartbeats(clock)
    beat = hb.register("worker-0", 10)
    beat()
    hb.allow(300)
    beat()  # the helm call is over
    clock.now += 11
    assert hb.stale() == ["worker-0 (silent 11s)"]


def test_allow_from_a_thread_that_owns_no_loop_changes_nothing() -> None:
    clock = Clock()
    hb = Heartbeats(clock)
    beat = hb.register("worker-0", 10)
    beat()
    other = threading.Thread(target=hb.allow, args=(300,))
    other.start()
    other.join()
    clock.now += 11
    assert hb.stale() == ["worker-0 (silent 11s)"]
