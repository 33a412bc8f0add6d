"""Reconcile one HelmRelease: make its Helm release match it, and say so on its status.

Place in the flow: the controller calls :meth:`Reconciler.reconcile` with the latest HelmRelease
object for one key; this module fetches the chart (``charts``), composes the values (``values``),
reads Helm storage through the Kubernetes API (no helm call), asks the pure planner
(``release.plan``) for the next action, runs it through the helm adapter, records the outcome
with the planner's ``record_*`` helpers and the API's phase table, and loops until the plan needs
no helm call. It writes ONE status patch per step, and none when nothing changed, so its own
writes do not keep re-triggering reconciles.

Ownership: every revision the agent writes carries the release labels
``gitops-helm.io/owner`` (this HelmRelease) and ``gitops-helm.io/digest`` (the desired state it
applied). A release without them was installed by someone else: it is adopted unless its
resources carry the Helm Operator's ``helm.fluxcd.io/antecedent`` annotation naming another
HelmRelease.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import requests
import yaml

from gitops_helm import log as logging
from gitops_helm import values as values_mod
from gitops_helm.adapters.helm import Helm, HelmError, HelmErrorKind, RollbackOptions, UpgradeOptions
from gitops_helm.adapters.kube import Kube, KubeError, KubeErrorKind, StoredRelease
from gitops_helm.api import (
    ConditionStatus,
    ConditionType,
    HelmRelease,
    HelmReleaseStatus,
    Phase,
    SpecError,
    find_condition,
    parse_helmrelease,
    parse_status,
    record_phase,
    serialise_status,
    set_condition,
    set_reconciling,
    set_stalled,
    settle,
)
from gitops_helm.charts.artifact import FetchedChart
from gitops_helm.charts.errors import ChartError
from gitops_helm.config import Settings
from gitops_helm.release import plan as pl
from gitops_helm.release.drift import detect_drift

log = logging.get(__name__)

FINALIZER = "helm.fluxcd.io/finalizer"
OWNER_LABEL = "gitops-helm.io/owner"
DIGEST_LABEL = "gitops-helm.io/digest"
ANTECEDENT = "helm.fluxcd.io/antecedent"
COMPONENT = "gitops-helm"
_MAX_STEPS = 8


class ChartFetcher(Protocol):
    def fetch(self, hr: HelmRelease) -> FetchedChart: ...


@dataclass(frozen=True)
class Outcome:
    """What the controller should do next with this key."""

    requeue_after: float | None = None  # None: only on the next event or periodic resync
    ok: bool = True
    message: str = ""


def owner_id(namespace: str, name: str) -> str:
    """This HelmRelease's id as a label value (<= 63 characters)."""
    plain = f"{namespace}.{name}"
    if len(plain) <= 63:
        return plain
    return "hr-" + hashlib.sha256(plain.encode()).hexdigest()[:40]


def antecedent_id(namespace: str, name: str) -> str:
    """The Helm Operator's ownership annotation value."""
    return f"{namespace}:helmrelease/{name}"


def desired_digest(hr: HelmRelease, chart: FetchedChart, values_digest: str) -> str:
    """Digest of everything that changes what the release is (not timeouts or retry policy)."""
    p = hr.policy
    material = {
        "chart": chart.digest,
        "values": values_digest,
        "release": p.release_name,
        "namespace": p.target_namespace,
        "reuseValues": p.reuse_values,
        "force": p.force_upgrade,
        "skipCRDs": p.skip_crds,
        "disableOpenAPIValidation": p.disable_openapi_validation,
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:48]


def plan_policy(hr: HelmRelease, settings: Settings) -> pl.Policy:
    p = hr.policy
    backoff = tuple(settings.retry.delay(n) for n in range(1, 9))
    return pl.Policy(
        install=pl.InstallPolicy(
            retries=p.install.retries,
            uninstall_on_failure=True,
            remediate_last_failure=p.install.remediate_last_failure,
            ignore_test_failures=p.install.ignore_test_failures,
        ),
        upgrade=pl.UpgradePolicy(
            retries=p.upgrade.retries,
            strategy=p.upgrade.strategy,
            remediate_last_failure=p.upgrade.remediate_last_failure,
            ignore_test_failures=p.upgrade.ignore_test_failures,
        ),
        test=pl.TestPolicy(enabled=p.test.enable),
        drift=p.drift_detection.mode,
        backoff=backoff,
        pending_grace=float(p.timeout) + 60.0,
    )


