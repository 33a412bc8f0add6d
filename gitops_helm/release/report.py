"""What a reconcile says about itself: the HelmRelease status (phases, conditions) and Events.

Place in the flow: the reconciler opens one :class:`StatusReport` per run; the actions record
phases on it, and :meth:`StatusReport.write` sends ONE status patch per step, and none when
nothing changed, so the agent's own writes do not keep re-triggering reconciles. Messages never
carry a value that came from a Secret.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from gitops_helm import log as logging
from gitops_helm.adapters.kube import Kube, KubeError
from gitops_helm.api import (
    DEFAULT_HISTORY,
    ConditionStatus,
    ConditionType,
    HelmRelease,
    HistoryEntry,
    Phase,
    SpecError,
    add_entry,
    find_condition,
    parse_status,
    phase_message,
    record_phase,
    record_test,
    serialise_status,
    set_condition,
    set_reconciling,
    set_stalled,
    settle,
)
from gitops_helm.release import plan as pl
from gitops_helm.release.identity import COMPONENT
from gitops_helm.release.memory import release_action, status_with_memory

log = logging.get(__name__)

MAX_MESSAGE = 1024  # status condition messages and Events are cut to this length

# While these phases run, Reconciling=True (kstatus: InProgress).
_PHASES_IN_PROGRESS = (Phase.INSTALLING, Phase.UPGRADING, Phase.TESTING, Phase.ROLLING_BACK)

# After these phases a run that needs no helm call records Succeeded again (Released=True).
_PHASES_BEFORE_SUCCESS = (Phase.DEPLOYED, Phase.TESTED, Phase.CHART_FETCHED, Phase.ROLLED_BACK, Phase.FAILED)


class StatusReport:
    """The status of one HelmRelease during one reconcile run."""

    def __init__(
        self,
        kube: Kube,
        obj: dict[str, Any],
        hr: HelmRelease,
        policy: pl.Policy,
        clock: Callable[[], float],
        may_write: Callable[[], bool] = lambda: True,
        *,
        history_limit: int = DEFAULT_HISTORY,
    ) -> None:
        self.kube = kube
        # entries kept in status.history (the agent's --status-history-limit)
        self.history_limit = history_limit
        # False once this replica lost the leader Lease: a run it started (frozen, resumed after
        # a standby took over and recorded later changes) must not write its stale view over them
        self.may_write = may_write
        self.obj = obj
        self.hr = hr
        self.policy = policy
        self.clock = clock
        self.status = hr.status
        # what the server holds, in the form write() sends (unset fields as null): a status read
        # back exactly as the model gives it needs no patch; one that does not (a field of the
        # wrong type, read as unset) is written once, which clears it
        held = serialise_status(hr.status)
        self.written = serialise_status(hr.status, null_unset=True) if obj.get("status") == held else held

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    def event(self, warning: bool, reason: str, message: str) -> None:
        if not self.may_write():
            return
        self.kube.emit_event(self.obj, "Warning" if warning else "Normal", reason, message, COMPONENT)

    def write(self) -> None:
        """Patch the status subresource if (and only if) it changed."""
        body = serialise_status(self.status, null_unset=True)
        if body == self.written:
            return
        if not self.may_write():
            log.info("lost leadership: status not written", release=self.hr.key)
            return
        self.kube.patch_helmrelease_status(self.hr.namespace, self.hr.name, body)
        self.written = body

    def phase(
        self, phase: Phase, detail: str | None = None, revision: str | None = None, *, step: str | None = None
    ) -> None:
        """Record ``phase``; ``step`` names a failed step for Ready's reason (``InstallFailed``)."""
        p = self.hr.policy
        self.status = record_phase(
            self.status,
            phase,
            release_name=p.release_name,
            namespace=p.target_namespace,
            now=self.now(),
            detail=detail,
            revision=revision,
            ignore_test_failures=pl.ignores_test_failures(
                self.policy, release_action(self.status.last_release_action)
            ),
            ready_reason=step,
        )
        if phase in _PHASES_IN_PROGRESS:
            # kstatus reads InProgress; `kubectl wait --for=condition=Ready` does not take a
            # previous generation's Ready=True for this run's outcome
            message = phase_message(phase, p.release_name, p.target_namespace, detail)
            self.reconciling(str(phase), message)
            ready = find_condition(self.status.conditions, ConditionType.READY)
            if phase in (Phase.INSTALLING, Phase.UPGRADING) or (
                ready is not None and ready.status is ConditionStatus.TRUE
            ):
                # a test or rollback of a Ready release is in progress too: Ready and
                # Reconciling are never both True (a failed step's Ready=False is kept)
                self._ready(ConditionStatus.UNKNOWN, "Progressing", message)

    def attempted(self, entry: HistoryEntry) -> None:
        """A helm action ended: its entry goes first in ``status.history`` (sent with the
        action's outcome by the next :meth:`write`, never on its own)."""
        history = add_entry(self.status.history, entry, self.history_limit)
        self.status = replace(self.status, history=history)

    def tested(self, entry: HistoryEntry) -> None:
        """A test ended: it completes the entry of the revision it tested (``api.record_test``)."""
        self.status = replace(
            self.status, history=record_test(self.status.history, entry, self.history_limit)
        )

    def remember(self, memory: pl.Memory) -> None:
        self.status = status_with_memory(self.status, memory)

    def started(self) -> None:
        if not self.status.release_name:
            self.status = replace(self.status, release_name=self.hr.release_name)

    def observed(self, release: pl.ObservedRelease | None) -> None:
        """The release's status in Helm storage, as this step saw it."""
        self.status = replace(self.status, release_status=release.status.value if release else None)

    def handled_request(self, requested: str | None) -> None:
        """The run is over: record the reconcile request it answered (``gitops-helm reconcile``
        waits for this; nothing is written when the request was already recorded)."""
        if requested is None or requested == self.status.last_handled_reconcile_at:
            return
        self.status = replace(self.status, last_handled_reconcile_at=requested)
        try:
            self.write()
        except KubeError as exc:  # the next run records it
            log.warning("cannot record the handled reconcile request", release=self.hr.key, error=str(exc))

    def finished_generation(self) -> None:
        self.status = replace(self.status, observed_generation=self.hr.metadata.generation)

    def stalled(self, reason: str, message: str) -> None:
        """Stalled=True; Ready is False then (kstatus), naming the stall unless a failed step
        already says why."""
        self.status = set_stalled(self.status, reason=reason, message=message[:MAX_MESSAGE], now=self.now())
        ready = find_condition(self.status.conditions, ConditionType.READY)
        if ready is None or ready.status is not ConditionStatus.FALSE:
            self._not_ready(reason, message[:MAX_MESSAGE])

    def forbidden(self, message: str) -> None:
        """The API refused a request (RBAC): retried much later, not stalled (a RoleBinding may
        be added without any change to the HelmRelease)."""
        self.phase(Phase.FAILED, detail=message, step="Forbidden")
        self.finished_generation()
        self.retrying(message)
        self.write()
        self.event(True, "Forbidden", message)

    def retrying(self, message: str) -> None:
        """A failure the agent retries by itself: Reconciling=True (kstatus: InProgress), beside
        Ready=False. Ready=False alone, with neither Reconciling nor Stalled, reads as Current."""
        self.reconciling("RetryScheduled", message[:MAX_MESSAGE])

    def reconciling(self, reason: str, message: str) -> None:
        self.status = set_reconciling(self.status, reason=reason, message=message, now=self.now())

    def _not_ready(self, reason: str, message: str) -> None:
        self._ready(ConditionStatus.FALSE, reason, message)

    def _ready(self, value: ConditionStatus, reason: str, message: str) -> None:
        self.status = replace(
            self.status,
            conditions=set_condition(
                self.status.conditions,
                ConditionType.READY,
                value,
                reason=reason,
                message=message,
                now=self.now(),
            ),
        )

    # -- whole outcomes -----------------------------------------------------------------------

    def waiting_for_dependencies(self, message: str) -> None:
        self.reconciling("DependencyNotReady", message)
        self._not_ready("DependencyNotReady", message)
        self.finished_generation()
        self.write()

    def suspended(self) -> None:
        self.status = replace(
            self.status,
            conditions=set_condition(
                self.status.conditions,
                ConditionType.RECONCILING,
                ConditionStatus.FALSE,
                reason="Suspended",
                message="reconciliation is suspended",
                now=self.now(),
            ),
        )
        self.finished_generation()
        self.write()

    def chart_fetched(self, name: str, revision: str) -> None:
        """Recorded once per new chart revision (or after a failed fetch), so that a resync of an
        unchanged release writes no status."""
        fetched = find_condition(self.status.conditions, ConditionType.CHART_FETCHED)
        if (
            revision not in (self.status.last_attempted_revision, self.status.revision)
            or fetched is None
            or fetched.status is not ConditionStatus.TRUE
        ):
            self.phase(Phase.CHART_FETCHED, detail=f"{name} {revision}")

    def chart_failed(self, message: str, *, temporary: bool) -> None:
        self.phase(Phase.CHART_FETCH_FAILED, detail=message)
        self.finished_generation()
        if temporary:
            self.retrying(message)
        else:
            self.stalled("ChartFetchFailed", message)
        self.write()
        self.event(True, "ChartFetchFailed", message)
        log.warning("chart fetch failed", release=self.hr.key, error=message, temporary=temporary)

    def values_failed(self, message: str) -> None:
        self.phase(Phase.FAILED, detail=f"failed to compose values: {message}", step="ValuesFailed")
        self.finished_generation()
        self.retrying(message)
        self.write()
        self.event(True, "ValuesError", message)
        log.warning("values failed", release=self.hr.key, error=message)

    def drift(self, differences: str, correcting: bool) -> None:
        self.event(
            True, "DriftDetected", f"live objects differ from the release: {differences}"[:MAX_MESSAGE]
        )
        log.warning("drift detected", release=self.hr.key, drift=differences, correcting=correcting)

    def settled(self, decision: pl.Plan, memory: pl.Memory, chart_revision: str) -> None:
        """End of a run that needs no helm call now: in sync, refused, or waiting to retry."""
        self.remember(memory)
        self.finished_generation()
        if decision.action is pl.Action.NONE:
            released = find_condition(self.status.conditions, ConditionType.RELEASED)
            ready = find_condition(self.status.conditions, ConditionType.READY)
            if (
                released is None
                or released.status is not ConditionStatus.TRUE
                or ready is None
                or ready.status is not ConditionStatus.TRUE  # a retry's Ready=False, say
                or self.status.phase in _PHASES_BEFORE_SUCCESS
            ):
                self.phase(Phase.SUCCEEDED, revision=chart_revision)
            self.status = settle(self.status)
        elif decision.action is pl.Action.REFUSE:
            self.phase(Phase.FAILED, detail=decision.reason, step="ReleaseNotOwned")
            self.stalled("ReleaseNotOwned", decision.reason)
            if self.written.get("phase") != "Failed":
                self.event(True, "ReleaseNotOwned", decision.reason)
        elif decision.action is pl.Action.WAIT_RETRY:
            if decision.stalled:
                self.stalled("RetriesExhausted", decision.reason)
            else:
                self.reconciling("RetryScheduled", decision.reason)
                if decision.backoff and decision.retry_at is not None:
                    self.retry_scheduled(decision.retry_at)
        self.write()

    def retry_scheduled(self, retry_at: float) -> None:
        """Not ready, and not stalled either: say why (the last failure) and when the retry is."""
        stamp = datetime.fromtimestamp(retry_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        suffix = f" Next retry at {stamp}."
        released = find_condition(self.status.conditions, ConditionType.RELEASED)
        why = released.message if released is not None and released.status is ConditionStatus.FALSE else ""
        message = (why[: MAX_MESSAGE - len(suffix)] + suffix).strip()
        # Ready keeps naming the step that failed (InstallFailed, TestFailed, ...); the retry
        # is in the message and in Reconciling
        ready = find_condition(self.status.conditions, ConditionType.READY)
        failed_step = ready.reason if ready is not None and ready.status is ConditionStatus.FALSE else ""
        self._not_ready(failed_step or "RetryScheduled", message)


def report_invalid(
    kube: Kube,
    obj: dict[str, Any],
    key: str,
    exc: SpecError,
    now: datetime,
    *,
    handled_request: str | None = None,
    may_write: Callable[[], bool] = lambda: True,
) -> str:
    """A spec that cannot be parsed: say so on the status and in an Event, touch nothing else
    (``handled_request``: the reconcile request this answers, recorded on the status). Nothing is
    written once ``may_write`` says no (the replica lost the Lease): the whole status is patched
    from the object as read, which would roll a new leader's memory back (as in
    :meth:`StatusReport.write`)."""
    namespace, name = key.split("/", 1)
    before = parse_status(obj.get("status"))
    message = f"invalid HelmRelease: {exc}"
    conditions = before.conditions
    for ctype in (ConditionType.RELEASED, ConditionType.READY):
        conditions = set_condition(
            conditions,
            ctype,
            ConditionStatus.FALSE,
            reason="InvalidSpec",
            message=message[:MAX_MESSAGE],
            now=now,
        )
    status = replace(before, conditions=conditions, phase=Phase.FAILED)
    status = set_stalled(status, reason="InvalidSpec", message=message[:MAX_MESSAGE], now=now)
    generation = obj.get("metadata", {}).get("generation")
    if isinstance(generation, int):
        status = replace(status, observed_generation=generation)
    if handled_request is not None:
        status = replace(status, last_handled_reconcile_at=handled_request)
    body = serialise_status(status, null_unset=True)
    if body != serialise_status(before, null_unset=True):
        if not may_write():
            log.info("lost leadership: status not written", release=key)
            return message
        try:
            kube.patch_helmrelease_status(namespace, name, body)
        except KubeError as err:
            log.warning("cannot write status", release=key, error=str(err))
        kube.emit_event(obj, "Warning", "InvalidSpec", message, COMPONENT)
    log.warning("invalid HelmRelease", release=key, error=str(exc))
    return message
