"""Hostile input on the real environment (issue #9): a values URL on the agent's own host is
refused by default and the HelmRelease says so without the URL's query string; a timeout of years
and a chart version with thousands of digits are clear errors on the HelmRelease, not crashes."""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import Env
from tests.integration.reconcile_helpers import (
    apply,
    hr_manifest,
    release_secrets,
    repo_chart,
    unique_name,
    user_values,
)
from tests.localhttp import LocalServer

SECRET = "s3cret-token"


def events_text(env: Env, namespace: str) -> str:
    out = env.kubectl("get", "events", "-n", namespace, "-o", "json")
    return " ".join(str(item.get("message", "")) for item in json.loads(out)["items"])


def test_a_values_url_on_loopback_is_refused_by_default(env: Env, namespace: str, start_agent: Any) -> None:
    with LocalServer(lambda _: (200, {}, b"message: from-loopback\n")) as server:
        agent = start_agent(namespace, env["HELM_BIN"])
        port = server.url.rsplit(":", 1)[1]
        # credentials in the userinfo are refused when the spec is parsed; a query string is not
        url = f"http://127.0.0.1:{port}/values.yaml?token={SECRET}"
        name = unique_name("loopback")
        spec = {"valuesFrom": [{"externalSourceRef": {"url": url}}]}
        apply(env, hr_manifest(name, namespace, repo_chart(env), **spec))
        released = agent.wait_condition(name, namespace, "Released", "False")
        message = released["message"]
        assert f"externalSourceRef http://127.0.0.1:{port}/values.yaml?...: cannot fetch" in message, message
        assert "loopback" in message, message
        assert server.seen == []  # refused before connecting
        assert release_secrets(env, namespace, name) == []  # nothing installed
        shown = message + events_text(env, namespace) + json.dumps(agent.condition(name, namespace, "Ready"))
        assert SECRET not in shown, shown


def test_a_values_url_on_loopback_is_used_with_allow_internal_urls(
    env: Env, namespace: str, start_agent: Any
) -> None:
    with LocalServer(lambda _: (200, {}, b"message: from-loopback\n")) as server:
        agent = start_agent(namespace, env["HELM_BIN"], allow_internal_urls=True)
        name = unique_name("internal")
        spec = {"valuesFrom": [{"externalSourceRef": {"url": f"{server.url}/values.yaml"}}]}
        apply(env, hr_manifest(name, namespace, repo_chart(env), **spec))
        agent.wait_condition(name, namespace, "Released", "True")
        assert user_values(env, env["HELM_BIN"], namespace, name) == {"message": "from-loopback"}


def test_a_timeout_of_years_is_an_invalid_spec(env: Env, namespace: str, start_agent: Any) -> None:
    agent = start_agent(namespace, env["HELM_BIN"])
    name = unique_name("years")
    apply(env, hr_manifest(name, namespace, repo_chart(env), timeout=5 * 365 * 24 * 3600))
    ready = agent.wait_condition(name, namespace, "Ready", "False")
    assert ready["reason"] == "InvalidSpec", ready
    assert "spec.timeout: must be at most 604800 (seconds), got 157680000" in ready["message"], ready
    assert release_secrets(env, namespace, name) == []


def test_a_chart_version_with_thousands_of_digits_fails_the_chart_fetch(
    env: Env, namespace: str, start_agent: Any
) -> None:
    agent = start_agent(namespace, env["HELM_BIN"])
    name = unique_name("digits")
    chart = {**repo_chart(env), "version": "0.1." + "9" * 5000}
    apply(env, hr_manifest(name, namespace, chart))
    fetched = agent.wait_condition(name, namespace, "ChartFetched", "False")
    assert "a numeric part is larger than 18446744073709551615" in fetched["message"], fetched
    assert release_secrets(env, namespace, name) == []
