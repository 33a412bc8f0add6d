"""driftDetection: live edits of release objects are reported (warn) or corrected (enabled)."""

from __future__ import annotations

import json
import time

from tests.conftest import Env


def _hr(env: Env, namespace: str, mode: str) -> dict[str, object]:
    return {
        "apiVersion": "helm.fluxcd.io/v1",
        "kind": "HelmRelease",
        "metadata": {"name": "drifty", "namespace": namespace},
        "spec": {
            "releaseName": "drifty",
            "chart": {"repository": env["TESTENV_CHARTS"], "name": "hello", "version": "0.1.0"},
            "values": {"replicaCount": 2, "message": "declared"},
            "driftDetection": {"mode": mode},
        },
    }


def _edit_live_objects(env: Env, namespace: str) -> None:
    env.kubectl("-n", namespace, "scale", "deployment", "drifty", "--replicas=5")
    env.kubectl(
        "-n",
        namespace,
        "patch",
        "configmap",
        "drifty-config",
        "--type",
        "merge",
        "-p",
        '{"data":{"message":"edited by hand"}}',
    )


def _drift_events(env: Env, namespace: str) -> list[str]:
    events = env.kube_json("events", "-n", namespace)["items"]
    return [e["message"] for e in events if e.get("reason") == "DriftDetected"]


def test_enabled_mode_corrects_live_edits(env: Env, namespace: str, helm: str, start_agent: object) -> None:
    agent = start_agent(namespace, helm)  # type: ignore[operator]
    env.kubectl("apply", "-f", "-", input_text=json.dumps(_hr(env, namespace, "enabled")))
    agent.wait_condition("drifty", namespace, "Ready")
    revision = agent.hr("drifty", namespace)["status"]["lastReleaseRevision"]

    _edit_live_objects(env, namespace)
    agent.agent.controller.queue.add(f"{namespace}/drifty")

    def corrected() -> bool:
        replicas = env.kube_json("deployment", "drifty", "-n", namespace)["spec"]["replicas"]
        message = env.kube_json("configmap", "drifty-config", "-n", namespace)["data"]["message"]
        return replicas == 2 and message == "declared"

    agent.wait_for("live objects corrected", corrected, timeout=60)
    # The event is emitted before the correcting upgrade; the status is written after it.
    assert any("/spec/replicas" in m for m in _drift_events(env, namespace))
    agent.wait_for(
        f"lastReleaseRevision {revision + 1}",
        lambda: agent.hr("drifty", namespace)["status"]["lastReleaseRevision"] == revision + 1,
    )
    # Once corrected, a resync finds nothing and makes no helm call.
    agent.resync(f"{namespace}/drifty")  # the correcting run has ended too
    calls = agent.helm_calls()
    agent.resync(f"{namespace}/drifty")
    assert agent.helm_calls() == calls


def test_warn_mode_reports_but_does_not_touch(
    env: Env, namespace: str, helm: str, start_agent: object
) -> None:
    agent = start_agent(namespace, helm)  # type: ignore[operator]
    env.kubectl("apply", "-f", "-", input_text=json.dumps(_hr(env, namespace, "warn")))
    agent.wait_condition("drifty", namespace, "Ready")
    calls = agent.helm_calls()

    _edit_live_objects(env, namespace)
    agent.agent.controller.queue.add(f"{namespace}/drifty")
    agent.wait_for("a DriftDetected event", lambda: _drift_events(env, namespace), timeout=60)
    time.sleep(1)
    assert env.kube_json("deployment", "drifty", "-n", namespace)["spec"]["replicas"] == 5
    assert env.kube_json("configmap", "drifty-config", "-n", namespace)["data"]["message"] == "edited by hand"
    assert agent.helm_calls() == calls
