"""The effective policy: legacy rollback.* => upgrade remediation, wait/reset rules, install defaults."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from gitops_helm.api import (
    UNLIMITED,
    DriftIgnoreTarget,
    ReleasePolicy,
    RemediationStrategy,
    default_release_name,
    parse_helmrelease,
)
from gitops_helm.release import plan as pl
from tests.unit.test_api_examples import manifest

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def policy(**spec: Any) -> ReleasePolicy:
    return parse_helmrelease(manifest(**spec)).policy


D_OLD, D_NEW = "sha256:old", "sha256:new"


def desired(p: ReleasePolicy, digest: str) -> pl.Desired:
    return pl.Desired(digest=digest, generation=1, owner="n.r", policy=pl.Policy(upgrade=p.upgrade))


def run_failing_upgrades(p: ReleasePolicy, cap: int = 50) -> tuple[int, pl.Memory, pl.Plan]:
    """Every upgrade to a new desired state fails; follow the release planner with this policy until
    it stops acting (or `cap` upgrades). Returns the upgrades made, the memory and the last plan."""
    want = desired(p, D_NEW)
    storage = [pl.ObservedRelease(1, pl.ReleaseStatus.DEPLOYED, owner="n.r", digest=D_OLD)]
    memory = pl.Memory(
        last_applied_digest=D_OLD, last_release_revision=1, last_release_action=pl.ReleaseAction.INSTALL
    )
    upgrades = 0
    for _ in range(4 * cap):
        latest = storage[-1]
        decision = pl.plan(latest, memory, want, now=1_000.0)
        if decision.action is pl.Action.UPGRADE and upgrades < cap:
            upgrades += 1
            deployed = [r.revision for r in storage if r.status is pl.ReleaseStatus.DEPLOYED]
            storage.append(
                pl.ObservedRelease(
                    latest.revision + 1,
                    pl.ReleaseStatus.FAILED,
                    previous_deployed_revision=deployed[-1],
                    owner="n.r",
                    digest=D_NEW,
                )
            )
            memory = pl.record_failure(
                memory, want, action=pl.ReleaseAction.UPGRADE, revision=latest.revision + 1, now=1_000.0
            )
        elif decision.action is pl.Action.ROLLBACK:
            assert p.upgrade.strategy is RemediationStrategy.ROLLBACK
            storage.append(
                pl.ObservedRelease(latest.revision + 1, pl.ReleaseStatus.DEPLOYED, owner="n.r", digest=D_OLD)
            )
            memory = pl.record_rollback(
                memory, remediated=latest.revision, revision=latest.revision + 1, succeeded=True
            )
        else:
            return upgrades, memory, decision
    return upgrades, memory, decision


def test_defaults() -> None:
    p = policy()
    assert (p.release_name, p.target_namespace, p.timeout, p.max_history) == ("apps-web", "apps", 300, 10)
    assert (p.reuse_values, p.force_upgrade, p.wait, p.skip_crds) == (False, False, False, False)
    assert (p.suspend, p.depends_on, p.create_namespace, p.disable_openapi_validation) == (
        False,
        (),
        False,
        False,
    )
    assert (p.test.enable, p.test.timeout) == (False, 300)
    assert p.legacy_remediation is True


@pytest.mark.parametrize(("reset_values", "reuse"), [(None, False), (True, False), (False, True)])
def test_reset_values_nil_or_true_resets_explicit_false_reuses(
    reset_values: bool | None, reuse: bool
) -> None:
    assert policy(resetValues=reset_values).reuse_values is reuse


@pytest.mark.parametrize(
    ("spec", "wait"),
    [
        ({}, False),
        ({"rollback": {"enable": True}}, True),
        ({"test": {"enable": True}}, True),
        ({"rollback": {"retry": True}}, False),
        ({"rollback": {"enable": True}, "wait": False}, False),
        ({"wait": True}, True),
        ({"upgrade": {"remediation": {}}}, False),
        ({"upgrade": {"remediation": {"retries": 2}}}, True),
        ({"upgrade": {"remediation": {"remediateLastFailure": True}}}, True),
    ],
)
def test_wait_defaults_to_rollback_or_test_enable(spec: dict[str, Any], wait: bool) -> None:
    assert policy(**spec).wait is wait


# --- legacy rollback.* => upgrade remediation ---------------------------------------------------


@pytest.mark.parametrize(
    ("rollback", "retries", "remediate_last"),
    [
        ({}, 0, False),
        ({"retry": True, "maxRetries": 3}, 0, False),
        ({"enable": True}, 0, True),
        ({"enable": True, "maxRetries": 3}, 0, True),
        ({"enable": True, "retry": True}, 5, True),
        ({"enable": True, "retry": True, "maxRetries": 1}, 1, True),
        ({"enable": True, "retry": True, "maxRetries": 0}, UNLIMITED, True),
    ],
)
def test_legacy_rollback_maps_onto_upgrade_remediation(
    rollback: dict[str, Any], retries: int, remediate_last: bool
) -> None:
    upgrade = policy(rollback=rollback).upgrade
    assert upgrade.strategy is RemediationStrategy.ROLLBACK
    assert (upgrade.retries, upgrade.remediate_last_failure) == (retries, remediate_last)


def test_max_retries_1_allows_two_failed_upgrades_and_ends_with_rollback_count_2() -> None:
    # The Helm Operator's e2e test expects exactly this.
    attempts, memory, last = run_failing_upgrades(
        policy(rollback={"enable": True, "retry": True, "maxRetries": 1})
    )
    assert (attempts, memory.rollback_count, last.stalled) == (2, 2, True)


def test_default_max_retries_allows_six_failed_upgrades() -> None:
    attempts, memory, _ = run_failing_upgrades(policy(rollback={"enable": True, "retry": True}))
    assert (attempts, memory.rollback_count) == (6, 6)


def test_rollback_without_retry_rolls_back_once_and_stops() -> None:
    attempts, memory, _ = run_failing_upgrades(policy(rollback={"enable": True}))
    assert (attempts, memory.rollback_count) == (1, 1)


def test_rollback_disabled_retries_the_failed_upgrade_by_default() -> None:
    # no remediation configured: never stalled, never rolled back; retried (with the settings'
    # backoff, empty here) until the desired state changes
    attempts, memory, last = run_failing_upgrades(policy(), cap=40)
    assert (attempts, memory.rollback_count, last.stalled) == (40, 0, False)


def test_max_retries_0_retries_forever() -> None:
    attempts, _, _ = run_failing_upgrades(
        policy(rollback={"enable": True, "retry": True, "maxRetries": 0}), cap=40
    )
    assert attempts == 40


def test_a_new_desired_state_gets_fresh_retries() -> None:
    p = policy(rollback={"enable": True, "retry": True, "maxRetries": 1})
    _, memory, last = run_failing_upgrades(p)
    assert last.stalled
    # the release (rolled back, digest D_OLD) is planned against another desired state
    rolled_back = pl.ObservedRelease(
        memory.last_release_revision or 0, pl.ReleaseStatus.DEPLOYED, owner="n.r", digest=D_OLD
    )
    assert pl.plan(rolled_back, memory, desired(p, "sha256:newer"), now=1_000.0).action is pl.Action.UPGRADE


# --- new fields ---------------------------------------------------------------------------------


def test_upgrade_remediation_replaces_the_legacy_fields() -> None:
    p = policy(
        rollback={"enable": True, "retry": True, "maxRetries": 4},
        upgrade={"remediation": {"strategy": "uninstall"}},
    )
    assert p.legacy_remediation is False
    assert (p.upgrade.strategy, p.upgrade.retries, p.upgrade.remediate_last_failure) == (
        RemediationStrategy.UNINSTALL,
        0,
        False,
    )
    # the rollback action options still apply
    assert p.rollback.max_retries == 4


@pytest.mark.parametrize(("retries", "last"), [(0, False), (3, True), (-1, True)])
def test_upgrade_remediate_last_failure_defaults_to_retries_not_zero(retries: int, last: bool) -> None:
    assert policy(upgrade={"remediation": {"retries": retries}}).upgrade.remediate_last_failure is last


def test_upgrade_remediation_explicit_values_win() -> None:
    upgrade = policy(upgrade={"remediation": {"retries": 3, "remediateLastFailure": False}}).upgrade
    assert (upgrade.retries, upgrade.remediate_last_failure) == (3, False)
    # rolled back before the last retry; the last failure stays for inspection
    assert after_failures(pl.Policy(upgrade=upgrade), pl.ReleaseAction.UPGRADE, 3) is pl.Action.ROLLBACK
    assert after_failures(pl.Policy(upgrade=upgrade), pl.ReleaseAction.UPGRADE, 4) is pl.Action.WAIT_RETRY


def after_failures(planner_policy: pl.Policy, action: pl.ReleaseAction, failures: int) -> pl.Action:
    """The planner's next action for a release whose revision 2 failed ``failures`` times."""
    want = pl.Desired(digest=D_NEW, generation=1, owner="n.r", policy=planner_policy)
    memory = pl.Memory(
        last_release_revision=2,
        last_release_action=action,
        failures=failures,
        last_failed_digest=D_NEW,
        last_failed_generation=1,
        last_failed_action=action,
        last_failure_time=0.0,
    )
    failed = pl.ObservedRelease(
        2, pl.ReleaseStatus.FAILED, previous_deployed_revision=1, owner="n.r", digest=D_NEW
    )
    return pl.plan(failed, memory, want, now=1_000.0).action


