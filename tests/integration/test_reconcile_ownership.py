"""Ownership (helm 3 and 4): a release installed by hand is taken over, one that another
HelmRelease manages (Helm Operator antecedent annotation) is left alone, and deleting the
HelmRelease uninstalls its release."""

from __future__ import annotations

import time
from typing import Any

from tests.conftest import Env
from tests.integration.reconcile_helpers import (
    apply,
    config_message,
    helm_cli,
    hr_manifest,
    latest_revision,
    release_secrets,
    repo_chart,
    user_values,
    wait_ready,
    wait_revision,
)

OWNER_LABEL = "gitops-helm.io/owner"


def _install_by_hand(env: Env, helm: str, namespace: str, release: str) -> None:
    chart = f"{env['TESTENV_CHARTS']}/hello-0.1.0.tgz"
    helm_cli(env, helm, "install", release, chart, "-n", namespace, "--set", "message=by-hand", "--wait")


def test_release_installed_by_hand_is_taken_over(
    env: Env, namespace: str, helm: str, start_agent: Any
) -> None:
    _install_by_hand(env, helm, namespace, "app")
    assert OWNER_LABEL not in release_secrets(env, namespace, "app")[0]["metadata"]["labels"]
    agent = start_agent(namespace, helm)
    apply(env, hr_manifest("app", namespace, repo_chart(env), values={"message": "declared"}))
    wait_revision(agent, env, namespace, "app", 2)
    wait_ready(agent, "app", namespace)
    labels = release_secrets(env, namespace, "app")[-1]["metadata"]["labels"]
    assert labels[OWNER_LABEL] == f"{namespace}.app"
    assert user_values(env, helm, namespace, "app") == {"message": "declared"}
    assert config_message(env, namespace, "app") == "declared"
    assert agent.agent.helm.calls["install"] == 0


def test_release_of_another_helmrelease_is_not_touched(
    env: Env, namespace: str, helm: str, start_agent: Any
) -> None:
    _install_by_hand(env, helm, namespace, "app")
    for obj in ("deployment/app", "service/app", "configmap/app-config"):
        env.kubectl(
            "annotate", "-n", namespace, obj, f"helm.fluxcd.io/antecedent={namespace}:helmrelease/other"
        )
    agent = start_agent(namespace, helm)
    apply(env, hr_manifest("mine", namespace, repo_chart(env), releaseName="app", values={"message": "mine"}))
    released = agent.wait_condition("mine", namespace, "Released", "False")
    assert "other" in released["message"], released
    assert agent.condition("mine", namespace, "Ready")["status"] == "False"  # type: ignore[index]
    time.sleep(1)
    assert sum(agent.agent.helm.calls[c] for c in ("install", "upgrade", "uninstall", "rollback")) == 0
    assert latest_revision(env, namespace, "app") == (1, "deployed")
    assert config_message(env, namespace, "app") == "by-hand"


def test_deleting_the_helmrelease_uninstalls_the_release(
    env: Env, namespace: str, helm: str, start_agent: Any
) -> None:
    agent = start_agent(namespace, helm)
    apply(env, hr_manifest("app", namespace, repo_chart(env)))
    wait_ready(agent, "app", namespace)
    assert agent.hr("app", namespace)["metadata"]["finalizers"] == ["helm.fluxcd.io/finalizer"]

    env.kubectl("delete", "helmrelease", "app", "-n", namespace, "--timeout=60s")
    assert env.kubectl("get", "helmrelease", "-n", namespace, "-o", "name") == ""
    assert release_secrets(env, namespace, "app") == []
    assert env.kubectl("get", "deployment", "app", "-n", namespace, "--ignore-not-found") == ""
    assert agent.agent.helm.calls["uninstall"] == 1
