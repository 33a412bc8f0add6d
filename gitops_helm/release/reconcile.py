"""Reconcile one HelmRelease: make its Helm release match it, and say so on its status.

Place in the flow: the controller calls :meth:`Reconciler.reconcile` with the latest HelmRelease
object for one key. One run, top to bottom (:meth:`Reconciler._reconcile`):

    _reconcile  dependencies ready? (observe.unready_dependencies), suspended?
    _target     chart (charts: ChartFetcher.fetch), values (values.compose_values over
                values_reader.ClusterValuesReader), desired state (desired.desired_state)
    _drive      loop: observe storage once (observe.observe) -> plan (plan.plan, PURE)
                -> no helm call needed: report and stop (report.StatusReport.settled)
                -> else run it (actions.ReleaseActions.run) and record the new memory

The status is the planner's memory (``memory``); the run writes ONE status patch per step and
none when nothing changed (``report``), so its own writes do not keep re-triggering reconciles.
Who owns a release is decided in ``identity`` and ``observe``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from gitops_helm import log as logging
from gitops_helm import values as values_mod
from gitops_helm.adapters.helm import Helm, HelmError
from gitops_helm.adapters.http import HTTPClient, Limits
from gitops_helm.adapters.kube import Kube, KubeError, KubeErrorKind
from gitops_helm.api import (
    COMMIT_ANNOTATION,
    ChartSource,
    HelmRelease,
    Phase,
    SpecError,
    cross_namespace_references,
    parse_helmrelease,
    reconcile_request,
    service_account_of,
    service_account_user,
)
from gitops_helm.api.selector import parse_selector
from gitops_helm.charts.artifact import FetchedChart
from gitops_helm.charts.errors import ChartError
from gitops_helm.config import Settings
from gitops_helm.errors import GitopsHelmError
from gitops_helm.release import plan as pl
from gitops_helm.release.actions import ReleaseActions, Target, tested_entry
from gitops_helm.release.desired import desired_state, keyed_values_digest, plan_policy, unkeyed_digest
from gitops_helm.release.diagnose import Diagnoser
from gitops_helm.release.identity import DIGEST_LABEL, FINALIZER, ReleaseRef
from gitops_helm.release.memory import memory_from_status
from gitops_helm.release.observe import FirstSeen, Observation, drift_of, observe, unready_dependencies
from gitops_helm.release.report import StatusReport, report_invalid
from gitops_helm.release.values_reader import ClusterValuesReader, url_destinations, values_spec

log = logging.get(__name__)

#: Helm actions one run may take before it hands the key back to the queue.
MAX_STEPS = 8
#: Plans that need no helm call: the run ends with them.
_SETTLING = (pl.Action.NONE, pl.Action.WAIT_RETRY, pl.Action.REFUSE, pl.Action.SUSPENDED)


class ChartFetcher(Protocol):
    def fetch(
        self, namespace: str, name: str, source: ChartSource, *, secrets: Kube | None = None
    ) -> FetchedChart: ...


@dataclass(frozen=True)
class Identity:
    """Who a run acts as for one HelmRelease: its ServiceAccount (impersonated), or the agent.

    Every helm call and every Kubernetes read done for the release (its storage, values sources,
    chart credentials, drift, the antecedent probe, namespace creation) goes through ``kube`` and
    ``helm``, and so is the readiness of its ``dependsOn`` HelmReleases (a tenant learns nothing
    its ServiceAccount may not read). The HelmRelease object itself (status, finalizer, Events) is
    read and written as the agent: that is the agent's bookkeeping, not the tenant's cluster state.
    """

    kube: Kube
    helm: Helm
    actions: ReleaseActions
    service_account: str | None = None  # "namespace/name", or None for the agent itself


@dataclass(frozen=True)
class Outcome:
    """What the controller should do next with this key."""

    requeue_after: float | None = None  # None: only on the next event or periodic resync
    ok: bool = True
    message: str = ""
    action: str = "none"  # the last helm action the run took (metrics, the action's log line)
    # False when the run ended before looking at the release (a write conflict): a reconcile
    # request is then not marked handled, the next run answers it
    handled: bool = True


class Reconciler:
    def __init__(
        self,
        kube: Kube,
        helm: Helm,
        charts: ChartFetcher,
        settings: Settings,
        *,
        http: HTTPClient,
        clock: Callable[[], float] = time.time,
        on_refs: Callable[[str, tuple[values_mod.WatchedObject, ...]], None] | None = None,
        on_action: Callable[[str, str, bool, float], None] | None = None,
        stopping: threading.Event | None = None,
        digest_key: Callable[[], bytes],
        may_act: Callable[[], bool] | None = None,
        in_scope: Callable[[str], bool] | None = None,
    ) -> None:
        self.kube = kube
        # Sharding: only HelmReleases matching the agent's label selector are acted on here. A
        # fresh object that does not match is left alone; ``in_scope(key)`` (the controller's
        # watch: False once the HelmRelease left the selector) is asked before every helm action,
        # so a run under way when the label moved takes no further step: another shard owns it.
        self.selector = parse_selector(settings.watch_label_selector)
        self.in_scope = in_scope or (lambda key: True)
        self.digest_key = digest_key  # the installation's key (``release.digest_key``), loaded lazily
        # set when the agent shuts down: the action under way finishes, no other one starts
        self.stopping = stopping or threading.Event()
        # False once this replica may no longer act (it lost the leader Lease): asked before
        # every action, helm or a write to Helm storage (unlocking a pending revision), and
        # before every status write and Event of a run
        self.may_act = may_act or (lambda: True)
        self.charts = charts
        self.settings = settings
        self.http = http  # for externalSourceRef values URLs
        timeout = settings.values_url_timeout_s
        self._url_limits = Limits(
            timeout, timeout, settings.values_url_total_timeout_s, settings.values_url_max_bytes
        )
        self.clock = clock
        self.on_refs = on_refs or (lambda key, refs: None)
        self.helm = helm
        self.on_action = on_action
        self.actions = self._actions(kube, helm)
        # when a pending revision without a recorded time was first seen (its grace starts then)
        self.first_seen = FirstSeen(clock)

    # -- entry point -----------------------------------------------------------------------

    def reconcile(self, obj: dict[str, Any]) -> Outcome:
        meta = obj.get("metadata", {})
        key = f"{meta.get('namespace')}/{meta.get('name')}"
        retry_soon = self.settings.retry.base_s
        # The status is the planner's memory: read it fresh, never from a watch cache that may
        # not have seen the previous reconcile's own status writes yet (that would repeat work).
        try:
            fresh = self.kube.get_helmrelease(str(meta.get("namespace")), str(meta.get("name")))
        except KubeError as exc:
            log.warning("kubernetes API error", release=key, error=str(exc))
            return Outcome(requeue_after=retry_soon, ok=False, message=str(exc))
        if fresh is None:
            return Outcome()  # deleted meanwhile
        if not self.selector.matches_object(fresh):
            log.info("not this agent's HelmRelease (labels outside its shard): left alone", release=key)
            return Outcome(message="outside this agent's label selector")
        # the reconcile request (``gitops-helm reconcile``) this run answers: recorded at its end
        requested = reconcile_request((fresh.get("metadata") or {}).get("annotations"))
        try:
            hr = parse_helmrelease(fresh)
        except SpecError as exc:
            now = datetime.fromtimestamp(self.clock(), UTC)
            message = report_invalid(
                self.kube, fresh, key, exc, now, handled_request=requested, may_write=self.may_act
            )
            return Outcome(ok=False, message=message)
        report = StatusReport(
            self.kube,
            fresh,
            hr,
            plan_policy(hr.policy, self.settings.retry),
            self.clock,
            self.may_act,
            history_limit=self.settings.status_history_limit,
        )
        identity = self.identity(hr)
        outcome = self._run(report, identity)
        if outcome.handled and not hr.metadata.deletion_timestamp:
            report.handled_request(requested)
        return outcome

    def _run(self, report: StatusReport, identity: Identity) -> Outcome:
        """Finalize or reconcile; every error ends here as an :class:`Outcome`."""
        hr, key = report.hr, report.hr.key
        retry_soon = self.settings.retry.base_s
        try:
            if hr.metadata.deletion_timestamp:
                return self._finalize(report, identity)
            if FINALIZER not in hr.metadata.finalizers and not self._add_finalizer(hr):
                # not handled: the newer object on its way is reconciled next
                return Outcome(requeue_after=self.settings.conflict_retry_s, handled=False)
            return self._reconcile(report, identity)
        except KubeError as exc:
            if exc.kind is not KubeErrorKind.FORBIDDEN:
                log.warning("reconcile interrupted", release=key, error=str(exc), temporary=exc.temporary)
                return Outcome(requeue_after=retry_soon, ok=False, message=str(exc))
            return self._forbidden(report, identity, exc)
        except GitopsHelmError as exc:  # classified below: temporary, or not expected at this level
            log.warning("reconcile interrupted", release=key, error=str(exc), temporary=exc.temporary)
            return Outcome(requeue_after=retry_soon, ok=False, message=str(exc))

    def identity(self, hr: HelmRelease) -> Identity:
        """The identity runs for ``hr`` act as (see :class:`Identity`)."""
        account = service_account_of(hr, self.settings.default_service_account)
        if account is None:
            return Identity(self.kube, self.helm, self.actions)
        user = service_account_user(hr.namespace, account)
        kube, helm = self.kube.impersonating(user), self.helm.impersonating(user)
        return Identity(kube, helm, self._actions(kube, helm), f"{hr.namespace}/{account}")

    def _actions(self, kube: Kube, helm: Helm) -> ReleaseActions:
        """Helm actions, and the failure diagnosis's reads, as ``kube``/``helm``'s identity."""
        return ReleaseActions(
            kube,
            helm,
            clock=self.clock,
            on_action=self.on_action,
            diagnoser=Diagnoser(kube, self.settings.failure_diagnosis),
        )

    # -- one run ------------------------------------------------------------------------------

    def _reconcile(self, report: StatusReport, identity: Identity) -> Outcome:
        """One run: wait for dependencies, build the target, then drive the release to it."""
        hr = report.hr
        report.started()
        if not self.settings.allow_cross_namespace_refs:
            foreign = cross_namespace_references(hr)
            if foreign:
                return self._refuse_references(report, foreign)
        waiting = unready_dependencies(identity.kube, hr.policy.depends_on, identity.service_account)
        if waiting:
            message = f"waiting for dependencies: {', '.join(waiting)}"
            report.waiting_for_dependencies(message)
            return Outcome(requeue_after=self.settings.retry.base_s, message=message)
        if hr.policy.suspend:
            report.suspended()
            return Outcome(message="suspended")
        target = self._target(report, identity)
        if isinstance(target, Outcome):
            return target
        return self._drive(report, target, identity)

    def _target(self, report: StatusReport, identity: Identity) -> Target | Outcome:
        """Fetch the chart and compose the values: the desired state, or why there is none."""
        hr = report.hr
        try:
            chart = self.charts.fetch(hr.namespace, hr.name, hr.spec.chart, secrets=identity.kube)
        except ChartError as exc:
            return self._chart_failed(report, exc)
        report.chart_fetched(chart.name, chart.revision)

        reader = ClusterValuesReader(
            identity.kube, chart.chart_dir, self.http, self._url_limits, url_destinations(self.settings)
        )
        try:
            composed = values_mod.compose_values(
                values_spec(hr.namespace, hr.spec),
                reader,
                allow_cross_namespace=self.settings.allow_cross_namespace_refs,
            )
        except values_mod.ValuesError as exc:
            self.on_refs(hr.key, exc.references)
            report.values_failed(str(exc))
            return Outcome(requeue_after=self.settings.retry.max_s, ok=False, message=str(exc))
        self.on_refs(hr.key, composed.references)

        ref = ReleaseRef.of(hr)
        desired = desired_state(
            ref,
            hr.policy,
            hr.metadata.generation,
            chart.digest,
            composed.digest,
            self.settings.retry,
            self.digest_key(),
            adopt_across_namespaces=self.settings.allow_adoption_across_namespaces,
            merges_from_deployed=identity.helm.major < 4,
        )
        unkeyed = unkeyed_digest(hr.policy, chart.digest, composed.digest)
        return Target(
            ref,
            hr.policy,
            desired,
            chart,
            composed.values,
            unkeyed_digest=unkeyed,
            values_digest=keyed_values_digest(composed.digest, self.digest_key()),
            commit=hr.metadata.annotations.get(COMMIT_ANNOTATION) or None,
        )

    def _drive(self, report: StatusReport, target: Target, identity: Identity) -> Outcome:
        """Observe, plan, act, record; until the plan needs no helm call (or no progress is made)."""
        taken: list[pl.Action] = []
        outcome = self._drive_steps(report, target, identity, taken)
        return replace(outcome, action=str(taken[-1])) if taken else outcome

    def _drive_steps(
        self, report: StatusReport, target: Target, identity: Identity, taken: list[pl.Action]
    ) -> Outcome:
        memory = memory_from_status(report.status)
        last_action: pl.Action | None = None
        drift_detected: bool | None = None
        observation: Observation | None = None  # storage as last read; None after an action
        for _step in range(MAX_STEPS):
            if observation is None:
                observation = observe(identity.kube, target.ref, self.first_seen)
                report.observed(observation.release)
                if self.may_act():  # a storage write, fenced like every other
                    observation, memory = _rekey_unkeyed_digest(identity.kube, target, observation, memory)
                memory = _recover_unrecorded_release(report, target, observation, memory)
                observation, memory = _recover_unrecorded_rollback(report, target, observation, memory)
                memory = _recover_unrecorded_test(report, target, observation, memory, self.clock())
            decision = pl.plan(
                observation.release, memory, target.desired, now=self.clock(), drift_detected=drift_detected
            )
            if decision.check_drift and drift_detected is None and observation.latest is not None:
                drift_detected = self._drifted(report, observation)  # then plan again, same storage
                continue
            if decision.reset_failures:
                memory = pl.forget_failures(memory)
            log.debug("plan", release=target.ref.key, action=str(decision.action), reason=decision.reason)
            if decision.action in _SETTLING:
                report.settled(decision, memory, target.chart.revision)
                return self._settled_outcome(decision)
            stop_here = self._stop_before(decision, last_action, target)
            if stop_here is not None:
                report.remember(memory)
                report.write()
                return stop_here
            last_action = decision.action
            taken.append(decision.action)
            memory = identity.actions.run(report, target, decision, memory, observation)
            observation, drift_detected = None, None  # the action changed the release: read it again
            report.remember(memory)
            report.write()
        return Outcome(requeue_after=self.settings.retry.base_s, message="step limit reached")

    def _stop_before(
        self, decision: pl.Plan, last_action: pl.Action | None, target: Target
    ) -> Outcome | None:
        """Why the run must not take this helm action now, if it must not."""
        if decision.action is last_action and decision.action is not pl.Action.TEST:
            # The same action twice in one run means storage did not move as expected.
            return Outcome(requeue_after=self.settings.retry.base_s, message="no progress; retrying later")
        if not self.in_scope(target.ref.key):
            # Its labels moved it to another shard during this run: the agent of that shard goes
            # on (a pending revision of a helm call still running here makes it wait).
            log.info(
                "left this agent's shard: next helm action left to its new shard",
                release=target.ref.key,
                action=str(decision.action),
            )
            return Outcome(message="outside this agent's label selector")
        if self.stopping.is_set() or not self.may_act():
            # Shutting down, or no longer the leader: start no helm action (one already run
            # finished and is recorded); whoever reconciles next (this agent restarted, or the
            # next leader) goes on.
            log.info(
                "stopping: next helm action left for later",
                release=target.ref.key,
                action=str(decision.action),
            )
            return Outcome(requeue_after=self.settings.retry.base_s, message="stopping", handled=False)
        return None

    def _settled_outcome(self, decision: pl.Plan) -> Outcome:
        if decision.action is pl.Action.REFUSE:
            return Outcome(ok=False, message=decision.reason)
        if decision.action is pl.Action.WAIT_RETRY:
            if decision.stalled:
                return Outcome(ok=False, message=decision.reason)
            delay = max(1.0, (decision.retry_at or self.clock()) - self.clock())
            return Outcome(requeue_after=delay, ok=False, message=decision.reason)
        return Outcome()

    def _refuse_references(self, report: StatusReport, foreign: tuple[str, ...]) -> Outcome:
        """--no-cross-namespace-refs and the spec names other namespaces: nothing is read."""
        message = (
            f"references outside namespace {report.hr.namespace!r} are not allowed in this agent "
            f"(--no-cross-namespace-refs): {'; '.join(foreign)}"
        )
        report.phase(Phase.FAILED, detail=message, step="CrossNamespaceReference")
        report.finished_generation()
        report.stalled("CrossNamespaceReference", message)
        report.write()
        report.event(True, "CrossNamespaceReference", message)
        log.warning("cross-namespace references refused", release=report.hr.key, references=list(foreign))
        return Outcome(ok=False, message=message)

    def _forbidden(self, report: StatusReport, identity: Identity, exc: KubeError) -> Outcome:
        """The API refused a request (RBAC): say so on the status and look again much later.

        Under a ServiceAccount this is how a HelmRelease reaching outside what its account may do
        (a ``targetNamespace`` of another team, a Secret it may not read) ends. Not stalled: a
        RoleBinding may be added without any change to the HelmRelease."""
        # the HelmRelease itself and the digest key are read as the agent even
        # under a ServiceAccount: name the request, and say who acts for the release
        acting = f" (the release is managed as ServiceAccount {identity.service_account})"
        message = f"forbidden: {exc}{acting if identity.service_account else ''}"
        try:
            report.forbidden(message)
        except GitopsHelmError as write_error:  # the agent's own status write refused too
            log.warning("status not written", release=report.hr.key, error=str(write_error))
        log.warning("forbidden", release=report.hr.key, error=message)
        return Outcome(requeue_after=self.settings.retry.max_s, ok=False, message=message)

    def _chart_failed(self, report: StatusReport, exc: ChartError) -> Outcome:
        report.chart_failed(str(exc), temporary=exc.temporary)
        retry = self.settings.retry
        # a server's Retry-After is honoured up to the longest backoff of the settings
        delay = min(exc.retry_after, retry.max_s) if exc.retry_after else None
        delay = delay or (retry.base_s if exc.temporary else retry.max_s)
        return Outcome(requeue_after=delay, ok=False, message=str(exc))

    def _drifted(self, report: StatusReport, observation: Observation) -> bool:
        """Compare the live objects with the latest revision's manifest; report what differs."""
        spec = report.hr.policy.drift_detection
        try:
            drift = drift_of(observation, report.hr.target_namespace, spec)
        except GitopsHelmError as exc:  # the API, or a release manifest that cannot be decoded
            log.warning("drift detection failed", release=report.hr.key, error=str(exc))
            return False
        if drift:
            report.drift("; ".join(str(d) for d in drift), correcting=str(spec.mode) == "enabled")
        return bool(drift)

    # -- finalizer ----------------------------------------------------------------------------

    def _add_finalizer(self, hr: HelmRelease) -> bool:
        meta = hr.metadata
        try:
            self.kube.set_helmrelease_finalizers(
                meta.namespace, meta.name, [*meta.finalizers, FINALIZER], meta.resource_version or ""
            )
        except KubeError as exc:
            if exc.kind is KubeErrorKind.CONFLICT:
                return False  # a newer version is on its way through the watch
            raise
        return True

    def _finalize(self, report: StatusReport, identity: Identity) -> Outcome:
        hr = report.hr
        if FINALIZER not in hr.metadata.finalizers:
            return Outcome()
        p = hr.policy
        try:
            ref = ReleaseRef.of(hr)
            try:
                observed = observe(identity.kube, ref, self.first_seen).release
            except KubeError as exc:
                if exc.kind is not KubeErrorKind.FORBIDDEN or identity.service_account is None:
                    raise
                # The ServiceAccount may not even read the release's storage, so it could never
                # have installed it: nothing there is this HelmRelease's to uninstall.
                report.event(True, "UninstallSkipped", f"release left in place: {exc}")
                observed = None
            planned = plan_policy(p, self.settings.retry)
            test_started = memory_from_status(hr.status).test_started
            decision = pl.plan_deletion(
                observed,
                ref.owner,
                suspended=p.suspend,
                now=self.clock(),
                pending_grace=planned.pending_grace,
                test_until=None if test_started is None else test_started + planned.test_grace,
            )
            if decision.action is pl.Action.WAIT_RETRY:
                log.info("uninstall waits", release=hr.key, reason=decision.reason)
                report.event(False, "UninstallDelayed", decision.reason)
                delay = max(1.0, (decision.retry_at or self.clock()) - self.clock())
                return Outcome(requeue_after=delay, message=decision.reason)
            if decision.action is pl.Action.UNINSTALL:
                if not self.in_scope(hr.key):
                    return Outcome(message="outside this agent's label selector")
                if self.stopping.is_set() or not self.may_act():
                    return Outcome(requeue_after=self.settings.retry.base_s, message="stopping")
                identity.actions.uninstall_on_deletion(report, p)
            else:
                log.info("deleted without uninstall", release=hr.key, reason=decision.reason)
            remaining = [f for f in hr.metadata.finalizers if f != FINALIZER]
            self.kube.set_helmrelease_finalizers(
                hr.namespace, hr.name, remaining, hr.metadata.resource_version or ""
            )
            self.first_seen.forget_release(ref.target_namespace, ref.release_name)
        except HelmError as exc:
            report.event(True, "UninstallFailed", exc.message)
            return Outcome(requeue_after=self.settings.retry.base_s, ok=False, message=exc.message)
        except KubeError as exc:
            if exc.kind is KubeErrorKind.NOT_FOUND:
                return Outcome()
            return Outcome(requeue_after=self.settings.retry.base_s, ok=False, message=str(exc))
        return Outcome()


