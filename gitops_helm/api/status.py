"""HelmRelease status: phases, their condition writes, failure bookkeeping, (de)serialisation.

Place in the data flow: `parse_helmrelease` reads the live status with `parse_status` (leniently:
the status is the agent's own cache, a user cannot fix it); the reconciler derives a new status
with the pure `record_phase`/`set_*` helpers below and sends `serialise_status(...)` as ONE status
patch per step. Time is always passed in. The retry and remediation fields (`failures`,
`lastFailed*`, ...) are the release planner's memory: their rules live in
`gitops_helm.release.plan` (the `record_*` transitions) and their translation to and from this
status in `gitops_helm.release.memory`; this module only stores them.

Status fields (camelCase in the object):
- `observedGeneration`: the `metadata.generation` the last finished sync worked on.
- `phase`: the last phase recorded (see `Phase`).
- `releaseName`, `releaseStatus`: the Helm release name and its status as last observed in Helm
  storage (`deployed`, `failed`, `pending-upgrade`, ...).
- `revision`: the chart revision (Git commit SHA or chart version) of the last successful release.
- `lastAttemptedRevision`: the chart revision of the last install/upgrade attempt.
- `rollbackCount`: successful rollbacks since the release last succeeded (reset on `Succeeded`).
- `conditions`: see `gitops_helm.api.conditions`.
- `lastAppliedDigest`: digest of the desired state (chart + values + release options) that the
  last successful install/upgrade applied. Equal to the current desired digest => nothing to do.
- `lastReleaseRevision`: the Helm revision number the agent last produced or observed; a larger
  revision in storage means someone else wrote the release.
- `failures`: consecutive failed install/upgrade attempts for the desired digest named in
  `lastFailedDigest` (and the generation in `lastFailedGeneration`). A new desired digest or a spec
  edit starts again at zero, so the Helm Operator's "counter never resets when the spec changes"
  bug is not copied.
- `lastFailedDigest`: the desired digest the `failures` counter belongs to.
- `lastReleaseAction`: what produced `lastReleaseRevision` (`install`, `upgrade`, `rollback`).
- `testState`: test outcome of `lastReleaseRevision` (`pending`, `passed`, `failed`).
- `lastFailedGeneration`, `lastFailedAction`, `lastFailureTime`: which spec generation and action
  the `failures` belong to, and when the last one happened (drives the retry backoff).
- `lastRemediatedRevision`: a failed revision is rolled back or uninstalled at most once.
- `interruptions`, `lastInterruptedDigest`: how often the agent's own attempt at that desired
  digest was found interrupted (pending after a crash or kill) and unlocked; bounded by the
  agent's `--max-interruptions`, past which each one counts as a failure.
- `testStartedAt`: when the agent started a `helm test` of `lastReleaseRevision` whose outcome it
  has not recorded yet; written before helm runs, so that an agent restarted (or a new leader)
  while that test may still run waits for it instead of starting a second helm operation.
- `lastHandledReconcileAt`: the value of the reconcile request annotation
  (`gitops-helm.io/reconcile-requested-at`, else Flux's `reconcile.fluxcd.io/requestedAt`) that
  the last finished run saw, as Flux records it: `gitops-helm reconcile` waits for it.
- `history`: the last attempts, newest first (see `gitops_helm.api.history`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from gitops_helm.api.conditions import (
    Condition,
    ConditionStatus,
    ConditionType,
    remove_condition,
    set_condition,
)
from gitops_helm.api.history import HistoryEntry, parse_history, serialise_history

__all__ = [
    "HelmReleaseStatus",
    "Phase",
    "condition_pairs",
    "parse_status",
    "phase_message",
    "record_phase",
    "serialise_status",
    "set_reconciling",
    "set_stalled",
    "settle",
]

_MAX_DETAIL = 1024


class Phase(StrEnum):
    CHART_FETCHED = "ChartFetched"
    CHART_FETCH_FAILED = "ChartFetchFailed"
    INSTALLING = "Installing"
    UPGRADING = "Upgrading"
    DEPLOYED = "Deployed"
    DEPLOY_FAILED = "DeployFailed"
    TESTING = "Testing"
    TESTED = "Tested"
    TEST_FAILED = "TestFailed"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    ROLLING_BACK = "RollingBack"
    ROLLED_BACK = "RolledBack"
    ROLLBACK_FAILED = "RollbackFailed"


_PHASE_VALUES = frozenset(p.value for p in Phase)
# The values the CRD allows (the planner's enums); anything else in a status reads as unset.
_RELEASE_ACTIONS = frozenset({"install", "upgrade", "rollback"})
_FAILED_ACTIONS = frozenset({"install", "upgrade"})
_TEST_STATES = frozenset({"pending", "passed", "failed"})
_STATUS_VALUES = frozenset(s.value for s in ConditionStatus)
# the CRD admits only these types: another could not have come from the API server
_CONDITION_TYPES = frozenset(t.value for t in ConditionType)

_T, _F, _U = ConditionStatus.TRUE, ConditionStatus.FALSE, ConditionStatus.UNKNOWN

# phase -> (message text, conditions written). TestFailed's Released=False is conditional.
_PHASES: dict[Phase, tuple[str, tuple[tuple[ConditionType, ConditionStatus], ...]]] = {
    Phase.CHART_FETCHED: ("Chart fetch was successful", ((ConditionType.CHART_FETCHED, _T),)),
    Phase.CHART_FETCH_FAILED: (
        "Chart fetch failed",
        ((ConditionType.CHART_FETCHED, _F), (ConditionType.RELEASED, _F)),
    ),
    Phase.INSTALLING: ("Running installation", ((ConditionType.DEPLOYED, _U),)),
    Phase.UPGRADING: ("Running upgrade", ((ConditionType.DEPLOYED, _U),)),
    Phase.DEPLOYED: ("Installation or upgrade succeeded", ((ConditionType.DEPLOYED, _T),)),
    Phase.DEPLOY_FAILED: (
        "Installation or upgrade failed",
        ((ConditionType.DEPLOYED, _F), (ConditionType.RELEASED, _F)),
    ),
    Phase.TESTING: ("Running tests", ((ConditionType.TESTED, _U),)),
    Phase.TESTED: ("Tests succeeded", ((ConditionType.TESTED, _T),)),
    Phase.TEST_FAILED: ("Tests failed", ((ConditionType.TESTED, _F), (ConditionType.RELEASED, _F))),
    Phase.SUCCEEDED: ("Release was successful", ((ConditionType.RELEASED, _T),)),
    Phase.FAILED: ("Release failed", ((ConditionType.RELEASED, _F),)),
    Phase.ROLLING_BACK: ("Running rollback", ((ConditionType.ROLLED_BACK, _U),)),
    Phase.ROLLED_BACK: ("Rollback was successful", ((ConditionType.ROLLED_BACK, _T),)),
    Phase.ROLLBACK_FAILED: ("Rollback failed", ((ConditionType.ROLLED_BACK, _F),)),
}


@dataclass(frozen=True)
class HelmReleaseStatus:
    """The typed `status` of a HelmRelease; field meanings are in the module docstring."""

    observed_generation: int | None = None
    phase: Phase | None = None
    release_name: str | None = None
    release_status: str | None = None
    revision: str | None = None
    last_attempted_revision: str | None = None
    rollback_count: int = 0
    conditions: tuple[Condition, ...] = ()
    last_applied_digest: str | None = None
    last_release_revision: int | None = None
    failures: int = 0
    last_failed_digest: str | None = None
    last_release_action: str | None = None
    test_state: str | None = None
    last_failed_generation: int | None = None
    last_failed_action: str | None = None
    last_failure_time: str | None = None
    last_remediated_revision: int | None = None
    interruptions: int = 0
    last_interrupted_digest: str | None = None
    last_handled_reconcile_at: str | None = None
    history: tuple[HistoryEntry, ...] = ()
    test_started_at: str | None = None


def phase_message(phase: Phase, release_name: str, namespace: str, detail: str | None = None) -> str:
    """The operator's message template: `<text> for Helm release '<release>' in '<ns>'.`

    A `detail` (e.g. the classified Helm error, never a Secret value) is appended after a colon
    instead of the final dot, and cut to 1024 characters.
    """
    base = f"{_PHASES[phase][0]} for Helm release '{release_name}' in '{namespace}'"
    if not detail:
        return base + "."
    if len(detail) > _MAX_DETAIL:
        detail = detail[: _MAX_DETAIL - 3] + "..."
    return f"{base}: {detail}"


def record_phase(
    status: HelmReleaseStatus,
    phase: Phase,
    *,
    release_name: str,
    namespace: str,
    now: datetime,
    detail: str | None = None,
    revision: str | None = None,
    ignore_test_failures: bool = False,
    ready_reason: str | None = None,
) -> HelmReleaseStatus:
    """Record a phase and write the conditions it implies (the Helm Operator's table).

    - Every condition written gets reason = the phase name and the `phase_message`.
    - `Ready` is written whenever `Released` is, with the same status and message; its reason is
      `ready_reason` when given (the step that failed: `InstallFailed`, `ValuesFailed`, ...),
      else the phase name.
    - Installing/Upgrading: `lastAttemptedRevision = revision` when given.
    - TestFailed: `Released=False` only when `ignore_test_failures` is false.
    - Succeeded: removes `RolledBack`, resets `rollbackCount`, `revision = revision` when given.
    - RolledBack: `rollbackCount + 1`.
    """
    message = phase_message(phase, release_name, namespace, detail)
    conditions = status.conditions
    for type_, value in _PHASES[phase][1]:
        if phase is Phase.TEST_FAILED and type_ is ConditionType.RELEASED and ignore_test_failures:
            continue
        targets = (type_, ConditionType.READY) if type_ is ConditionType.RELEASED else (type_,)
        for target in targets:
            reason = ready_reason if target is ConditionType.READY and ready_reason else str(phase)
            conditions = set_condition(conditions, target, value, reason=reason, message=message, now=now)
    result = replace(status, phase=phase, conditions=conditions)
    if phase in (Phase.INSTALLING, Phase.UPGRADING) and revision is not None:
        result = replace(result, last_attempted_revision=revision)
    elif phase is Phase.SUCCEEDED:
        result = replace(
            result,
            conditions=remove_condition(result.conditions, ConditionType.ROLLED_BACK),
            rollback_count=0,
            revision=revision if revision is not None else result.revision,
        )
    elif phase is Phase.ROLLED_BACK:
        result = replace(result, rollback_count=result.rollback_count + 1)
    return result


def set_reconciling(
    status: HelmReleaseStatus, *, reason: str, message: str, now: datetime
) -> HelmReleaseStatus:
    """A sync is running: `Reconciling=True`, `Stalled` removed (kstatus: InProgress)."""
    conditions = remove_condition(status.conditions, ConditionType.STALLED)
    conditions = set_condition(
        conditions, ConditionType.RECONCILING, _T, reason=reason, message=message, now=now
    )
    return replace(status, conditions=conditions)


def set_stalled(status: HelmReleaseStatus, *, reason: str, message: str, now: datetime) -> HelmReleaseStatus:
    """The agent gave up until the desired state changes: `Stalled=True`, `Reconciling` removed."""
    conditions = remove_condition(status.conditions, ConditionType.RECONCILING)
    conditions = set_condition(conditions, ConditionType.STALLED, _T, reason=reason, message=message, now=now)
    return replace(status, conditions=conditions)


def settle(status: HelmReleaseStatus) -> HelmReleaseStatus:
    """A sync ended and is not stuck: remove `Reconciling` and `Stalled` (kstatus: Current)."""
    conditions = remove_condition(status.conditions, ConditionType.RECONCILING)
    return replace(status, conditions=remove_condition(conditions, ConditionType.STALLED))


# --- (de)serialisation -------------------------------------------------------------------------

_SCALARS: tuple[tuple[str, str], ...] = (
    ("observed_generation", "observedGeneration"),
    ("phase", "phase"),
    ("release_name", "releaseName"),
    ("release_status", "releaseStatus"),
    ("revision", "revision"),
    ("last_attempted_revision", "lastAttemptedRevision"),
    ("rollback_count", "rollbackCount"),
    ("last_applied_digest", "lastAppliedDigest"),
    ("last_release_revision", "lastReleaseRevision"),
    ("failures", "failures"),
    ("last_failed_digest", "lastFailedDigest"),
    ("last_release_action", "lastReleaseAction"),
    ("test_state", "testState"),
    ("last_failed_generation", "lastFailedGeneration"),
    ("last_failed_action", "lastFailedAction"),
    ("last_failure_time", "lastFailureTime"),
    ("last_remediated_revision", "lastRemediatedRevision"),
    ("interruptions", "interruptions"),
    ("last_interrupted_digest", "lastInterruptedDigest"),
    ("last_handled_reconcile_at", "lastHandledReconcileAt"),
    ("test_started_at", "testStartedAt"),
)


def serialise_status(status: HelmReleaseStatus, *, null_unset: bool = False) -> dict[str, Any]:
    """The `status` JSON object (camelCase).

    Unset fields are omitted, or written as `null` with `null_unset=True`: use that for a JSON
    merge patch of the status subresource, so fields cleared in the model are removed on the
    server instead of silently surviving the patch. `conditions` is always written in full.
    """
    result: dict[str, Any] = {}
    for attr, key in _SCALARS:
        value = getattr(status, attr)
        if value is not None:
            result[key] = str(value) if isinstance(value, Phase) else value
        elif null_unset:
            result[key] = None
    result["conditions"] = [
        {
            "type": c.type,
            "status": str(c.status),
            "reason": c.reason,
            "message": c.message,
            "lastUpdateTime": c.last_update_time,
            "lastTransitionTime": c.last_transition_time,
        }
        for c in status.conditions
    ]
    if status.history:
        result["history"] = serialise_history(status.history)
    elif null_unset:
        result["history"] = None
    return result


def parse_status(raw: object) -> HelmReleaseStatus:
    """Read a status object leniently: a field of the wrong type or value reads as unset."""
    if not isinstance(raw, Mapping):
        return HelmReleaseStatus()

    def text(key: str) -> str | None:
        value = raw.get(key)
        return value if isinstance(value, str) and value else None

    def number(key: str) -> int | None:
        value = raw.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None

    def choice(key: str, allowed: frozenset[str]) -> str | None:
        value = text(key)
        return value if value in allowed else None

    phase_text = text("phase")
    return HelmReleaseStatus(
        observed_generation=number("observedGeneration"),
        phase=Phase(phase_text) if phase_text in _PHASE_VALUES else None,
        release_name=text("releaseName"),
        release_status=text("releaseStatus"),
        revision=text("revision"),
        last_attempted_revision=text("lastAttemptedRevision"),
        rollback_count=number("rollbackCount") or 0,
        conditions=_parse_conditions(raw.get("conditions")),
        last_applied_digest=text("lastAppliedDigest"),
        last_release_revision=number("lastReleaseRevision"),
        failures=number("failures") or 0,
        last_failed_digest=text("lastFailedDigest"),
        last_release_action=choice("lastReleaseAction", _RELEASE_ACTIONS),
        test_state=choice("testState", _TEST_STATES),
        last_failed_generation=number("lastFailedGeneration"),
        last_failed_action=choice("lastFailedAction", _FAILED_ACTIONS),
        last_failure_time=text("lastFailureTime"),
        last_remediated_revision=number("lastRemediatedRevision"),
        interruptions=number("interruptions") or 0,
        last_interrupted_digest=text("lastInterruptedDigest"),
        last_handled_reconcile_at=text("lastHandledReconcileAt"),
        history=parse_history(raw.get("history")),
        test_started_at=text("testStartedAt"),
    )


def condition_pairs(obj: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(type, status)`` of each condition of a HelmRelease object (as leniently as the status).

    Every /metrics scrape calls this for every HelmRelease the agent watches: it reads the
    conditions alone, not the whole status (history included), which was half of a scrape's
    CPU with 500 HelmReleases.
    """
    status = obj.get("status")
    conditions = _parse_conditions(status.get("conditions")) if isinstance(status, Mapping) else ()
    return [(c.type, str(c.status)) for c in conditions]


def _parse_conditions(raw: object) -> tuple[Condition, ...]:
    if not isinstance(raw, list):
        return ()
    result: list[Condition] = []
    seen: set[str] = set()
    for item in raw:
        if not isinstance(item, Mapping):
            continue
        type_, value = item.get("type"), item.get("status")
        if not isinstance(type_, str) or type_ not in _CONDITION_TYPES or type_ in seen:
            continue
        if not isinstance(value, str) or value not in _STATUS_VALUES:
            continue
        fields = [item.get(k) for k in ("reason", "message", "lastUpdateTime", "lastTransitionTime")]
        reason, message, updated, transitioned = (f if isinstance(f, str) else "" for f in fields)
        if not transitioned:  # unusable: the next write of this type recreates it
            continue
        seen.add(type_)
        result.append(
            Condition(type_, ConditionStatus(value), reason, message, updated or transitioned, transitioned)
        )
    return tuple(result)
