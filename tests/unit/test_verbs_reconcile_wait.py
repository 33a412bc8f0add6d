"""Pure parts of the CLI verbs: when a reconcile request counts as answered, the newest Events."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from gitops_helm.verbs.events import newest
from gitops_helm.verbs.reconcile import RequestWatch

REQUEST = "gitops-helm.io/reconcile-requested-at"


def hr(annotation: str | None, handled: str | None) -> dict[str, Any]:
    annotations = {REQUEST: annotation} if annotation else {}
    status = {"lastHandledReconcileAt": handled} if handled else {}
    return {"metadata": {"annotations": annotations}, "status": status}


def test_our_own_request_handled() -> None:
    watch = RequestWatch("t1")
    assert not watch.satisfied(hr("t1", "t0"))
    assert watch.satisfied(hr("t1", "t1"))


def test_a_later_request_seen_after_ours_covers_it() -> None:
    watch = RequestWatch("t1")
    assert not watch.satisfied(hr("t2", None))
    assert watch.satisfied(hr("t3", "t2"))  # t2 was seen after our write: its run started later


def test_a_value_never_seen_after_our_write_does_not_count() -> None:
    watch = RequestWatch("b")
    # "z" sorts after ours but was handled before we asked: no clock or text order is trusted
    assert not watch.satisfied(hr("b", "z"))


@given(st.lists(st.text(min_size=1, max_size=5), max_size=6), st.text(min_size=1, max_size=5))
def test_only_values_shown_after_our_write_count(later: list[str], handled: str) -> None:
    watch = RequestWatch("mine")
    seen = {"mine"}
    for value in later:
        watch.satisfied(hr(value, None))
        seen.add(value)
    assert watch.satisfied(hr(later[-1] if later else "mine", handled)) == (handled in seen)


def event(reason: str, **times: str) -> dict[str, Any]:
    return {"reason": reason, **times}


def test_newest_compares_times_not_text() -> None:
    found = [
        event("late", eventTime="2030-01-01T00:00:00.500000Z"),
        event("whole", lastTimestamp="2030-01-01T00:00:00Z"),
        event("old", lastTimestamp="2029-12-31T23:59:59Z"),
        event("unreadable", lastTimestamp="yesterday"),
    ]
    assert [e["reason"] for e in newest(found, 2)] == ["whole", "late"]
    assert [e["reason"] for e in newest(found, 10)] == ["unreadable", "old", "whole", "late"]
