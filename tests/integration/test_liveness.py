"""/healthz fails when a loop of the agent stops making progress, so Kubernetes restarts it.

A real agent (in this process, against the real API server) with short liveness allowances; a
worker is made to hang on the controller's lock, as a deadlock would. Every network call and
subprocess has its own deadline; this is what catches a loop stuck for any other reason.
"""

from __future__ import annotations

import http.client
from typing import Any

from gitops_helm.config import LivenessSettings
from tests.conftest import Env
from tests.integration.reconcile_helpers import apply, hr_manifest, repo_chart


def healthz(agent: Any) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", agent.agent.server.port, timeout=10)
    try:
        conn.request("GET", "/healthz")
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def test_a_stuck_worker_fails_healthz_until_it_moves_again(
    env: Env, namespace: str, start_agent: Any
) -> None:
    agent = start_agent(namespace, env["HELM_BIN"], liveness=LivenessSettings(worker_s=2.0))
    agent.wait_for("a healthy agent", lambda: healthz(agent)[0] == 200)
    controller = agent.agent.controller
    with controller._lock:  # every worker takes this lock before it reconciles a key
        controller.queue.add(f"{namespace}/stuck")
        _, body = agent.wait_for("/healthz to fail", lambda: (r := healthz(agent))[0] == 503 and r)
        assert "not making progress: worker-" in body, body
        assert healthz(agent)[0] == 503  # it stays failed while the worker is stuck
    # once the worker moves again, the agent is healthy again without a restart
    agent.wait_for("/healthz to recover", lambda: healthz(agent)[0] == 200)


def test_a_worker_waiting_on_a_long_helm_operation_is_not_stuck(
    env: Env, namespace: str, start_agent: Any
) -> None:
    """The helm subprocess's own timeout extends its worker's allowance: a --wait of 8 s with a
    2 s allowance keeps /healthz green, and the release fails on its own terms."""
    agent = start_agent(namespace, env["HELM_BIN"], liveness=LivenessSettings(worker_s=2.0))
    agent.wait_for("a healthy agent", lambda: healthz(agent)[0] == 200)
    apply(
        env, hr_manifest("slow", namespace, repo_chart(env), values={"unready": True}, wait=True, timeout=8)
    )
    seen: list[tuple[int, str]] = []

    def install_failed() -> bool:
        seen.append(healthz(agent))
        return bool((agent.hr("slow", namespace).get("status") or {}).get("failures", 0) >= 1)

    agent.wait_for("the install to fail its --wait", install_failed, timeout=120)
    assert len(seen) > 1 and all(code == 200 for code, _ in seen), seen


def test_a_stuck_chart_repository_poll_fails_healthz(env: Env, namespace: str, start_agent: Any) -> None:
    """The chart-source poll loop beats like every other loop: held on its lock (as a deadlock
    would hold it), /healthz names it; released, the agent is healthy again."""
    agent = start_agent(
        namespace,
        env["HELM_BIN"],
        chart_poll_interval_s=0.5,
        liveness=LivenessSettings(sync_s=1.0, margin_s=1.0),
    )
    poll = agent.agent.resolver.repo_poll
    agent.wait_for("a healthy agent that has polled", lambda: healthz(agent)[0] == 200 and poll.polls > 0)
    with poll._lock:  # the poll takes this lock at the end of every round
        _, body = agent.wait_for("/healthz to fail", lambda: (r := healthz(agent))[0] == 503 and r)
        assert "not making progress: chart-repository-poll" in body, body
    agent.wait_for("/healthz to recover", lambda: healthz(agent)[0] == 200)
