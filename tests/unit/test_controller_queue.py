"""The controller's work queue: delayed adds of one key collapse into one (the earliest)."""

from __future__ import annotations

from gitops_helm.controller import WorkQueue


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def drain(q: WorkQueue) -> list[str]:
    out = []
    while (key := q.get(timeout=0)) is not None:
        out.append(key)
        q.done(key)
    return out


def test_delayed_adds_of_one_key_run_once_at_the_earliest_time() -> None:
    clock = Clock()
    q = WorkQueue(clock)
    q.add("ns/a", delay=5)
    q.add("ns/a", delay=5)  # a second reconcile asking for the same retry
    q.add("ns/a", delay=3)  # an earlier one replaces it
    q.add("ns/a", delay=9)  # a later one is dropped
    assert len(q) == 1
    clock.now += 2.9
    assert drain(q) == []
    clock.now += 0.2
    assert drain(q) == ["ns/a"]
    clock.now += 10
    assert drain(q) == []  # the superseded entries do not run it again
    assert len(q) == 0


def test_delayed_add_while_running_runs_again_after() -> None:
    clock = Clock()
    q = WorkQueue(clock)
    q.add("ns/a")
    assert q.get(timeout=0) == "ns/a"
    q.add("ns/a", delay=1)
    clock.now += 1
    assert q.get(timeout=0) is None  # never two workers on one key
    q.done("ns/a")
    assert drain(q) == ["ns/a"]


def test_a_closed_queue_hands_out_no_key() -> None:
    """On stop no worker takes a new key: queued keys wait for the next agent."""
    clock = Clock()
    q = WorkQueue(clock)
    q.add("ns/a")
    q.add("ns/b")
    assert q.get(timeout=0) == "ns/a"
    q.close()
    assert q.get(timeout=0) is None  # nothing new starts...
    assert q.running() == {"ns/a"}  # ...while the run under way finishes
    q.done("ns/a")
    assert q.running() == set()
