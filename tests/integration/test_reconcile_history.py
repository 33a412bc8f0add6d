"""Release history (helm 3 and 4): `resetValues: false` keeps values set outside the HelmRelease,
the default resets them (a manual `helm upgrade` is corrected), and `maxHistory` bounds the
revisions kept in Helm storage."""

from __future__ import annotations

from typing import Any

from tests.conftest import Env
from tests.integration.reconcile_helpers import (
    apply,
    config_message,
    helm_cli,
    hr_manifest,
    latest_revision,
    patch_spec,
    release_record,
    release_secrets,
    repo_chart,
    resync,
    user_values,
    wait_ready,
    wait_revision,
)


def _manual_upgrade(env: Env, helm: str, namespace: str, release: str, *sets: str) -> None:
    chart = f"{env['TESTENV_CHARTS']}/hello-0.1.0.tgz"
    args = ["upgrade", release, chart, "-n", namespace, "--reuse-values"]
    for s in sets:
        args += ["--set", s]
    helm_cli(env, helm, *args)


def test_manual_helm_upgrade_is_corrected_to_the_declared_values(
    env: Env, namespace: str, helm: str, start_agent: Any
) -> None:
    agent = start_agent(namespace, helm, resync_interval_s=2.0)
    apply(env, hr_manifest("app", namespace, repo_chart(env), values={"message": "declared"}))
    wait_ready(agent, "app", namespace)

    _manual_upgrade(env, helm, namespace, "app", "message=manual", "replicaCount=3")
    assert config_message(env, namespace, "app") == "manual"
    # revision 2 is not the agent's: the next resync upgrades back (values reset by default)
    wait_revision(agent, env, namespace, "app", 3)
    assert user_values(env, helm, namespace, "app") == {"message": "declared"}
    assert config_message(env, namespace, "app") == "declared"
    assert release_secrets(env, namespace, "app")[-1]["metadata"]["labels"]["gitops-helm.io/owner"]
    # corrected once: the next resync finds it in sync
    calls = agent.helm_calls()
    resync(agent, f"{namespace}/app")
    assert agent.helm_calls() == calls
    assert latest_revision(env, namespace, "app") == (3, "deployed")


def test_reset_values_false_keeps_values_set_outside(
    env: Env, namespace: str, helm: str, start_agent: Any
) -> None:
    agent = start_agent(namespace, helm, resync_interval_s=2.0)
    spec = {"resetValues": False, "values": {"message": "declared"}}
    apply(env, hr_manifest("app", namespace, repo_chart(env), **spec))
    wait_ready(agent, "app", namespace)

    _manual_upgrade(env, helm, namespace, "app", "message=manual", "replicaCount=3")
    # the agent upgrades to its values merged over the previous release's values
    wait_revision(agent, env, namespace, "app", 3)
    assert user_values(env, helm, namespace, "app") == {"message": "declared", "replicaCount": 3}
    agent.wait_for(
        "3 ready replicas",
        lambda: env.kube_json("deployment", "app", "-n", namespace)["status"].get("readyReplicas") == 3,
    )


def test_max_history_limits_stored_revisions(env: Env, namespace: str, helm: str, start_agent: Any) -> None:
    agent = start_agent(namespace, helm)
    apply(env, hr_manifest("app", namespace, repo_chart(env), maxHistory=2, values={"message": "v1"}))
    wait_ready(agent, "app", namespace)
    for n in (2, 3, 4):
        patch_spec(env, namespace, "app", {"values": {"message": f"v{n}"}})
        wait_revision(agent, env, namespace, "app", n)
    secrets = release_secrets(env, namespace, "app")
    assert [int(s["metadata"]["labels"]["version"]) for s in secrets] == [3, 4]
    assert release_record(secrets[-1])["config"] == {"message": "v4"}
    assert latest_revision(env, namespace, "app") == (4, "deployed")