def _recover_unrecorded_release(
    report: StatusReport, target: Target, observation: Observation, memory: pl.Memory
) -> pl.Memory:
    """The agent's own install or upgrade of the desired state succeeded, but the agent was
    stopped before it recorded that: record it now, so the release is not upgraded a second time
    for one change (``plan.unrecorded_release``)."""
    release = observation.release
    if release is None or not pl.unrecorded_release(release, memory, target.desired):
        return memory
    if not observation.made_by_agent():
        return memory  # someone's helm upgrade that copied our labels: row 7 corrects it
    recorded = pl.record_unrecorded_release(memory, target.desired, release)
    verb = "install" if recorded.last_release_action is pl.ReleaseAction.INSTALL else "upgrade"
    message = (
        f"revision {release.revision} is the agent's own {verb} of the desired state, whose outcome "
        "a stopped run did not record: recorded, not applied again"
    )
    # the phases the interrupted run would have reported after helm returned
    report.phase(Phase.DEPLOYED)
    if not target.policy.test.enable:
        report.phase(Phase.SUCCEEDED, revision=target.chart.revision)
    report.event(False, "ReleaseRecorded", message)
    log.info("unrecorded release recorded", release=target.ref.key, revision=release.revision, action=verb)
    return recorded


def _recover_unrecorded_test(
    report: StatusReport, target: Target, observation: Observation, memory: pl.Memory, now: float
) -> pl.Memory:
    """A ``helm test`` the agent started ended without the agent recording it (the agent was
    stopped, its helm child ran on: plan row 13 waited for it): record the outcome helm wrote to
    the tested revision, so the test is not run a second time."""
    release = observation.release
    started = memory.test_started
    if (
        started is None
        or memory.test_state is not pl.TestState.PENDING
        or release is None
        or release.revision != memory.last_release_revision
        or release.owner != target.desired.owner
    ):
        return memory
    passed = observation.test_outcome_since(started)
    if passed is None:
        return memory
    recorded = pl.record_test(memory, target.desired, passed=passed, now=now)
    report.tested(tested_entry(target, started, now, passed, release.revision))
    name = target.policy.release_name
    message = (
        f"recorded from the helm test of revision {release.revision} that ran on while the agent was stopped"
    )
    # the phases the interrupted run would have reported after helm returned
    if passed:
        report.phase(Phase.TESTED)
        report.phase(Phase.SUCCEEDED, revision=report.status.last_attempted_revision)
        report.event(False, "TestSucceeded", f"tests of {name} passed: {message}")
    else:
        report.phase(Phase.TEST_FAILED, detail=message)
        report.event(True, "TestFailed", f"tests of {name} failed: {message}")
        if pl.ignores_test_failures(target.desired.policy, memory.last_release_action):
            report.phase(Phase.SUCCEEDED, revision=report.status.last_attempted_revision)
    log.info("unrecorded test recorded", release=target.ref.key, revision=release.revision, passed=passed)
    return recorded


