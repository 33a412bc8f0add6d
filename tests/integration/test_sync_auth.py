"""`gitops-helm run` reads its repository over SSH (key + known_hosts) and over HTTP basic auth."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Env
from tests.integration.syncfix import (
    ConfigRepo,
    cli,
    cm_data,
    configmap,
    start_agent,
    sync_flags,
    unique_name,
    wait_for,
)


@pytest.mark.parametrize("transport", ["ssh", "basic-auth"])
def test_configmap_arrives_over_authenticated_transport(
    env: Env, namespace: str, tmp_path: Path, transport: str
) -> None:
    name = f"{unique_name('sync-auth')}.git"
    repo = ConfigRepo(tmp_path / "repo", f"{env['TESTENV_GIT_HTTP']}/{name}")
    repo.replace({"cm.yaml": configmap("over-auth", {"transport": transport})})
    if transport == "ssh":
        url = f"{env['TESTENV_GIT_SSH']}/{name}"
        flags = ["--git-ssh-key", env["TESTENV_GIT_SSH_KEY"], "--git-known-hosts", env["TESTENV_KNOWN_HOSTS"]]
    else:
        url = f"{env['TESTENV_GIT_HTTP_AUTH']}/{name}"
        password_file = tmp_path / "password"
        password_file.write_text(env["TESTENV_GIT_PASSWORD"] + "\n")
        flags = ["--git-user", env["TESTENV_GIT_USER"], "--git-password-file", str(password_file)]
    agent = start_agent(env, tmp_path / "agent", namespace, url, *flags)
    try:
        wait_for(
            f"ConfigMap over {transport}",
            lambda: cm_data(env, namespace, "over-auth") == {"transport": transport},
            timeout=60,
        )
        assert env["TESTENV_GIT_PASSWORD"] not in agent.log()
    finally:
        assert agent.stop() == 0, agent.log()


def test_scp_like_ssh_address_is_not_taken_for_a_local_path(env: Env, namespace: str, tmp_path: Path) -> None:
    """``user@host:path`` is an SSH address whatever the user name (port 22 here: it fails, as SSH)."""
    out = cli(
        env,
        "sync",
        "--once",
        *sync_flags(env, namespace, "scp"),
        "--git-url",
        "deploy@127.0.0.1:config.git",
        "--git-ssh-key",
        env["TESTENV_GIT_SSH_KEY"],
        "--git-known-hosts",
        env["TESTENV_KNOWN_HOSTS"],
        "--work-dir",
        str(tmp_path / "work"),
        "--git-timeout",
        "10s",
    )
    assert out.returncode == 1, out.stdout + out.stderr
    assert "cannot fetch deploy@127.0.0.1:config.git: git clone of 127.0.0.1:config.git failed" in out.stderr
    assert "file://" not in out.stderr and "invalid configuration" not in out.stderr, out.stderr
