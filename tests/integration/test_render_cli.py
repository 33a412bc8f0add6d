"""``gitops-helm render PATH``: the real CLI, real chart repositories and registries, real helm 3
and helm 4, and no cluster: KUBECONFIG points to a file that does not exist and no in-cluster
variables are set, so any attempt to reach an API server would fail the render."""

from __future__ import annotations

import base64
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import CHARTS, Env

NO_CLUSTER = {
    "KUBECONFIG": "/nonexistent/kubeconfig",
    "KUBERNETES_SERVICE_HOST": "",
    "KUBERNETES_SERVICE_PORT": "",
}


def _render(env: Env, helm: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    environ = env.environ(NO_CLUSTER)
    for key in ("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"):
        environ.pop(key, None)
    argv = [sys.executable, "-m", "gitops_helm.cli", "render", *args, "--helm-bin", helm]
    argv += ["--work-dir", str(tmp_path / "work"), "--oci-plain-http", env["TESTENV_REGISTRY"]]
    return subprocess.run(argv, capture_output=True, text=True, timeout=300, env=environ)


def _write(path: Path, *docs: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump_all(docs))


def _hr(name: str, chart: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "helm.fluxcd.io/v1",
        "kind": "HelmRelease",
        "metadata": {"name": name, "namespace": "apps"},
        "spec": {"releaseName": name, "chart": chart, **spec},
    }


def _by_kind(stream: str, release: str) -> dict[str, dict[str, Any]]:
    """The rendered objects of one HelmRelease (its documents' Source comments name it)."""
    found: dict[str, dict[str, Any]] = {}
    for chunk in stream.split("\n---\n"):
        if f"# Source: apps/{release}: " in chunk:
            obj = yaml.safe_load(chunk)
            found[obj["kind"]] = obj
    return found


def _deployment_image(objects: dict[str, dict[str, Any]]) -> str:
    return str(objects["Deployment"]["spec"]["template"]["spec"]["containers"][0]["image"])


def test_render_values_from_manifests_with_repository_and_oci_charts(
    env: Env, helm: str, tmp_path: Path
) -> None:
    config = tmp_path / "config"
    values_from = [
        {"configMapKeyRef": {"name": "web-values"}},
        {"secretKeyRef": {"name": "web-image", "key": "image.yaml"}},
        {"secretKeyRef": {"name": "web-more", "optional": True}},
        {"configMapKeyRef": {"name": "not-declared", "optional": True}},
    ]
    _write(
        config / "apps" / "web.yaml",
        _hr(
            "web",
            {"repository": env["TESTENV_CHARTS"], "name": "hello", "version": "0.1.0"},
            targetNamespace="prod",
            valuesFrom=values_from,
            values={"replicaCount": 3},
        ),
        _hr(
            "web-oci",
            {"repository": env["TESTENV_OCI_CHARTS"], "name": "hello", "version": "0.1.0"},
            values={"message": "from-oci"},
        ),
    )
    _write(
        config / "values" / "objects.yaml",
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "web-values", "namespace": "apps"},
            "data": {"values.yaml": "message: from-configmap\nreplicaCount: 1\n"},
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "web-image", "namespace": "apps"},
            "data": {"image.yaml": base64.b64encode(b"image:\n  tag: '2.5.0'\n").decode()},
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "web-more", "namespace": "apps"},
            "stringData": {"values.yaml": "image:\n  repository: registry.example/web\n"},
        },
    )

    out = _render(env, helm, tmp_path, str(config))

    assert out.returncode == 0, out.stderr
    web = _by_kind(out.stdout, "web")
    assert set(web) == {"ConfigMap", "Service", "Deployment", "Pod"}
    assert web["ConfigMap"]["data"]["message"] == "from-configmap"
    assert web["Deployment"]["spec"]["replicas"] == 3  # inline values win
    assert _deployment_image(web) == "registry.example/web:2.5.0"  # base64 data and stringData
    assert "# Source: apps/web: hello/templates/deployment.yaml" in out.stdout
    assert _by_kind(out.stdout, "web-oci")["ConfigMap"]["data"]["message"] == "from-oci"
    assert "optional valuesFrom[3] configMapKeyRef apps/not-declared key values.yaml: not found" in out.stderr


def test_render_failure_of_one_helmrelease_names_it_and_the_others_render(
    env: Env, helm: str, tmp_path: Path
) -> None:
    config = tmp_path / "config"
    chart = {"repository": env["TESTENV_CHARTS"], "name": "hello", "version": "0.1.0"}
    _write(config / "ok.yaml", _hr("fine", chart, values={"message": "still-rendered"}))
    _write(config / "broken.yaml", _hr("lacking", chart, valuesFrom=[{"secretKeyRef": {"name": "db-creds"}}]))
    _write(config / "nochart.yaml", _hr("nochart", {**chart, "version": "9.9.9"}))

    out = _render(env, helm, tmp_path, str(config), "--output-dir", str(tmp_path / "out"))

    assert out.returncode == 1
    assert (
        "broken.yaml:1: HelmRelease apps/lacking: values: valuesFrom[0] secretKeyRef apps/db-creds"
        in out.stderr
    )
    assert "Secret not found among the manifests under PATH" in out.stderr
    assert "nochart.yaml:1: HelmRelease apps/nochart: chart:" in out.stderr
    assert "9.9.9" in out.stderr
    rendered = (tmp_path / "out" / "apps" / "fine.yaml").read_text()
    assert _by_kind(rendered, "fine")["ConfigMap"]["data"]["message"] == "still-rendered"
    assert not (tmp_path / "out" / "apps" / "lacking.yaml").exists()
    assert "1 rendered, 2 failed" in out.stderr


def test_render_git_chart_from_the_work_tree_on_disk(env: Env, helm: str, tmp_path: Path) -> None:
    """A chart.git naming the work tree's own remote is read from disk: the remote here does not
    even exist, and an uncommitted change of the chart shows in the output."""
    repo = tmp_path / "repo"
    (repo / "charts").mkdir(parents=True)
    shutil.copytree(CHARTS / "hello", repo / "charts" / "hello")
    remote = "https://git.invalid/team/config.git"
    _write(repo / "releases" / "web.yaml", _hr("web", {"git": remote, "path": "charts/hello", "ref": "main"}))
    for argv in (["init", "-q", "-b", "main"], ["remote", "add", "origin", remote]):
        env.run(["git", "-C", str(repo), *argv])
    values = repo / "charts" / "hello" / "values.yaml"
    values.write_text(values.read_text().replace("message: hello", "message: uncommitted-edit"))

    out = _render(env, helm, tmp_path, str(repo / "releases"))

    assert out.returncode == 0, out.stderr
    assert _by_kind(out.stdout, "web")["ConfigMap"]["data"]["message"] == "uncommitted-edit"
    assert not (repo / "charts" / "hello" / "charts").exists()  # nothing written into the work tree
