"""The helm actions a plan asks for, run through the helm adapter, with their outcome recorded.

Place in the flow: the reconcile loop asks the pure planner for a decision; :meth:`ReleaseActions.run`
performs it (install, upgrade, drift correction, test, rollback, uninstall, unlocking a pending
revision), records phases and Events on the run's ``StatusReport``, and returns the planner's
memory updated with the pure ``plan.record_*`` transitions. A temporary helm failure (the
cluster or the network hiccuped) is not an outcome of the release: it propagates as the
``HelmError`` it is, and the controller retries the whole run with backoff.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from gitops_helm import log as logging
from gitops_helm.adapters.helm import Helm, HelmError, HelmErrorKind, RollbackOptions, UpgradeOptions
from gitops_helm.adapters.kube import Kube, KubeError
from gitops_helm.api import (
    AttemptOutcome,
    HistoryAction,
    HistoryEntry,
    Phase,
    ReleasePolicy,
    entry_for_revision,
    format_time,
)
from gitops_helm.charts.artifact import FetchedChart
from gitops_helm.release import plan as pl
from gitops_helm.release.diagnose import Diagnoser, failure_message
from gitops_helm.release.identity import DESCRIPTION_PREFIX, DIGEST_LABEL, OWNER_LABEL, ReleaseRef
from gitops_helm.release.observe import Observation, observe
from gitops_helm.release.report import StatusReport
from gitops_helm.release.rollout import judged_on_stale_status

log = logging.get(__name__)

MAX_DESCRIPTION = 200  # helm's --description, shown by `helm history`


@dataclass(frozen=True)
class Target:
    """What one reconcile run drives the release to."""

    ref: ReleaseRef
    policy: ReleasePolicy
    desired: pl.Desired
    chart: FetchedChart
    values: dict[str, Any] = field(repr=False)  # may hold Secret data: never logged
    # the same desired state's digest as recorded before the digest key (``desired.unkeyed_digest``)
    unkeyed_digest: str = ""
    # for status.history: the values digest keyed like the desired digest, and the Git commit the
    # HelmRelease was applied from (its gitops-helm.io/commit annotation; None: not synced by us)
    values_digest: str = ""
    commit: str | None = None


class ReleaseActions:
    def __init__(
        self,
        kube: Kube,
        helm: Helm,
        *,
        clock: Callable[[], float] = time.time,
        on_action: Callable[[str, str, bool, float], None] | None = None,
        diagnoser: Diagnoser | None = None,
    ) -> None:
        self.kube = kube
        self.helm = helm
        # names the failing objects after a failed action; None: helm's message only
        self.diagnoser = diagnoser
        self.clock = clock
        self.on_action = on_action or (lambda action, key, ok, seconds: None)

    def run(
        self,
        report: StatusReport,
        target: Target,
        decision: pl.Plan,
        memory: pl.Memory,
        observation: Observation,
    ) -> pl.Memory:
        """Perform ``decision`` (a helm action) and return the memory that records its outcome."""
        action = decision.action
        started = time.monotonic()
        ok = False  # stays False when the action raises (a temporary helm or API error)
        try:
            if action in (pl.Action.INSTALL, pl.Action.UPGRADE, pl.Action.CORRECT_DRIFT):
                memory, ok = self._install_or_upgrade(report, target, decision, memory, observation)
            elif action is pl.Action.TEST:
                memory, ok = self._test(report, target, memory)
            elif action is pl.Action.ROLLBACK:
                memory, ok = self._rollback(report, target, decision, memory)
            elif action is pl.Action.UNINSTALL:
                memory, ok = self._uninstall(report, target, decision, memory, observation)
            elif action is pl.Action.UNLOCK_PENDING and observation.release is not None:
                memory = self._unlock(report, target, decision, memory, observation)
                ok = True
            else:
                ok = True
        finally:
            seconds = time.monotonic() - started
            self.on_action(str(action), target.ref.key, ok, seconds)
            # the one line per action a log search finds (its details are logged by the action)
            log.info(
                "action finished",
                release=target.ref.key,
                action=str(action),
                revision=memory.last_release_revision,
                chart_revision=target.chart.revision,
                duration_s=round(seconds, 3),
                outcome="succeeded" if ok else "failed",
            )
        return memory

    def _install_or_upgrade(
        self,
        report: StatusReport,
        target: Target,
        decision: pl.Plan,
        memory: pl.Memory,
        observation: Observation,
    ) -> tuple[pl.Memory, bool]:
        p, chart, desired, ref = target.policy, target.chart, target.desired, target.ref
        install = decision.action is pl.Action.INSTALL
        report.phase(Phase.INSTALLING if install else Phase.UPGRADING, revision=chart.revision)
        report.write()
        if install and p.create_namespace and not self.kube.namespace_exists(p.target_namespace):
            self.kube.create_namespace(p.target_namespace)
        opts = UpgradeOptions(
            timeout_s=p.timeout,
            wait=p.wait,
            force=p.force_upgrade,
            reuse_values=p.reuse_values,
            max_history=p.max_history,
            skip_crds=p.skip_crds,
            disable_openapi_validation=p.disable_openapi_validation,
            create_namespace=False,
            labels={OWNER_LABEL: desired.owner, DIGEST_LABEL: desired.digest},
            # helm 4 upgrades of a server-side-applied release must take over fields that others
            # (kubectl scale, an HPA) changed, or every such upgrade fails with a conflict
            force_conflicts=not install and self.helm.major >= 4 and observation.apply_method() == "ssa",
            description=f"{DESCRIPTION_PREFIX}{decision.reason}"[:MAX_DESCRIPTION],
        )
        action = pl.ReleaseAction.INSTALL if install else pl.ReleaseAction.UPGRADE
        verb = "install" if install else "upgrade"
        started = self.clock()
        try:
            info = self.helm.upgrade(
                p.release_name, p.target_namespace, str(chart.path), target.values, opts, install=install
            )
        except HelmError as exc:
            if exc.temporary or exc.kind is HelmErrorKind.LOCKED:
                raise  # not an outcome of the release: the run is retried
            observed = observe(self.kube, ref)
            after = observed.release
            wrote = after.revision if after and memory.last_release_revision != after.revision else None
            if self.helm.major >= 4 and judged_on_stale_status(self.kube, exc.message, started):
                # not a verdict on the desired state: retried, bounded like an interruption
                memory = pl.record_unjudged(memory, desired, action=action, revision=wrote, now=self.clock())
                message = (
                    f"{exc.message} (judged on a previous rollout's progress deadline, not this "
                    "one: retried without counting a failure)"
                )
            else:
                memory = pl.record_failure(memory, desired, action=action, revision=wrote, now=self.clock())
                # only a revision this attempt wrote has objects it applied (no revision: helm
                # failed before applying anything, e.g. a template error: nothing to look at)
                message = (
                    self._explained(exc.message, target, observed.latest_record) if wrote else exc.message
                )
            report.phase(Phase.DEPLOY_FAILED, detail=message, step=f"{verb.capitalize()}Failed")
            report.attempted(self._entry(target, HistoryAction(verb), started, False, wrote))
            report.event(True, f"{verb.capitalize()}Failed", message)
            log.warning(f"{verb} failed", release=ref.key, error=message, revision=wrote)
            return memory, False
        memory = pl.record_release(memory, desired, action=action, revision=info.revision)
        report.phase(Phase.DEPLOYED)
        report.attempted(self._entry(target, HistoryAction(verb), started, True, info.revision))
        if not p.test.enable:
            report.phase(Phase.SUCCEEDED, revision=chart.revision)
        report.event(
            False,
            "Installed" if install else "Upgraded",
            f"{verb} of {p.release_name} ({chart.name} {chart.version}) succeeded: revision {info.revision}",
        )
        log.info(
            f"{verb} succeeded",
            release=ref.key,
            revision=info.revision,
            chart=f"{chart.name}-{chart.version}",
            adopt=decision.adopt,
        )
        return memory, True

    def _test(self, report: StatusReport, target: Target, memory: pl.Memory) -> tuple[pl.Memory, bool]:
        p = target.policy
        # recorded before helm runs: if this agent dies now, its helm child may run on, and
        # whoever reconciles next waits for it (plan row 13)
        report.remember(pl.record_test_started(memory, now=self.clock()))
        report.phase(Phase.TESTING)
        report.write()
        started = self.clock()
        try:
            outcome = self.helm.test(p.release_name, p.target_namespace, p.test.timeout)
        except HelmError:
            # helm has exited (the adapter kills its process group at its deadline): no test
            # runs, so the next run need not wait for one
            report.remember(memory)
            try:
                report.write()
            except KubeError as exc:  # then the next run waits the test's grace: the safe side
                log.warning("cannot record the end of a test", release=target.ref.key, error=str(exc))
            raise
        memory = pl.record_test(memory, target.desired, passed=outcome.passed, now=self.clock())
        report.tested(
            tested_entry(target, started, self.clock(), outcome.passed, memory.last_release_revision)
        )
        attempted = report.status.last_attempted_revision
        if outcome.passed:
            report.phase(Phase.TESTED)
            report.phase(Phase.SUCCEEDED, revision=attempted)
            report.event(False, "TestSucceeded", f"tests of {p.release_name} passed: {outcome.message}")
        else:
            message = self._explained(
                outcome.message, target, lambda: observe(self.kube, target.ref).latest_record(), tests=True
            )
            report.phase(Phase.TEST_FAILED, detail=message)
            report.event(True, "TestFailed", f"tests of {p.release_name} failed: {message}")
            if pl.ignores_test_failures(target.desired.policy, memory.last_release_action):
                report.phase(Phase.SUCCEEDED, revision=attempted)
        log.info("test", release=target.ref.key, passed=outcome.passed)
        return memory, outcome.passed

    def _rollback(
        self, report: StatusReport, target: Target, decision: pl.Plan, memory: pl.Memory
    ) -> tuple[pl.Memory, bool]:
        if decision.restore:
            return self._restore(report, target, decision, memory)
        p = target.policy
        to = decision.rollback_to or 0
        failed_revision = memory.last_release_revision or 0
        report.phase(Phase.ROLLING_BACK)
        report.write()
        started = self.clock()
        opts = RollbackOptions(
            timeout_s=p.rollback.timeout,
            wait=p.rollback.wait,
            force=p.rollback.force,
            recreate=p.rollback.recreate,
            disable_hooks=p.rollback.disable_hooks,
            max_history=p.max_history,
        )
        observed, failure = self._rollback_to(target, to, opts)
        revision = observed.release.revision if observed.release else None
        memory = pl.record_rollback(
            memory, remediated=failed_revision, revision=revision, succeeded=failure is None
        )
        wrote = _written(revision, failure is None, failed_revision or None)
        report.attempted(self._rollback_entry(report, target, started, failure is None, wrote, to))
        if failure is not None:
            message = self._explained(failure.message, target, observed.latest_record)
            report.phase(Phase.ROLLBACK_FAILED, detail=message)
            report.event(True, "RollbackFailed", message)
            return memory, False
        report.phase(Phase.ROLLED_BACK, detail=f"to revision {to}")
        report.event(True, "RolledBack", f"{p.release_name} rolled back to revision {to}: {decision.reason}")
        log.info("rolled back", release=target.ref.key, to=to)
        return memory, True

    def _restore(
        self, report: StatusReport, target: Target, decision: pl.Plan, memory: pl.Memory
    ) -> tuple[pl.Memory, bool]:
        """Roll back to the last deployed revision just before an upgrade (plan row 8f, helm 3).

        No ``--wait``: the rollback only resets the base helm 3 merges the upgrade against, and
        the upgrade that follows at once waits for what matters, the desired state."""
        p = target.policy
        to = decision.rollback_to or 0
        report.phase(Phase.ROLLING_BACK, detail=f"restoring revision {to} before upgrading")
        report.write()
        started = self.clock()
        opts = RollbackOptions(
            timeout_s=p.rollback.timeout,
            wait=False,
            force=False,
            recreate=False,
            disable_hooks=p.rollback.disable_hooks,
            max_history=p.max_history,
        )
        before = memory.last_release_revision
        observed, failure = self._rollback_to(target, to, opts)
        revision = observed.release.revision if observed.release else None
        memory = pl.record_restore(
            memory, target.desired, revision=revision, succeeded=failure is None, now=self.clock()
        )
        wrote = _written(revision, failure is None, before)
        report.attempted(self._rollback_entry(report, target, started, failure is None, wrote, to))
        if failure is not None:
            message = self._explained(failure.message, target, observed.latest_record)
            report.phase(Phase.ROLLBACK_FAILED, detail=message)
            report.event(True, "RollbackFailed", f"restoring revision {to} before upgrading: {message}")
            return memory, False
        report.event(
            False,
            "Restored",
            f"{p.release_name} restored to revision {to} before upgrading: helm 3 merges an upgrade "
            "against the last deployed revision, so the failed revision's changes would stay",
        )
        log.info("restored before upgrading", release=target.ref.key, to=to)
        return memory, True

    def _rollback_to(
        self, target: Target, to: int, opts: RollbackOptions
    ) -> tuple[Observation, HelmError | None]:
        """``helm rollback`` to revision ``to``, then Helm storage as it left it, and the failure
        when it failed as an outcome of the release (a temporary error is raised: the run is
        retried)."""
        p = target.policy
        try:
            self.helm.rollback(p.release_name, p.target_namespace, to, opts)
        except HelmError as exc:
            if exc.temporary:
                raise
            return observe(self.kube, target.ref), exc
        return observe(self.kube, target.ref), None

    def _entry(
        self, target: Target, action: HistoryAction, started: float, ok: bool, revision: int | None
    ) -> HistoryEntry:
        """The ``status.history`` entry of an action on ``target`` that started at ``started``."""
        return history_entry(target, action, started, self.clock(), ok, revision)

    def _rollback_entry(
        self, report: StatusReport, target: Target, started: float, ok: bool, revision: int | None, to: int
    ) -> HistoryEntry:
        """A rollback's entry describes what it restored: the commit, chart and values of the
        entry of revision ``to`` (unset when the history no longer holds it)."""
        entry = self._entry(target, HistoryAction.ROLLBACK, started, ok, revision)
        restored = _describing(entry, entry_for_revision(report.status.history, to))
        return replace(restored, rolled_back_to=to)

    def _explained(
        self,
        helm_message: str,
        target: Target,
        latest_record: Callable[[], Mapping[str, Any]],
        *,
        tests: bool = False,
    ) -> str:
        """Helm's message about a failed action, followed by what is wrong with which of the
        objects of the release's latest revision (``diagnose``: it never raises, and an error of
        ``latest_record`` becomes a note); a failing container's log tail goes to the agent's log
        only, never to the status or an Event (it may hold anything)."""
        if self.diagnoser is None:
            return helm_message
        diagnosis = self.diagnoser.diagnose(latest_record, target.policy.target_namespace, tests=tests)
        for tail in diagnosis.log_tails:
            log.warning(
                "log tail of a failing container",
                release=target.ref.key,
                pod=tail.pod,
                container=tail.container,
                log=tail.text,
            )
        return failure_message(helm_message, diagnosis, self.diagnoser.settings.message_max_chars)

    def _uninstall(
        self,
        report: StatusReport,
        target: Target,
        decision: pl.Plan,
        memory: pl.Memory,
        observation: Observation,
    ) -> tuple[pl.Memory, bool]:
        p = target.policy
        observed = observation.release
        remediated = observed.revision if observed and decision.remediation else None
        ok = True
        started = self.clock()
        try:
            self.helm.uninstall(p.release_name, p.target_namespace, p.timeout)
        except HelmError as exc:
            if exc.temporary:
                raise  # not an outcome of the release: the run is retried
            ok = False
            report.event(True, "UninstallFailed", exc.message)
        else:
            report.event(False, "Uninstalled", f"{decision.reason}: release {p.release_name} uninstalled")
        removed = observed.revision if observed else None
        entry = self._entry(target, HistoryAction.UNINSTALL, started, ok, removed)
        # what it removed, as the history recorded it
        report.attempted(_describing(entry, entry_for_revision(report.status.history, removed)))
        log.info("uninstall", release=target.ref.key, ok=ok, reason=decision.reason)
        return pl.record_uninstall(memory, remediated=remediated, succeeded=ok), ok

    def _unlock(
        self,
        report: StatusReport,
        target: Target,
        decision: pl.Plan,
        memory: pl.Memory,
        observation: Observation,
    ) -> pl.Memory:
        observed, latest = observation.release, observation.latest
        assert observed is not None and latest is not None  # noqa: S101 - checked by the caller
        after = pl.record_unlock(memory, target.desired, observed, now=self.clock())
        if decision.discard:
            self.kube.discard_release_revision(latest)
            report.event(
                True,
                "PendingReleaseDiscarded",
                f"release {target.policy.release_name} revision {observed.revision} was left "
                f"{observed.status.value} by the agent's own remediation rollback of failed revision "
                f"{memory.last_release_revision}, interrupted (interruption {after.interruptions} of "
                "this desired state): deleted from storage, so the remediation runs again",
            )
            log.warning(
                "discarded interrupted rollback",
                release=target.ref.key,
                revision=observed.revision,
                interruptions=after.interruptions,
            )
            return after
        self.kube.mark_release_failed(latest)
        own = pl.unrecorded_interruption(memory, target.desired, observed)
        bound = target.desired.policy.max_interruptions
        counted = own and after.interruptions > bound
        note = f" (interruption {after.interruptions} of this desired state)" if own else ""
        if counted:
            note += f": more than {bound} interruptions, counted as a failure"
        report.event(
            True,
            "PendingReleaseUnlocked",
            f"release {target.policy.release_name} revision {observed.revision} was left "
            f"{observed.status.value}; marked failed{note}",
        )
        log.warning(
            "unlocked pending release",
            release=target.ref.key,
            revision=observed.revision,
            interruptions=after.interruptions,
            counted_as_failure=counted,
        )
        return after

    def uninstall_on_deletion(self, report: StatusReport, policy: ReleasePolicy) -> None:
        """The HelmRelease is being deleted and owns its release: uninstall it (raises HelmError)."""
        self.helm.uninstall(policy.release_name, policy.target_namespace, policy.timeout)
        report.event(False, "Uninstalled", f"HelmRelease deleted: release {policy.release_name} uninstalled")
        log.info("uninstalled on deletion", release=report.hr.key)


def history_entry(
    target: Target, action: HistoryAction, started: float, finished: float, ok: bool, revision: int | None
) -> HistoryEntry:
    """The ``status.history`` entry of an action on ``target`` (times in epoch seconds)."""
    chart = target.chart
    return HistoryEntry(
        action=action,
        outcome=AttemptOutcome.SUCCEEDED if ok else AttemptOutcome.FAILED,
        started_at=_stamp(started),
        finished_at=_stamp(finished),
        helm_revision=revision,
        git_commit=target.commit,
        chart_name=chart.name,
        chart_version=chart.version,
        chart_digest=chart.digest,
        values_digest=target.values_digest or None,
    )


def tested_entry(
    target: Target, started: float, finished: float, passed: bool, revision: int | None
) -> HistoryEntry:
    """The entry of a ``helm test`` of ``revision``, for :meth:`StatusReport.tested` (it completes
    the entry of the install or upgrade that produced the revision): the test the agent ran, or
    one it found ended in storage after it was stopped."""
    entry = history_entry(target, HistoryAction.TEST, started, finished, passed, revision)
    return replace(entry, test_result="passed" if passed else "failed")


def _written(latest: int | None, ok: bool, before: int | None) -> int | None:
    """The revision a rollback produced: the latest one after it, unless it failed and the latest
    is still the one before it (helm refused before writing: the history entry must not claim the
    failed upgrade's revision, which ``history`` would then show as restored and live)."""
    return latest if ok or latest != before else None


def _stamp(epoch: float) -> str:
    return format_time(datetime.fromtimestamp(epoch, UTC))


def _describing(entry: HistoryEntry, source: HistoryEntry | None) -> HistoryEntry:
    """``entry`` with the commit, chart and values of ``source`` (None: unknown, all unset)."""
    return replace(
        entry,
        git_commit=source.git_commit if source else None,
        chart_name=source.chart_name if source else None,
        chart_version=source.chart_version if source else None,
        chart_digest=source.chart_digest if source else None,
        values_digest=source.values_digest if source else None,
    )
