"""``gitops-helm status`` with sharded agents (the setup of test_sharding.py, without installs):
every shard's leader is shown, and each HelmRelease's shard."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

from tests.conftest import Env
from tests.integration.reconcile_helpers import apply, hr_manifest, repo_chart
from tests.integration.syncfix import AgentProcess, cli, start_agent
from tests.integration.test_cli_reconcile import install_crd
from tests.integration.test_sharding import SHARD_LABEL, WAIT


def labelled(env: Env, namespace: str, name: str, shard: str | None) -> dict[str, Any]:
    """A HelmRelease whose chart version does not exist: the agents only fail to fetch it (no
    install to wait for when they stop)."""
    manifest = hr_manifest(name, namespace, dict(repo_chart(env), version="9.9.9"))
    if shard is not None:
        manifest["metadata"]["labels"] = {SHARD_LABEL: shard}
    return manifest


def test_status_shows_each_shards_leader(env: Env, namespace: str, tmp_path: Path) -> None:
    election = ("--leader-elect", "true", "--leader-election-lease-duration", "10s", "--reconcile-only")
    flags = {"a": ("--shard", "a"), "rest": ("--watch-label-selector", f"!{SHARD_LABEL}")}
    install_crd(env)
    agents: dict[str, AgentProcess] = {}
    try:
        for name, extra in flags.items():
            agents[name] = start_agent(
                env, tmp_path / name, namespace, "file:///nonexistent", *election, *extra
            )
        for agent in agents.values():
            agent.wait_acting(timeout=WAIT)
        apply(env, labelled(env, namespace, "in-a", "a"))
        apply(env, labelled(env, namespace, "none", None))
        # another install in the namespace, whose Lease the chart names after its release
        other = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": "gitops-helm-staging", "namespace": namespace},
            "spec": {"holderIdentity": "staging-agent"},
        }
        env.kubectl("apply", "-f", "-", input_text=json.dumps(other))

        base = ("status", "-n", namespace, "--kubeconfig", env["KUBECONFIG"])
        where = ("--leader-election-namespace", namespace)
        out = cli(env, *base, *where)
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        a_pid, rest_pid = agents["a"].proc.pid, agents["rest"].proc.pid
        leader = next(line for line in lines if line.startswith(f"leader ({namespace}/gitops-helm)"))
        assert leader.split(": ", 1)[1].split(",")[0].endswith(f"-{rest_pid}"), leader
        shard_a = next(
            line for line in lines if line.startswith(f"leader of shard a ({namespace}/gitops-helm-a)")
        )
        assert shard_a.split(": ", 1)[1].split(",")[0].endswith(f"-{a_pid}"), shard_a
        assert not any("staging" in line for line in lines), lines

        data = json.loads(cli(env, *base, *where, "-o", "json").stdout)
        holders = {(d["lease"], d["shard"]): d["holder"] for d in data["leaders"]}
        assert sorted(holders) == [("gitops-helm", None), ("gitops-helm-a", "a")], holders
        assert holders[("gitops-helm-a", "a")].endswith(f"-{a_pid}")
        assert {r["name"]: r["shard"] for r in data["helmReleases"]} == {"in-a": "a", "none": ""}

        wide = cli(env, *base, *where, "-o", "wide").stdout.splitlines()
        head = wide[0].split("  ")
        head = [h.strip() for h in head if h.strip()]
        assert "SHARD" in head, wide[0]
        shards = {line.split()[0]: line.split()[head.index("SHARD")] for line in wide[1:3]}
        assert shards == {"in-a": "a", "none": "-"}, wide
    finally:
        for agent in agents.values():
            if agent.proc.poll() is None:
                agent.proc.send_signal(signal.SIGTERM)
        for agent in agents.values():
            agent.stop()
