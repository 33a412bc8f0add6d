"""A managed release changed or broken behind the agent's back is brought back (helm 3 and 4):
a person's ``helm rollback`` is corrected to the declared state, and a revision that a killed
helm left ``pending-install`` (the agent's own install, SIGKILLed as the OOM killer would) or
``pending-rollback`` (a person's ``helm rollback --wait``, SIGKILLed) is unlocked after its grace
and the release ends deployed with the declared values. The pending states are made by real helm
processes killed mid-operation, never by editing Helm storage."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import Any

from gitops_helm.config import RetrySettings
from tests.conftest import Env
from tests.integration.proctable import helm_processes
from tests.integration.reconcile_helpers import (
    apply,
    config_message,
    helm_cli,
    hr_manifest,
    latest_revision,
    patch_spec,
    release_secrets,
    repo_chart,
    resync,
    user_values,
    wait_ready,
    wait_revision,
)

#: spec.timeout of the HelmReleases whose helm is killed: long enough that helm is surely still
#: waiting when it is killed; with the margin below, the pending revision's grace is 21 s.
TIMEOUT_S = 20
RETRY = RetrySettings(base_s=1.0, max_s=5.0, pending_grace_margin_s=1.0)


def _statuses(env: Env, namespace: str, release: str) -> list[str]:
    return [s["metadata"]["labels"]["status"] for s in release_secrets(env, namespace, release)]


def _unlocked_events(env: Env, namespace: str) -> str:
    return env.kubectl(
        "get", "events", "-n", namespace, "--field-selector", "reason=PendingReleaseUnlocked", "-o", "name"
    )


def _wait_recovered(agent: Any, env: Env, namespace: str, release: str) -> None:
    """The release ends deployed, nothing in its history is pending, and the agent is done."""

    def recovered() -> bool:
        statuses = _statuses(env, namespace, release)
        return (
            bool(statuses)
            and statuses[-1] == "deployed"
            and not any(s.startswith("pending") for s in statuses)
        )

    agent.wait_for(f"{release} deployed with no pending revision", recovered, timeout=180)
    wait_ready(agent, release, namespace, timeout=120)


def test_a_manual_helm_rollback_is_corrected_to_the_declared_state(
    env: Env, namespace: str, helm: str, start_agent: Any
) -> None:
    agent = start_agent(namespace, helm, resync_interval_s=2.0)
    apply(env, hr_manifest("app", namespace, repo_chart(env), values={"message": "v1"}))
    wait_ready(agent, "app", namespace)
    patch_spec(env, namespace, "app", {"values": {"message": "v2"}})
    wait_revision(agent, env, namespace, "app", 2)
    wait_ready(agent, "app", namespace)

    helm_cli(env, helm, "rollback", "app", "1", "-n", namespace)
    # revision 3 (the rollback) is not the agent's: the next resync upgrades to the declared state
    wait_revision(agent, env, namespace, "app", 4)
    assert user_values(env, helm, namespace, "app") == {"message": "v2"}
    assert config_message(env, namespace, "app") == "v2"
    assert _statuses(env, namespace, "app") == ["superseded", "superseded", "superseded", "deployed"]
    wait_ready(agent, "app", namespace)
    # corrected once: later resyncs find it in sync
    calls = agent.helm_calls()
    resync(agent, f"{namespace}/app")
    assert agent.helm_calls() == calls, dict(agent.agent.helm.calls)
    assert latest_revision(env, namespace, "app") == (4, "deployed")


def test_a_pending_install_left_by_a_killed_helm_is_recovered(
    env: Env, namespace: str, helm: str, start_agent: Any
) -> None:
    agent = start_agent(namespace, helm, retry=RETRY)
    values = {"message": "first", "unready": True}  # helm waits for a pod that is never Ready
    apply(env, hr_manifest("app", namespace, repo_chart(env), values=values, wait=True, timeout=TIMEOUT_S))

    def agents_install() -> list[int]:
        if latest_revision(env, namespace, "app") != (1, "pending-install"):
            return []
        procs = helm_processes({helm}, namespace)
        return [p.pid for p in procs if (p.action, p.release) == ("install", "app")]

    (pid,) = agent.wait_for("the agent's helm install waiting on revision 1", agents_install)
    os.kill(pid, signal.SIGKILL)  # the agent's own child: as the OOM killer would
    agent.wait_for("the killed helm to be gone", lambda: not agents_install())
    assert latest_revision(env, namespace, "app") == (1, "pending-install")

    # the declared state is fixed meanwhile; the pending revision is taken over after its grace
    patch_spec(env, namespace, "app", {"values": {"message": "recovered", "unready": None}})
    _wait_recovered(agent, env, namespace, "app")
    assert user_values(env, helm, namespace, "app") == {"message": "recovered"}
    assert config_message(env, namespace, "app") == "recovered"
    assert _unlocked_events(env, namespace).strip(), "no PendingReleaseUnlocked event"


def test_a_pending_rollback_left_by_a_killed_helm_is_recovered(
    env: Env, namespace: str, helm: str, start_agent: Any, tmp_path: Path
) -> None:
    agent = start_agent(namespace, helm, retry=RETRY)
    # revision 1 is deployed without waiting, its pod never Ready; revision 2 is healthy
    values = {"message": "v1", "unready": True}
    # a pending-rollback revision is left alone for the longer of spec.timeout and
    # spec.rollback.timeout (plus the margin): both short here
    rollback = {"timeout": TIMEOUT_S}
    apply(
        env,
        hr_manifest("app", namespace, repo_chart(env), values=values, timeout=TIMEOUT_S, rollback=rollback),
    )
    wait_ready(agent, "app", namespace)
    patch_spec(env, namespace, "app", {"values": {"message": "v2", "unready": None}})
    wait_revision(agent, env, namespace, "app", 2)
    wait_ready(agent, "app", namespace)

    # a person rolls back to revision 1 and waits for it: helm waits on the unready pod ...
    wait_flag = "--wait=watcher" if agent.agent.helm.major >= 4 else "--wait"
    with (tmp_path / "helm-rollback.log").open("w") as log:
        rollback = subprocess.Popen(
            [helm, "rollback", "app", "1", "--namespace", namespace, wait_flag, "--timeout", "10m"],
            env=env.environ(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        agent.wait_for(
            "helm's rollback to write revision 3",
            lambda: latest_revision(env, namespace, "app") == (3, "pending-rollback"),
        )
        assert rollback.poll() is None, f"helm rollback exited {rollback.returncode}"
    finally:
        rollback.kill()  # ... and is killed: revision 3 stays pending-rollback
        rollback.wait()
    assert latest_revision(env, namespace, "app") == (3, "pending-rollback")

    _wait_recovered(agent, env, namespace, "app")
    assert user_values(env, helm, namespace, "app") == {"message": "v2"}
    assert config_message(env, namespace, "app") == "v2"
    assert _unlocked_events(env, namespace).strip(), "no PendingReleaseUnlocked event"
    deployment = env.kube_json("deployment", "app", "-n", namespace)
    labels = deployment["spec"]["template"]["metadata"].get("labels", {})
    assert "testenv.gitops-helm.io/unready" not in labels
