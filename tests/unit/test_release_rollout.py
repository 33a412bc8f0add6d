"""Recognising a helm 4 wait that judged a Deployment by a previous rollout's stale status."""

from __future__ import annotations

from gitops_helm.release import plan as pl
from gitops_helm.release.rollout import NotReady, deadline_written_since, not_ready_resources

# the shape of helm 4's wait error (pkg/kube/statuswait.go), two resources joined
HELM4 = (
    "UPGRADE FAILED: resource Deployment/team-a/web not ready. status: Failed, message: Progress deadline "
    "exceeded\nresource Deployment/team-a/api not ready. status: InProgress, message: Replicas: 0/1\n"
    "context deadline exceeded"
)
STARTED = 1_764_547_200.0  # 2025-12-01T00:00:00Z


def progressing(reason: str, updated: str) -> dict[str, object]:
    return {
        "status": {
            "conditions": [
                {"type": "Available", "status": "True", "lastUpdateTime": "2025-11-30T00:00:00Z"},
                {"type": "Progressing", "status": "False", "reason": reason, "lastUpdateTime": updated},
            ]
        }
    }


def test_not_ready_resources_are_read_from_helms_message() -> None:
    web, api = not_ready_resources(HELM4)
    assert web == NotReady("Deployment", "team-a", "web", "Failed", "Progress deadline exceeded")
    assert web.deadline_exceeded
    assert (api.name, api.deadline_exceeded) == ("api", False)
    assert not_ready_resources("UPGRADE FAILED: timed out waiting for the condition") == []


def test_only_a_failed_deployment_deadline_counts() -> None:
    (sts,) = not_ready_resources(
        "resource StatefulSet/ns/db not ready. status: Failed, message: Progress deadline exceeded"
    )
    assert not sts.deadline_exceeded


def test_a_deadline_written_before_the_attempt_is_stale() -> None:
    assert not deadline_written_since(
        progressing("ProgressDeadlineExceeded", "2025-11-30T23:59:59Z"), STARTED
    )
    # written in the attempt's first second or later: this attempt's own rollout failed
    assert deadline_written_since(progressing("ProgressDeadlineExceeded", "2025-12-01T00:00:00Z"), STARTED)
    assert deadline_written_since(progressing("ProgressDeadlineExceeded", "2025-12-01T00:03:00Z"), STARTED)
    # the controller recorded progress since helm looked: the verdict was stale
    assert not deadline_written_since(progressing("ReplicaSetUpdated", "2025-12-01T00:00:01Z"), STARTED)
    # nothing to show that it was stale: a verdict stands
    assert deadline_written_since({"status": {}}, STARTED)
    assert deadline_written_since(progressing("ProgressDeadlineExceeded", "not a time"), STARTED)


def test_an_unjudged_attempt_counts_as_an_interruption_and_is_bounded() -> None:
    want = pl.Desired("sha256:new", 1, "ns/app", policy=pl.Policy(max_interruptions=1, backoff=(10.0,)))
    mem = pl.Memory(last_applied_digest="sha256:old", last_release_revision=1)
    mem = pl.record_unjudged(mem, want, action=pl.ReleaseAction.UPGRADE, revision=2, now=0.0)
    assert (mem.interruptions, mem.failures, mem.last_release_revision) == (1, 0, 2)
    failed = pl.ObservedRelease(2, pl.ReleaseStatus.FAILED, 1, "ns/app", "sha256:new")
    assert pl.plan(failed, mem, want, now=0.0).action is pl.Action.UPGRADE  # retried, not remediated
    mem = pl.record_unjudged(mem, want, action=pl.ReleaseAction.UPGRADE, revision=3, now=0.0)
    assert (mem.interruptions, mem.failures) == (2, 1)
    again = pl.plan(
        pl.ObservedRelease(3, pl.ReleaseStatus.FAILED, 1, "ns/app", "sha256:new"), mem, want, now=0.0
    )
    assert (again.action, again.retry_at) == (pl.Action.WAIT_RETRY, 10.0)


def test_a_deployment_that_cannot_be_read_is_judged_a_real_failure() -> None:
    # an API error while judging must not escape: the failed upgrade would go unrecorded and be
    # retried at once, without backoff, for as long as the API keeps failing
    from typing import Any, cast

    from gitops_helm.adapters.kube import Kube, KubeError, KubeErrorKind
    from gitops_helm.release.rollout import judged_on_stale_status

    class UnreachableAPI:
        def get(self, *args: Any) -> dict[str, Any] | None:
            raise KubeError(KubeErrorKind.TEMPORARY, "get deployment", "connection refused")

    message = (
        "UPGRADE FAILED: resource Deployment/team-a/web not ready. status: Failed, "
        "message: Progress deadline exceeded"
    )
    assert not_ready_resources(message)[0].deadline_exceeded
    assert judged_on_stale_status(cast(Kube, UnreachableAPI()), message, started=0.0) is False
