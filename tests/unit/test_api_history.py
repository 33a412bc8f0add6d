"""`status.history` (gitops_helm.api.history): newest first, bounded, a test completes the entry of
the revision it tested, lenient reading, and the round trip through the status."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from gitops_helm.api import (
    MAX_HISTORY,
    AttemptOutcome,
    HelmReleaseStatus,
    HistoryAction,
    HistoryEntry,
    add_entry,
    entry_for_revision,
    parse_status,
    record_test,
    serialise_status,
)
from gitops_helm.api.history import parse_history, serialise_history

T0, T1 = "2026-12-01T08:00:00Z", "2026-12-01T08:00:30Z"


def entry(action: HistoryAction, revision: int | None, ok: bool = True, **fields: object) -> HistoryEntry:
    outcome = AttemptOutcome.SUCCEEDED if ok else AttemptOutcome.FAILED
    return replace(HistoryEntry(action, outcome, T0, T1, helm_revision=revision), **fields)  # type: ignore[arg-type]


entries = st.builds(
    HistoryEntry,
    action=st.sampled_from(HistoryAction),
    outcome=st.sampled_from(AttemptOutcome),
    started_at=st.just(T0),
    finished_at=st.just(T1),
    helm_revision=st.none() | st.integers(0, 10**6),
    git_commit=st.none() | st.text("0123456789abcdef", min_size=1, max_size=40),
    chart_name=st.none() | st.text(min_size=1, max_size=20),
    chart_version=st.none() | st.text(min_size=1, max_size=10),
    chart_digest=st.none() | st.text(min_size=1, max_size=20),
    values_digest=st.none() | st.text(min_size=1, max_size=20),
    test_result=st.none() | st.sampled_from(["passed", "failed"]),
    rolled_back_to=st.none() | st.integers(0, 10**6),
)


def test_a_new_entry_goes_first_and_the_oldest_go_past_the_limit() -> None:
    history: tuple[HistoryEntry, ...] = ()
    for revision in range(1, 5):
        history = add_entry(history, entry(HistoryAction.UPGRADE, revision), 3)
    assert [e.helm_revision for e in history] == [4, 3, 2]
    assert add_entry(history, entry(HistoryAction.UPGRADE, 5), 0) == ()


@given(st.lists(entries, max_size=60), entries, st.integers(0, 200))
def test_the_history_never_outgrows_its_limit_or_the_crd(
    history: list[HistoryEntry], new: HistoryEntry, limit: int
) -> None:
    result = add_entry(tuple(history), new, limit)
    assert len(result) <= min(limit, MAX_HISTORY)
    if limit > 0:
        assert result[0] == new
        assert result[1:] == tuple(history)[: len(result) - 1]


def test_a_test_completes_the_entry_of_the_revision_it_tested() -> None:
    upgraded = entry(HistoryAction.UPGRADE, 2, git_commit="abc")
    history = (upgraded, entry(HistoryAction.INSTALL, 1))
    test = entry(HistoryAction.TEST, 2, ok=False, test_result="failed", finished_at="2026-12-01T08:01:00Z")
    tested = record_test(history, test, 5)
    assert len(tested) == 2
    assert tested[0] == replace(
        upgraded, test_result="failed", outcome=AttemptOutcome.FAILED, finished_at="2026-12-01T08:01:00Z"
    )


def test_a_test_of_another_revision_or_a_second_test_is_an_entry_of_its_own() -> None:
    history = (entry(HistoryAction.UPGRADE, 2, test_result="passed"),)
    test = entry(HistoryAction.TEST, 2, test_result="passed")
    assert record_test(history, test, 5) == (test, *history)
    rolled_back = (entry(HistoryAction.ROLLBACK, 3, rolled_back_to=1),)
    assert record_test(rolled_back, entry(HistoryAction.TEST, 3, test_result="passed"), 5)[0].action is (
        HistoryAction.TEST
    )


def test_entry_for_revision_is_the_newest_that_produced_it() -> None:
    history = (
        entry(HistoryAction.TEST, 2, test_result="passed"),
        entry(HistoryAction.UNINSTALL, 2),
        entry(HistoryAction.UPGRADE, 2, git_commit="new"),
        entry(HistoryAction.UPGRADE, 2, git_commit="old"),
    )
    found = entry_for_revision(history, 2)
    assert found is not None and found.git_commit == "new"
    assert entry_for_revision(history, 7) is None
    assert entry_for_revision(history, None) is None


@given(st.lists(entries, max_size=MAX_HISTORY))
def test_the_status_round_trips_its_history(history: list[HistoryEntry]) -> None:
    status = HelmReleaseStatus(history=tuple(history))
    assert parse_status(serialise_status(status)).history == tuple(history)


def test_an_empty_history_is_removed_by_a_merge_patch_and_omitted_otherwise() -> None:
    assert serialise_status(HelmReleaseStatus(), null_unset=True)["history"] is None
    assert "history" not in serialise_status(HelmReleaseStatus())


def test_reading_is_lenient_and_bounded() -> None:
    good = serialise_history((entry(HistoryAction.INSTALL, 1),))[0]
    raw = [
        good,
        {**good, "action": "explode"},
        {**good, "outcome": ["succeeded"]},
        {**good, "helmRevision": "1", "testResult": "maybe", "gitCommit": 7},
        "not an entry",
    ]
    parsed = parse_history(raw)
    assert parsed[0] == entry(HistoryAction.INSTALL, 1)
    assert parsed[1] == HistoryEntry(HistoryAction.INSTALL, AttemptOutcome.SUCCEEDED, T0, T1)
    assert len(parsed) == 2
    assert len(parse_history([good] * (MAX_HISTORY + 10))) == MAX_HISTORY
    assert parse_history({"history": good}) == ()


def test_the_crd_bounds_and_enums_agree_with_the_model() -> None:
    from gitops_helm.api.crd import load_crd

    schema = load_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    history = schema["properties"]["status"]["properties"]["history"]
    assert history["maxItems"] == MAX_HISTORY
    item = history["items"]["properties"]
    assert item["action"]["enum"] == [a.value for a in HistoryAction]
    assert item["outcome"]["enum"] == [o.value for o in AttemptOutcome]
