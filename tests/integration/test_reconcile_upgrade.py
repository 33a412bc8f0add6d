"""Upgrades: on a values edit, on a Git commit under the chart path (and not elsewhere), and on a
new chart version matching a semver range (helm 3 and 4)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gitops_helm.config import GitSourceSettings
from tests.conftest import Env
from tests.integration.reconcile_helpers import (
    GitRepo,
    apply,
    assert_quiet_resync,
    config_message,
    helm_cli,
    hr_manifest,
    latest_revision,
    patch_spec,
    publish,
    release_secrets,
    repo_chart,
    resync,
    status,
    unique_name,
    user_values,
    wait_ready,
    wait_revision,
)


def test_upgrade_on_values_change(env: Env, namespace: str, helm: str, start_agent: Any) -> None:
    agent = start_agent(namespace, helm)
    apply(env, hr_manifest("app", namespace, repo_chart(env), values={"message": "one"}))
    wait_ready(agent, "app", namespace)
    assert latest_revision(env, namespace, "app") == (1, "deployed")

    patch_spec(env, namespace, "app", {"values": {"message": "two", "replicaCount": 2}})
    wait_revision(agent, env, namespace, "app", 2)
    agent.wait_for(
        "observedGeneration 2", lambda: status(agent, "app", namespace).get("observedGeneration") == 2
    )
    wait_ready(agent, "app", namespace)
    assert user_values(env, helm, namespace, "app") == {"message": "two", "replicaCount": 2}
    assert config_message(env, namespace, "app") == "two"
    agent.wait_for(
        "2 ready replicas",
        lambda: env.kube_json("deployment", "app", "-n", namespace)["status"].get("readyReplicas") == 2,
    )
    assert len(release_secrets(env, namespace, "app")) == 2


def test_upgrade_on_git_commit_under_chart_path_only(
    env: Env, namespace: str, helm: str, start_agent: Any, tmp_path: Path
) -> None:
    repo = GitRepo(env, tmp_path)
    repo.add_chart("charts/app", message="v1")
    repo.write("docs/README.md", "docs\n")
    sha1 = repo.commit_and_push("chart v1")
    # resync is slow here: only the Git poll may notice the commits
    agent = start_agent(namespace, helm, resync_interval_s=600.0, git=GitSourceSettings(poll_interval_s=1.0))
    apply(env, hr_manifest("app", namespace, {"git": repo.http_url, "ref": "master", "path": "charts/app"}))
    wait_ready(agent, "app", namespace)
    assert status(agent, "app", namespace)["revision"] == sha1

    # A commit elsewhere in the repository: the Git poll does not even reconcile; a resync sees
    # the new commit (the status names it) and upgrades nothing.
    repo.write("docs/README.md", "more docs\n")
    sha2 = repo.commit_and_push("docs only")

    def resynced_to_sha2() -> bool:
        resync(agent, f"{namespace}/app")
        return bool(status(agent, "app", namespace)["revision"] == sha2)

    agent.wait_for("a resync that sees the docs commit", resynced_to_sha2)
    assert latest_revision(env, namespace, "app") == (1, "deployed")
    assert agent.agent.helm.calls["upgrade"] == 0
    assert_quiet_resync(agent, "app", namespace)  # and no status write on every later resync

    # A commit under the chart path: the Git poll notices it, and the release is upgraded.
    repo.set_chart_values("charts/app", message="v2")
    sha3 = repo.commit_and_push("chart v2")
    wait_revision(agent, env, namespace, "app", 2)
    agent.wait_for("revision sha3 on the status", lambda: status(agent, "app", namespace)["revision"] == sha3)
    assert config_message(env, namespace, "app") == "v2"
    assert len(release_secrets(env, namespace, "app")) == 2


def test_upgrade_to_new_chart_version_in_semver_range(
    env: Env, namespace: str, helm: str, start_agent: Any, tmp_path: Path
) -> None:
    name = publish(tmp_path, unique_name(), "0.1.0")
    agent = start_agent(namespace, helm, resync_interval_s=2.0, chart_refresh_interval_s=1.0)
    chart = {**repo_chart(env, name=name, version="^0.1.0")}
    apply(env, hr_manifest("ranged", namespace, chart))
    wait_ready(agent, "ranged", namespace)
    assert status(agent, "ranged", namespace)["revision"] == "0.1.0"

    # 0.1.1 is in the range, 0.2.0 is not.
    publish(tmp_path, name, "0.1.1", message="patch")
    publish(tmp_path, name, "0.2.0", message="minor")
    wait_revision(agent, env, namespace, "ranged", 2)
    agent.wait_for("revision 0.1.1", lambda: status(agent, "ranged", namespace)["revision"] == "0.1.1")
    assert config_message(env, namespace, "ranged") == "patch"
    assert f"{name}-0.1.1" in helm_cli(env, helm, "list", "-n", namespace)
