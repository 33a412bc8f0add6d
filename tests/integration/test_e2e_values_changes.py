"""Values that change outside the HelmRelease, end to end (helm 3 and 4): a change in a
referenced Secret, and a change in the document a values URL serves, each makes the running
agent upgrade the release with the new values; no restart, no edit of the HelmRelease."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.conftest import Env
from tests.integration.reconcile_helpers import (
    apply,
    config_message,
    hr_manifest,
    latest_revision,
    repo_chart,
    user_values,
    wait_ready,
    wait_revision,
)
from tests.integration.test_reconcile_values import values_server  # noqa: F401 - a fixture


def _values_secret(env: Env, namespace: str, text: str) -> None:
    manifest = env.kubectl(
        "create", "secret", "generic", "app-values", "-n", namespace,
        f"--from-literal=values.yaml={text}", "--dry-run=client", "-o", "yaml",
    )  # fmt: skip
    env.kubectl("apply", "-f", "-", input_text=manifest)


def test_a_changed_secret_upgrades_the_release(env: Env, namespace: str, helm: str, start_agent: Any) -> None:
    _values_secret(env, namespace, "message: secret-v1\n")
    # a resync far away: only the watch of the referenced Secret can explain the upgrade
    agent = start_agent(namespace, helm, resync_interval_s=600.0)
    spec = {"valuesFrom": [{"secretKeyRef": {"name": "app-values"}}]}
    apply(env, hr_manifest("app", namespace, repo_chart(env), **spec))
    wait_ready(agent, "app", namespace)
    assert config_message(env, namespace, "app") == "secret-v1"
    assert latest_revision(env, namespace, "app") == (1, "deployed")

    _values_secret(env, namespace, "message: secret-v2\nreplicaCount: 2\n")
    wait_revision(agent, env, namespace, "app", 2)
    assert user_values(env, helm, namespace, "app") == {"message": "secret-v2", "replicaCount": 2}
    assert config_message(env, namespace, "app") == "secret-v2"
    wait_ready(agent, "app", namespace)


def test_a_changed_values_url_upgrades_the_release_at_the_resync(
    env: Env,
    namespace: str,
    helm: str,
    start_agent: Any,
    tmp_path: Path,
    values_server: str,  # noqa: F811 - the fixture imported above
) -> None:
    served = tmp_path / "www" / "values.yaml"
    served.write_text("message: url-v1\n")
    # nothing watches a URL: the periodic resync reads it again (the server is on 127.0.0.1,
    # so internal URLs are allowed)
    agent = start_agent(namespace, helm, resync_interval_s=2.0, allow_internal_urls=True)
    spec = {"valuesFrom": [{"externalSourceRef": {"url": f"{values_server}/values.yaml"}}]}
    apply(env, hr_manifest("app", namespace, repo_chart(env), **spec))
    wait_ready(agent, "app", namespace)
    assert config_message(env, namespace, "app") == "url-v1"

    served.write_text("message: url-v2\n")
    wait_revision(agent, env, namespace, "app", 2)
    assert user_values(env, helm, namespace, "app") == {"message": "url-v2"}
    assert config_message(env, namespace, "app") == "url-v2"
    wait_ready(agent, "app", namespace)
    # the same document again: no further upgrade at the next resyncs
    agent.resync(f"{namespace}/app")
    agent.resync(f"{namespace}/app")
    assert latest_revision(env, namespace, "app") == (2, "deployed")
