"""kstatus invariants of the HelmRelease status, over random runs of the status report.

Every run the reconciler can make is a sequence of :class:`StatusReport` calls (phases of helm
actions, a failed chart fetch or values, waiting for dependencies, suspension, and the end of a
run: in sync, refused, retry scheduled, retries exhausted), over several runs and spec
generations. After every status patch (what a user or kstatus reads):

* ``Ready`` and ``Reconciling`` are never both True;
* ``Stalled=True`` implies ``Ready=False`` and ``Reconciling`` not True;
* a finished run that leaves ``Ready`` True or False has set ``observedGeneration`` to the
  generation it worked on;
* a finished run (but a suspension) that leaves ``Ready=False`` says ``Reconciling=True`` (a
  retry comes) or ``Stalled=True`` (it gave up): kstatus reads neither Ready nor Released;
* every condition reason is CamelCase and one of the documented reasons.
"""

from __future__ import annotations

import re
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gitops_helm.api import (
    ConditionStatus,
    ConditionType,
    Phase,
    find_condition,
    parse_helmrelease,
    parse_status,
)
from gitops_helm.config import RetrySettings
from gitops_helm.release import plan as pl
from gitops_helm.release.desired import plan_policy
from gitops_helm.release.memory import memory_from_status
from gitops_helm.release.report import StatusReport

# the reasons the agent documents (api/conditions.py, api/status.py): phase names, the failed
# steps Ready names, and Reconciling/Stalled's own
DOCUMENTED_REASONS = {str(p) for p in Phase} | {
    "Progressing",
    "InstallFailed",
    "UpgradeFailed",
    "ValuesFailed",
    "ReleaseNotOwned",
    "CrossNamespaceReference",
    "Forbidden",
    "DependencyNotReady",
    "Suspended",
    "RetryScheduled",
    "RetriesExhausted",
}
CAMEL = re.compile(r"^[A-Z][a-z]+(?:[A-Z][a-z]+)*$")


class StatusStore:
    """Keeps the status the report patches (the API server's part, for this pure property)."""

    def __init__(self) -> None:
        self.patches: list[dict[str, Any]] = []

    def patch_helmrelease_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        self.patches.append(status)

    def emit_event(self, *args: Any) -> None:
        pass


def helmrelease(generation: int, status: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "apiVersion": "helm.fluxcd.io/v1",
        "kind": "HelmRelease",
        "metadata": {"name": "app", "namespace": "team", "generation": generation},
        "spec": {"chart": {"repository": "https://charts.example", "name": "app", "version": "1.0.0"}},
        "status": status or {},
    }


# one step of a run, as the reconciler and the actions call the report
STEPS = st.sampled_from(
    [
        "install",
        "upgrade",
        "install_failed",
        "upgrade_failed",
        "test",
        "test_failed",
        "rollback",
        "rollback_failed",
        "forbidden",
        "cross_namespace",
    ]
)
# how a run ends
ENDS = st.sampled_from(
    [
        "in_sync",
        "refused",
        "retry",
        "exhausted",
        "chart_failed",
        "chart_failed_temporary",
        "values_failed",
        "dependencies",
        "suspended",
    ]
)
RUN = st.tuples(st.booleans(), st.lists(STEPS, max_size=4), ENDS)


def perform(report: StatusReport, step: str) -> None:
    """One helm action's phases, as ``release.actions`` records them (a write after each)."""
    phases: dict[str, list[tuple[Phase, str | None]]] = {
        "install": [(Phase.INSTALLING, None), (Phase.DEPLOYED, None)],
        "upgrade": [(Phase.UPGRADING, None), (Phase.DEPLOYED, None)],
        "install_failed": [(Phase.INSTALLING, None), (Phase.DEPLOY_FAILED, "InstallFailed")],
        "upgrade_failed": [(Phase.UPGRADING, None), (Phase.DEPLOY_FAILED, "UpgradeFailed")],
        "test": [(Phase.TESTING, None), (Phase.TESTED, None)],
        "test_failed": [(Phase.TESTING, None), (Phase.TEST_FAILED, None)],
        "rollback": [(Phase.ROLLING_BACK, None), (Phase.ROLLED_BACK, None)],
        "rollback_failed": [(Phase.ROLLING_BACK, None), (Phase.ROLLBACK_FAILED, None)],
    }
    if step == "forbidden":  # Reconciler._forbidden: ends the run
        report.forbidden("forbidden")
    elif step == "cross_namespace":  # Reconciler._refuse_references
        report.phase(Phase.FAILED, detail="refused", step="CrossNamespaceReference")
        report.stalled("CrossNamespaceReference", "refused")
        report.finished_generation()
    else:
        for phase, failed_step in phases[step]:
            report.phase(phase, revision="1.0.0", step=failed_step)
            report.write()
    report.write()


