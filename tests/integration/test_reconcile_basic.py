"""A HelmRelease from the HTTP chart repository is installed, tested and reported Ready (helm 3 and 4)."""

from __future__ import annotations

import json

from tests.conftest import Env


def test_install_from_http_repo_then_no_helm_call_on_resync(
    env: Env, namespace: str, helm: str, start_agent: object
) -> None:
    agent = start_agent(namespace, helm)  # type: ignore[operator]
    hr = {
        "apiVersion": "helm.fluxcd.io/v1",
        "kind": "HelmRelease",
        "metadata": {"name": "web", "namespace": namespace},
        "spec": {
            "releaseName": "web",
            "chart": {"repository": env["TESTENV_CHARTS"], "name": "hello", "version": "0.1.0"},
            "values": {"replicaCount": 2},
            "test": {"enable": True},
        },
    }
    env.kubectl("apply", "-f", "-", input_text=json.dumps(hr))
    agent.wait_condition("web", namespace, "Ready")
    status = agent.hr("web", namespace)["status"]
    assert status["releaseStatus"] == "deployed"
    assert status["phase"] == "Succeeded"
    # test.enable implies wait: Ready comes after helm waited for the pods and ran the tests.
    assert env.kube_json("deployment", "web", "-n", namespace)["status"]["readyReplicas"] == 2
    assert env.kube_json("pod", "web-test", "-n", namespace)["status"]["phase"] == "Succeeded"

    # A resync of an unchanged release costs no helm call at all.
    calls = agent.helm_calls()
    agent.resync(f"{namespace}/web")
    assert agent.helm_calls() == calls
