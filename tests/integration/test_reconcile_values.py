"""valuesFrom (helm 3 and 4): every source kind merged in order, optional sources skipped, a
missing required source stops the release untouched, and a changed ConfigMap upgrades."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Env
from tests.integration.reconcile_helpers import (
    GitRepo,
    apply,
    cond,
    config_message,
    hr_manifest,
    latest_revision,
    patch_spec,
    repo_chart,
    user_values,
    wait_ready,
    wait_revision,
)


@pytest.fixture
def values_server(tmp_path: Path) -> Iterator[str]:
    """A tiny HTTP server on 127.0.0.1 serving tmp_path/www; yields its base URL."""
    root = tmp_path / "www"
    root.mkdir()
    (root / "values.yaml").write_text("fromUrl: true\nmessage: from-url\n")

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _configmap(env: Env, namespace: str, name: str, key: str, text: str) -> None:
    manifest = env.kubectl(
        "create",
        "configmap",
        name,
        "-n",
        namespace,
        f"--from-literal={key}={text}",
        "--dry-run=client",
        "-o",
        "yaml",
    )
    env.kubectl("apply", "-f", "-", input_text=manifest)


def test_values_from_every_source_kind_merged_in_order(
    env: Env, namespace: str, helm: str, start_agent: Any, tmp_path: Path, values_server: str
) -> None:
    repo = GitRepo(env, tmp_path)
    repo.add_chart("chart")
    repo.write("chart/extra-values.yaml", "fromChartFile: true\nmessage: from-chart-file\n")
    repo.commit_and_push("chart with an extra values file")
    _configmap(env, namespace, "cm-values", "values.yaml", "fromConfigMap: true\nmessage: from-configmap\n")
    env.kubectl(
        "create",
        "secret",
        "generic",
        "secret-values",
        "-n",
        namespace,
        "--from-literal=custom.yaml=fromSecret: true\nmessage: from-secret\n",
    )
    # the values server is on 127.0.0.1: refused unless internal URLs are allowed (the refusal
    # is tested in test_reconcile_hostile_input.py)
    agent = start_agent(namespace, helm, allow_internal_urls=True)
    spec = {
        "valuesFrom": [
            {"chartFileRef": {"path": "extra-values.yaml"}},
            {"configMapKeyRef": {"name": "cm-values"}},
            {"configMapKeyRef": {"name": "does-not-exist", "optional": True}},
            {"secretKeyRef": {"name": "secret-values", "key": "custom.yaml"}},
            {"externalSourceRef": {"url": f"{values_server}/values.yaml"}},
            {"externalSourceRef": {"url": f"{values_server}/missing.yaml", "optional": True}},
        ],
        "values": {"replicaCount": 2},
    }
    apply(
        env, hr_manifest("app", namespace, {"git": repo.http_url, "path": "chart", "ref": "master"}, **spec)
    )
    wait_ready(agent, "app", namespace)
    assert user_values(env, helm, namespace, "app") == {
        "fromChartFile": True,
        "fromConfigMap": True,
        "fromSecret": True,
        "fromUrl": True,
        "message": "from-url",  # the last source that sets it wins
        "replicaCount": 2,
    }
    assert config_message(env, namespace, "app") == "from-url"


def test_missing_values_source_stops_then_configmap_changes_upgrade(
    env: Env, namespace: str, helm: str, start_agent: Any
) -> None:
    # a long resync: only the ConfigMap watch can notice the ConfigMap changes
    agent = start_agent(namespace, helm, resync_interval_s=600.0)
    apply(env, hr_manifest("app", namespace, repo_chart(env), values={"message": "inline"}))
    wait_ready(agent, "app", namespace)
    calls = dict(agent.agent.helm.calls)

    # A required ConfigMap that does not exist: Released=False naming it, the release untouched.
    patch_spec(
        env, namespace, "app", {"valuesFrom": [{"configMapKeyRef": {"name": "app-values"}}], "values": None}
    )
    released = agent.wait_condition("app", namespace, "Released", "False")
    assert "app-values" in released["message"], released
    assert cond(agent, "app", namespace, "Ready")["status"] == "False"
    assert dict(agent.agent.helm.calls) == calls
    assert latest_revision(env, namespace, "app") == (1, "deployed")
    assert user_values(env, helm, namespace, "app") == {"message": "inline"}

    # Once it exists the release is upgraded with its values ...
    _configmap(env, namespace, "app-values", "values.yaml", "message: from-configmap\n")
    wait_revision(agent, env, namespace, "app", 2)
    wait_ready(agent, "app", namespace)
    assert config_message(env, namespace, "app") == "from-configmap"

    # ... and a change of the ConfigMap upgrades it again.
    _configmap(env, namespace, "app-values", "values.yaml", "message: changed\n")
    wait_revision(agent, env, namespace, "app", 3)
    assert config_message(env, namespace, "app") == "changed"
    assert user_values(env, helm, namespace, "app") == {"message": "changed"}
