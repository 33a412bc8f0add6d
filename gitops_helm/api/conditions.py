"""Status conditions of a HelmRelease and the pure rules for changing them.

Place in the data flow: the reconciler records what happened through `gitops_helm.api.status`,
which uses these helpers; the result is serialised into one status patch. No clock is read here:
the caller passes `now`, so every transition is reproducible in tests.

Condition types:
- `ChartFetched`, `Deployed`, `Released`, `RolledBack`, `Tested`: the Helm Operator's five types,
  with the same meaning. `Released` is the overall outcome (its message is the printer column).
- `Ready`: mirrors `Released` (same status and message) so `kubectl wait
  --for=condition=Ready` and Flux-style tooling work. When it is False its reason names the step
  that failed (`ChartFetchFailed`, `ValuesFailed`, `InstallFailed`, `UpgradeFailed`,
  `TestFailed`, `DependencyNotReady`, `Forbidden`, ...), and it stays so while a retry is
  scheduled; it is `Unknown` (reason `Progressing`) while an install or upgrade runs.
- `Reconciling` and `Stalled`: kstatus computes the health of a custom resource from
  `observedGeneration` plus these two "abnormal-true" conditions; `Ready` alone is not read by it.
  `Reconciling=True` while a sync is running or a retry is scheduled (a failed helm action, a
  chart source down, values or RBAC failing), `Stalled=True` when the agent has given up until
  the spec changes (invalid spec, retries exhausted). Both are removed otherwise: `Ready=False`
  beside neither would read as Current.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum

__all__ = [
    "Condition",
    "ConditionStatus",
    "ConditionType",
    "find_condition",
    "format_time",
    "remove_condition",
    "set_condition",
]


class ConditionType(StrEnum):
    CHART_FETCHED = "ChartFetched"
    DEPLOYED = "Deployed"
    RELEASED = "Released"
    ROLLED_BACK = "RolledBack"
    TESTED = "Tested"
    READY = "Ready"
    RECONCILING = "Reconciling"
    STALLED = "Stalled"


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


@dataclass(frozen=True)
class Condition:
    """One entry of `status.conditions` (at most one per `type`).

    `type` is a plain string so conditions of unknown types read from a live object survive a
    read-modify-write unchanged. Times are RFC 3339 strings with second precision, in UTC.
    """

    type: str
    status: ConditionStatus
    reason: str
    message: str
    last_update_time: str
    last_transition_time: str


def format_time(now: datetime) -> str:
    """Render an aware datetime the way Kubernetes does (`2024-05-01T12:00:00Z`)."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("a timezone-aware datetime is required")
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def find_condition(conditions: Iterable[Condition], type_: str) -> Condition | None:
    """The condition of that type, or None."""
    return next((c for c in conditions if c.type == type_), None)


def set_condition(
    conditions: Iterable[Condition],
    type_: str,
    status: ConditionStatus,
    *,
    reason: str,
    message: str,
    now: datetime,
) -> tuple[Condition, ...]:
    """Return the conditions with `type_` written.

    `lastUpdateTime` is always `now`. `lastTransitionTime` is kept when the condition existed
    with the same status, otherwise it is `now`. An existing condition keeps its position in the
    list; a new one is appended.
    """
    stamp = format_time(now)
    result: list[Condition] = []
    written = False
    for condition in conditions:
        if condition.type != type_:
            result.append(condition)
            continue
        if written:  # a malformed list with duplicates: keep only the first
            continue
        transition = condition.last_transition_time if condition.status == status else stamp
        result.append(
            replace(
                condition,
                status=status,
                reason=reason,
                message=message,
                last_update_time=stamp,
                last_transition_time=transition,
            )
        )
        written = True
    if not written:
        result.append(Condition(type_, status, reason, message, stamp, stamp))
    return tuple(result)


def remove_condition(conditions: Iterable[Condition], type_: str) -> tuple[Condition, ...]:
    """Return the conditions without any condition of type `type_`."""
    return tuple(c for c in conditions if c.type != type_)
