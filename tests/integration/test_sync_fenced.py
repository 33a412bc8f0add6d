"""A leader that loses the Lease in the middle of a Git sync (frozen, then resumed after a standby
took over) writes nothing more: no further apply, no deletion, no inventory. Before, the sync ran
its old plan to the end, and could delete what a newer commit had restored."""

from __future__ import annotations

import json
from pathlib import Path

from gitops_helm.adapters.kube import Kube, KubeSettings
from gitops_helm.config import SyncSettings
from gitops_helm.sync.apply import Syncer, state_configmap_name
from gitops_helm.sync.plan import SourceIdentity
from tests.conftest import Env


def _configmap(name: str, namespace: str) -> str:
    return json.dumps(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace}}
    )


def test_a_sync_that_loses_leadership_midway_writes_nothing_more(
    env: Env, namespace: str, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("first", "second", "third"):
        (repo / f"{name}.yaml").write_text(_configmap(name, namespace))
    settings = SyncSettings(name="fenced", state_namespace=namespace, default_namespace=namespace)
    identity = SourceIdentity.of("https://git.example.invalid/config.git", "main", (), False)
    kube = Kube(KubeSettings(kubeconfig=env["KUBECONFIG"]))

    leads = [True]  # the fence's answer; turned off by the first write, as a lost Lease would be

    def may_act() -> bool:
        answer = leads[0]
        leads[0] = False
        return answer

    result = Syncer(kube, settings, identity, may_act=may_act).sync(repo, (), "c0ffee")

    live = {
        name
        for name in ("first", "second", "third")
        if env.kubectl("get", "configmap", name, "-n", namespace, "--ignore-not-found", "-o", "name")
    }
    assert live == {"first"}, live  # the write allowed before the loss, and nothing after it
    assert any("no longer leads" in e for e in result.errors), result.errors
    state = env.kubectl(
        "get", "configmap", state_configmap_name("fenced"), "-n", namespace, "--ignore-not-found"
    )
    assert state == "", "a fenced sync wrote its state and inventory"