def _recover_unrecorded_rollback(
    report: StatusReport, target: Target, observation: Observation, memory: pl.Memory
) -> tuple[Observation, pl.Memory]:
    """The latest revision may be the agent's own remediation rollback that a stopped run never
    recorded (``plan.own_rollback_candidate``): read which revision helm's rollback restores, so
    that the planner discards an interrupted one and runs it again (row 4b); and record one that
    helm finished (deployed), as the remediation would have, instead of taking it for a manual
    rollback (row 7)."""
    release = observation.release
    if release is None or not pl.own_rollback_candidate(release, memory, target.desired):
        return observation, memory
    restored = observation.rolled_back_to()
    if restored is None:
        return observation, memory
    release = replace(release, rolled_back_to=restored)
    observation = replace(observation, release=release)
    if release.status is not pl.ReleaseStatus.DEPLOYED or not pl.unrecorded_remediation(
        release, memory, target.desired
    ):
        return observation, memory
    failed = memory.last_release_revision
    recorded = pl.record_unrecorded_rollback(memory, release)
    message = (
        f"revision {release.revision} is the agent's own rollback of failed revision {failed} to "
        f"revision {restored}, whose outcome a stopped run did not record: recorded, not applied again"
    )
    report.phase(Phase.ROLLED_BACK, detail=f"to revision {restored}")
    report.event(True, "RolledBack", message)
    log.info("unrecorded rollback recorded", release=target.ref.key, revision=release.revision, to=restored)
    return observation, recorded


