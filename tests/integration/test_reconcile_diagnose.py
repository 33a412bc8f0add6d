"""A failed release says which of its objects fail and why (helm 3 and 4), issue #8 item 5.

Before, the status and the Event of a failed ``--wait`` install said only what helm printed
("context deadline exceeded", "resource not ready"); the user had to look for the Deployment,
its Pod and their Events. Now the message names them, with the Events the cluster's own
controllers wrote (kube-controller-manager, kube-scheduler); nothing here writes Events.
"""

from __future__ import annotations

import re
from typing import Any

from tests.conftest import Env
from tests.integration.reconcile_helpers import (
    FAIL_TIMEOUT,
    apply,
    cond,
    hr_manifest,
    patch_spec,
    repo_chart,
    wait_ready,
)


def hr_events(env: Env, namespace: str, name: str, reason: str) -> list[str]:
    """The messages of the agent's Events with ``reason`` on HelmRelease ``name``."""
    selector = f"involvedObject.kind=HelmRelease,involvedObject.name={name},reason={reason}"
    items = env.kube_json("events", "-n", namespace, "--field-selector", selector)["items"]
    return [str(e["message"]) for e in items]


def object_events(env: Env, namespace: str, kind: str, name: str) -> list[dict[str, Any]]:
    selector = f"involvedObject.kind={kind},involvedObject.name={name}"
    return list(env.kube_json("events", "-n", namespace, "--field-selector", selector)["items"])


def test_a_failed_install_names_the_unready_deployment_its_pod_and_their_events(
    env: Env, namespace: str, helm: str, start_agent: Any
) -> None:
    agent = start_agent(namespace, helm)
    # pods that never become Ready: helm's --wait fails after the (short) timeout
    apply(
        env,
        hr_manifest(
            "stuck", namespace, repo_chart(env), values={"unready": True}, wait=True, timeout=FAIL_TIMEOUT
        ),
    )
    message = agent.wait_for(
        "the InstallFailed Event",
        lambda: next(iter(hr_events(env, namespace, "stuck", "InstallFailed")), None),
    )

    assert f"Deployment {namespace}/stuck: 0/1 replicas ready" in message, message
    found = re.search(
        rf"Pod {namespace}/(stuck-[a-z0-9]+-[a-z0-9]+): Running, Ready=False \(ContainersNotReady\)", message
    )
    assert found, message
    # The deployment controller scaled the ReplicaSet up before the pod existed, so its Event was
    # written before helm began to wait: the diagnosis quotes it as the cluster has it. (The
    # failed install is purged afterwards; Events outlive their objects.)
    scaled = [
        e["message"]
        for e in object_events(env, namespace, "Deployment", "stuck")
        if e["reason"] == "ScalingReplicaSet"
    ]
    assert any(f"ScalingReplicaSet: {text}" in message for text in scaled), (message, scaled)
    # the pod named is the one the scheduler placed
    agent.wait_for(
        f"the scheduler's Event on pod {found[1]}",
        lambda: any(e["reason"] == "Scheduled" for e in object_events(env, namespace, "Pod", found[1])),
    )
    # simulated pods have no logs: not being able to read them is not worth a word
    assert "could not read" not in message, message

    # the status says the same (waited for: a later attempt may already be under way, and each
    # failed one writes its own diagnosis)
    def diagnosed_status() -> bool:
        released = cond(agent, "stuck", namespace, "Released")
        text = str(released.get("message", ""))
        return released["status"] == "False" and all(
            part in text
            for part in (f"Deployment {namespace}/stuck: 0/1 replicas ready", f"Pod {namespace}/stuck-")
        )

    agent.wait_for("the diagnosis on the Released condition", diagnosed_status)


def test_a_failed_helm_test_names_the_failed_test_pod(
    env: Env, namespace: str, helm: str, start_agent: Any
) -> None:
    agent = start_agent(namespace, helm)
    spec = {"test": {"enable": True, "ignoreFailures": True}, "values": {"testOutcome": "fail"}}
    apply(env, hr_manifest("checked", namespace, repo_chart(env), **spec))
    message = agent.wait_for(
        "the TestFailed Event", lambda: next(iter(hr_events(env, namespace, "checked", "TestFailed")), None)
    )
    assert (
        f"Pod {namespace}/checked-test: Failed, container check terminated (exit code 1, Error)" in message
    ), message
    # the release's own Deployment is Ready: a failed test names only the test pods
    assert f"Deployment {namespace}/checked" not in message, message


def test_a_failed_upgrade_names_the_stuck_rollout_and_its_new_pod(
    env: Env, namespace: str, helm: str, start_agent: Any
) -> None:
    agent = start_agent(namespace, helm)
    apply(env, hr_manifest("app", namespace, repo_chart(env), values={"message": "good"}))
    wait_ready(agent, "app", namespace)
    # the new pod never gets Ready; the old one keeps serving, so the ready count alone is met
    patch_spec(env, namespace, "app", {"wait": True, "timeout": FAIL_TIMEOUT, "values": {"unready": True}})
    message = agent.wait_for(
        "the UpgradeFailed Event", lambda: next(iter(hr_events(env, namespace, "app", "UpgradeFailed")), None)
    )
    assert f"Deployment {namespace}/app: 1 old replica not yet replaced" in message, message
    assert re.search(
        rf"Pod {namespace}/app-[a-z0-9]+-[a-z0-9]+: Running, Ready=False \(ContainersNotReady\)", message
    ), message
    scaled = [
        e["message"]
        for e in object_events(env, namespace, "Deployment", "app")
        if e["reason"] == "ScalingReplicaSet"
    ]
    assert any(f"ScalingReplicaSet: {text}" in message for text in scaled), (message, scaled)
