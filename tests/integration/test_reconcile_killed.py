"""A helm operation that overruns its own timeouts is killed by the agent, and that is a failure.

Before, the agent's own kill at its subprocess deadline counted as an interruption ("the agent
was stopped, not the release proven bad"): the pending revision was unlocked after the grace and
the install tried again, for ever, with no failure counted and no remediation. Now the attempt
fails: the retry policy (here the default: no retries) bounds it, and the release ends Stalled.
"""

from __future__ import annotations

from typing import Any

from tests.conftest import Env
from tests.integration.reconcile_helpers import apply, hr_manifest, repo_chart, resync, status


def test_an_install_killed_at_the_agents_deadline_counts_and_is_bounded(
    env: Env, namespace: str, start_agent: Any
) -> None:
    # helm may take 3 x --timeout (pre-hooks, wait, post-hooks); a negative margin makes the
    # agent's deadline 3 x 20 - 52 = 8 s, while helm would wait 20 s for pods that never get Ready
    agent = start_agent(namespace, env["HELM_BIN"], helm_kill_margin_s=-52.0)
    apply(
        env, hr_manifest("slow", namespace, repo_chart(env), values={"unready": True}, wait=True, timeout=20)
    )

    agent.wait_for(
        "the killed install to count", lambda: status(agent, "slow", namespace).get("failures") == 1
    )
    events = [e for e in env.kube_json("events", "-n", namespace)["items"] if e["reason"] == "InstallFailed"]
    assert any("killed after" in e["message"] for e in events), [e["message"] for e in events]

    # the default install policy allows no retry: after the pending grace (if helm left a pending
    # revision) and the remediation, the release is Stalled, and stays so without helm calls
    stalled = agent.wait_condition("slow", namespace, "Stalled", "True", timeout=240)
    assert stalled["reason"] == "RetriesExhausted", stalled
    assert status(agent, "slow", namespace)["failures"] == 1
    calls = agent.helm_calls()
    resync(agent, f"{namespace}/slow")
    assert agent.helm_calls() == calls
    assert agent.agent.helm.calls["install"] == 1