def _rekey_unkeyed_digest(
    kube: Kube, target: Target, observation: Observation, memory: pl.Memory
) -> tuple[Observation, pl.Memory]:
    """A release recorded by a version without the digest key carries the unkeyed digest, which
    anyone reading the label or the status could test guesses of Secret values against. When it
    is this desired state's, the release is in sync: relabel the latest revision and re-remember
    with the keyed digest (one label patch, no helm call), so upgrading the agent upgrades no
    release and leaves no guessable digest on the latest revision or in the status."""
    release, latest = observation.release, observation.latest
    unkeyed, keyed = target.unkeyed_digest, target.desired.digest
    if release is None or latest is None or not unkeyed or release.digest != unkeyed:
        return observation, memory
    kube.label_release(latest, {DIGEST_LABEL: keyed})
    log.info("digest of an earlier version replaced by the keyed digest", release=target.ref.key)

    def rekeyed(digest: str | None) -> str | None:
        return keyed if digest == unkeyed else digest

    memory = replace(
        memory,
        last_applied_digest=rekeyed(memory.last_applied_digest),
        last_failed_digest=rekeyed(memory.last_failed_digest),
        last_interrupted_digest=rekeyed(memory.last_interrupted_digest),
    )
    return replace(observation, release=replace(release, digest=keyed)), memory
