"""The release planner: one test per row of the state table, scenarios, and properties."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gitops_helm.release.plan import (
    HELM_ACTIONS,
    Action,
    Desired,
    DriftMode,
    Memory,
    ObservedRelease,
    Plan,
    Policy,
    ReleaseAction,
    ReleaseStatus,
    Remediation,
    RemediationStrategy,
    TestState,
    plan,
    plan_deletion,
    record_failure,
    record_release,
    record_restore,
    record_rollback,
    record_test,
    record_test_started,
    record_uninstall,
    record_unlock,
    record_unrecorded_release,
    record_unrecorded_rollback,
    retries_by_default,
    unrecorded_release,
    unrecorded_remediation,
)


def install_policy(
    retries: int = 0,
    uninstall_on_failure: bool = False,
    remediate_last_failure: bool = False,
    ignore_test_failures: bool = False,
) -> Remediation:
    """Install remediation; a parsed HelmRelease always uninstalls (strategy uninstall)."""
    strategy = RemediationStrategy.UNINSTALL if uninstall_on_failure else RemediationStrategy.ROLLBACK
    return Remediation(strategy, retries, remediate_last_failure, ignore_test_failures)


def upgrade_policy(
    retries: int = 0,
    strategy: RemediationStrategy = RemediationStrategy.ROLLBACK,
    remediate_last_failure: bool = False,
    ignore_test_failures: bool = False,
) -> Remediation:
    return Remediation(strategy, retries, remediate_last_failure, ignore_test_failures)


ME = "default/app"
OTHER = "default/other"
D1 = "sha256:one"
D2 = "sha256:two"
NOW = 1_000.0
S = ReleaseStatus


BACKOFF = (10.0, 30.0, 60.0, 120.0, 300.0)  # a schedule as the reconciler gets from the settings


def desired(digest: str = D2, *, generation: int = 1, suspended: bool = False, **policy: Any) -> Desired:
    policy.setdefault("backoff", BACKOFF)
    return Desired(
        digest=digest, generation=generation, owner=ME, suspended=suspended, policy=Policy(**policy)
    )


def rel(
    revision: int = 1,
    status: ReleaseStatus = S.DEPLOYED,
    *,
    prev: int | None = None,
    owner: str | None = ME,
    digest: str | None = D2,
    modified: float | None = None,
) -> ObservedRelease:
    return ObservedRelease(revision, status, prev, owner, digest, modified)


def ours(revision: int = 1, digest: str = D2, **kw: Any) -> Memory:
    """Memory after the agent successfully produced ``revision`` for ``digest``."""
    return Memory(
        last_applied_digest=digest,
        last_release_revision=revision,
        last_release_action=ReleaseAction.UPGRADE if revision > 1 else ReleaseAction.INSTALL,
        test_state=TestState.PASSED,
        **kw,
    )


def failed_mem(
    revision: int | None,
    *,
    count: int = 1,
    action: ReleaseAction = ReleaseAction.UPGRADE,
    at: float = NOW - 1_000,
    digest: str = D2,
    generation: int = 1,
    **kw: Any,
) -> Memory:
    """Memory after ``count`` consecutive failures of ``action`` for ``digest``."""
    base = Memory(
        last_applied_digest=D1,
        last_release_revision=revision,
        last_release_action=action,
        test_state=TestState.PENDING,
        failures=count,
        last_failed_digest=digest,
        last_failed_generation=generation,
        last_failed_action=action,
        last_failure_time=at,
    )
    return replace(base, **kw)


def run(observed: ObservedRelease | None, memory: Memory, want: Desired | None = None, **kw: Any) -> Plan:
    return plan(observed, memory, want or desired(), now=NOW, **kw)


# --- one test per table row ----------------------------------------------------------------


def test_row1_refuse_release_of_another_helmrelease() -> None:
    for status in S:
        p = run(rel(status=status, owner=OTHER), Memory(), desired(suspended=True))
        assert p.action is Action.REFUSE
        assert OTHER in p.reason


def test_row2_suspended() -> None:
    assert run(rel(digest=D1), ours(1, D1), desired(suspended=True)).action is Action.SUSPENDED
    assert run(None, Memory(), desired(suspended=True)).action is Action.SUSPENDED


def test_row3_no_release_installs() -> None:
    p = run(None, Memory())
    assert p.action is Action.INSTALL
    assert not p.reset_failures


def test_row3_release_deleted_by_hand_is_reinstalled() -> None:
    p = run(None, ours(3))
    assert p.action is Action.INSTALL
    assert "revision 3 produced by the agent is gone" in p.reason


def test_row3_uninstalled_with_history_counts_as_absent() -> None:
    assert run(rel(4, S.UNINSTALLED), ours(3)).action is Action.INSTALL


def test_row4a_recent_pending_release_is_left_alone() -> None:
    p = run(rel(2, S.PENDING_UPGRADE, prev=1, modified=NOW - 10), ours(1), desired(pending_grace=60.0))
    assert p.action is Action.WAIT_RETRY
    assert p.retry_at == NOW + 50
    assert not p.stalled


def test_row4b_interrupted_upgrade_of_ours_unlocks_then_retries_it() -> None:
    # an interrupted attempt is not a failure: it is upgraded again, not rolled back
    want = desired(upgrade=upgrade_policy(retries=2, strategy=RemediationStrategy.ROLLBACK))
    p = run(rel(2, S.PENDING_UPGRADE, prev=1, modified=NOW - 999), ours(1, D1), want)
    assert (p.action, p.then) == (Action.UNLOCK_PENDING, Action.UPGRADE)
    assert "interrupted attempt" in p.reason


def test_row4b_interrupted_upgrade_is_retried_even_without_retries() -> None:
    # the default policy (no retries) must not leave a release stalled after an agent restart
    want = desired(upgrade=upgrade_policy(retries=0))
    p = run(rel(2, S.PENDING_UPGRADE, prev=1), ours(1, D1), want)
    assert (p.action, p.then) == (Action.UNLOCK_PENDING, Action.UPGRADE)


def test_row4b_interrupted_install_of_ours_unlocks_then_upgrades() -> None:
    want = desired(install=install_policy(retries=0, uninstall_on_failure=True))
    p = run(rel(1, S.PENDING_INSTALL), Memory(), want)
    assert (p.action, p.then) == (Action.UNLOCK_PENDING, Action.UPGRADE)


def test_row4b_pending_of_another_digest_unlocks_then_upgrades() -> None:
    p = run(rel(2, S.PENDING_UPGRADE, prev=1, digest=D1), ours(1, D1))
    assert (p.action, p.then) == (Action.UNLOCK_PENDING, Action.UPGRADE)
    assert "not an attempt at the desired state" in p.reason


def test_row4b_pending_rollback_is_not_a_release_failure() -> None:
    p = run(rel(3, S.PENDING_ROLLBACK, prev=1), failed_mem(2, count=1))
    assert p.action is Action.UNLOCK_PENDING
    assert "not an attempt at the desired state" in p.reason


def test_record_unlock_adopts_an_interrupted_attempt_without_counting_it() -> None:
    m = record_unlock(ours(1, D1), desired(), rel(2, S.PENDING_UPGRADE, digest=desired().digest), now=NOW)
    assert (m.last_release_revision, m.last_release_action, m.failures) == (2, ReleaseAction.UPGRADE, 0)
    assert (m.interruptions, m.last_interrupted_digest) == (1, D2)
    # and the plan for the unlocked revision retries the upgrade at once
    p = plan(rel(2, S.FAILED, prev=1, digest=desired().digest), m, desired(), now=NOW)
    assert p.action is Action.UPGRADE


def test_row5a_recent_uninstalling_waits() -> None:
    p = run(rel(2, S.UNINSTALLING, modified=NOW), ours(2), desired(pending_grace=30.0))
    assert (p.action, p.retry_at) == (Action.WAIT_RETRY, NOW + 30)


def test_row5b_stale_uninstalling_is_finished() -> None:
    p = run(rel(2, S.UNINSTALLING, modified=NOW - 100), ours(2), desired(pending_grace=30.0))
    assert p.action is Action.UNINSTALL
    assert not p.remediation


@pytest.mark.parametrize("status", [S.DEPLOYED, S.FAILED, S.SUPERSEDED])
def test_row6_release_installed_by_hand_is_adopted(status: ReleaseStatus) -> None:
    p = run(rel(1, status, owner=None, digest=None), Memory())
    assert p.action is Action.UPGRADE
    assert p.adopt


def test_row7_manual_helm_upgrade_is_reverted() -> None:
    p = run(rel(3, S.DEPLOYED, prev=2, digest=None), ours(2))
    assert p.action is Action.UPGRADE
    assert "made outside the agent" in p.reason


def test_row7_manual_helm_rollback_is_reverted() -> None:
    # a rollback copies the target's digest: same digest as desired is not enough
    p = run(rel(4, S.DEPLOYED, prev=3, digest=D2), ours(3))
    assert p.action is Action.UPGRADE


def test_row7_lost_status_memory_upgrades_once() -> None:
    p = run(rel(5, S.DEPLOYED), Memory())
    assert p.action is Action.UPGRADE
    assert "no record" in p.reason


def test_row7_rewritten_history() -> None:
    assert "older than" in run(rel(2), ours(5)).reason


def test_row8a_failed_release_and_spec_change_upgrades_now_with_reset() -> None:
    mem = failed_mem(2, count=5, digest=D1)  # stalled for D1 ...
    p = run(rel(2, S.FAILED, prev=1, digest=D1), mem, desired(D2))  # ... D2 is new
    assert p.action is Action.UPGRADE
    assert p.reset_failures


def test_row8a_generation_change_also_resets() -> None:
    p = run(rel(2, S.FAILED, prev=1), failed_mem(2, count=9), desired(generation=2))
    assert (p.action, p.reset_failures) == (Action.UPGRADE, True)


def test_row8b_failed_install_is_uninstalled_when_purging() -> None:
    want = desired(install=install_policy(retries=3, uninstall_on_failure=True))
    p = run(rel(1, S.FAILED), failed_mem(1, action=ReleaseAction.INSTALL), want)
    assert (p.action, p.remediation) == (Action.UNINSTALL, True)


def test_row8b_failed_install_kept_without_purge_and_retried_by_upgrade() -> None:
    want = desired(install=install_policy(retries=3, uninstall_on_failure=False))
    p = run(rel(1, S.FAILED), failed_mem(1, action=ReleaseAction.INSTALL), want)
    assert p.action is Action.UPGRADE
    assert "retry 1 of 3 after install failure" in p.reason


def test_row8c_failed_upgrade_rolls_back() -> None:
    want = desired(upgrade=upgrade_policy(retries=1))
    p = run(rel(2, S.FAILED, prev=1), failed_mem(2), want)
    assert (p.action, p.rollback_to, p.remediation) == (Action.ROLLBACK, 1, True)


def test_row8d_failed_upgrade_uninstalls_with_uninstall_strategy() -> None:
    want = desired(upgrade=upgrade_policy(retries=1, strategy=RemediationStrategy.UNINSTALL))
    p = run(rel(2, S.FAILED, prev=1), failed_mem(2), want)
    assert (p.action, p.remediation) == (Action.UNINSTALL, True)


def test_row8e_no_rollback_target_retries_upgrade() -> None:
    want = desired(upgrade=upgrade_policy(retries=1))
    p = run(rel(2, S.FAILED, prev=None), failed_mem(2), want)
    assert p.action is Action.UPGRADE
    assert "no earlier deployed revision" in p.reason


def test_row8e_failed_rollback_is_not_remediated_again() -> None:
    want = desired(upgrade=upgrade_policy(retries=3, remediate_last_failure=True))
    mem = failed_mem(3, last_release_action=ReleaseAction.ROLLBACK, last_remediated_revision=2)
    p = run(rel(3, S.FAILED, prev=1, digest=D1), mem, want)
    assert p.action is Action.UPGRADE


def test_row8e_a_revision_is_remediated_once() -> None:
    want = desired(upgrade=upgrade_policy(retries=3, strategy=RemediationStrategy.UNINSTALL))
    mem = failed_mem(2, last_remediated_revision=2)  # the uninstall failed
    assert run(rel(2, S.FAILED, prev=1), mem, want).action is Action.UPGRADE


def test_row9_superseded_or_unknown_latest_upgrades() -> None:
    assert run(rel(2, S.SUPERSEDED), ours(2)).action is Action.UPGRADE
    assert run(rel(2, S.UNKNOWN), ours(2)).action is Action.UPGRADE


def test_row10_digest_change_upgrades() -> None:
    p = run(rel(2, digest=D1), ours(2, D1), desired(D2))
    assert p.action is Action.UPGRADE
    assert D1 in p.reason and D2 in p.reason


def test_row10_status_memory_digest_mismatch_upgrades() -> None:
    assert run(rel(2, digest=D2), ours(2, D1), desired(D2)).action is Action.UPGRADE


def test_row11_untested_revision_is_tested() -> None:
    mem = replace(ours(2), test_state=TestState.PENDING)
    assert run(rel(2), mem, desired(test_enabled=True)).action is Action.TEST
    assert run(rel(2), mem, desired(test_enabled=False)).action is Action.NONE


def test_row13_a_test_that_may_still_run_is_waited_for_not_run_again() -> None:
    # the agent was killed during `helm test`; its helm child may still run that test
    mem = replace(ours(2), test_state=TestState.PENDING, test_started=NOW - 10)
    want = desired(test_enabled=True, test_grace=70.0)
    p = run(rel(2), mem, want)
    assert p.action is Action.WAIT_RETRY
    assert p.retry_at == NOW + 60
    assert not (p.stalled or p.backoff)
    assert "helm test of revision 2" in p.reason and "60s more" in p.reason


def test_row13_looks_again_every_recheck_while_it_waits() -> None:
    # so that the reconciler can record the outcome the test wrote when it ended
    mem = replace(ours(2), test_state=TestState.PENDING, test_started=NOW - 10)
    want = desired(test_enabled=True, test_grace=70.0, test_recheck=5.0)
    assert run(rel(2), mem, want).retry_at == NOW + 5
    late = replace(mem, test_started=NOW - 68)
    assert run(rel(2), late, want).retry_at == NOW + 2


def test_row13_once_the_test_cannot_run_any_more_it_is_run_again() -> None:
    mem = replace(ours(2), test_state=TestState.PENDING, test_started=NOW - 70)
    assert run(rel(2), mem, desired(test_enabled=True, test_grace=70.0)).action is Action.TEST


def test_row13_no_upgrade_either_while_the_test_may_run() -> None:
    # helm test rewrites the tested revision's record when it ends: an upgrade in between would
    # see its superseded revision written back as deployed
    mem = replace(ours(2, D1), test_state=TestState.PENDING, test_started=NOW - 1)
    p = run(rel(2, digest=D1), mem, desired(D2, test_enabled=True, test_grace=30.0))
    assert p.action is Action.WAIT_RETRY
    assert p.retry_at == NOW + 29
    assert "upgrad" in p.reason


def test_row13_a_recorded_outcome_ends_the_wait() -> None:
    mem = replace(ours(2), test_state=TestState.PENDING, test_started=NOW - 1)
    want = desired(test_enabled=True, test_grace=70.0)
    passed = record_test(mem, want, passed=True, now=NOW)
    assert passed.test_started is None
    assert run(rel(2), passed, want).action is Action.NONE


def test_row13_does_not_hold_back_what_calls_no_helm() -> None:
    mem = replace(ours(2), test_started=NOW - 1)
    assert run(rel(2), mem, desired(test_grace=70.0)).action is Action.NONE
    assert run(rel(2, owner=OTHER), mem, desired(test_grace=70.0)).action is Action.REFUSE


def test_deletion_waits_for_a_test_that_may_still_run() -> None:
    p = plan_deletion(rel(2), ME, now=NOW, test_until=NOW + 30)
    assert p.action is Action.WAIT_RETRY and p.retry_at == NOW + 30
    assert plan_deletion(rel(2), ME, now=NOW, test_until=NOW).action is Action.UNINSTALL
    # what is not this HelmRelease's is still never uninstalled
    assert plan_deletion(rel(2, owner=OTHER), ME, now=NOW, test_until=NOW + 30).action is Action.REFUSE


def test_record_test_started_is_read_back_by_the_next_plan() -> None:
    mem = record_test_started(replace(ours(2), test_state=TestState.PENDING), now=NOW - 5)
    assert mem.test_started == NOW - 5
    assert run(rel(2), mem, desired(test_enabled=True, test_grace=10.0)).retry_at == NOW + 5


def test_row12_in_sync_needs_no_helm_call() -> None:
    p = run(rel(2), ours(2))
    assert p.action is Action.NONE
    assert not (p.check_drift or p.reset_failures)


def test_row12_drift_modes() -> None:
    warn, enabled = desired(drift=DriftMode.WARN), desired(drift=DriftMode.ENABLED)
    assert run(rel(2), ours(2), warn).check_drift
    assert run(rel(2), ours(2), enabled, drift_detected=False).action is Action.NONE
    p = run(rel(2), ours(2), warn, drift_detected=True)
    assert (p.action, p.drifted) == (Action.NONE, True)
    assert run(rel(2), ours(2), enabled, drift_detected=True).action is Action.CORRECT_DRIFT
    assert run(rel(2), ours(2), desired(), drift_detected=True).action is Action.NONE  # disabled


# --- scenarios -----------------------------------------------------------------------------


def test_failed_release_without_change_waits_for_backoff() -> None:
    want = desired(upgrade=upgrade_policy(retries=3), backoff=(30.0, 60.0))
    mem = failed_mem(2, count=2, at=NOW - 45, last_remediated_revision=2)
    p = run(rel(2, S.FAILED, prev=1), mem, want)
    assert (p.action, p.retry_at, p.stalled) == (Action.WAIT_RETRY, NOW + 15, False)
    later = plan(rel(2, S.FAILED, prev=1), mem, want, now=NOW + 15)
    assert later.action is Action.UPGRADE


def test_backoff_uses_the_last_step_after_the_schedule_ends() -> None:
    want = desired(upgrade=upgrade_policy(retries=-1), backoff=(1.0, 100.0))
    mem = failed_mem(2, count=7, at=NOW - 99, last_remediated_revision=2)
    assert run(rel(2, S.FAILED, prev=1), mem, want).retry_at == NOW + 1


def test_retries_exhausted_is_stalled_until_spec_changes() -> None:
    want = desired(upgrade=upgrade_policy(retries=2))
    mem = failed_mem(4, count=3, last_remediated_revision=4)
    p = run(rel(4, S.FAILED, prev=1), mem, want)
    assert (p.action, p.stalled, p.retry_at) == (Action.WAIT_RETRY, True, None)
    assert run(rel(4, S.FAILED, prev=1, digest=D2), mem, desired(D1)).action is Action.UPGRADE


def test_exhausted_with_remediate_last_failure_remediates_then_stalls() -> None:
    want = desired(upgrade=upgrade_policy(retries=0, remediate_last_failure=True))
    mem = failed_mem(2, count=1)
    assert run(rel(2, S.FAILED, prev=1), mem, want).action is Action.ROLLBACK
    after = record_rollback(mem, remediated=2, revision=3, succeeded=True)
    p = run(rel(3, S.DEPLOYED, prev=1, digest=D1), after, want)
    assert (p.action, p.stalled) == (Action.WAIT_RETRY, True)


def test_exhausted_without_remediate_last_failure_keeps_failed_release() -> None:
    want = desired(upgrade=upgrade_policy(retries=1, remediate_last_failure=False))
    p = run(rel(4, S.FAILED, prev=1), failed_mem(4, count=2, last_remediated_revision=2), want)
    assert (p.action, p.stalled) == (Action.WAIT_RETRY, True)


def test_no_remediation_configured_retries_a_failed_upgrade_with_backoff_never_stalls() -> None:
    want = desired(upgrade=upgrade_policy(retries=0, remediate_last_failure=False), backoff=(10.0, 20.0))
    for count in (1, 2, 50):
        p = run(rel(2, S.FAILED, prev=1), failed_mem(2, count=count, at=NOW - 5), want)
        assert (p.action, p.stalled, p.backoff) == (Action.WAIT_RETRY, False, True)
        assert p.retry_at == NOW - 5 + (10.0 if count == 1 else 20.0)
        assert "due at 1970-01-01T00:16:" in p.reason  # the absolute time: a stable status message
        later = plan(rel(2, S.FAILED, prev=1), failed_mem(2, count=count, at=NOW - 5), want, now=NOW + 20)
        assert later.action is Action.UPGRADE  # retried as is: no rollback was asked for
        assert "no retries configured" in later.reason


def test_no_remediation_configured_retries_a_failed_install_after_the_default_purge() -> None:
    want = desired(install=install_policy(retries=0, uninstall_on_failure=True, remediate_last_failure=True))
    mem = failed_mem(1, count=3, action=ReleaseAction.INSTALL, at=NOW - 1)
    assert run(rel(1, S.FAILED), mem, want).action is Action.UNINSTALL  # the Helm Operator's purge
    gone = record_uninstall(mem, remediated=1, succeeded=True)
    p = run(None, gone, want)
    assert (p.action, p.stalled, p.retry_at) == (Action.WAIT_RETRY, False, NOW - 1 + BACKOFF[2])
    assert plan(None, gone, want, now=NOW + 60).action is Action.INSTALL
    # the reinstall fails again and writes revision 1 again: it is a new revision, purged again
    again = record_failure(gone, want, action=ReleaseAction.INSTALL, revision=1, now=NOW + 60)
    assert plan(rel(1, S.FAILED), again, want, now=NOW + 60).action is Action.UNINSTALL


def test_a_configured_budget_still_stalls_when_used_up() -> None:
    want = desired(install=install_policy(retries=2, uninstall_on_failure=True))
    mem = failed_mem(None, count=3, action=ReleaseAction.INSTALL, last_remediated_revision=1)
    p = run(None, mem, want)
    assert (p.action, p.stalled) == (Action.WAIT_RETRY, True)


def test_validation_failure_without_revision_is_not_rolled_back() -> None:
    # the upgrade wrote no revision: the latest is still our deployed revision 1
    want = desired(upgrade=upgrade_policy(retries=1, remediate_last_failure=True))
    mem = record_failure(ours(1, D1), want, action=ReleaseAction.UPGRADE, revision=None, now=NOW - 5)
    p = run(rel(1, digest=D1), mem, want)
    assert p.action is Action.WAIT_RETRY  # backoff, then upgrade again; never ROLLBACK
    assert plan(rel(1, digest=D1), mem, want, now=NOW + 3_600).action is Action.UPGRADE


def test_test_failure_after_install_uninstalls_when_purging() -> None:
    want = desired(install=install_policy(retries=1, uninstall_on_failure=True), test_enabled=True)
    mem = record_release(Memory(), want, action=ReleaseAction.INSTALL, revision=1)
    assert run(rel(1), mem, want).action is Action.TEST
    mem = record_test(mem, want, passed=False, now=NOW)
    p = run(rel(1), mem, want)
    assert (p.action, p.remediation) == (Action.UNINSTALL, True)
    assert "tests failed" in p.reason


def test_test_failure_after_upgrade_rolls_back() -> None:
    want = desired(upgrade=upgrade_policy(retries=1), test_enabled=True)
    mem = record_release(ours(1, D1), want, action=ReleaseAction.UPGRADE, revision=2)
    mem = record_test(mem, want, passed=False, now=NOW)
    p = run(rel(2, prev=1), mem, want)
    assert (p.action, p.rollback_to) == (Action.ROLLBACK, 1)


def test_test_failure_ignored_is_in_sync() -> None:
    want = desired(test_enabled=True, upgrade=upgrade_policy(ignore_test_failures=True))
    mem = record_release(ours(1, D1), want, action=ReleaseAction.UPGRADE, revision=2)
    mem = record_test(mem, want, passed=False, now=NOW)
    p = run(rel(2, prev=1), mem, want)
    assert p.action is Action.NONE
    assert "ignored" in p.reason
    assert mem.failures == 0


def test_ignoring_test_failures_is_per_action() -> None:
    want = desired(
        install=install_policy(ignore_test_failures=True, uninstall_on_failure=True, retries=1),
        upgrade=upgrade_policy(retries=1),
        test_enabled=True,
    )
    installed = record_test(
        record_release(Memory(), want, action=ReleaseAction.INSTALL, revision=1), want, passed=False, now=NOW
    )
    assert run(rel(1), installed, want).action is Action.NONE
    upgraded = record_test(
        record_release(ours(1), want, action=ReleaseAction.UPGRADE, revision=2), want, passed=False, now=NOW
    )
    assert run(rel(2, prev=1), upgraded, want).action is Action.ROLLBACK


def test_failures_without_a_generation_are_not_generation_scoped() -> None:
    mem = failed_mem(2, count=3, last_failed_generation=None, last_remediated_revision=2)
    p = run(rel(2, S.FAILED, prev=1), mem, desired(generation=7, upgrade=upgrade_policy(retries=2)))
    assert p.stalled


def test_repeated_test_failures_are_consecutive() -> None:
    want = desired(upgrade=upgrade_policy(retries=1), test_enabled=True)
    mem = record_test(
        record_release(ours(1, D1), want, action=ReleaseAction.UPGRADE, revision=2),
        want,
        passed=False,
        now=NOW,
    )
    mem = record_rollback(mem, remediated=2, revision=3, succeeded=True)
    mem = record_release(mem, want, action=ReleaseAction.UPGRADE, revision=4)
    mem = record_test(mem, want, passed=False, now=NOW)
    assert mem.failures == 2
    want0 = replace(
        want, policy=replace(want.policy, upgrade=upgrade_policy(retries=1, remediate_last_failure=False))
    )
    assert run(rel(4, prev=3), mem, want0).stalled


def test_unlimited_retries_never_stall() -> None:
    want = desired(upgrade=upgrade_policy(retries=-1), backoff=(5.0,))
    mem = failed_mem(2, count=10_000, last_remediated_revision=2)
    assert run(rel(2, S.FAILED, prev=1), mem, want).action is Action.UPGRADE


def test_adoption_failure_is_gated() -> None:
    want = desired(upgrade=upgrade_policy(retries=0))
    mem = record_failure(Memory(), want, action=ReleaseAction.UPGRADE, revision=None, now=NOW)
    p = run(rel(1, owner=None, digest=None), mem, want)
    assert (p.action, p.stalled, p.retry_at) == (Action.WAIT_RETRY, False, NOW + BACKOFF[0])
    want1 = desired(upgrade=upgrade_policy(retries=0, remediate_last_failure=True))
    p = run(rel(1, owner=None, digest=None), mem, want1)
    assert (p.action, p.stalled) == (Action.WAIT_RETRY, True)


def test_in_sync_clears_leftover_failures() -> None:
    mem = replace(ours(2), failures=2, last_failed_digest=D2, last_failed_generation=1)
    assert run(rel(2), mem).reset_failures


def test_record_unlock_of_another_desired_state_changes_nothing() -> None:
    mem = ours(1)
    assert record_unlock(mem, desired(), rel(2, S.PENDING_UPGRADE, digest=D1), now=NOW) is mem
    assert record_unlock(mem, desired(), rel(2, S.PENDING_ROLLBACK), now=NOW) is mem


def _interrupt(mem: Memory, want: Desired, revision: int) -> Memory:
    """The agent was killed during its upgrade to ``want``: storage holds a pending revision."""
    pending = rel(revision, S.PENDING_UPGRADE, prev=1, digest=want.digest, modified=NOW - 9_999)
    p = plan(pending, mem, want, now=NOW)
    assert p.action is Action.UNLOCK_PENDING
    return record_unlock(mem, want, pending, now=NOW)


def test_interruptions_up_to_the_bound_are_not_failures_then_each_one_is() -> None:
    want = desired(upgrade=upgrade_policy(retries=1), max_interruptions=2)
    mem = ours(1, D1)
    for n in (1, 2):
        mem = _interrupt(mem, want, n + 1)
        assert (mem.interruptions, mem.failures) == (n, 0)
        assert run(rel(n + 1, S.FAILED, prev=1), mem, want).action is Action.UPGRADE
    mem = _interrupt(mem, want, 4)
    assert (mem.interruptions, mem.failures, mem.last_failed_action) == (3, 1, ReleaseAction.UPGRADE)
    # now the user's policy applies: a rollback (retries 1), then retries, then stalled
    assert run(rel(4, S.FAILED, prev=1), mem, want).action is Action.ROLLBACK
    mem = _interrupt(replace(mem, last_remediated_revision=4), want, 5)
    assert (mem.interruptions, mem.failures) == (4, 2)
    assert run(rel(5, S.FAILED, prev=1), mem, want).stalled


def test_interruptions_are_counted_per_desired_state_and_cleared_by_success() -> None:
    want = desired(max_interruptions=1)
    mem = _interrupt(_interrupt(ours(1, D1), want, 2), want, 3)
    assert (mem.interruptions, mem.failures) == (2, 1)
    other = desired(D1, max_interruptions=1)
    fresh = _interrupt(mem, other, 4)
    assert (fresh.interruptions, fresh.last_interrupted_digest) == (1, D1)
    done = record_release(mem, want, action=ReleaseAction.UPGRADE, revision=4)
    assert (done.interruptions, done.last_interrupted_digest, done.failures) == (0, None, 0)


def test_the_unlock_plan_says_when_an_interruption_counts_as_a_failure() -> None:
    want = desired(max_interruptions=0)
    p = run(rel(2, S.PENDING_UPGRADE, prev=1, modified=NOW - 9_999), ours(1, D1), want)
    assert p.action is Action.UNLOCK_PENDING
    assert "counted as a failure" in p.reason
    # the counted failure is retried by default, after its backoff
    assert p.then is Action.WAIT_RETRY


def test_record_uninstall() -> None:
    mem = failed_mem(2)
    gone = record_uninstall(mem, remediated=2, succeeded=True)
    assert (gone.last_release_revision, gone.last_remediated_revision, gone.failures) == (None, 2, 1)
    kept = record_uninstall(mem, remediated=None, succeeded=False)
    assert kept == mem


# --- deletion ------------------------------------------------------------------------------


def test_deletion() -> None:
    assert plan_deletion(None, ME).action is Action.NONE
    assert plan_deletion(rel(3, S.UNINSTALLED), ME).action is Action.NONE
    assert plan_deletion(rel(3, owner=OTHER), ME).action is Action.REFUSE
    assert plan_deletion(rel(3), ME).action is Action.UNINSTALL
    assert plan_deletion(rel(3, S.FAILED, owner=None), ME).action is Action.REFUSE  # not ours
    assert plan_deletion(rel(3, S.PENDING_UPGRADE), ME).action is Action.UNINSTALL
    assert plan_deletion(rel(3), ME, suspended=True).action is Action.SUSPENDED


def test_deletion_waits_for_a_pending_revision_within_its_grace() -> None:
    for status in (S.PENDING_UPGRADE, S.PENDING_INSTALL, S.PENDING_ROLLBACK, S.UNINSTALLING):
        young = rel(3, status, modified=NOW - 10)
        p = plan_deletion(young, ME, now=NOW, pending_grace=300)
        assert (p.action, p.retry_at) == (Action.WAIT_RETRY, NOW + 290), status
        assert "another operation may be running" in p.reason
        assert plan_deletion(young, ME, now=NOW + 291, pending_grace=300).action is Action.UNINSTALL
    # a deployed or failed revision is not busy, however recent
    assert (
        plan_deletion(rel(3, S.FAILED, modified=NOW), ME, now=NOW, pending_grace=300).action
        is Action.UNINSTALL
    )


# --- properties over arbitrary inputs -------------------------------------------------------

_digests = st.sampled_from([D1, D2])
_opt_int = st.one_of(st.none(), st.integers(1, 6))
_observed = st.one_of(
    st.none(),
    st.builds(
        ObservedRelease,
        revision=st.integers(1, 6),
        status=st.sampled_from(list(S)),
        previous_deployed_revision=_opt_int,
        owner=st.sampled_from([ME, OTHER, None]),
        digest=st.one_of(st.none(), _digests),
        last_modified=st.one_of(st.none(), st.floats(0, 2 * NOW)),
        rolled_back_to=_opt_int,
    ),
)
_memory = st.builds(
    Memory,
    rollback_count=st.just(0),
    last_applied_digest=st.one_of(st.none(), _digests),
    last_release_revision=_opt_int,
    last_release_action=st.one_of(st.none(), st.sampled_from(list(ReleaseAction))),
    test_state=st.sampled_from(list(TestState)),
    failures=st.integers(0, 5),
    last_failed_digest=st.one_of(st.none(), _digests),
    last_failed_generation=st.one_of(st.none(), st.integers(1, 2)),  # None: not scoped
    last_failed_action=st.one_of(st.none(), st.sampled_from([ReleaseAction.INSTALL, ReleaseAction.UPGRADE])),
    last_failure_time=st.one_of(st.none(), st.floats(0, 2 * NOW)),
    last_remediated_revision=_opt_int,
    interruptions=st.integers(0, 4),
    last_interrupted_digest=st.one_of(st.none(), _digests),
    test_started=st.one_of(st.none(), st.floats(0, 2 * NOW)),
)
_policy = st.builds(
    Policy,
    install=st.builds(install_policy, st.integers(-1, 3), st.booleans(), st.booleans()),
    upgrade=st.builds(
        upgrade_policy, st.integers(-1, 3), st.sampled_from(list(RemediationStrategy)), st.booleans()
    ),
    test_enabled=st.booleans(),
    drift=st.sampled_from(list(DriftMode)),
    backoff=st.lists(st.floats(0, 600), max_size=3).map(tuple),
    pending_grace=st.floats(0, 600),
    test_grace=st.floats(0, 600),
    rollback_pending_grace=st.floats(0, 600),
    max_interruptions=st.integers(0, 3),
    merges_from_deployed=st.booleans(),
)
_desired = st.builds(
    Desired,
    digest=_digests,
    generation=st.integers(1, 2),
    owner=st.just(ME),
    suspended=st.booleans(),
    policy=_policy,
)


@given(_observed, _memory, _desired, st.one_of(st.none(), st.booleans()))
@settings(max_examples=400)
def test_invariants(
    observed: ObservedRelease | None, memory: Memory, want: Desired, drift: bool | None
) -> None:
    p = plan(observed, memory, want, now=NOW, drift_detected=drift)
    assert isinstance(p.action, Action)
    assert p.reason
    exists = observed is not None and observed.status is not S.UNINSTALLED
    if p.action is Action.NONE:
        assert observed is not None
        assert observed.status is S.DEPLOYED
        assert observed.digest == want.digest == memory.last_applied_digest
        assert observed.revision == memory.last_release_revision
        assert observed.owner == ME
    if observed is not None and observed.owner not in (None, ME):
        assert p.action is Action.REFUSE
    if p.action is Action.REFUSE:
        assert observed is not None and observed.owner == OTHER
    if exists:
        assert p.action is not Action.INSTALL
    else:
        assert p.action not in (Action.UPGRADE, Action.ROLLBACK, Action.TEST, Action.UNLOCK_PENDING)
    if p.action is Action.ROLLBACK:
        assert observed is not None and p.rollback_to is not None and p.rollback_to < observed.revision
    if p.restore:
        # row 8f: only with helm 3, only for our own failed revision, never as a remediation
        assert p.action is Action.ROLLBACK and not p.remediation and want.policy.merges_from_deployed
        assert observed is not None and observed.status is S.FAILED and observed.owner == ME
    if p.action is Action.WAIT_RETRY:
        assert p.stalled or (p.retry_at is not None and p.retry_at > NOW)
    failed = memory.last_failed_action or ReleaseAction.UPGRADE
    remediation = want.policy.install if failed is ReleaseAction.INSTALL else want.policy.upgrade
    if p.stalled:
        # Stalled only when the user's own retry budget is used up
        assert not retries_by_default(failed, remediation)
        assert 0 <= remediation.retries < memory.failures
    if p.backoff:
        # a retry after failures is due at most the longest backoff step after the last one
        assert p.action is Action.WAIT_RETRY and not p.stalled and p.retry_at is not None
        assert memory.last_failure_time is not None and want.policy.backoff
        assert p.retry_at <= memory.last_failure_time + max(want.policy.backoff)
    if p.discard:
        # only the agent's own remediation rollback, right after the failed revision it recorded
        assert p.action is Action.UNLOCK_PENDING and p.then is Action.ROLLBACK
        assert observed is not None and observed.status is S.PENDING_ROLLBACK and observed.owner == ME
        assert memory.last_release_revision == observed.revision - 1
        assert memory.last_remediated_revision != memory.last_release_revision
    if p.action is Action.UNLOCK_PENDING:
        assert observed is not None and observed.status.pending
        assert p.then is not None and p.then not in (Action.INSTALL, Action.UNLOCK_PENDING)
    if want.suspended:
        assert p.action in (Action.SUSPENDED, Action.REFUSE)


@given(_observed, st.booleans(), st.floats(0, 600))
def test_deletion_invariants(observed: ObservedRelease | None, suspended: bool, grace: float) -> None:
    p = plan_deletion(observed, ME, suspended=suspended, now=NOW, pending_grace=grace)
    if p.action is Action.UNINSTALL:
        assert observed is not None and observed.owner in (None, ME) and not suspended
        busy = observed.status.pending or observed.status is S.UNINSTALLING
        # never while another operation may still be running on the release
        assert not (busy and observed.last_modified is not None and observed.last_modified + grace > NOW)
    if p.action is Action.WAIT_RETRY:
        assert p.retry_at is not None and p.retry_at > NOW
    if observed is not None and observed.owner == OTHER and observed.status is not S.UNINSTALLED:
        assert p.action is Action.REFUSE


# --- simulation: plan + record_* against a fake Helm storage ---------------------------------


@dataclass
class Rev:
    revision: int
    status: ReleaseStatus
    digest: str | None
    owner: str | None


@dataclass
class Sim:
    want: Desired
    revs: list[Rev]
    memory: Memory = field(default_factory=Memory)
    now: float = NOW
    drift: bool | None = None

    def observed(self) -> ObservedRelease | None:
        if not self.revs:
            return None
        last = self.revs[-1]
        prev = [r.revision for r in self.revs[:-1] if r.status in (S.DEPLOYED, S.SUPERSEDED)]
        return ObservedRelease(last.revision, last.status, max(prev, default=None), last.owner, last.digest)

    def add(self, status: ReleaseStatus, digest: str | None) -> int:
        n = self.revs[-1].revision + 1 if self.revs else 1
        if status is S.DEPLOYED:
            for r in self.revs:
                if r.status is S.DEPLOYED:
                    r.status = S.SUPERSEDED
        self.revs.append(Rev(n, status, digest, ME))
        return n

    def step(self, p: Plan, ok: bool, writes: bool) -> str:
        """Apply ``p``; returns "done", "error", "time" (time passes) or "helm"/"free" (call kind).

        "error" is an action error that records nothing (finishing an uninstall, correcting
        drift): the reconciler surfaces it and the controller requeues with its error backoff.
        """
        m, want, obs = self.memory, self.want, self.observed()
        a = p.action
        if a in (Action.REFUSE, Action.SUSPENDED) or (a is Action.WAIT_RETRY and p.stalled):
            return "done"
        if a is Action.NONE:
            if p.check_drift:
                self.drift = not ok
                return "free"
            return "done"
        if a is Action.WAIT_RETRY:
            assert p.retry_at is not None
            self.now = p.retry_at
            return "time"
        if a is Action.CORRECT_DRIFT:
            if not ok:
                return "error"
            self.drift = False
            return "free"
        assert obs is not None or a is Action.INSTALL
        if a is Action.INSTALL:
            if ok:
                self.revs.clear()
                self.memory = record_release(
                    m, want, action=ReleaseAction.INSTALL, revision=self.add(S.DEPLOYED, want.digest)
                )
            else:
                rev = self.add(S.FAILED, want.digest) if writes else None
                self.memory = record_failure(
                    m, want, action=ReleaseAction.INSTALL, revision=rev, now=self.now
                )
        elif a is Action.UPGRADE:
            if ok:
                self.memory = record_release(
                    m, want, action=ReleaseAction.UPGRADE, revision=self.add(S.DEPLOYED, want.digest)
                )
            else:
                rev = self.add(S.FAILED, want.digest) if writes else None
                self.memory = record_failure(
                    m, want, action=ReleaseAction.UPGRADE, revision=rev, now=self.now
                )
        elif a is Action.TEST:
            self.memory = record_test(m, want, passed=ok, now=self.now)
        elif a is Action.ROLLBACK:
            assert obs is not None
            target = next(r for r in self.revs if r.revision == p.rollback_to)
            rev = self.add(S.DEPLOYED if ok else S.FAILED, target.digest) if ok or writes else None
            if p.restore:
                self.memory = record_restore(m, want, revision=rev, succeeded=ok, now=self.now)
            else:
                self.memory = record_rollback(m, remediated=obs.revision, revision=rev, succeeded=ok)
        elif a is Action.UNINSTALL:
            assert obs is not None
            remediated = obs.revision if p.remediation else None
            if ok:
                self.revs.clear()
            self.memory = record_uninstall(m, remediated=remediated, succeeded=ok)
            if not ok and not p.remediation:
                return "error"
        elif a is Action.UNLOCK_PENDING:
            assert obs is not None
            self.revs[-1].status = S.FAILED
            self.memory = record_unlock(m, want, obs, now=self.now)
        return "helm"


_start_revs = st.lists(
    st.builds(
        Rev,
        revision=st.just(0),
        status=st.sampled_from(list(S)),
        digest=st.one_of(st.none(), _digests),
        owner=st.sampled_from([ME, ME, None]),
    ),
    max_size=3,
).map(lambda revs: [replace(r, revision=i + 1) for i, r in enumerate(revs)])
_finite_policy = st.builds(
    Policy,
    install=st.builds(install_policy, st.integers(0, 2), st.booleans(), st.booleans()),
    upgrade=st.builds(
        upgrade_policy, st.integers(0, 2), st.sampled_from(list(RemediationStrategy)), st.booleans()
    ),
    test_enabled=st.booleans(),
    drift=st.sampled_from(list(DriftMode)),
    backoff=st.lists(st.floats(1, 600), min_size=1, max_size=3).map(tuple),
    max_interruptions=st.integers(0, 2),
    merges_from_deployed=st.booleans(),
)


@dataclass
class SimResult:
    final: Plan  # the last plan
    worst: int  # the most Helm calls made without time passing
    ended: bool  # a terminal plan was reached (else: still retrying after max_steps)
    waits: int  # steps where time had to pass


def simulate(sim: Sim, outcomes: list[tuple[bool, bool]], max_steps: int = 200) -> SimResult:
    """Run until a terminal plan, or ``max_steps``."""
    burst = worst = waits = 0
    for i in range(max_steps):
        p = plan(sim.observed(), sim.memory, sim.want, now=sim.now, drift_detected=sim.drift)
        ok, writes = outcomes[i] if i < len(outcomes) else (False, True)
        kind = sim.step(p, ok, writes)
        if kind in ("done", "error"):
            return SimResult(p, worst, True, waits)
        if kind == "time":
            burst = 0
            waits += 1
        elif kind == "helm":
            assert p.action in HELM_ACTIONS
            burst += 1
            worst = max(worst, burst)
    return SimResult(p, worst, False, waits)


@given(
    _start_revs,
    _finite_policy,
    _memory,
    _digests,
    st.lists(st.tuples(st.booleans(), st.booleans()), max_size=40),
)
@settings(max_examples=300, deadline=None)
def test_simulation_terminates_without_hot_loops(
    revs: list[Rev], policy: Policy, memory: Memory, digest: str, outcomes: list[tuple[bool, bool]]
) -> None:
    sim = Sim(Desired(digest, 1, ME, policy=policy), revs, memory=memory)
    result = simulate(sim, outcomes)
    final = result.final
    # longest chain: finish uninstall -> install -> test fails -> uninstall (remediation); with
    # helm 3, unlock -> restore (row 8f) -> upgrade -> test fails -> rollback (remediation)
    assert result.worst <= (5 if policy.merges_from_deployed else 4), (
        "too many Helm calls without time passing"
    )
    if not result.ended:
        # an always failing helm is retried forever only when no retry budget is configured
        # for the failing action, and only with the backoff between attempts
        failed = sim.memory.last_failed_action or ReleaseAction.UPGRADE
        remediation = policy.install if failed is ReleaseAction.INSTALL else policy.upgrade
        assert sim.memory.failures > 0 and retries_by_default(failed, remediation)
        assert result.waits >= 200 // 6
        return
    assert final.action in (Action.NONE, Action.WAIT_RETRY, Action.REFUSE, Action.SUSPENDED) or (
        final.action in (Action.UNINSTALL, Action.CORRECT_DRIFT) and not final.remediation
    )


@given(_start_revs, _finite_policy, _digests)
@settings(max_examples=200, deadline=None)
def test_simulation_with_a_healthy_helm_converges(revs: list[Rev], policy: Policy, digest: str) -> None:
    sim = Sim(Desired(digest, 1, ME, policy=policy), revs)
    result = simulate(sim, [(True, True)] * 20)
    final = result.final
    assert result.ended
    if final.action is not Action.NONE:
        # only a crashed attempt found in storage can have used up the retries
        assert final.stalled and sim.memory.failures > 0
    else:
        obs = sim.observed()
        assert obs is not None and obs.status is S.DEPLOYED and obs.digest == digest


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["fail", "ok"]), st.sampled_from([D1, D2])), max_size=15))
def test_failures_are_consecutive_failures_of_the_current_desired_state(
    events: list[tuple[str, str]],
) -> None:
    mem = Memory()
    for event, digest in events:
        want = desired(digest)
        if event == "fail":
            mem = record_failure(mem, want, action=ReleaseAction.UPGRADE, revision=None, now=NOW)
        else:
            mem = record_release(mem, want, action=ReleaseAction.UPGRADE, revision=1)
    for digest in (D1, D2):
        expected = 0
        for event, event_digest in events:
            expected = expected + 1 if event == "fail" and event_digest == digest else 0
        counted = mem.failures if mem.last_failed_digest == digest else 0
        assert counted == expected


@settings(max_examples=200, deadline=None)
@given(
    st.integers(0, 4),
    st.lists(st.sampled_from(["interrupt", "fail", "ok"]), max_size=15),
    st.sampled_from([D1, D2]),
)
def test_interruptions_of_one_desired_state_are_bounded(bound: int, events: list[str], digest: str) -> None:
    """Past the bound each interruption is a failure, so the retry policy always gets to act."""
    want = desired(digest, max_interruptions=bound)
    mem = ours(1, D1 if digest == D2 else D2)
    interruptions = failures = 0
    revision = 1
    for event in events:
        revision += 1
        pending = rel(revision, S.PENDING_UPGRADE, prev=1, digest=digest)
        if event == "interrupt":
            mem = record_unlock(mem, want, pending, now=NOW)
            interruptions += 1
            failures += interruptions > bound
        elif event == "fail":
            mem = record_failure(mem, want, action=ReleaseAction.UPGRADE, revision=revision, now=NOW)
            failures += 1
        else:
            mem = record_release(mem, want, action=ReleaseAction.UPGRADE, revision=revision)
            interruptions = failures = 0
        assert (mem.interruptions, mem.failures) == (interruptions, failures)


def test_an_attempt_the_agent_killed_itself_is_not_counted_again_when_unlocked() -> None:
    # the agent killed helm at its deadline and recorded the failure with the pending revision
    want = desired()
    mem = record_failure(ours(1, D1), want, action=ReleaseAction.UPGRADE, revision=2, now=NOW)
    pending = rel(2, S.PENDING_UPGRADE, prev=1, modified=NOW - 9_999)
    assert record_unlock(mem, want, pending, now=NOW) is mem
    p = run(pending, mem, want)
    assert p.action is Action.UNLOCK_PENDING
    assert "whose failure is recorded" in p.reason


# --- row 8f: helm 3 restores the last deployed revision before upgrading a failed one ----------


def helm3(digest: str = D2, **policy: Any) -> Desired:
    return desired(digest, merges_from_deployed=True, **policy)


def test_8f_helm3_restores_the_last_deployed_revision_before_upgrading_to_fixed_values() -> None:
    # revision 2 failed for D1 (the bad values); the user fixed them (D2): no failure counted
    mem = failed_mem(2, digest=D1)
    p = run(rel(2, S.FAILED, prev=1, digest=D1), mem, helm3())
    assert (p.action, p.rollback_to, p.restore, p.remediation) == (Action.ROLLBACK, 1, True, False)
    assert "restoring revision 1" in p.reason
    # the restore wrote revision 3 (revision 1's manifest): the upgrade follows at once
    after = record_restore(mem, helm3(), revision=3, succeeded=True, now=NOW)
    assert after.rollback_count == mem.rollback_count  # not a remediation
    nxt = run(rel(3, S.DEPLOYED, prev=1, digest=D1), after, helm3())
    assert nxt.action is Action.UPGRADE


def test_8f_helm4_upgrades_a_failed_revision_directly() -> None:
    p = run(rel(2, S.FAILED, prev=1, digest=D1), failed_mem(2, digest=D1), desired())
    assert p.action is Action.UPGRADE and not p.restore


def test_8f_a_retry_of_the_same_desired_state_restores_only_when_due() -> None:
    mem = failed_mem(2, count=1, at=NOW - 1)  # backoff 10 s not yet over
    assert run(rel(2, S.FAILED, prev=1), mem, helm3()).action is Action.WAIT_RETRY
    due = failed_mem(2, count=1, at=NOW - 100)
    p = run(rel(2, S.FAILED, prev=1), due, helm3())
    assert (p.action, p.restore, p.rollback_to) == (Action.ROLLBACK, True, 1)
    # the failure count survives the restore, so the budget and backoff still apply afterwards
    after = record_restore(due, helm3(), revision=3, succeeded=True, now=NOW)
    assert after.failures == 1


def test_8f_a_failed_restore_is_a_failure_and_is_not_repeated_at_once() -> None:
    mem = failed_mem(2, digest=D1)
    failed = record_restore(mem, helm3(), revision=3, succeeded=False, now=NOW)
    assert failed.failures == 1 and failed.last_failure_time == NOW
    # the latest revision is the failed restore: later, upgrade from it (no restore loop)
    p = plan(rel(3, S.FAILED, prev=1, digest=D1), failed, helm3(), now=NOW + 1_000)
    assert p.action is Action.UPGRADE and not p.restore
    # a restore that wrote nothing is retried only after the backoff
    nothing = record_restore(mem, helm3(), revision=None, succeeded=False, now=NOW)
    assert run(rel(2, S.FAILED, prev=1, digest=D1), nothing, helm3()).action is Action.WAIT_RETRY


def test_8f_not_for_a_first_install_a_takeover_or_a_configured_remediation() -> None:
    # a failed install has nothing deployed to restore
    install = failed_mem(1, action=ReleaseAction.INSTALL, digest=D1)
    assert not run(rel(1, S.FAILED, digest=D1), install, helm3()).restore
    # a failed release nobody owns is taken over, not rolled back first
    assert not run(rel(2, S.FAILED, prev=1, owner=None), Memory(), helm3()).restore
    # a configured rollback remediation is a remediation, as before
    want = helm3(upgrade=upgrade_policy(retries=1))
    p = run(rel(2, S.FAILED, prev=1), failed_mem(2), want)
    assert (p.action, p.remediation, p.restore) == (Action.ROLLBACK, True, False)


def test_8f_an_interrupted_attempt_is_unlocked_then_restored() -> None:
    # killed during a failing upgrade to D1 (revision 2 left pending); the values are fixed (D2)
    p = run(rel(2, S.PENDING_UPGRADE, prev=1, digest=D1, modified=0.0), ours(1, D1), helm3())
    assert (p.action, p.then) == (Action.UNLOCK_PENDING, Action.ROLLBACK)


# --- an own install/upgrade whose outcome was never recorded (the agent killed after helm) -------


def test_an_unrecorded_own_upgrade_is_recorded_and_not_applied_again() -> None:
    # helm wrote revision 2 with the desired digest, the agent died before its status write
    observed, memory = rel(2, S.DEPLOYED, prev=1), failed_mem(1, count=1)
    assert unrecorded_release(observed, memory, desired())
    recorded = record_unrecorded_release(memory, desired(), observed)
    assert (recorded.last_release_revision, recorded.last_release_action) == (2, ReleaseAction.UPGRADE)
    assert (recorded.last_applied_digest, recorded.failures) == (D2, 0)
    assert run(observed, recorded).action is Action.NONE
    # without recording it, row 7 would upgrade to the state the release already holds
    assert run(observed, memory).action is Action.UPGRADE


def test_an_unrecorded_own_install_is_recorded_as_an_install_then_tested() -> None:
    observed = rel(1, S.DEPLOYED)
    assert unrecorded_release(observed, Memory(), desired())
    recorded = record_unrecorded_release(Memory(), desired(test_enabled=True), observed)
    assert (recorded.last_release_revision, recorded.last_release_action) == (1, ReleaseAction.INSTALL)
    assert run(observed, recorded, desired(test_enabled=True)).action is Action.TEST


@pytest.mark.parametrize(
    ("observed", "memory"),
    [
        (rel(2, S.DEPLOYED, prev=1, digest=D1), ours(1, D1)),  # another desired state
        (rel(2, S.DEPLOYED, prev=1, owner=OTHER), ours(1)),  # another HelmRelease's
        (rel(2, S.FAILED, prev=1), ours(1, D1)),  # not a success
        (rel(2, S.PENDING_UPGRADE, prev=1), ours(1, D1)),  # not finished
        (rel(2, S.DEPLOYED, prev=1), ours(2)),  # recorded already
        (rel(2, S.DEPLOYED, prev=1), ours(3)),  # older than the recorded one
        (None, Memory()),
    ],
)
def test_only_a_newer_deployed_revision_of_the_desired_state_and_owner_is_unrecorded(
    observed: ObservedRelease | None, memory: Memory
) -> None:
    assert not unrecorded_release(observed, memory, desired())


# --- row 4b: the agent's own remediation rollback, interrupted (the agent killed mid-rollback) --


def remediating(**policy: Any) -> Desired:
    """rollback.enable: remediate the last failure once, then stop (no retries)."""
    return desired(upgrade=upgrade_policy(retries=0, remediate_last_failure=True), **policy)


def rolled_back(revision: int, status: ReleaseStatus, to: int | None = 1, **kw: Any) -> ObservedRelease:
    """A revision written by ``helm rollback`` to ``to`` (helm's "Rollback to N")."""
    return replace(rel(revision, status, prev=1, digest=D1, **kw), rolled_back_to=to)


def test_4b_an_interrupted_remediation_is_discarded_then_rolled_back_again() -> None:
    # upgrade revision 2 failed; row 8c rolled back to 1 (revision 3), the agent was killed
    want, mem = remediating(), failed_mem(2)
    assert run(rel(2, S.FAILED, prev=1), mem, want).rollback_to == 1
    pending = rolled_back(3, S.PENDING_ROLLBACK, modified=0.0)
    assert unrecorded_remediation(pending, mem, want)
    p = run(pending, mem, want)
    assert (p.action, p.discard, p.then) == (Action.UNLOCK_PENDING, True, Action.ROLLBACK)
    assert "the agent's own rollback of failed revision 2" in p.reason
    after = record_unlock(mem, want, pending, now=NOW)
    assert (after.interruptions, after.failures, after.last_release_revision) == (1, 1, 2)
    # discarded: revision 2 is the latest again, and row 8c runs the same remediation
    again = run(rel(2, S.FAILED, prev=1), after, want)
    assert (again.action, again.rollback_to, again.remediation) == (Action.ROLLBACK, 1, True)
    done = record_rollback(after, remediated=2, revision=3, succeeded=True)
    assert (done.rollback_count, done.last_remediated_revision) == (1, 2)
    final = run(rel(3, S.DEPLOYED, prev=1, digest=D1), done, want)
    assert final.action is Action.WAIT_RETRY and final.stalled  # as without the kill


def test_a_remediation_rollback_helm_finished_is_recorded_like_the_remediation() -> None:
    want, mem = remediating(), failed_mem(2)
    deployed = rolled_back(3, S.DEPLOYED)
    assert unrecorded_remediation(deployed, mem, want)
    recorded = record_unrecorded_rollback(mem, deployed)
    assert recorded == record_rollback(mem, remediated=2, revision=3, succeeded=True)
    assert run(deployed, recorded, want).stalled
    # without recording it, row 7 takes it for a manual rollback
    assert "made outside the agent" in run(deployed, mem, want).reason


def test_4b_resuming_an_interrupted_remediation_is_bounded() -> None:
    # each re-run of the rollback is killed too: discarded up to max_interruptions times
    want, mem = remediating(max_interruptions=2), failed_mem(2)
    discarded = 0
    pending = rolled_back(3, S.PENDING_ROLLBACK)
    while run(pending, mem, want).discard:
        mem = record_unlock(mem, want, pending, now=NOW)
        discarded += 1
        assert discarded <= 2
    assert discarded == 2
    p = run(pending, mem, want)
    assert p.action is Action.UNLOCK_PENDING and p.then is not Action.ROLLBACK


@pytest.mark.parametrize(
    ("observed", "memory", "want"),
    [
        (rolled_back(3, S.PENDING_ROLLBACK, to=None), failed_mem(2), remediating()),  # no "Rollback to"
        (rolled_back(3, S.PENDING_ROLLBACK, to=2), failed_mem(2), remediating()),  # another target
        (rolled_back(3, S.PENDING_ROLLBACK), failed_mem(2, last_remediated_revision=2), remediating()),
        (rolled_back(3, S.PENDING_ROLLBACK), failed_mem(2, digest=D1), remediating()),  # values changed
        (rolled_back(4, S.PENDING_ROLLBACK), failed_mem(2), remediating()),  # not right after it
        (rolled_back(3, S.PENDING_ROLLBACK), failed_mem(2), desired()),  # no remediation configured
        (rolled_back(3, S.PENDING_ROLLBACK), ours(2), remediating()),  # revision 2 did not fail
        (rolled_back(3, S.FAILED), failed_mem(2), remediating()),  # a rollback helm failed
        (rolled_back(3, S.PENDING_ROLLBACK), failed_mem(2, action=ReleaseAction.ROLLBACK), remediating()),
        (rolled_back(3, S.PENDING_ROLLBACK, owner=None), failed_mem(2), remediating()),
    ],
)
def test_4b_only_the_rollback_row_8c_would_have_run_is_discarded(
    observed: ObservedRelease, memory: Memory, want: Desired
) -> None:
    assert not unrecorded_remediation(observed, memory, want)
    assert not run(observed, memory, want).discard


def test_an_interrupted_helm3_restore_is_unlocked_then_restored_again() -> None:
    # no remediation configured: the rollback (revision 3) was row 8f's restore before a retry
    want, mem = helm3(), failed_mem(2)
    pending = rolled_back(3, S.PENDING_ROLLBACK)
    p = run(pending, mem, want)
    assert (p.action, p.discard, p.then) == (Action.UNLOCK_PENDING, False, Action.ROLLBACK)
    after = record_unlock(mem, want, pending, now=NOW)
    nxt = run(rolled_back(3, S.FAILED), after, want)
    assert (nxt.action, nxt.restore, nxt.remediation) == (Action.ROLLBACK, True, False)


def test_an_interrupted_uninstall_remediation_is_finished_then_installed_again() -> None:
    # the install failed (revision 1); its remediation uninstall was killed midway
    want = desired(install=install_policy(uninstall_on_failure=True))
    mem = failed_mem(1, action=ReleaseAction.INSTALL)
    p = run(rel(1, S.UNINSTALLING, modified=0.0), mem, want)
    assert p.action is Action.UNINSTALL
    after = record_uninstall(mem, remediated=None, succeeded=True)
    nxt = run(None, after, want)
    assert nxt.action is Action.INSTALL and not nxt.stalled  # retried by default, with backoff


def test_4a_a_pending_rollback_is_left_alone_for_the_rollback_timeout() -> None:
    # spec.timeout 4 s, spec.rollback.timeout 30 s: an orphaned helm rollback may still be waiting
    want = remediating(pending_grace=5.0, rollback_pending_grace=31.0)
    young = rolled_back(3, S.PENDING_ROLLBACK, modified=NOW - 10)
    p = run(young, failed_mem(2), want)
    assert (p.action, p.retry_at) == (Action.WAIT_RETRY, NOW + 21)
    assert run(replace(young, last_modified=NOW - 32), failed_mem(2), want).discard
    # other pending revisions keep the release's own grace
    upgrade = rel(3, S.PENDING_UPGRADE, prev=1, modified=NOW - 10)
    assert run(upgrade, failed_mem(2), want).action is Action.UNLOCK_PENDING


def test_a_new_revision_forgets_the_test_started_on_the_one_before() -> None:
    # testStartedAt is the start of a test of last_release_revision: once another revision is
    # recorded it names no test, and a later longer spec.test.timeout must not make row 13 wait
    # for that test again
    mem = replace(ours(2), test_state=TestState.PENDING, test_started=NOW - 500)
    want = desired(test_enabled=True, test_grace=3600.0)
    moved = [
        record_release(mem, want, action=ReleaseAction.UPGRADE, revision=3),
        record_rollback(mem, remediated=2, revision=3, succeeded=True),
        record_restore(mem, want, revision=3, succeeded=True, now=NOW),
        record_uninstall(mem, remediated=2, succeeded=True),
    ]
    assert [m.test_started for m in moved] == [None] * len(moved)
    upgraded = replace(moved[0], last_applied_digest=D1)
    assert run(rel(3, digest=D1), upgraded, desired(D2, test_enabled=True, test_grace=3600.0)).action is (
        Action.UPGRADE
    )