def finish(report: StatusReport, end: str) -> None:
    memory = memory_from_status(report.status)
    if end == "in_sync":
        report.settled(pl.Plan(pl.Action.NONE, "in sync"), memory, "1.0.0")
    elif end == "refused":
        report.settled(pl.Plan(pl.Action.REFUSE, "owned by another"), memory, "1.0.0")
    elif end == "retry":
        report.settled(pl.Plan(pl.Action.WAIT_RETRY, "backoff", retry_at=2e9, backoff=True), memory, "1.0.0")
    elif end == "exhausted":
        report.settled(pl.Plan(pl.Action.WAIT_RETRY, "retries exhausted", stalled=True), memory, "1.0.0")
    elif end == "chart_failed":
        report.chart_failed("no such version", temporary=False)
    elif end == "chart_failed_temporary":
        report.chart_failed("timed out", temporary=True)
    elif end == "values_failed":
        report.values_failed("bad values")
    elif end == "dependencies":
        report.waiting_for_dependencies("waiting for dependencies: team/db")
    else:
        report.suspended()


def check(status: dict[str, Any], generation: int, *, finished: bool, end: str = "") -> None:
    parsed = parse_status(status)
    ready = find_condition(parsed.conditions, ConditionType.READY)
    reconciling = find_condition(parsed.conditions, ConditionType.RECONCILING)
    stalled = find_condition(parsed.conditions, ConditionType.STALLED)
    true = ConditionStatus.TRUE
    assert not (ready and ready.status is true and reconciling and reconciling.status is true), status
    if stalled is not None and stalled.status is true:
        assert ready is not None and ready.status is ConditionStatus.FALSE, status
        assert reconciling is None or reconciling.status is not true, status
    if finished and ready is not None and ready.status in (true, ConditionStatus.FALSE):
        assert parsed.observed_generation == generation, status
    if finished and end != "suspended" and ready is not None and ready.status is ConditionStatus.FALSE:
        # kstatus reads only Reconciling and Stalled: Ready=False beside neither is "Current"
        assert (reconciling is not None and reconciling.status is true) or (
            stalled is not None and stalled.status is true
        ), status
    for condition in parsed.conditions:
        assert CAMEL.match(condition.reason), condition
        assert condition.reason in DOCUMENTED_REASONS, condition


@settings(max_examples=300, deadline=None)
@given(st.lists(RUN, min_size=1, max_size=5))
def test_every_run_keeps_the_kstatus_invariants(runs: list[tuple[bool, list[str], str]]) -> None:
    store = StatusStore()
    status: dict[str, Any] = {}
    generation = 1
    clock = iter(range(1_000_000, 2_000_000, 7))
    for new_generation, steps, end in runs:
        generation += int(new_generation)
        obj = helmrelease(generation, status)
        hr = parse_helmrelease(obj)
        report = StatusReport(
            store,  # type: ignore[arg-type]
            obj,
            hr,
            plan_policy(hr.policy, RetrySettings()),
            lambda: float(next(clock)),
        )
        report.started()
        before = len(store.patches)
        for step in steps:
            perform(report, step)
        finish(report, end)
        for patch in store.patches[before:]:  # what a reader sees after each write
            status = merged(status, patch)
            check(status, generation, finished=False)
        check(status, generation, finished=True, end=end)


def merged(status: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """A merge patch of the status as the API server applies it (null removes a field)."""
    result = dict(status)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = value
    return result
