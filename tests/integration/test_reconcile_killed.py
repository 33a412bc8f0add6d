"""A helm operation that overruns its own timeouts is killed by the agent, and that is a failure.

Before, the agent's own kill at its subprocess deadline counted as an interruption ("the agent
was stopped, not the release proven bad"): the pending revision was unlocked after the grace and
the install tried again, for ever, with no failure counted and no remediation. Now the attempt
fails and is counted. With no retry budget configured (the default) it is retried with the
settings' backoff, and the HelmRelease says so: Ready=False naming the failed step
(InstallFailed) with the next retry time, Reconciling=True/RetryScheduled, never Stalled
(issue #8 item 5: Stalled is for a budget the user configured).
"""

from __future__ import annotations

from typing import Any

from gitops_helm.config import RetrySettings
from tests.conftest import Env
from tests.integration.reconcile_helpers import apply, hr_manifest, repo_chart, status


def test_an_install_killed_at_the_agents_deadline_counts_and_is_retried_with_backoff(
    env: Env, namespace: str, start_agent: Any
) -> None:
    # helm may take 3 x --timeout (pre-hooks, wait, post-hooks); a negative margin makes the
    # agent's deadline 3 x 20 - 52 = 8 s, while helm would wait 20 s for pods that never get Ready
    agent = start_agent(
        namespace,
        env["HELM_BIN"],
        helm_kill_margin_s=-52.0,
        # the killed helm leaves pending-install, unlocked after the grace (timeout 20 s + 1 s from
        # its start, about 13 s after the kill); the first backoff step must outlast that, or the
        # reinstall is due at once and the wait for it is never shown
        retry=RetrySettings(base_s=40.0, max_s=80.0, pending_grace_margin_s=1.0),
    )
    apply(
        env, hr_manifest("slow", namespace, repo_chart(env), values={"unready": True}, wait=True, timeout=20)
    )

    agent.wait_for(
        "the killed install to count", lambda: status(agent, "slow", namespace).get("failures") == 1
    )
    events = [e for e in env.kube_json("events", "-n", namespace)["items"] if e["reason"] == "InstallFailed"]
    assert any("killed after" in e["message"] for e in events), [e["message"] for e in events]

    # no retry budget configured: not Stalled; Ready names the failed step and when the next
    # attempt is, and Reconciling says a retry is scheduled
    def retry_scheduled() -> dict[str, Any] | None:
        ready = agent.condition("slow", namespace, "Ready")
        return ready if ready and "Next retry at 20" in ready.get("message", "") else None

    ready = agent.wait_for("Ready=False with the next retry time", retry_scheduled, timeout=120)
    assert (ready["status"], ready["reason"]) == ("False", "InstallFailed"), ready
    reconciling = agent.condition("slow", namespace, "Reconciling")
    assert reconciling is not None and reconciling["reason"] == "RetryScheduled", reconciling
    # the next attempt runs (and is killed and counted again): the release is never left alone
    agent.wait_for(
        "the retry to run and count",
        lambda: status(agent, "slow", namespace).get("failures") == 2,
        timeout=240,
    )
    assert agent.condition("slow", namespace, "Stalled") is None
    # the kill was recorded as the failure of that attempt; its unlock is not one more interruption
    assert status(agent, "slow", namespace).get("interruptions", 0) == 0
