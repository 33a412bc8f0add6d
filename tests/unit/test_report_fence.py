"""A replica that lost the leader Lease writes no HelmRelease status and emits no Event: its view
is stale, and the whole status it would patch would roll the new leader's memory back."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from gitops_helm.api import Phase, SpecError, parse_helmrelease
from gitops_helm.config import RetrySettings
from gitops_helm.release.desired import plan_policy
from gitops_helm.release.report import StatusReport, report_invalid


class Recorder:
    def __init__(self) -> None:
        self.patches: list[dict[str, Any]] = []
        self.events: list[str] = []

    def patch_helmrelease_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        self.patches.append(status)

    def emit_event(self, obj: Any, kind: str, reason: str, message: str, component: str) -> None:
        self.events.append(reason)


def _obj() -> dict[str, Any]:
    return {
        "apiVersion": "helm.fluxcd.io/v1",
        "kind": "HelmRelease",
        "metadata": {"name": "app", "namespace": "team", "generation": 3},
        "spec": {"chart": {"repository": "https://charts.example", "name": "app", "version": "1.0.0"}},
        "status": {"observedGeneration": 2, "lastReleaseRevision": 4},
    }


def test_a_fenced_status_report_writes_and_emits_nothing() -> None:
    kube, leader = Recorder(), [True]
    obj = _obj()
    hr = parse_helmrelease(obj)
    report = StatusReport(
        kube,  # type: ignore[arg-type]
        obj,
        hr,
        plan_policy(hr.policy, RetrySettings()),
        lambda: 1e9,
        lambda: leader[0],
    )
    leader[0] = False
    report.values_failed("bad values")
    assert (kube.patches, kube.events) == ([], [])
    leader[0] = True
    report.phase(Phase.CHART_FETCHED)
    report.write()
    report.event(False, "Recorded", "now")
    assert (len(kube.patches), kube.events) == (1, ["Recorded"])


def test_a_fenced_replica_does_not_report_an_invalid_spec() -> None:
    kube = Recorder()
    now = datetime.fromtimestamp(1e9, UTC)
    err = SpecError("team/app", [])
    report_invalid(kube, _obj(), "team/app", err, now, may_write=lambda: False)  # type: ignore[arg-type]
    assert (kube.patches, kube.events) == ([], [])
    report_invalid(kube, _obj(), "team/app", err, now)  # type: ignore[arg-type]
    assert (len(kube.patches), kube.events) == (1, ["InvalidSpec"])
