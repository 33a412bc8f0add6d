"""Install from every chart source kind: basic-auth HTTPS repository, OCI, Git over HTTP and SSH.

Each runs with helm 4 and helm 3. The OCI and Git tests also check that a resync of an unchanged
release costs no helm call.
"""

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
    eventually,
    hr_manifest,
    latest_revision,
    release_secrets,
    status,
    wait_ready,
)


def test_install_from_basic_auth_https_repo_with_chart_pull_secret(
    env: Env, namespace: str, helm: str, start_agent: Any
) -> None:
    agent = start_agent(namespace, helm)
    env.kubectl(
        "create",
        "secret",
        "generic",
        "repo-auth",
        "-n",
        namespace,
        f"--from-literal=username={env['TESTENV_CHARTS_USER']}",
        f"--from-literal=password={env['TESTENV_CHARTS_PASSWORD']}",
        f"--from-file=ca.crt={env['TESTENV_CA_FILE']}",
    )
    chart = {
        "repository": env["TESTENV_CHARTS_AUTH"],
        "name": "hello",
        "version": "0.1.0",
        "chartPullSecret": {"name": "repo-auth"},
    }
    apply(env, hr_manifest("private", namespace, chart, values={"message": "from-auth-repo"}))
    wait_ready(agent, "private", namespace)
    st = status(agent, "private", namespace)
    assert st["releaseStatus"] == "deployed"
    assert st["revision"] == "0.1.0"
    assert latest_revision(env, namespace, "private") == (1, "deployed")
    assert config_message(env, namespace, "private") == "from-auth-repo"


def test_install_from_oci_then_no_helm_call_on_resync(
    env: Env, namespace: str, helm: str, start_agent: Any
) -> None:
    agent = start_agent(namespace, helm)
    chart = {"repository": env["TESTENV_OCI_CHARTS"], "name": "hello", "version": "0.1.0"}
    apply(env, hr_manifest("oci", namespace, chart, values={"replicaCount": 2}))
    wait_ready(agent, "oci", namespace)
    assert status(agent, "oci", namespace)["revision"] == "0.1.0"
    # Without wait, Ready does not mean the pods are Ready yet: wait for them.
    eventually(
        agent,
        "2 ready replicas of oci",
        lambda: env.kube_json("deployment", "oci", "-n", namespace)["status"].get("readyReplicas") == 2,
        timeout=120,
    )
    assert_quiet_resync(agent, "oci", namespace)
    assert len(release_secrets(env, namespace, "oci")) == 1


def test_install_from_git_over_http_then_no_helm_call_on_resync(
    env: Env, namespace: str, helm: str, start_agent: Any, tmp_path: Path
) -> None:
    repo = GitRepo(env, tmp_path)
    repo.add_chart("charts/hello", message="from-git-http")
    sha = repo.commit_and_push("add chart")
    agent = start_agent(namespace, helm)
    chart = {"git": repo.http_url, "ref": "master", "path": "charts/hello"}
    apply(env, hr_manifest("githttp", namespace, chart))
    wait_ready(agent, "githttp", namespace)
    st = status(agent, "githttp", namespace)
    assert st["revision"] == sha  # Git charts: the revision is the commit
    assert config_message(env, namespace, "githttp") == "from-git-http"
    assert_quiet_resync(agent, "githttp", namespace)


def test_install_from_git_over_ssh(
    env: Env, namespace: str, helm: str, start_agent: Any, tmp_path: Path
) -> None:
    repo = GitRepo(env, tmp_path)
    repo.add_chart("hello", message="from-git-ssh")
    sha = repo.commit_and_push("add chart")
    agent = start_agent(
        namespace,
        helm,
        # the key serves chart.git URLs of the synced repository's host (not synced here)
        git=GitSourceSettings(
            url=f"{env['TESTENV_GIT_SSH']}/config.git",
            ssh_key=env["TESTENV_GIT_SSH_KEY"],
            known_hosts=env["TESTENV_KNOWN_HOSTS"],
        ),
    )
    chart = {"git": repo.ssh_url, "ref": "master", "path": "hello"}
    apply(env, hr_manifest("gitssh", namespace, chart))
    wait_ready(agent, "gitssh", namespace)
    assert status(agent, "gitssh", namespace)["revision"] == sha
    assert config_message(env, namespace, "gitssh") == "from-git-ssh"


def test_install_from_git_over_https_with_secret_ref(
    env: Env, namespace: str, helm: str, start_agent: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    """chart.secretRef credentials (https only), verified against the environment's CA."""
    repo = GitRepo(env, tmp_path)
    repo.add_chart("charts/hello", message="from-git-https")
    sha = repo.commit_and_push("add chart")
    env.kubectl(
        "create", "secret", "generic", "git-creds", "-n", namespace,
        f"--from-literal=username={env['TESTENV_GIT_USER']}",
        f"--from-literal=password={env['TESTENV_GIT_PASSWORD']}",
    )  # fmt: skip
    monkeypatch.setenv("GIT_SSL_CAINFO", env["TESTENV_CA_FILE"])  # the agent's git trusts this CA
    agent = start_agent(namespace, helm)
    url = f"{env['TESTENV_GIT_HTTPS']}/auth/{repo.name}.git"
    chart = {"git": url, "ref": "master", "path": "charts/hello", "secretRef": {"name": "git-creds"}}
    apply(env, hr_manifest("githttps", namespace, chart))
    wait_ready(agent, "githttps", namespace)
    assert status(agent, "githttps", namespace)["revision"] == sha
    assert config_message(env, namespace, "githttps") == "from-git-https"
