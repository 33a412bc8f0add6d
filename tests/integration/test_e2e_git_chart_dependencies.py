"""A Git chart with dependencies, end to end (helm 3 and 4): chart ``app`` in a Git repository
depends on its sibling ``lib`` (``file://../lib``) and on the environment's Helm repository
(``hello`` from ``$TESTENV_CHARTS``). The agent runs ``helm dependency update`` on the export, the
release deploys the objects of all three charts, and a commit to the sibling alone upgrades it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gitops_helm.config import GitSourceSettings
from tests.conftest import Env
from tests.integration.reconcile_helpers import (
    GitRepo,
    apply,
    config_message,
    helm_cli,
    hr_manifest,
    latest_revision,
    release_record,
    release_secrets,
    status,
    wait_ready,
    wait_revision,
)


def _configmap_template(suffix: str) -> str:
    return (
        "apiVersion: v1\nkind: ConfigMap\n"
        f"metadata:\n  name: {{{{ .Release.Name }}}}-{suffix}\n"
        "data:\n  greeting: {{ .Values.greeting | quote }}\n"
    )


def _chart_repo(env: Env, tmp_path: Path) -> GitRepo:
    repo = GitRepo(env, tmp_path)
    repo.write("charts/lib/Chart.yaml", "apiVersion: v2\nname: lib\nversion: 0.1.0\n")
    repo.write("charts/lib/values.yaml", "greeting: lib-v1\n")
    repo.write("charts/lib/templates/configmap.yaml", _configmap_template("lib"))
    repo.write(
        "charts/app/Chart.yaml",
        "apiVersion: v2\nname: app\nversion: 1.0.0\ndependencies:\n"
        "- name: lib\n  version: 0.1.0\n  repository: file://../lib\n"
        f"- name: hello\n  version: 0.1.0\n  repository: {env['TESTENV_CHARTS']}\n",
    )
    repo.write("charts/app/values.yaml", "greeting: app\nhello:\n  message: hello-from-app\n")
    repo.write("charts/app/templates/configmap.yaml", _configmap_template("app"))
    return repo


def _greeting(env: Env, namespace: str, name: str) -> str:
    return str(env.kube_json("configmap", name, "-n", namespace)["data"]["greeting"])


def test_git_chart_with_sibling_and_repository_dependencies_deploys_both_and_follows_the_sibling(
    env: Env, namespace: str, helm: str, start_agent: Any, tmp_path: Path
) -> None:
    repo = _chart_repo(env, tmp_path)
    first = repo.commit_and_push("app with a sibling and a repository dependency")
    # a long resync: only the Git chart poll can notice the commit to the sibling
    agent = start_agent(namespace, helm, resync_interval_s=600.0, git=GitSourceSettings(poll_interval_s=1.0))
    apply(env, hr_manifest("deps", namespace, {"git": repo.http_url, "ref": "master", "path": "charts/app"}))
    wait_ready(agent, "deps", namespace)
    assert status(agent, "deps", namespace)["revision"] == first
    assert latest_revision(env, namespace, "deps") == (1, "deployed")

    # helm dependency update ran: it wrote the lock of both dependencies, and each one rendered
    lock = release_record(release_secrets(env, namespace, "deps")[-1])["chart"]["lock"]
    assert sorted((d["name"], d["repository"]) for d in lock["dependencies"]) == [
        ("hello", env["TESTENV_CHARTS"]),
        ("lib", "file://../lib"),
    ]
    assert _greeting(env, namespace, "deps-app") == "app"
    assert _greeting(env, namespace, "deps-lib") == "lib-v1"
    assert config_message(env, namespace, "deps") == "hello-from-app"  # hello's ConfigMap
    manifest = helm_cli(env, helm, "get", "manifest", "deps", "-n", namespace)
    assert "kind: Deployment" in manifest and "name: deps\n" in manifest  # hello's Deployment

    # a commit that changes only the sibling chart upgrades the release
    repo.write("charts/lib/values.yaml", "greeting: lib-v2\n")
    second = repo.commit_and_push("the sibling changed")
    wait_revision(agent, env, namespace, "deps", 2)
    agent.wait_for(
        "the sibling's commit on the status", lambda: status(agent, "deps", namespace)["revision"] == second
    )
    wait_ready(agent, "deps", namespace)
    assert _greeting(env, namespace, "deps-lib") == "lib-v2"
    assert _greeting(env, namespace, "deps-app") == "app"
    assert config_message(env, namespace, "deps") == "hello-from-app"
    assert [s["metadata"]["labels"]["status"] for s in release_secrets(env, namespace, "deps")] == [
        "superseded",
        "deployed",
    ]


def test_a_dependency_repository_at_a_link_local_address_is_refused_before_helm_runs(
    env: Env, namespace: str, start_agent: Any, tmp_path: Path
) -> None:
    """helm fetches a dependency repository's index itself: the chart sources' address policy
    is applied to the URL the chart names (link-local metadata addresses are refused always)."""
    repo = GitRepo(env, tmp_path)
    repo.write(
        "app/Chart.yaml",
        "apiVersion: v2\nname: app\nversion: 1.0.0\ndependencies:\n"
        "- name: hello\n  version: 0.1.0\n  repository: http://169.254.169.254/charts\n",
    )
    repo.write("app/templates/configmap.yaml", _configmap_template("app"))
    repo.commit_and_push("a dependency at the metadata address")
    agent = start_agent(namespace, env["HELM_BIN"])
    apply(env, hr_manifest("meta", namespace, {"git": repo.http_url, "ref": "master", "path": "app"}))
    released = agent.wait_condition("meta", namespace, "Released", "False")
    message = released["message"]
    assert "chart.path 'app': Chart.yaml: dependency repository" in message, released
    assert "http://169.254.169.254/charts" in message and "link-local" in message, released
    assert agent.agent.helm.calls["dependency-update"] == 0
    assert latest_revision(env, namespace, "meta") == (0, "")
