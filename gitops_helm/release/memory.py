"""The planner's memory kept in the HelmRelease status: the one translation in both directions.

Place in the flow: the reconciler reads :func:`memory_from_status` at the start of a run, the
planner's pure ``record_*`` transitions update the ``plan.Memory``, and
:func:`status_with_memory` writes it back before each status patch. The rules of the memory
(what a failure is, when counters reset) live in ``release.plan``; this module only converts
(timestamps as RFC 3339 text, enums as their values, unknown values read as unset).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import TypeVar

from gitops_helm.api import HelmReleaseStatus
from gitops_helm.release import plan as pl

_E = TypeVar("_E", bound=StrEnum)


def _epoch(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _rfc3339(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _enum_or_none(enum: type[_E], value: str | None) -> _E | None:
    try:
        return enum(value) if value else None
    except ValueError:
        return None


def release_action(value: str | None) -> pl.ReleaseAction | None:
    """``status.lastReleaseAction`` as the planner's enum (None when unset or unknown)."""
    return _enum_or_none(pl.ReleaseAction, value)


def memory_from_status(s: HelmReleaseStatus) -> pl.Memory:
    return pl.Memory(
        last_applied_digest=s.last_applied_digest,
        last_release_revision=s.last_release_revision,
        last_release_action=release_action(s.last_release_action),
        test_state=_enum_or_none(pl.TestState, s.test_state) or pl.TestState.PENDING,
        failures=s.failures,
        last_failed_digest=s.last_failed_digest,
        last_failed_generation=s.last_failed_generation,
        last_failed_action=release_action(s.last_failed_action),
        last_failure_time=_epoch(s.last_failure_time),
        last_remediated_revision=s.last_remediated_revision,
        rollback_count=s.rollback_count,
        interruptions=s.interruptions,
        last_interrupted_digest=s.last_interrupted_digest,
        test_started=_epoch(s.test_started_at),
    )


def status_with_memory(s: HelmReleaseStatus, m: pl.Memory) -> HelmReleaseStatus:
    return replace(
        s,
        last_applied_digest=m.last_applied_digest,
        last_release_revision=m.last_release_revision,
        last_release_action=str(m.last_release_action) if m.last_release_action else None,
        test_state=str(m.test_state) if m.last_release_revision is not None else None,
        failures=m.failures,
        last_failed_digest=m.last_failed_digest,
        last_failed_generation=m.last_failed_generation,
        last_failed_action=str(m.last_failed_action) if m.last_failed_action else None,
        last_failure_time=_rfc3339(m.last_failure_time),
        last_remediated_revision=m.last_remediated_revision,
        rollback_count=m.rollback_count,
        interruptions=m.interruptions,
        last_interrupted_digest=m.last_interrupted_digest,
        test_started_at=_rfc3339(m.test_started),
    )
