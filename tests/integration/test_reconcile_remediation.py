"""Remediation (helm 3 and 4): a failed upgrade is rolled back, `rollback.retry` retries up to
`maxRetries` and then stalls until the spec changes, a failed test rolls the upgrade back or is
ignored with `test.ignoreFailures`; without remediation, corrected values after a failed upgrade
end Ready (with helm 3, by restoring the last deployed revision first)."""

from __future__ import annotations

import time
from typing import Any

from tests.conftest import Env
from tests.integration.reconcile_helpers import (
    FAIL_TIMEOUT,
    apply,
    cond,
    hr_manifest,
    latest_revision,
    patch_spec,
    release_secrets,
    repo_chart,
    status,
    user_values,
    wait_ready,
    wait_revision,
)

UNREADY_LABEL = "testenv.gitops-helm.io/unready"


def _statuses(env: Env, namespace: str, release: str) -> list[str]:
    return [s["metadata"]["labels"]["status"] for s in release_secrets(env, namespace, release)]


def test_failed_upgrade_is_rolled_back(env: Env, namespace: str, helm: str, start_agent: Any) -> None:
    agent = start_agent(namespace, helm)
    spec = {"rollback": {"enable": True}, "values": {"message": "good"}}
    apply(env, hr_manifest("app", namespace, repo_chart(env), **spec))
    wait_ready(agent, "app", namespace)

    # pods that never become Ready: the upgrade's --wait fails after the (short) timeout
    patch_spec(
        env, namespace, "app", {"timeout": FAIL_TIMEOUT, "values": {"message": "bad", "unready": True}}
    )
    # revision 2 is the failed upgrade, revision 3 the rollback to revision 1
    wait_revision(agent, env, namespace, "app", 3)
    agent.wait_for("rollbackCount 1", lambda: status(agent, "app", namespace).get("rollbackCount") == 1)
    assert _statuses(env, namespace, "app") == ["superseded", "failed", "deployed"]
    assert cond(agent, "app", namespace, "RolledBack")["status"] == "True"
    assert cond(agent, "app", namespace, "Released")["status"] == "False"
    assert user_values(env, helm, namespace, "app") == {"message": "good"}
    # without rollback.retry the failed desired state is not tried again
    time.sleep(2)
    assert latest_revision(env, namespace, "app") == (3, "deployed")
    assert agent.agent.helm.calls["upgrade"] == 1


def test_rollback_retry_max_retries_then_stalled_until_spec_changes(
    env: Env, namespace: str, helm: str, start_agent: Any
) -> None:
    agent = start_agent(namespace, helm)
    spec = {
        "rollback": {"enable": True, "retry": True, "maxRetries": 1},
        "values": {"message": "good"},
    }
    apply(env, hr_manifest("app", namespace, repo_chart(env), **spec))
    wait_ready(agent, "app", namespace)

    # pods that never become Ready: the upgrade's --wait fails after the (short) timeout
    patch_spec(
        env, namespace, "app", {"timeout": FAIL_TIMEOUT, "values": {"message": "bad", "unready": True}}
    )
    # 2: failed, 3: rollback, 4: failed retry, 5: rollback; then stalled
    wait_revision(agent, env, namespace, "app", 5)
    agent.wait_for(
        "Stalled=True", lambda: (agent.condition("app", namespace, "Stalled") or {}).get("status") == "True"
    )
    st = status(agent, "app", namespace)
    assert st["rollbackCount"] == 2
    assert _statuses(env, namespace, "app") == ["superseded", "failed", "superseded", "failed", "deployed"]
    assert agent.agent.helm.calls["upgrade"] == 2
    assert agent.agent.helm.calls["rollback"] == 2
    time.sleep(2.5)  # past the retry backoff (1s, 2s in these tests): nothing more happens
    assert latest_revision(env, namespace, "app") == (5, "deployed")
    assert agent.agent.helm.calls["upgrade"] == 2

    # A spec change starts over: the upgrade succeeds and the counters are reset. The timeout
    # goes back to its default: FAIL_TIMEOUT is too short to wait for pods on a busy machine.
    patch_spec(env, namespace, "app", {"timeout": None, "values": {"message": "fixed", "unready": False}})
    wait_revision(agent, env, namespace, "app", 6)
    wait_ready(agent, "app", namespace)
    st = status(agent, "app", namespace)
    assert st.get("rollbackCount", 0) == 0
    assert agent.condition("app", namespace, "Stalled") is None
    assert user_values(env, helm, namespace, "app")["message"] == "fixed"


