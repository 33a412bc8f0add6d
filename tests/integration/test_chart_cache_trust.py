"""The agent's chart caches are trusted only as far as they deserve.

Credentials never cross identities: a chart that tenant A fetched with its credentials is not
served to tenant B from the agent's caches.

Two tenant namespaces, one agent process for the chart step: tenant B's agent fetches charts
through tenant A's agent's chart clients (``start_agent(chart_sources_of=...)``), so B sees every
cache A filled (HTTP sessions, repository index, OCI token and tag digest, archive store). Tenant
A installs a chart from the private HTTPS repository (basic auth) or the private OCI registry
(htpasswd) and is Ready; right after (well within the cache's refresh interval) tenant B names
the same chart and version with no credentials, or with wrong ones. B must not install, its
status must say that the repository or registry refused it (401) naming the chart, without the
password; A's release stays as it was.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Env, release_finalizers
from tests.integration.reconcile_helpers import (
    apply,
    config_message,
    hr_manifest,
    latest_revision,
    patch_spec,
    publish,
    release_secrets,
    repo_chart,
    status,
    unique_name,
    wait_ready,
)

# A's caches stay fresh for the whole test, so B always asks while they are (the case that matters)
HOUR = 3600.0


@pytest.fixture
def tenant_b(env: Env) -> Iterator[str]:
    """A second tenant namespace (the ``namespace`` fixture is tenant A's)."""
    name = f"tenant-b-{uuid.uuid4().hex[:6]}"
    env.kubectl("create", "namespace", name)
    yield name
    release_finalizers(env, name)
    env.kubectl("delete", "namespace", name, "--wait=false", check=False)


def _secret(env: Env, namespace: str, name: str, **literals: str) -> None:
    args = [f"--from-literal={key}={value}" for key, value in literals.items() if key != "ca"]
    if "ca" in literals:
        args.append(f"--from-file=ca.crt={literals['ca']}")
    env.kubectl("create", "secret", "generic", name, "-n", namespace, *args)


def _refused(agent: Any, name: str, namespace: str) -> str:
    """Wait until the HelmRelease's current generation is Ready=False because of a 401, and
    return its Ready message."""

    def check() -> str | None:
        hr = agent.hr(name, namespace)
        st = hr.get("status") or {}
        ready = next((c for c in st.get("conditions", []) if c["type"] == "Ready"), None)
        current = st.get("observedGeneration") == hr["metadata"]["generation"]
        if ready and current and ready["status"] == "False" and "401" in ready.get("message", ""):
            return str(ready["message"])
        return None

    try:
        return str(agent.wait_for(f"{namespace}/{name} refused with HTTP 401", check, timeout=90))
    except AssertionError as exc:
        shown = json.dumps(agent.hr(name, namespace).get("status"), indent=1)
        raise AssertionError(f"{exc}\nstatus: {shown}") from None


def _assert_b_refused_and_a_untouched(
    env: Env, agent_b: Any, names: list[str], tenant_b: str, namespace: str, chart_text: str, password: str
) -> None:
    for name in names:
        message = _refused(agent_b, name, tenant_b)
        assert chart_text in message, message
        assert password not in json.dumps(agent_b.hr(name, tenant_b)), "the password is in B's HelmRelease"
        events = env.kubectl("get", "events", "-n", tenant_b, "-o", "json")
        assert password not in events, "the password is in an Event of tenant B"
        assert release_secrets(env, tenant_b, name) == [], f"{tenant_b}/{name} was installed"
    assert latest_revision(env, namespace, "private") == (1, "deployed")


def test_a_private_repository_chart_fetched_by_one_tenant_is_refused_to_another(
    env: Env, namespace: str, tenant_b: str, helm: str, start_agent: Any
) -> None:
    password = env["TESTENV_CHARTS_PASSWORD"]
    repository = env["TESTENV_CHARTS_AUTH"]
    agent_a = start_agent(namespace, helm, chart_refresh_interval_s=HOUR)
    _secret(
        env,
        namespace,
        "pull",
        username=env["TESTENV_CHARTS_USER"],
        password=password,
        ca=env["TESTENV_CA_FILE"],
    )
    chart = {"repository": repository, "name": "hello", "version": "0.1.0"}
    apply(env, hr_manifest("private", namespace, {**chart, "chartPullSecret": {"name": "pull"}}))
    wait_ready(agent_a, "private", namespace)
    installed = release_secrets(env, namespace, "private")

    agent_b = start_agent(tenant_b, helm, chart_sources_of=agent_a)
    # B trusts the repository's CA (so TLS is not what stops it) but has no user name; and then
    # a user name with the wrong password.
    _secret(env, tenant_b, "ca-only", ca=env["TESTENV_CA_FILE"])
    wrong = f"wrong-{uuid.uuid4().hex}"
    _secret(
        env, tenant_b, "wrong", username=env["TESTENV_CHARTS_USER"], password=wrong, ca=env["TESTENV_CA_FILE"]
    )
    apply(env, hr_manifest("anonymous", tenant_b, {**chart, "chartPullSecret": {"name": "ca-only"}}))
    apply(env, hr_manifest("wrong", tenant_b, {**chart, "chartPullSecret": {"name": "wrong"}}))

    chart_text = f'chart "hello" version "0.1.0": index of Helm repository {repository}'
    _assert_b_refused_and_a_untouched(
        env, agent_b, ["anonymous", "wrong"], tenant_b, namespace, chart_text, password
    )
    assert wrong not in json.dumps(agent_b.hr("wrong", tenant_b))
    assert release_secrets(env, namespace, "private") == installed
    assert status(agent_a, "private", namespace)["releaseStatus"] == "deployed"


def test_a_private_oci_chart_fetched_by_one_tenant_is_refused_to_another(
    env: Env, namespace: str, tenant_b: str, helm: str, start_agent: Any
) -> None:
    password = env["TESTENV_REGISTRY_PASSWORD"]
    repository = env["TESTENV_OCI_CHARTS_AUTH"]
    plain_http = (env["TESTENV_REGISTRY"], env["TESTENV_REGISTRY_AUTH"])
    agent_a = start_agent(namespace, helm, oci_plain_http_hosts=plain_http, chart_refresh_interval_s=HOUR)
    _secret(env, namespace, "pull", username=env["TESTENV_REGISTRY_USER"], password=password)
    chart = {"repository": repository, "name": "hello", "version": "0.1.0"}
    apply(env, hr_manifest("private", namespace, {**chart, "chartPullSecret": {"name": "pull"}}))
    wait_ready(agent_a, "private", namespace)
    installed = release_secrets(env, namespace, "private")

    agent_b = start_agent(tenant_b, helm, chart_sources_of=agent_a, oci_plain_http_hosts=plain_http)
    wrong = f"wrong-{uuid.uuid4().hex}"
    _secret(env, tenant_b, "wrong", username=env["TESTENV_REGISTRY_USER"], password=wrong)
    apply(env, hr_manifest("anonymous", tenant_b, chart))
    apply(env, hr_manifest("wrong", tenant_b, {**chart, "chartPullSecret": {"name": "wrong"}}))

    chart_text = f"{repository}/hello:0.1.0"
    _assert_b_refused_and_a_untouched(
        env, agent_b, ["anonymous", "wrong"], tenant_b, namespace, chart_text, password
    )
    assert wrong not in json.dumps(agent_b.hr("wrong", tenant_b))
    assert release_secrets(env, namespace, "private") == installed


def test_a_corrupted_cached_archive_is_detected_on_use_and_fetched_again(
    env: Env, namespace: str, start_agent: Any, tmp_path: Path
) -> None:
    name = publish(tmp_path, unique_name("cached"))  # a chart of its own: nobody republishes it
    # the index is not looked at again during the test: only the archive can be re-fetched
    agent = start_agent(namespace, env["HELM_BIN"], chart_refresh_interval_s=HOUR)
    apply(env, hr_manifest("hello", namespace, repo_chart(env, name), values={"message": "before"}))
    wait_ready(agent, "hello", namespace)
    cache = agent.settings.work_dir / "cache" / "charts"
    [archive] = (cache / "sha256").glob("*.tgz")
    hexdigest = archive.name.removesuffix(".tgz")
    # The bytes change on disk (corruption, or someone with access to the work directory), and
    # the unpacked copy is gone (as after the janitor evicted it): the next use reads the archive.
    archive.write_bytes(b"not the chart that was verified when it was stored")
    shutil.rmtree(cache / "unpacked" / hexdigest)

    patch_spec(env, namespace, "hello", {"values": {"message": "after"}})
    wait_ready(agent, "hello", namespace)
    assert latest_revision(env, namespace, "hello") == (2, "deployed")
    assert config_message(env, namespace, "hello") == "after"
    assert hashlib.sha256(archive.read_bytes()).hexdigest() == hexdigest


def test_the_agents_netrc_login_is_not_lent_to_a_tenant_without_credentials(
    env: Env, namespace: str, start_agent: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The agent's user has a ``.netrc`` login for the private repository's host (an operator's
    convenience for its own ``helm`` or ``curl``); a tenant with no credentials of its own must
    not be served through it."""
    host = env["TESTENV_CHARTS_AUTH"].split("://", 1)[1].split(":", 1)[0]
    netrc = tmp_path / "netrc"
    user, password = env["TESTENV_CHARTS_USER"], env["TESTENV_CHARTS_PASSWORD"]
    netrc.write_text(f"machine {host} login {user} password {password}\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    agent = start_agent(namespace, env["HELM_BIN"])
    _secret(env, namespace, "ca-only", ca=env["TESTENV_CA_FILE"])
    chart = {
        **repo_chart(env),
        "repository": env["TESTENV_CHARTS_AUTH"],
        "chartPullSecret": {"name": "ca-only"},
    }
    apply(env, hr_manifest("anonymous", namespace, chart))
    message = _refused(agent, "anonymous", namespace)
    assert "no credentials were given" in message, message
    assert password not in json.dumps(agent.hr("anonymous", namespace))
    assert release_secrets(env, namespace, "anonymous") == []
