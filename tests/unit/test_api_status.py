"""Status: condition transition times, the phase table, kstatus conditions, failure bookkeeping,
serialisation for a status patch and lenient reading."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gitops_helm.api import (
    Condition,
    ConditionStatus,
    ConditionType,
    HelmReleaseStatus,
    Phase,
    find_condition,
    format_time,
    parse_status,
    phase_message,
    record_phase,
    remove_condition,
    serialise_status,
    set_condition,
    set_reconciling,
    set_stalled,
    settle,
)

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5)
T2 = T0 + timedelta(minutes=9)
TRUE, FALSE, UNKNOWN = ConditionStatus.TRUE, ConditionStatus.FALSE, ConditionStatus.UNKNOWN


def cond(status: HelmReleaseStatus, type_: ConditionType) -> Condition:
    found = find_condition(status.conditions, type_)
    assert found is not None, f"no {type_} condition in {status.conditions}"
    return found


def phase(
    status: HelmReleaseStatus,
    p: Phase,
    now: datetime = T0,
    *,
    detail: str | None = None,
    revision: str | None = None,
    ignore_test_failures: bool = False,
) -> HelmReleaseStatus:
    return record_phase(
        status,
        p,
        release_name="apps-web",
        namespace="prod",
        now=now,
        detail=detail,
        revision=revision,
        ignore_test_failures=ignore_test_failures,
    )


# --- conditions ---------------------------------------------------------------------------------


def test_new_condition_gets_both_times() -> None:
    (c,) = set_condition((), "Released", TRUE, reason="Succeeded", message="ok", now=T0)
    assert c == Condition("Released", TRUE, "Succeeded", "ok", "2024-05-01T12:00:00Z", "2024-05-01T12:00:00Z")


def test_same_status_keeps_the_transition_time_and_updates_the_rest() -> None:
    first = set_condition((), "Released", TRUE, reason="Succeeded", message="a", now=T0)
    (c,) = set_condition(first, "Released", TRUE, reason="Other", message="b", now=T1)
    assert (c.last_transition_time, c.last_update_time) == (format_time(T0), format_time(T1))
    assert (c.reason, c.message) == ("Other", "b")


def test_changed_status_moves_the_transition_time() -> None:
    first = set_condition((), "Released", TRUE, reason="Succeeded", message="a", now=T0)
    (c,) = set_condition(first, "Released", FALSE, reason="Failed", message="b", now=T1)
    assert (c.last_transition_time, c.last_update_time) == (format_time(T1), format_time(T1))


def test_set_condition_keeps_order_and_other_conditions() -> None:
    conditions = set_condition((), "A", TRUE, reason="r", message="m", now=T0)
    conditions = set_condition(conditions, "B", TRUE, reason="r", message="m", now=T0)
    conditions = set_condition(conditions, "A", FALSE, reason="r", message="m", now=T1)
    assert [(c.type, c.status) for c in conditions] == [("A", FALSE), ("B", TRUE)]
    assert [c.type for c in remove_condition(conditions, "A")] == ["B"]


def test_times_are_utc_rfc3339_and_naive_times_are_refused() -> None:
    assert format_time(datetime(2024, 5, 1, 14, 0, 30, 999, tzinfo=timezone(timedelta(hours=2)))) == (
        "2024-05-01T12:00:30Z"
    )
    with pytest.raises(ValueError, match="timezone-aware"):
        format_time(datetime(2024, 5, 1))


# --- phases -------------------------------------------------------------------------------------


def test_message_template() -> None:
    assert phase_message(Phase.SUCCEEDED, "apps-web", "prod") == (
        "Release was successful for Helm release 'apps-web' in 'prod'."
    )
    assert phase_message(Phase.DEPLOY_FAILED, "apps-web", "prod", "timed out") == (
        "Installation or upgrade failed for Helm release 'apps-web' in 'prod': timed out"
    )
    long = phase_message(Phase.FAILED, "r", "n", "x" * 5000)
    assert long.endswith("x...") and len(long) < 1100


@pytest.mark.parametrize(
    ("p", "expected"),
    [
        (Phase.CHART_FETCHED, {"ChartFetched": TRUE}),
        (Phase.CHART_FETCH_FAILED, {"ChartFetched": FALSE, "Released": FALSE, "Ready": FALSE}),
        (Phase.INSTALLING, {"Deployed": UNKNOWN}),
        (Phase.UPGRADING, {"Deployed": UNKNOWN}),
        (Phase.DEPLOYED, {"Deployed": TRUE}),
        (Phase.DEPLOY_FAILED, {"Deployed": FALSE, "Released": FALSE, "Ready": FALSE}),
        (Phase.TESTING, {"Tested": UNKNOWN}),
        (Phase.TESTED, {"Tested": TRUE}),
        (Phase.TEST_FAILED, {"Tested": FALSE, "Released": FALSE, "Ready": FALSE}),
        (Phase.SUCCEEDED, {"Released": TRUE, "Ready": TRUE}),
        (Phase.FAILED, {"Released": FALSE, "Ready": FALSE}),
        (Phase.ROLLING_BACK, {"RolledBack": UNKNOWN}),
        (Phase.ROLLED_BACK, {"RolledBack": TRUE}),
        (Phase.ROLLBACK_FAILED, {"RolledBack": FALSE}),
    ],
)
def test_each_phase_writes_its_conditions(p: Phase, expected: dict[str, ConditionStatus]) -> None:
    status = phase(HelmReleaseStatus(), p)
    assert status.phase is p
    assert {c.type: c.status for c in status.conditions} == expected
    message = phase_message(p, "apps-web", "prod")
    assert all((c.reason, c.message) == (p.value, message) for c in status.conditions)


def test_ready_mirrors_released_through_a_failure_and_recovery() -> None:
    status = phase(HelmReleaseStatus(), Phase.SUCCEEDED, T0)
    status = phase(status, Phase.FAILED, T1, detail="boom")
    released, ready = cond(status, ConditionType.RELEASED), cond(status, ConditionType.READY)
    assert (ready.status, ready.reason, ready.message) == (released.status, released.reason, released.message)
    assert ready.message.endswith(": boom")
    status = phase(status, Phase.SUCCEEDED, T2)
    assert cond(status, ConditionType.READY).status is TRUE
    assert cond(status, ConditionType.READY).last_transition_time == format_time(T2)


def test_test_failure_ignored_keeps_released() -> None:
    status = phase(HelmReleaseStatus(), Phase.SUCCEEDED)
    status = phase(status, Phase.TEST_FAILED, T1, ignore_test_failures=True)
    assert cond(status, ConditionType.TESTED).status is FALSE
    assert cond(status, ConditionType.RELEASED).status is TRUE
    assert cond(status, ConditionType.READY).status is TRUE


def test_installing_and_upgrading_record_the_attempted_revision() -> None:
    status = phase(HelmReleaseStatus(), Phase.INSTALLING, revision="1.0.0")
    assert (status.last_attempted_revision, status.revision) == ("1.0.0", None)
    status = phase(status, Phase.UPGRADING, revision="1.1.0")
    assert status.last_attempted_revision == "1.1.0"
    status = phase(status, Phase.UPGRADING)
    assert status.last_attempted_revision == "1.1.0"


def test_rollbacks_are_counted_until_the_release_succeeds() -> None:
    status = phase(HelmReleaseStatus(revision="0.9.0"), Phase.ROLLED_BACK)
    status = phase(status, Phase.ROLLED_BACK, T1)
    assert status.rollback_count == 2
    status = phase(status, Phase.ROLLBACK_FAILED, T1)
    assert status.rollback_count == 2
    status = phase(status, Phase.SUCCEEDED, T2, revision="1.0.0")
    assert (status.rollback_count, status.revision) == (0, "1.0.0")
    assert find_condition(status.conditions, ConditionType.ROLLED_BACK) is None


def test_succeeded_without_revision_keeps_the_revision() -> None:
    assert phase(HelmReleaseStatus(revision="abc"), Phase.SUCCEEDED).revision == "abc"


# --- kstatus ------------------------------------------------------------------------------------


def test_reconciling_stalled_and_settle() -> None:
    status = set_reconciling(HelmReleaseStatus(), reason="Progressing", message="upgrading", now=T0)
    assert cond(status, ConditionType.RECONCILING).status is TRUE
    status = set_stalled(status, reason="RetriesExceeded", message="gave up", now=T1)
    assert find_condition(status.conditions, ConditionType.RECONCILING) is None
    assert cond(status, ConditionType.STALLED).reason == "RetriesExceeded"
    status = set_reconciling(status, reason="Progressing", message="new spec", now=T2)
    assert find_condition(status.conditions, ConditionType.STALLED) is None
    status = settle(phase(status, Phase.SUCCEEDED, T2))
    assert [c.type for c in status.conditions] == ["Released", "Ready"]


# --- failure bookkeeping and release observation -------------------------------------------------


def test_serialise_uses_camel_case_and_omits_unset_fields() -> None:
    status = phase(HelmReleaseStatus(observed_generation=3), Phase.SUCCEEDED, revision="1.0.0")
    status = replace(status, last_applied_digest="sha256:x", last_release_revision=2)
    assert serialise_status(status) == {
        "observedGeneration": 3,
        "phase": "Succeeded",
        "revision": "1.0.0",
        "rollbackCount": 0,
        "lastAppliedDigest": "sha256:x",
        "lastReleaseRevision": 2,
        "failures": 0,
        "interruptions": 0,
        "conditions": [
            {
                "type": "Released",
                "status": "True",
                "reason": "Succeeded",
                "message": "Release was successful for Helm release 'apps-web' in 'prod'.",
                "lastUpdateTime": "2024-05-01T12:00:00Z",
                "lastTransitionTime": "2024-05-01T12:00:00Z",
            },
            {
                "type": "Ready",
                "status": "True",
                "reason": "Succeeded",
                "message": "Release was successful for Helm release 'apps-web' in 'prod'.",
                "lastUpdateTime": "2024-05-01T12:00:00Z",
                "lastTransitionTime": "2024-05-01T12:00:00Z",
            },
        ],
    }


def test_serialise_for_a_merge_patch_nulls_cleared_fields() -> None:
    patch = serialise_status(HelmReleaseStatus(), null_unset=True)
    assert patch["lastFailedDigest"] is None
    assert patch["phase"] is None
    assert patch["failures"] == 0
    assert patch["conditions"] == []


def test_status_round_trips() -> None:
    status = phase(HelmReleaseStatus(observed_generation=1, release_status="deployed"), Phase.DEPLOY_FAILED)
    status = set_stalled(status, reason="RetriesExceeded", message="m", now=T1)
    status = replace(status, failures=1, last_failed_digest="d", last_failure_time="2024-05-01T12:00:00Z")
    assert parse_status(serialise_status(status)) == status


def test_parse_status_is_lenient() -> None:
    raw = {
        "phase": "Migrating",
        "rollbackCount": "2",
        "failures": -1,
        "observedGeneration": 4,
        "releaseName": 5,
        "conditions": [
            "junk",
            {"type": "Released", "status": "Maybe", "lastTransitionTime": "2024-05-01T12:00:00Z"},
            {"type": "Deployed", "status": "True"},
            {"type": "Tested", "status": "True", "lastTransitionTime": "2024-05-01T12:00:00Z"},
            {"type": "Tested", "status": "False", "lastTransitionTime": "2024-05-01T12:00:00Z"},
            # a type the CRD does not admit (written back, the API server would refuse the status)
            {"type": "0", "status": "True", "lastTransitionTime": "2024-05-01T12:00:00Z"},
        ],
    }
    status = parse_status(raw)
    assert (status.phase, status.rollback_count, status.failures, status.observed_generation) == (
        None,
        0,
        0,
        4,
    )
    assert status.release_name is None
    assert [(c.type, c.status, c.last_update_time) for c in status.conditions] == [
        ("Tested", TRUE, "2024-05-01T12:00:00Z")
    ]
    assert parse_status(None) == HelmReleaseStatus()
    assert parse_status([1]) == HelmReleaseStatus()


def test_parse_status_reads_values_outside_the_crd_enums_as_unset() -> None:
    """Found by the corruption property: such a value was written back and failed the CRD schema."""
    status = parse_status({"lastReleaseAction": "0", "testState": "maybe", "lastFailedAction": "rollback"})
    assert (status.last_release_action, status.test_state, status.last_failed_action) == (None, None, None)
    kept = parse_status(
        {"lastReleaseAction": "rollback", "testState": "failed", "lastFailedAction": "install"}
    )
    assert (kept.last_release_action, kept.test_state, kept.last_failed_action) == (
        "rollback",
        "failed",
        "install",
    )


_condition_items = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["Ready", "Released", "ChartFetched", "Reconciling", "Stalled", "Other", 3]),
        "status": st.sampled_from(["True", "False", "Unknown", "yes", None]),
        "reason": st.text(max_size=5) | st.integers(),
        "lastTransitionTime": st.sampled_from(["2024-05-01T12:00:00Z", "", None]),
        "lastUpdateTime": st.sampled_from(["2024-05-01T12:00:00Z", 7]),
    },
)
_statuses = (
    st.none()
    | st.text(max_size=3)
    | st.fixed_dictionaries(
        {},
        optional={
            "conditions": st.lists(_condition_items | st.integers(), max_size=6) | st.text(max_size=3),
            "phase": st.sampled_from(["Deployed", "nonsense"]),
            "history": st.lists(st.dictionaries(st.text(max_size=3), st.integers(), max_size=2), max_size=2),
        },
    )
)


@given(_statuses)
def test_condition_pairs_read_the_conditions_exactly_as_the_whole_status_parse_does(status: object) -> None:
    """The metrics' fast path (conditions only) agrees with parse_status on any input."""
    from gitops_helm.api import condition_pairs

    expected = [(c.type, str(c.status)) for c in parse_status(status).conditions]
    assert condition_pairs({"status": status}) == expected


def test_condition_pairs_of_an_object_without_status_are_empty() -> None:
    from gitops_helm.api import condition_pairs

    assert condition_pairs({}) == []
    assert condition_pairs({"status": None}) == []
