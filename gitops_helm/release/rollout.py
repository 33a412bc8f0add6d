"""Whether a failed ``--wait`` judged a Deployment by a previous rollout's stale status.

Place in the flow: ``actions`` asks :func:`judged_on_stale_status` after a helm upgrade failed
its wait; when the answer is yes, the attempt is recorded as one without a verdict (bounded like
an interruption, ``plan.record_unjudged``) instead of a failure of the desired state.

Why (helm 4 only). Helm 4 waits with kstatus and gives up at once on a resource whose status is
*Failed*; for a Deployment that is ``Progressing=False`` with reason ``ProgressDeadlineExceeded``
at the observed generation ("Progress deadline exceeded"). The deployment controller keeps that
condition from a previous rollout when an upgrade returns the pod template to one an existing
ReplicaSet already has (the usual "fix the values" after a failed rollout): it observes the new
generation, finds that ReplicaSet, and measures no progress yet in that first sync, so the stale
condition now describes the current generation. Helm 4 then fails the upgrade within a second,
although the rollout is fine a moment later. Helm 3 checks ready replicas instead and is not
affected.

The test is strict, so a real failure is never excused: every resource helm names as not ready
must be a Deployment failed with "Progress deadline exceeded", and for each one the live
Deployment's Progressing condition must not have been written as ``ProgressDeadlineExceeded``
during this attempt (its ``lastUpdateTime`` is older than the attempt's start, whole seconds,
or the controller has since recorded progress).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gitops_helm import log as logging
from gitops_helm.adapters.kube import Kube
from gitops_helm.errors import GitopsHelmError

log = logging.get(__name__)

__all__ = ["NotReady", "deadline_written_since", "judged_on_stale_status", "not_ready_resources"]

# helm 4 (pkg/kube/statuswait.go): "resource <Kind>/<namespace>/<name> not ready. status: <S>, message: <M>"
_NOT_READY = re.compile(
    r"resource (?P<kind>[A-Za-z0-9]+)/(?P<namespace>[^/\s]*)/(?P<name>[^\s]+) not ready\. "
    r"status: (?P<status>\w+), message: (?P<message>[^\n]*)"
)
_DEADLINE_MESSAGE = "progress deadline exceeded"
_DEADLINE_REASON = "ProgressDeadlineExceeded"


@dataclass(frozen=True)
class NotReady:
    kind: str
    namespace: str
    name: str
    status: str
    message: str

    @property
    def deadline_exceeded(self) -> bool:
        return (
            self.kind == "Deployment"
            and self.status == "Failed"
            and self.message.strip().lower().startswith(_DEADLINE_MESSAGE)
        )


def not_ready_resources(helm_message: str) -> list[NotReady]:
    """The resources a helm 4 wait reported as not ready, in the order given."""
    return [NotReady(**m.groupdict()) for m in _NOT_READY.finditer(helm_message)]


def _epoch(text: object) -> float | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def deadline_written_since(deployment: dict[str, Any], started: float) -> bool:
    """The live Deployment says its progress deadline was exceeded, written since ``started``."""
    conditions = deployment.get("status", {}).get("conditions") or []
    for condition in conditions:
        if not isinstance(condition, dict) or condition.get("type") != "Progressing":
            continue
        if condition.get("reason") != _DEADLINE_REASON:
            return False  # the controller has recorded progress since: the verdict was stale
        updated = _epoch(condition.get("lastUpdateTime")) or _epoch(condition.get("lastTransitionTime"))
        # whole seconds: a condition written in the attempt's first second counts as fresh
        return updated is None or updated >= int(started)
    return True  # no Progressing condition: nothing shows that the verdict was stale


def judged_on_stale_status(kube: Kube, helm_message: str, started: float) -> bool:
    """Whether helm failed the wait only on Deployments' progress deadlines of earlier rollouts."""
    resources = not_ready_resources(helm_message)
    if not resources or not all(r.deadline_exceeded for r in resources):
        return False
    for resource in resources:
        try:
            live = kube.get("apps/v1", "Deployment", resource.namespace, resource.name)
        except GitopsHelmError as exc:
            # unknown: judge it a real failure, so that it is recorded and backed off (an error
            # escaping here would lose the failure and retry at once)
            log.warning(
                "cannot read a Deployment to judge a rollout", deployment=resource.name, error=str(exc)
            )
            return False
        if live is None or deadline_written_since(live, started):
            return False
    return True