# -- status <-> planner memory ------------------------------------------------------------------


def _ts(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def memory_from_status(s: HelmReleaseStatus) -> pl.Memory:
    def enum_or_none(enum: Any, value: str | None) -> Any:
        try:
            return enum(value) if value else None
        except ValueError:
            return None

    return pl.Memory(
        last_applied_digest=s.last_applied_digest,
        last_release_revision=s.last_release_revision,
        last_release_action=enum_or_none(pl.ReleaseAction, s.last_release_action),
        test_state=enum_or_none(pl.TestState, s.test_state) or pl.TestState.PENDING,
        failures=s.failures,
        last_failed_digest=s.last_failed_digest,
        last_failed_generation=s.last_failed_generation,
        last_failed_action=enum_or_none(pl.ReleaseAction, s.last_failed_action),
        last_failure_time=_ts(s.last_failure_time),
        last_remediated_revision=s.last_remediated_revision,
        rollback_count=s.rollback_count,
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
        last_failure_time=_iso(m.last_failure_time),
        last_remediated_revision=m.last_remediated_revision,
        rollback_count=m.rollback_count,
    )


# -- values sources backed by the cluster --------------------------------------------------------


class ClusterValuesReader:
    """`values.ValuesSourceReader` over the Kubernetes API, HTTP and the fetched chart."""

    def __init__(self, kube: Kube, chart_dir: Path | None, url_timeout_s: float) -> None:
        self.kube = kube
        self.chart_dir = chart_dir
        self.url_timeout_s = url_timeout_s

    def configmap(self, namespace: str, name: str) -> Mapping[str, str] | None:
        return self.kube.get_configmap_data(namespace, name)

    def secret(self, namespace: str, name: str) -> Mapping[str, bytes] | None:
        return self.kube.get_secret_data(namespace, name)

    def url(self, url: str) -> bytes:
        try:
            resp = requests.get(url, timeout=self.url_timeout_s, allow_redirects=True)
        except requests.RequestException as exc:
            raise OSError(f"{type(exc).__name__}") from None
        if resp.status_code == 404:
            raise values_mod.SourceNotFound(url)
        if resp.status_code != 200:
            raise OSError(f"HTTP {resp.status_code}")
        return resp.content

    def chart_file(self, path: str) -> bytes:
        if self.chart_dir is None:
            raise values_mod.SourceNotFound(path)
        root = self.chart_dir.resolve()
        target = (root / path).resolve()
        if root != target and root not in target.parents:
            raise OSError(f"{path} leaves the chart directory")
        if not target.is_file():
            raise values_mod.SourceNotFound(path)
        return target.read_bytes()


def values_spec(hr: HelmRelease) -> values_mod.ValuesSpec:
    return values_mod.ValuesSpec(
        namespace=hr.namespace,
        values_from=hr.spec.values_from,
        value_file_secrets=hr.spec.value_file_secrets,
        values=hr.spec.values,
    )


# -- the reconciler -----------------------------------------------------------------------------


@dataclass
class _Ctx:
    """State of one reconcile run."""

    hr: HelmRelease
    obj: dict[str, Any]
    status: HelmReleaseStatus
    written: dict[str, Any]


class Reconciler:
    def __init__(
        self,
        kube: Kube,
        helm: Helm,
        charts: ChartFetcher,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
        on_refs: Callable[[str, tuple[values_mod.ObjectRef, ...]], None] | None = None,
        on_action: Callable[[str, str, bool, float], None] | None = None,
    ) -> None:
        self.kube = kube
        self.helm = helm
        self.charts = charts
        self.settings = settings
        self.clock = clock
        self.on_refs = on_refs or (lambda key, refs: None)
        self.on_action = on_action or (lambda action, key, ok, seconds: None)

    # -- entry point -----------------------------------------------------------------------

    def reconcile(self, obj: dict[str, Any]) -> Outcome:
        meta = obj.get("metadata", {})
        key = f"{meta.get('namespace')}/{meta.get('name')}"
        # The status is the planner's memory: read it fresh, never from a watch cache that may
        # not have seen the previous reconcile's own status writes yet (that would repeat work).
        try:
            fresh = self.kube.get_helmrelease(str(meta.get("namespace")), str(meta.get("name")))
        except KubeError as exc:
            log.warning("kubernetes API error", release=key, error=str(exc))
            return Outcome(requeue_after=self.settings.retry.base_s, ok=False, message=str(exc))
        if fresh is None:
            return Outcome()  # deleted meanwhile
        obj = fresh
        try:
            hr = parse_helmrelease(obj)
        except SpecError as exc:
            return self._invalid(obj, key, exc)
        ctx = _Ctx(hr=hr, obj=obj, status=hr.status, written=serialise_status(hr.status))
        if hr.metadata.deletion_timestamp:
            return self._finalize(ctx)
        try:
            if FINALIZER not in hr.metadata.finalizers and not self._add_finalizer(ctx):
                return Outcome(requeue_after=1.0)
            return self._reconcile(ctx)
        except KubeError as exc:
            log.warning("kubernetes API error", release=key, error=str(exc))
            return Outcome(requeue_after=self.settings.retry.base_s, ok=False, message=str(exc))
        except HelmError as exc:  # classified but not expected at this level (e.g. temporary)
            log.warning("helm error", release=key, error=str(exc))
            return Outcome(requeue_after=self.settings.retry.base_s, ok=False, message=str(exc))

    # -- helpers -----------------------------------------------------------------------------

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    def _event(self, ctx: _Ctx, warning: bool, reason: str, message: str) -> None:
        self.kube.emit_event(ctx.obj, "Warning" if warning else "Normal", reason, message, COMPONENT)

    def _write(self, ctx: _Ctx) -> None:
        """Patch the status subresource if (and only if) it changed."""
        body = serialise_status(ctx.status, null_unset=True)
        if body == ctx.written:
            return
        self.kube.patch_helmrelease_status(ctx.hr.namespace, ctx.hr.name, body)
        ctx.written = body

    def _phase(self, ctx: _Ctx, phase: Phase, detail: str | None = None, revision: str | None = None) -> None:
        p = ctx.hr.policy
        ignore = (
            p.upgrade.ignore_test_failures
            if ctx.status.last_release_action != "install"
            else (p.install.ignore_test_failures)
        )
        ctx.status = record_phase(
            ctx.status,
            phase,
            release_name=p.release_name,
            namespace=p.target_namespace,
            now=self._now(),
            detail=detail,
            revision=revision,
            ignore_test_failures=ignore,
        )

    def _invalid(self, obj: dict[str, Any], key: str, exc: SpecError) -> Outcome:
        """A spec that cannot be parsed: say so on the status, touch nothing else."""
        ns, name = key.split("/", 1)
        status = parse_status(obj.get("status"))
        now = self._now()
        message = f"invalid HelmRelease: {exc}"
        conditions = status.conditions
        for ctype in (ConditionType.RELEASED, ConditionType.READY):
            conditions = set_condition(
                conditions,
                ctype,
                ConditionStatus.FALSE,
                reason="InvalidSpec",
                message=message[:1024],
                now=now,
            )
        status = replace(status, conditions=conditions, phase=Phase.FAILED)
        status = set_stalled(status, reason="InvalidSpec", message=message[:1024], now=now)
        generation = obj.get("metadata", {}).get("generation")
        if isinstance(generation, int):
            status = replace(status, observed_generation=generation)
        body = serialise_status(status, null_unset=True)
        if body != serialise_status(parse_status(obj.get("status")), null_unset=True):
            try:
                self.kube.patch_helmrelease_status(ns, name, body)
            except KubeError as err:
                log.warning("cannot write status", release=key, error=str(err))
            self.kube.emit_event(obj, "Warning", "InvalidSpec", message, COMPONENT)
        log.warning("invalid HelmRelease", release=key, error=str(exc))
        return Outcome(ok=False, message=message)

    def _add_finalizer(self, ctx: _Ctx) -> bool:
        meta = ctx.hr.metadata
        try:
            self.kube.set_helmrelease_finalizers(
                meta.namespace, meta.name, [*meta.finalizers, FINALIZER], meta.resource_version or ""
            )
        except KubeError as exc:
            if exc.kind is KubeErrorKind.CONFLICT:
                return False  # a newer version is on its way through the watch
            raise
        return True

    # -- observation -----------------------------------------------------------------------

    def _observe(self, hr: HelmRelease) -> tuple[pl.ObservedRelease | None, list[StoredRelease]]:
        revisions = self.kube.release_revisions(hr.target_namespace, hr.release_name)
        if not revisions:
            return None, revisions
        latest = revisions[-1]
        try:
            status = pl.ReleaseStatus(latest.status)
        except ValueError:
            status = pl.ReleaseStatus.UNKNOWN
        previous = [r.revision for r in revisions[:-1] if r.status in ("deployed", "superseded")]
        owner = latest.labels.get(OWNER_LABEL) or self._owner_from_resources(hr, latest)
        modified = latest.labels.get("modifiedAt")
        return (
            pl.ObservedRelease(
                revision=latest.revision,
                status=status,
                previous_deployed_revision=previous[-1] if previous else None,
                owner=owner,
                digest=latest.labels.get(DIGEST_LABEL),
                last_modified=float(modified) if modified and modified.isdigit() else None,
            ),
            revisions,
        )

    def _owner_from_resources(self, hr: HelmRelease, latest: StoredRelease) -> str | None:
        """A release without our label: is it the Helm Operator's, for this or another HelmRelease?"""
        try:
            record = self.kube.read_release(latest)
        except KubeError:
            return None
        mine = antecedent_id(hr.namespace, hr.name)
        for doc in list(yaml.safe_load_all(record.get("manifest", "") or ""))[:5]:
            if not isinstance(doc, dict) or not doc.get("kind") or not doc.get("apiVersion"):
                continue
            meta = doc.get("metadata") or {}
            try:
                live = self.kube.get(
                    str(doc["apiVersion"]),
                    str(doc["kind"]),
                    meta.get("namespace") or hr.target_namespace,
                    str(meta.get("name")),
                )
            except KubeError:
                continue
            ante = ((live or {}).get("metadata", {}).get("annotations") or {}).get(ANTECEDENT)
            if ante and ante != mine:
                ns, _, rest = ante.partition(":helmrelease/")
                return owner_id(ns, rest) if rest else ante.replace(":", ".").replace("/", ".")[:63]
            if ante == mine:
                return owner_id(hr.namespace, hr.name)
        return None

    # -- the main loop ------------------------------------------------------------------------

    def _reconcile(self, ctx: _Ctx) -> Outcome:
        hr = ctx.hr
        policy = hr.policy
        key = hr.key
        now = self._now()
        if not ctx.status.release_name:
            ctx.status = replace(ctx.status, release_name=policy.release_name)

        # Dependencies first: install and upgrade only after every dependency is ready.
        waiting = self._dependencies_not_ready(hr)
        if waiting:
            msg = f"waiting for dependencies: {', '.join(waiting)}"
            ctx.status = set_reconciling(ctx.status, reason="DependencyNotReady", message=msg, now=now)
            ctx.status = replace(
                ctx.status,
                conditions=set_condition(
                    ctx.status.conditions,
                    ConditionType.READY,
                    ConditionStatus.FALSE,
                    reason="DependencyNotReady",
                    message=msg,
                    now=now,
                ),
            )
            self._write(ctx)
            return Outcome(requeue_after=self.settings.retry.base_s, message=msg)

        if policy.suspend:
            return self._suspended(ctx)

        # Chart.
        try:
            chart = self.charts.fetch(hr)
        except ChartError as exc:
            return self._chart_failed(ctx, exc)
        # Recorded once per new chart revision (or after a failed fetch), so that a resync of
        # an unchanged release writes no status.
        fetched = find_condition(ctx.status.conditions, ConditionType.CHART_FETCHED)
        if (
            chart.revision not in (ctx.status.last_attempted_revision, ctx.status.revision)
            or fetched is None
            or fetched.status is not ConditionStatus.TRUE
        ):
            self._phase(ctx, Phase.CHART_FETCHED, detail=f"{chart.name} {chart.revision}")

        # Values.
        reader = ClusterValuesReader(self.kube, chart.chart_dir, self.settings.values_url_timeout_s)
        try:
            composed = values_mod.compose_values(
                values_spec(hr), reader, allow_cross_namespace=self.settings.allow_cross_namespace_refs
            )
        except values_mod.ValuesError as exc:
            self.on_refs(key, exc.references)
            return self._values_failed(ctx, str(exc))
        self.on_refs(key, composed.references)

        desired = pl.Desired(
            digest=desired_digest(hr, chart, composed.digest),
            generation=hr.metadata.generation,
            owner=owner_id(hr.namespace, hr.name),
            suspended=False,
            policy=plan_policy(hr, self.settings),
        )
        memory = memory_from_status(ctx.status)
        last_action: pl.Action | None = None
        drift_detected: bool | None = None
        for _step in range(_MAX_STEPS):
            observed, revisions = self._observe(hr)
            ctx.status = replace(
                ctx.status,
                release_status=observed.status.value if observed else None,
            )
            decision = pl.plan(observed, memory, desired, now=self.clock(), drift_detected=drift_detected)
            if (
                decision.action is pl.Action.NONE
                and decision.check_drift
                and drift_detected is None
                and revisions
            ):
                drift_detected = self._check_drift(ctx, revisions[-1])
                continue
            if decision.reset_failures:
                memory = replace(
                    memory,
                    failures=0,
                    last_failed_digest=None,
                    last_failed_generation=None,
                    last_failed_action=None,
                    last_failure_time=None,
                )
            log.debug("plan", release=key, action=str(decision.action), reason=decision.reason)
            if decision.action in (
                pl.Action.NONE,
                pl.Action.WAIT_RETRY,
                pl.Action.REFUSE,
                pl.Action.SUSPENDED,
            ):
                return self._settle(ctx, decision, memory, chart, observed)
            if decision.action is last_action and decision.action is not pl.Action.TEST:
                # The same action twice in one run means storage did not move as expected.
                ctx.status = status_with_memory(ctx.status, memory)
                self._write(ctx)
                return Outcome(
                    requeue_after=self.settings.retry.base_s, message="no progress; retrying later"
                )
            last_action = decision.action
            memory = self._act(ctx, decision, memory, desired, chart, composed.values, observed, revisions)
            drift_detected = None  # an action changed the release: look again if asked
            ctx.status = status_with_memory(ctx.status, memory)
            self._write(ctx)
        return Outcome(requeue_after=self.settings.retry.base_s, message="step limit reached")

    def _check_drift(self, ctx: _Ctx, latest: StoredRelease) -> bool:
        """Compare the live objects with the latest revision's manifest; report what differs."""
        hr = ctx.hr
        spec = hr.policy.drift_detection
        try:
            record = self.kube.read_release(latest)
            drift = detect_drift(self.kube, str(record.get("manifest", "")), hr.target_namespace, spec.ignore)
        except KubeError as exc:
            log.warning("drift detection failed", release=hr.key, error=str(exc))
            return False
        if drift:
            what = "; ".join(str(d) for d in drift)
            correcting = str(spec.mode) == "enabled"
            self._event(ctx, True, "DriftDetected", f"live objects differ from the release: {what}"[:1024])
            log.warning("drift detected", release=hr.key, drift=what, correcting=correcting)
        return bool(drift)

    def _apply_method(self, hr: HelmRelease) -> str:
        """How helm applied the latest revision (helm 4 records ``ssa`` or ``csa``)."""
        revisions = self.kube.release_revisions(hr.target_namespace, hr.release_name)
        if not revisions:
            return ""
        try:
            return str(self.kube.read_release(revisions[-1]).get("apply_method", ""))
        except KubeError:
            return ""

    def _dependencies_not_ready(self, hr: HelmRelease) -> list[str]:
        waiting = []
        for dep in hr.policy.depends_on:
            obj = self.kube.get_helmrelease(dep.namespace, dep.name)
            if obj is None:
                waiting.append(f"{dep.namespace}/{dep.name} (not found)")
                continue
            status = parse_status(obj.get("status"))
            ready = find_condition(status.conditions, ConditionType.READY)
            generation = obj.get("metadata", {}).get("generation")
            if (
                not ready
                or ready.status is not ConditionStatus.TRUE
                or status.observed_generation != generation
            ):
                waiting.append(f"{dep.namespace}/{dep.name}")
        return waiting

    def _suspended(self, ctx: _Ctx) -> Outcome:
        ctx.status = replace(
            ctx.status,
            conditions=set_condition(
                ctx.status.conditions,
                ConditionType.RECONCILING,
                ConditionStatus.FALSE,
                reason="Suspended",
                message="reconciliation is suspended",
                now=self._now(),
            ),
        )
        self._write(ctx)
        return Outcome(message="suspended")

    def _chart_failed(self, ctx: _Ctx, exc: ChartError) -> Outcome:
        self._phase(ctx, Phase.CHART_FETCH_FAILED, detail=str(exc))
        ctx.status = replace(ctx.status, observed_generation=ctx.hr.metadata.generation)
        if not exc.temporary:
            ctx.status = set_stalled(
                ctx.status, reason="ChartFetchFailed", message=str(exc)[:1024], now=self._now()
            )
        self._write(ctx)
        self._event(ctx, True, "ChartFetchFailed", str(exc))
        log.warning("chart fetch failed", release=ctx.hr.key, error=str(exc), temporary=exc.temporary)
        delay = exc.retry_after or (
            self.settings.retry.base_s if exc.temporary else self.settings.retry.max_s
        )
        return Outcome(requeue_after=delay, ok=False, message=str(exc))

    def _values_failed(self, ctx: _Ctx, message: str) -> Outcome:
        self._phase(ctx, Phase.FAILED, detail=f"failed to compose values: {message}")
        ctx.status = replace(ctx.status, observed_generation=ctx.hr.metadata.generation)
        self._write(ctx)
        self._event(ctx, True, "ValuesError", message)
        log.warning("values failed", release=ctx.hr.key, error=message)
        return Outcome(requeue_after=self.settings.retry.max_s, ok=False, message=message)

    def _settle(
        self,
        ctx: _Ctx,
        decision: pl.Plan,
        memory: pl.Memory,
        chart: FetchedChart,
        observed: pl.ObservedRelease | None,
    ) -> Outcome:
        """End of a run: no helm action needed now."""
        hr = ctx.hr
        ctx.status = status_with_memory(ctx.status, memory)
        ctx.status = replace(ctx.status, observed_generation=hr.metadata.generation)
        now = self._now()
        outcome = Outcome()
        if decision.action is pl.Action.NONE:
            released = find_condition(ctx.status.conditions, ConditionType.RELEASED)
            if (
                released is None
                or released.status is not ConditionStatus.TRUE
                or ctx.status.phase
                in (
                    Phase.DEPLOYED,
                    Phase.TESTED,
                    Phase.CHART_FETCHED,
                    Phase.ROLLED_BACK,
                    Phase.FAILED,
                )
            ):
                self._phase(ctx, Phase.SUCCEEDED, revision=chart.revision)
            ctx.status = settle(ctx.status)
        elif decision.action is pl.Action.REFUSE:
            self._phase(ctx, Phase.FAILED, detail=decision.reason)
            ctx.status = set_stalled(ctx.status, reason="ReleaseNotOwned", message=decision.reason, now=now)
            if ctx.written.get("phase") != "Failed":
                self._event(ctx, True, "ReleaseNotOwned", decision.reason)
            outcome = Outcome(ok=False, message=decision.reason)
        elif decision.action is pl.Action.WAIT_RETRY:
            if decision.stalled:
                ctx.status = set_stalled(
                    ctx.status, reason="RetriesExhausted", message=decision.reason, now=now
                )
                outcome = Outcome(ok=False, message=decision.reason)
            else:
                delay = max(1.0, (decision.retry_at or self.clock()) - self.clock())
                ctx.status = set_reconciling(
                    ctx.status, reason="RetryScheduled", message=decision.reason, now=now
                )
                outcome = Outcome(requeue_after=delay, ok=False, message=decision.reason)
        self._write(ctx)
        return outcome

    # -- actions --------------------------------------------------------------------------

    def _act(
        self,
        ctx: _Ctx,
        decision: pl.Plan,
        memory: pl.Memory,
        desired: pl.Desired,
        chart: FetchedChart,
        values: dict[str, Any],
        observed: pl.ObservedRelease | None,
        revisions: list[StoredRelease],
    ) -> pl.Memory:
        hr = ctx.hr
        p = hr.policy
        key = hr.key
        action = decision.action
        started = time.monotonic()
        ok = True
        try:
            if action in (pl.Action.INSTALL, pl.Action.UPGRADE, pl.Action.CORRECT_DRIFT):
                install = action is pl.Action.INSTALL
                memory, ok = self._install_or_upgrade(ctx, install, memory, desired, chart, values, decision)
            elif action is pl.Action.TEST:
                memory, ok = self._test(ctx, memory, desired)
            elif action is pl.Action.ROLLBACK:
                memory, ok = self._rollback(ctx, decision, memory)
            elif action is pl.Action.UNINSTALL:
                remediated = observed.revision if observed and decision.remediation else None
                try:
                    self.helm.uninstall(p.release_name, p.target_namespace, p.timeout)
                except HelmError as exc:
                    ok = False
                    self._event(ctx, True, "UninstallFailed", exc.message)
                    memory = pl.record_uninstall(memory, remediated=remediated, succeeded=False)
                else:
                    self._event(
                        ctx, False, "Uninstalled", f"{decision.reason}: release {p.release_name} uninstalled"
                    )
                    memory = pl.record_uninstall(memory, remediated=remediated, succeeded=True)
                log.info("uninstall", release=key, ok=ok, reason=decision.reason)
            elif action is pl.Action.UNLOCK_PENDING and observed is not None:
                self.kube.mark_release_failed(revisions[-1])
                self._event(
                    ctx,
                    True,
                    "PendingReleaseUnlocked",
                    f"release {p.release_name} revision {observed.revision} was left "
                    f"{observed.status.value}; marked failed",
                )
                log.warning("unlocked pending release", release=key, revision=observed.revision)
                memory = pl.record_unlock(memory, desired, observed)
        finally:
            self.on_action(str(action), key, ok, time.monotonic() - started)
        return memory

    def _install_or_upgrade(
        self,
        ctx: _Ctx,
        install: bool,
        memory: pl.Memory,
        desired: pl.Desired,
        chart: FetchedChart,
        values: dict[str, Any],
        decision: pl.Plan,
    ) -> tuple[pl.Memory, bool]:
        hr = ctx.hr
        p = hr.policy
        self._phase(ctx, Phase.INSTALLING if install else Phase.UPGRADING, revision=chart.revision)
        self._write(ctx)
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
            force_conflicts=not install and self.helm.major >= 4 and self._apply_method(hr) == "ssa",
            description=f"gitops-helm: {decision.reason}"[:200],
        )
        action = pl.ReleaseAction.INSTALL if install else pl.ReleaseAction.UPGRADE
        verb = "install" if install else "upgrade"
        try:
            info = self.helm.upgrade(
                p.release_name, p.target_namespace, str(chart.path), values, opts, install=install
            )
        except HelmError as exc:
            if exc.temporary or exc.kind is HelmErrorKind.LOCKED:
                raise KubeError(KubeErrorKind.TEMPORARY, f"helm {verb}", exc.message) from None
            after, _ = self._observe(hr)
            wrote = after.revision if after and (observed_rev(memory) != after.revision) else None
            memory = pl.record_failure(memory, desired, action=action, revision=wrote, now=self.clock())
            self._phase(ctx, Phase.DEPLOY_FAILED, detail=exc.message)
            self._event(ctx, True, f"{verb.capitalize()}Failed", exc.message)
            log.warning(f"{verb} failed", release=hr.key, error=exc.message, revision=wrote)
            return memory, False
        memory = pl.record_release(memory, desired, action=action, revision=info.revision)
        self._phase(ctx, Phase.DEPLOYED)
        if not p.test.enable:
            self._phase(ctx, Phase.SUCCEEDED, revision=chart.revision)
        self._event(
            ctx,
            False,
            "Installed" if install else "Upgraded",
            f"{verb} of {p.release_name} ({chart.name} {chart.version}) succeeded: revision {info.revision}",
        )
        log.info(
            f"{verb} succeeded",
            release=hr.key,
            revision=info.revision,
            chart=f"{chart.name}-{chart.version}",
            adopt=decision.adopt,
        )
        return memory, True

    def _test(self, ctx: _Ctx, memory: pl.Memory, desired: pl.Desired) -> tuple[pl.Memory, bool]:
        p = ctx.hr.policy
        self._phase(ctx, Phase.TESTING)
        self._write(ctx)
        outcome = self.helm.test(p.release_name, p.target_namespace, p.test.timeout)
        memory = pl.record_test(memory, desired, passed=outcome.passed, now=self.clock())
        if outcome.passed:
            self._phase(ctx, Phase.TESTED)
            self._phase(ctx, Phase.SUCCEEDED, revision=ctx.status.last_attempted_revision)
            self._event(ctx, False, "TestSucceeded", f"tests of {p.release_name} passed: {outcome.message}")
        else:
            self._phase(ctx, Phase.TEST_FAILED, detail=outcome.message)
            self._event(ctx, True, "TestFailed", f"tests of {p.release_name} failed: {outcome.message}")
            ignore = p.install if memory.last_release_action is pl.ReleaseAction.INSTALL else p.upgrade
            if ignore.ignore_test_failures:
                self._phase(ctx, Phase.SUCCEEDED, revision=ctx.status.last_attempted_revision)
        log.info("test", release=ctx.hr.key, passed=outcome.passed)
        return memory, outcome.passed

    def _rollback(self, ctx: _Ctx, decision: pl.Plan, memory: pl.Memory) -> tuple[pl.Memory, bool]:
        hr = ctx.hr
        p = hr.policy
        target = decision.rollback_to or 0
        failed_revision = memory.last_release_revision or 0
        self._phase(ctx, Phase.ROLLING_BACK)
        self._write(ctx)
        opts = RollbackOptions(
            timeout_s=p.rollback.timeout,
            wait=p.rollback.wait,
            force=p.rollback.force,
            recreate=p.rollback.recreate,
            disable_hooks=p.rollback.disable_hooks,
            max_history=p.max_history,
        )
        try:
            self.helm.rollback(p.release_name, p.target_namespace, target, opts)
        except HelmError as exc:
            if exc.temporary:
                raise KubeError(KubeErrorKind.TEMPORARY, "helm rollback", exc.message) from None
            after, _ = self._observe(hr)
            memory = pl.record_rollback(
                memory,
                remediated=failed_revision,
                revision=after.revision if after else None,
                succeeded=False,
            )
            self._phase(ctx, Phase.ROLLBACK_FAILED, detail=exc.message)
            self._event(ctx, True, "RollbackFailed", exc.message)
            return memory, False
        after, _ = self._observe(hr)
        memory = pl.record_rollback(
            memory, remediated=failed_revision, revision=after.revision if after else None, succeeded=True
        )
        self._phase(ctx, Phase.ROLLED_BACK, detail=f"to revision {target}")
        self._event(
            ctx, True, "RolledBack", f"{p.release_name} rolled back to revision {target}: {decision.reason}"
        )
        log.info("rolled back", release=hr.key, to=target)
        return memory, True

    # -- deletion ---------------------------------------------------------------------------

    def _finalize(self, ctx: _Ctx) -> Outcome:
        hr = ctx.hr
        if FINALIZER not in hr.metadata.finalizers:
            return Outcome()
        p = hr.policy
        try:
            observed, _ = self._observe(hr)
            decision = pl.plan_deletion(observed, owner_id(hr.namespace, hr.name), suspended=p.suspend)
            if decision.action is pl.Action.UNINSTALL:
                self.helm.uninstall(p.release_name, p.target_namespace, p.timeout)
                self._event(
                    ctx, False, "Uninstalled", f"HelmRelease deleted: release {p.release_name} uninstalled"
                )
                log.info("uninstalled on deletion", release=hr.key)
            else:
                log.info("deleted without uninstall", release=hr.key, reason=decision.reason)
            remaining = [f for f in hr.metadata.finalizers if f != FINALIZER]
            self.kube.set_helmrelease_finalizers(
                hr.namespace, hr.name, remaining, hr.metadata.resource_version or ""
            )
        except HelmError as exc:
            self._event(ctx, True, "UninstallFailed", exc.message)
            return Outcome(requeue_after=self.settings.retry.base_s, ok=False, message=exc.message)
        except KubeError as exc:
            if exc.kind is KubeErrorKind.NOT_FOUND:
                return Outcome()
            return Outcome(requeue_after=self.settings.retry.base_s, ok=False, message=str(exc))
        return Outcome()


def observed_rev(memory: pl.Memory) -> int | None:
    return memory.last_release_revision
