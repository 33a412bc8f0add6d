"""Chart sources get the address checks of values URLs (``agent.chart_destinations``): a lockdown
agent (``--default-service-account`` or ``--no-cross-namespace-refs``) refuses a chart repository
on loopback with a status naming the field, ``--allow-internal-urls`` lifts that, and a link-local
address (the cloud metadata endpoint) is refused by every agent: no request is sent to it.

The test environment's chart repository (``TESTENV_CHARTS``) and OCI registry are on 127.0.0.1.
"""

from __future__ import annotations

from typing import Any

from tests.conftest import Env
from tests.integration.reconcile_helpers import (
    apply,
    hr_manifest,
    latest_revision,
    release_secrets,
    repo_chart,
    wait_ready,
)


def _refusal(agent: Any, name: str, namespace: str, *needles: str) -> str:
    """Wait until ChartFetched=False says every needle; return the message."""

    def message() -> str:
        found = agent.condition(name, namespace, "ChartFetched")
        text = str(found["message"]) if found and found["status"] == "False" else ""
        return text if text and all(n in text for n in needles) else ""

    return agent.wait_for(  # type: ignore[no-any-return]
        f"{namespace}/{name} ChartFetched=False mentioning {needles}", message
    )


def test_a_lockdown_agent_refuses_a_chart_repository_on_loopback(
    env: Env, namespace: str, start_agent: Any
) -> None:
    agent = start_agent(namespace, env["HELM_BIN"], allow_cross_namespace_refs=False)
    apply(env, hr_manifest("http-repo", namespace, repo_chart(env)))
    oci = {"repository": f"oci://{env['TESTENV_REGISTRY']}/charts", "name": "hello", "version": "0.1.0"}
    apply(env, hr_manifest("oci-repo", namespace, oci))

    for name in ("http-repo", "oci-repo"):
        message = _refusal(
            agent, name, namespace, "spec.chart.repository", "loopback", "--allow-internal-urls"
        )
        assert "127.0.0.1" in message
        assert release_secrets(env, namespace, name) == []


def test_with_internal_urls_allowed_a_lockdown_agent_installs_from_loopback(
    env: Env, namespace: str, start_agent: Any
) -> None:
    agent = start_agent(
        namespace, env["HELM_BIN"], allow_cross_namespace_refs=False, allow_internal_urls=True
    )
    apply(env, hr_manifest("app", namespace, repo_chart(env)))
    wait_ready(agent, "app", namespace)
    assert latest_revision(env, namespace, "app") == (1, "deployed")


def test_a_link_local_chart_repository_is_refused_outside_lockdown(
    env: Env, namespace: str, start_agent: Any
) -> None:
    agent = start_agent(namespace, env["HELM_BIN"])
    metadata = {"repository": "http://169.254.169.254/latest", "name": "hello", "version": "0.1.0"}
    apply(env, hr_manifest("metadata", namespace, metadata))
    oci = {"repository": "oci://169.254.169.254/charts", "name": "hello", "version": "0.1.0"}
    apply(env, hr_manifest("metadata-oci", namespace, oci))
    # outside lockdown a repository on loopback keeps working
    apply(env, hr_manifest("local", namespace, repo_chart(env)))

    for name in ("metadata", "metadata-oci"):
        _refusal(agent, name, namespace, "spec.chart.repository", "169.254.169.254", "link-local")
        assert release_secrets(env, namespace, name) == []
    wait_ready(agent, "local", namespace)


def test_a_lockdown_agent_refuses_an_https_chart_git_on_loopback(
    env: Env, namespace: str, start_agent: Any
) -> None:
    agent = start_agent(namespace, env["HELM_BIN"], allow_cross_namespace_refs=False)
    chart = {"git": f"{env['TESTENV_GIT_HTTPS']}/repo.git", "ref": "master", "path": "charts/hello"}
    apply(env, hr_manifest("git-chart", namespace, chart))
    _refusal(agent, "git-chart", namespace, "spec.chart.git", "loopback", "--allow-internal-urls")
    assert release_secrets(env, namespace, "git-chart") == []
