"""``gitops-helm explain values``: the real CLI against the real API server (or, with --path, no
cluster at all), real chart repository and Git server, a values URL on a local HTTP server."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import Env
from tests.integration.reconcile_helpers import GitRepo, apply, hr_manifest, repo_chart
from tests.localhttp import LocalServer

SECRET_TEXT = "hunter2-not-for-your-eyes"
NO_CLUSTER = {"KUBECONFIG": "/nonexistent/kubeconfig"}


@pytest.fixture
def values_server() -> Iterator[str]:
    """A values file served on 127.0.0.1 (tests/localhttp.py); yields the server's base URL."""
    with LocalServer(lambda _: (200, {}, b"fromUrl: true\nreplicaCount: 6\n")) as server:
        yield server.url


def _explain(env: Env, tmp_path: Path, *args: str, offline: bool = False) -> subprocess.CompletedProcess[str]:
    environ = env.environ(NO_CLUSTER if offline else {})
    for key in ("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"):
        environ.pop(key, None)
    argv = [sys.executable, "-m", "gitops_helm.cli", "explain", "values", *args]
    argv += [
        "--helm-bin",
        env["HELM_BIN"],
        "--work-dir",
        str(tmp_path / "work"),
        "--allow-internal-urls=true",
    ]
    return subprocess.run(argv, capture_output=True, text=True, timeout=300, env=environ)


def _object(kind: str, namespace: str, name: str, **data: str) -> dict[str, Any]:
    field = "stringData" if kind == "Secret" else "data"
    return {"apiVersion": "v1", "kind": kind, "metadata": {"name": name, "namespace": namespace}, field: data}


def _leaf(document: dict[str, Any], path: str) -> dict[str, Any]:
    (leaf,) = [leaf for leaf in document["leaves"] if leaf["path"] == path]
    return leaf


def test_explain_names_every_source_in_merge_order_and_redacts_secrets(
    env: Env, namespace: str, tmp_path: Path, values_server: str
) -> None:
    repo = GitRepo(env, tmp_path)
    repo.add_chart("charts/web")
    repo.write("charts/web/ci/prod.yaml", "message: from-chart-file\nimage:\n  tag: chart-file\n")
    repo.commit_and_push("chart with a values file")
    apply(env, _object("ConfigMap", namespace, "web-values", **{
        "values.yaml": "replicaCount: 2\nmessage: from-configmap\nimage:\n  tag: configmap\n"
    }))  # fmt: skip
    apply(env, _object("Secret", namespace, "web-secret", **{
        "values.yaml": f"password: {SECRET_TEXT}\nreplicaCount: 5\n"
    }))  # fmt: skip
    chart = {"git": repo.http_url, "ref": "master", "path": "charts/web"}
    values_from = [
        {"configMapKeyRef": {"name": "web-values"}},
        {"secretKeyRef": {"name": "web-secret"}},
        {"externalSourceRef": {"url": f"{values_server}/values.yaml"}},
        {"chartFileRef": {"path": "ci/prod.yaml"}},
    ]
    apply(env, hr_manifest("web", namespace, chart, valuesFrom=values_from, values={"replicaCount": 3}))

    done = _explain(env, tmp_path, f"{namespace}/web", "-o", "json")
    assert done.returncode == 0, done.stderr
    assert SECRET_TEXT not in done.stdout + done.stderr
    document = json.loads(done.stdout)
    assert [s["source"] for s in document["sources"]] == [
        "chart default (hello 0.1.0 values.yaml)",
        f"valuesFrom[0] configMapKeyRef {namespace}/web-values key values.yaml",
        f"valuesFrom[1] secretKeyRef {namespace}/web-secret key values.yaml",
        f"valuesFrom[2] externalSourceRef {values_server}/values.yaml",
        "valuesFrom[3] chartFileRef ci/prod.yaml",
        "values",
    ]
    replicas = _leaf(document, "replicaCount")
    assert replicas["value"] == 3
    assert replicas["source"]["source"] == "values"
    assert [(o["sourceIndex"], o["value"]) for o in replicas["overrides"]] == [
        (1, 1),
        (2, 2),
        (3, "<redacted>"),
        (4, 6),
    ]
    password = _leaf(document, "password")
    assert password["value"] == "<redacted>"
    assert (
        password["source"]["source"] == f"valuesFrom[1] secretKeyRef {namespace}/web-secret key values.yaml"
    )
    assert _leaf(document, "message")["value"] == "from-chart-file"
    assert [o["sourceIndex"] for o in _leaf(document, "message")["overrides"]] == [1, 2]
    assert _leaf(document, "image.tag")["source"]["source"] == "valuesFrom[3] chartFileRef ci/prod.yaml"
    assert (
        _leaf(document, "image.repository")["source"]["source"] == "chart default (hello 0.1.0 values.yaml)"
    )
    assert _leaf(document, "fromUrl")["source"]["sourceIndex"] == 4
    assert document["values"]["password"] == "<redacted>"
    assert document["values"]["image"]["tag"] == "chart-file"

    # KEY.PATH: that key only, with its whole chain
    done = _explain(env, tmp_path, f"{namespace}/web", "image.tag")
    assert done.returncode == 0, done.stderr
    chain = done.stdout.split("image.tag = ", 1)[1].splitlines()
    assert chain[0] == '"chart-file"'
    assert chain[1:] == [
        '  [1] chart default (hello 0.1.0 values.yaml): image.tag = "1.0.0"  (overridden)',
        f'  [2] valuesFrom[0] configMapKeyRef {namespace}/web-values key values.yaml: image.tag = "configmap"'
        "  (overridden)",
        '  [5] valuesFrom[3] chartFileRef ci/prod.yaml: image.tag = "chart-file"  (in effect)',
    ]
    assert "replicaCount" not in done.stdout.split("image.tag = ", 1)[1]