def test_install_defaults_purge_a_failed_install_and_do_not_retry() -> None:
    install = policy().install
    assert install.strategy is RemediationStrategy.UNINSTALL
    assert (install.retries, install.remediate_last_failure) == (0, True)
    assert after_failures(pl.Policy(install=install), pl.ReleaseAction.INSTALL, 1) is pl.Action.UNINSTALL


def test_install_can_keep_the_last_failed_release() -> None:
    install = policy(install={"remediation": {"retries": 1, "remediateLastFailure": False}}).install
    actions = [after_failures(pl.Policy(install=install), pl.ReleaseAction.INSTALL, n) for n in (1, 2)]
    assert actions == [pl.Action.UNINSTALL, pl.Action.WAIT_RETRY]


@pytest.mark.parametrize(
    ("spec", "install_ignores", "upgrade_ignores"),
    [
        ({}, False, False),
        ({"test": {"ignoreFailures": True}}, True, True),
        (
            {"test": {"ignoreFailures": True}, "install": {"remediation": {"ignoreTestFailures": False}}},
            False,
            True,
        ),
        ({"upgrade": {"remediation": {"ignoreTestFailures": True}}}, False, True),
    ],
)
def test_ignore_test_failures_falls_back_to_test_ignore_failures(
    spec: dict[str, Any], install_ignores: bool, upgrade_ignores: bool
) -> None:
    p = policy(**spec)
    assert (p.install.ignore_test_failures, p.upgrade.ignore_test_failures) == (
        install_ignores,
        upgrade_ignores,
    )


