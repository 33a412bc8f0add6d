"""`gitops-helm run` syncs its repository over HTTPS with basic-auth credentials from the
environment's Git server (TLS verified against the environment's CA, given to git the standard
way: ``GIT_SSL_CAINFO`` in the agent's environment). The password never reaches the log. Without
the CA, the fetch error the sync state shows says that the certificate is not trusted and how to
fix it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Env
from tests.integration.syncfix import (
    ConfigRepo,
    cm_data,
    configmap,
    start_agent,
    sync_state,
    synced_revision,
    unique_name,
    wait_for,
)


def test_configmap_arrives_over_https_with_credentials(
    env: Env, namespace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"{unique_name('sync-https')}.git"
    repo = ConfigRepo(tmp_path / "repo", f"{env['TESTENV_GIT_HTTP']}/{name}")
    first = repo.replace({"cm.yaml": configmap("over-https", {"value": "one"})})
    url = f"{env['TESTENV_GIT_HTTPS']}/auth/{name}"
    assert url.startswith("https://")
    password_file = tmp_path / "password"
    password_file.write_text(env["TESTENV_GIT_PASSWORD"] + "\n")
    monkeypatch.setenv("GIT_SSL_CAINFO", env["TESTENV_CA_FILE"])  # the agent's git trusts this CA
    agent = start_agent(
        env,
        tmp_path / "agent",
        namespace,
        url,
        "--git-user",
        env["TESTENV_GIT_USER"],
        "--git-password-file",
        str(password_file),
        poll="1s",
    )
    try:
        synced_revision(env, namespace, agent.sync_name, first)
        assert cm_data(env, namespace, "over-https") == {"value": "one"}
        # a later commit arrives over the same authenticated transport
        second = repo.replace({"cm.yaml": configmap("over-https", {"value": "two"})})
        wait_for("the second commit", lambda: cm_data(env, namespace, "over-https") == {"value": "two"}, 60)
        synced_revision(env, namespace, agent.sync_name, second)
        assert env["TESTENV_GIT_PASSWORD"] not in agent.log()
    finally:
        assert agent.stop() == 0, agent.log()


def test_an_untrusted_certificate_is_reported_as_such(
    env: Env, namespace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"{unique_name('sync-https-ca')}.git"
    repo = ConfigRepo(tmp_path / "repo", f"{env['TESTENV_GIT_HTTP']}/{name}")
    repo.replace({"cm.yaml": configmap("never", {"value": "one"})})
    for variable in ("GIT_SSL_CAINFO", "GIT_SSL_CAPATH", "SSL_CERT_FILE", "SSL_CERT_DIR"):
        monkeypatch.delenv(variable, raising=False)  # the environment's CA is not trusted
    password_file = tmp_path / "password"
    password_file.write_text(env["TESTENV_GIT_PASSWORD"] + "\n")
    url = f"{env['TESTENV_GIT_HTTPS']}/auth/{name}"
    agent = start_agent(
        env, tmp_path / "agent", namespace, url,
        "--git-user", env["TESTENV_GIT_USER"], "--git-password-file", str(password_file),
    )  # fmt: skip
    try:
        state = wait_for(
            "the fetch error in the sync state",
            lambda: (
                sync_state(env, namespace, agent.sync_name).get("fetchError")
                and sync_state(env, namespace, agent.sync_name)
            ),
            timeout=60,
        )
        error = state["fetchError"]
        assert "TLS certificate verification failed" in error and "GIT_SSL_CAINFO" in error, error
        assert "revision" not in state and cm_data(env, namespace, "never") is None
        assert env["TESTENV_GIT_PASSWORD"] not in agent.log()
    finally:
        assert agent.stop() == 0, agent.log()