def test_explain_offline_reads_the_manifests_under_a_directory(env: Env, tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.mkdir()
    docs = [
        hr_manifest(
            "api",
            "apps",
            repo_chart(env),
            valuesFrom=[
                {"configMapKeyRef": {"name": "api-values"}},
                {"secretKeyRef": {"name": "api-secret"}},
            ],
            values={"message": "inline"},
        ),
        _object(
            "ConfigMap", "apps", "api-values", **{"values.yaml": "message: from-configmap\nreplicaCount: 2\n"}
        ),
        _object("Secret", "apps", "api-secret", **{"values.yaml": f"token: {SECRET_TEXT}\n"}),
    ]
    (config / "api.yaml").write_text(yaml.safe_dump_all(docs))

    done = _explain(env, tmp_path, "apps/api", "--path", str(config), offline=True)
    assert done.returncode == 0, done.stderr
    assert SECRET_TEXT not in done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert "  [2] valuesFrom[0] configMapKeyRef apps/api-values key values.yaml" in lines
    assert (
        "  [3] valuesFrom[1] secretKeyRef apps/api-secret key values.yaml  (Secret: values redacted)" in lines
    )
    shown = {line.split(":", 1)[0].strip(): line for line in lines if line.startswith("  ") and ": " in line}
    assert shown["message"].split() == ["message:", '"inline"', "[4]", "overrides", "[1],", "[2]"]
    assert shown["replicaCount"].split() == ["replicaCount:", "2", "[2]", "overrides", "[1]"]
    assert shown["token"].split() == ["token:", "<redacted>", "[3]"]


def test_explain_errors_name_the_object_or_field(env: Env, namespace: str, tmp_path: Path) -> None:
    done = _explain(env, tmp_path, f"{namespace}/missing")
    assert done.returncode == 1
    assert f"HelmRelease {namespace}/missing not found" in done.stderr
    assert "Traceback" not in done.stderr

    values_from = [{"configMapKeyRef": {"name": "absent"}}]
    apply(env, hr_manifest("broken", namespace, repo_chart(env), valuesFrom=values_from))
    done = _explain(env, tmp_path, f"{namespace}/broken")
    assert done.returncode == 1
    assert (
        f"valuesFrom[0] configMapKeyRef {namespace}/absent key values.yaml: ConfigMap not found"
        in done.stderr
    )

    apply(env, hr_manifest("plain", namespace, repo_chart(env), values={"a": 1}))
    done = _explain(env, tmp_path, f"{namespace}/plain", "no.such.key")
    assert done.returncode == 1
    assert f"HelmRelease {namespace}/plain has no value at 'no.such.key'" in done.stderr

    done = _explain(env, tmp_path, "apps/nothing", "--path", str(tmp_path), offline=True)
    assert done.returncode == 1
    assert f"no HelmRelease apps/nothing among the manifests under {tmp_path}" in done.stderr