def test_fixed_values_after_a_failed_upgrade_end_ready_without_the_failed_changes(
    env: Env, namespace: str, helm: str, start_agent: Any
) -> None:
    agent = start_agent(namespace, helm)
    apply(env, hr_manifest("app", namespace, repo_chart(env), wait=True, values={"message": "good"}))
    wait_ready(agent, "app", namespace)

    # no remediation configured: the failed revision 2 stays, its pods carry the unready label
    patch_spec(
        env, namespace, "app", {"timeout": FAIL_TIMEOUT, "values": {"message": "bad", "unready": True}}
    )
    agent.wait_for("the failed upgrade", lambda: latest_revision(env, namespace, "app")[1] == "failed")

    # the user corrects the values (the label's value removed) and restores the default timeout
    patch_spec(env, namespace, "app", {"timeout": None, "values": {"message": "fixed", "unready": None}})
    agent.wait_for(
        "Ready with the fixed values",
        lambda: (
            user_values(env, helm, namespace, "app") == {"message": "fixed"}
            and (agent.condition("app", namespace, "Ready") or {}).get("status") == "True"
        ),
        timeout=180,
    )
    deployment = env.kube_json("deployment", "app", "-n", namespace)
    pod_labels = deployment["spec"]["template"]["metadata"].get("labels", {})
    assert UNREADY_LABEL not in pod_labels, pod_labels
    assert latest_revision(env, namespace, "app")[1] == "deployed"
    st = status(agent, "app", namespace)
    assert st.get("rollbackCount", 0) == 0  # restoring the merge base is not a remediation
    if agent.agent.helm.major < 4:
        # helm 3 merged the upgrade against revision 1 and kept the label: revision 1 is
        # restored first (revision 3), then upgraded (revision 4)
        assert _statuses(env, namespace, "app") == ["superseded", "failed", "superseded", "deployed"]
        reasons = [e["reason"] for e in env.kube_json("events", "-n", namespace)["items"]]
        assert "Restored" in reasons
    else:
        assert _statuses(env, namespace, "app") == ["superseded", "failed", "deployed"]


def test_failed_test_rolls_back_the_upgrade(env: Env, namespace: str, helm: str, start_agent: Any) -> None:
    agent = start_agent(namespace, helm)
    spec = {
        "rollback": {"enable": True},
        "test": {"enable": True},
        "values": {"message": "good"},
    }
    apply(env, hr_manifest("app", namespace, repo_chart(env), **spec))
    wait_ready(agent, "app", namespace)
    assert cond(agent, "app", namespace, "Tested")["status"] == "True"

    patch_spec(env, namespace, "app", {"values": {"message": "bad", "testOutcome": "fail"}})
    # 2: upgraded (deployed, tests failed), 3: rollback to 1
    wait_revision(agent, env, namespace, "app", 3)
    agent.wait_for("rollbackCount 1", lambda: status(agent, "app", namespace).get("rollbackCount") == 1)
    assert cond(agent, "app", namespace, "RolledBack")["status"] == "True"
    assert cond(agent, "app", namespace, "Released")["status"] == "False"
    assert user_values(env, helm, namespace, "app") == {"message": "good"}
    assert agent.agent.helm.calls["test"] == 2


def test_failed_test_ignored_keeps_the_release(env: Env, namespace: str, helm: str, start_agent: Any) -> None:
    agent = start_agent(namespace, helm)
    spec = {
        "rollback": {"enable": True},
        "test": {"enable": True, "ignoreFailures": True},
        "values": {"testOutcome": "fail"},
    }
    apply(env, hr_manifest("app", namespace, repo_chart(env), **spec))
    agent.wait_condition("app", namespace, "Tested", "False")
    wait_ready(agent, "app", namespace)
    assert cond(agent, "app", namespace, "Released")["status"] == "True"
    assert status(agent, "app", namespace)["releaseStatus"] == "deployed"
    assert env.kube_json("pod", "app-test", "-n", namespace)["status"]["phase"] == "Failed"
    time.sleep(2)
    assert latest_revision(env, namespace, "app") == (1, "deployed")
    assert agent.agent.helm.calls["test"] == 1
    assert agent.agent.helm.calls["uninstall"] == 0