def test_create_namespace_suspend_and_depends_on() -> None:
    p = policy(
        install={"createNamespace": True}, suspend=True, dependsOn=[{"name": "db", "namespace": "data"}]
    )
    assert (p.create_namespace, p.suspend) == (True, True)
    assert [(d.name, d.namespace) for d in p.depends_on] == [("db", "data")]


def test_default_release_name() -> None:
    assert default_release_name("apps", "web", None) == "apps-web"
    assert default_release_name("apps", "web", "apps") == "apps-web"
    assert default_release_name("apps", "web", "prod") == "apps-prod-web"


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (DriftIgnoreTarget(), True),
        (DriftIgnoreTarget(group="apps", kind="Deployment"), True),
        (DriftIgnoreTarget(group="", version="v1"), False),
        (DriftIgnoreTarget(version="v1beta1"), False),
        (DriftIgnoreTarget(kind="Deployment", name="web", namespace="prod"), True),
        (DriftIgnoreTarget(name="api"), False),
        (DriftIgnoreTarget(namespace="dev"), False),
    ],
)
def test_drift_ignore_target_matches_exactly(target: DriftIgnoreTarget, expected: bool) -> None:
    assert target.matches(api_version="apps/v1", kind="Deployment", name="web", namespace="prod") is expected


def test_drift_target_for_the_core_group() -> None:
    target = DriftIgnoreTarget(group="", kind="ConfigMap")
    assert target.matches(api_version="v1", kind="ConfigMap", name="c", namespace="prod")
