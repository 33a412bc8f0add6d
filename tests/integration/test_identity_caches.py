"""API discovery caches are never shared between identities: the agent's Kubernetes client keeps
discovery in memory (the library's default is a file in the shared temporary directory named
after the server URL only), and helm gets a Kubernetes cache directory per identity
(``KUBECACHEDIR``; client-go's default is ``$HOME/.kube/cache`` for every identity)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from gitops_helm.adapters.kube import Kube, KubeSettings
from tests.conftest import Env


def test_the_kubernetes_client_writes_no_discovery_file(
    env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    kube = Kube(KubeSettings(kubeconfig=env["KUBECONFIG"]))
    assert kube.is_namespaced("v1", "ConfigMap")
    assert kube.impersonating("system:serviceaccount:default:default").is_namespaced("v1", "Secret")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("osrcp-")] == []
