"""suspend, install.createNamespace and the purge of a failed install (helm 3 and helm 4)."""

from __future__ import annotations

import uuid

from tests.conftest import Env, release_finalizers
from tests.integration.reconcile_helpers import (
    FAIL_TIMEOUT,
    apply,
    eventually,
    hr_manifest,
    latest_revision,
    patch_spec,
    release_secrets,
    repo_chart,
    wait_ready,
)


def test_suspend_stops_changes_until_resumed(
    env: Env, namespace: str, helm: str, start_agent: object
) -> None:
    agent = start_agent(namespace, helm)  # type: ignore[operator]
    apply(env, hr_manifest("paused", namespace, repo_chart(env), values={"message": "one"}))
    agent.wait_condition("paused", namespace, "Ready")
    patch_spec(env, namespace, "paused", {"suspend": True, "values": {"message": "two"}})
    agent.wait_for(
        "the Suspended condition",
        lambda: (agent.condition("paused", namespace, "Reconciling") or {}).get("reason") == "Suspended",
    )
    assert len(release_secrets(env, namespace, "paused")) == 1  # no upgrade while suspended
    patch_spec(env, namespace, "paused", {"suspend": False})
    agent.wait_for(
        "the upgrade after resuming",
        lambda: env.kube_json("configmap", "paused-config", "-n", namespace)["data"]["message"] == "two",
    )


def test_create_namespace_installs_into_a_new_namespace(
    env: Env, namespace: str, helm: str, start_agent: object
) -> None:
    target = f"{namespace}-target"[:55] + uuid.uuid4().hex[:4]
    agent = start_agent(namespace, helm)  # type: ignore[operator]
    apply(
        env,
        hr_manifest(
            "elsewhere", namespace, repo_chart(env), targetNamespace=target, install={"createNamespace": True}
        ),
    )
    try:
        wait_ready(agent, "elsewhere", namespace)
        assert latest_revision(env, target, "elsewhere") == (1, "deployed")
        # Without wait (spec.wait unset, no tests, no remediation) Ready says that helm installed
        # the release, not that its pods are Ready yet: wait for them.
        eventually(
            agent,
            "1 ready replica of elsewhere",
            lambda: (
                env.kube_json("deployment", "elsewhere", "-n", target)["status"].get("readyReplicas") == 1
            ),
            timeout=120,
        )
    finally:
        release_finalizers(env, namespace)
        env.kubectl("delete", "namespace", target, "--wait=false", check=False)


def test_failed_install_is_purged_and_reported(
    env: Env, namespace: str, helm: str, start_agent: object
) -> None:
    agent = start_agent(namespace, helm)  # type: ignore[operator]
    apply(
        env,
        hr_manifest(
            "broken", namespace, repo_chart(env), values={"unready": True}, wait=True, timeout=FAIL_TIMEOUT
        ),
    )

    # purged after failing (no retry budget is configured, so it is then installed again with
    # backoff: the purge shows in the Events, not as a lasting absence of the release)
    def purged() -> bool:
        failures = (agent.hr("broken", namespace).get("status") or {}).get("failures", 0)
        events = env.kube_json("events", "-n", namespace)["items"]
        return failures >= 1 and any(
            e["reason"] == "Uninstalled" and "install failure" in e["message"] for e in events
        )

    agent.wait_for("the install to be purged after failing", purged, timeout=60)
    released = agent.condition("broken", namespace, "Released")
    assert released is not None and released["status"] == "False"
    events = [e for e in env.kube_json("events", "-n", namespace)["items"] if e["reason"] == "InstallFailed"]
    assert events, "an InstallFailed event names the failure"
