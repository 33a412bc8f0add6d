"""Scale-out by sharding: three real ``gitops-helm run`` processes split the HelmReleases of one
namespace by the label ``gitops-helm.io/shard``: ``--shard a``, ``--shard b`` and a catch-all
(``--watch-label-selector '!gitops-helm.io/shard'``), each with its own Lease. Each reconciles only
its own HelmReleases, and a HelmRelease relabelled to another shard is handed over."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

from tests.conftest import Env
from tests.integration.reconcile_helpers import apply, hr_manifest, latest_revision, patch_spec, repo_chart
from tests.integration.syncfix import AgentProcess, start_agent, wait_for

SHARD_LABEL = "gitops-helm.io/shard"
WAIT = 120.0


def metric(agent: AgentProcess, name: str, **labels: str) -> float:
    """The value of one series of the agent's /metrics (0 when absent)."""
    code, text = agent.request("GET", "/metrics")
    assert code == 200
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    series = f"{name}{{{want}}}" if labels else name
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def helm_upgrades(agent: AgentProcess) -> float:
    """helm install/upgrade processes this agent started (the acting calls that write releases),
    whatever their outcome: ``gitops_helm_helm_calls_total{verb,outcome}`` summed."""
    code, text = agent.request("GET", "/metrics")
    assert code == 200
    total = 0.0
    for line in text.splitlines():
        if line.startswith("gitops_helm_helm_calls_total{") and (
            'verb="install"' in line or 'verb="upgrade"' in line
        ):
            total += float(line.rsplit(" ", 1)[1])
    return total


def hr(namespace: str, name: str, shard: str | None, env: Env, **values: Any) -> dict[str, Any]:
    manifest = hr_manifest(name, namespace, repo_chart(env), values=values)
    if shard is not None:
        manifest["metadata"]["labels"] = {SHARD_LABEL: shard}
    return manifest


def ready_generation(env: Env, namespace: str, name: str) -> int:
    """The generation the HelmRelease is Ready at (0 while not Ready)."""
    obj = env.kube_json("helmrelease", name, "-n", namespace)
    status = obj.get("status") or {}
    ready = next((c for c in status.get("conditions") or [] if c["type"] == "Ready"), None)
    if not ready or ready["status"] != "True":
        return 0
    return int(status.get("observedGeneration") or 0)


def generation(env: Env, namespace: str, name: str) -> int:
    return int(env.kube_json("helmrelease", name, "-n", namespace)["metadata"]["generation"])


def test_two_shards_and_a_catch_all_each_reconcile_their_own(
    env: Env, namespace: str, tmp_path: Path
) -> None:
    election = ("--leader-elect", "true", "--leader-election-lease-duration", "10s", "--reconcile-only")
    url = "file:///nonexistent"  # --reconcile-only: no Git sync in these agents
    flags = {
        "a": ("--shard", "a"),
        "b": ("--shard", "b"),
        "rest": ("--watch-label-selector", f"!{SHARD_LABEL}"),
    }
    agents: dict[str, AgentProcess] = {}
    try:
        for name, extra in flags.items():
            agents[name] = start_agent(env, tmp_path / name, namespace, url, *election, *extra)
        for agent in agents.values():
            agent.wait_acting(timeout=WAIT)
        a, b, rest = agents["a"], agents["b"], agents["rest"]

        # Each shard leads its own Lease, and says on /metrics which HelmReleases it serves.
        holders = {
            lease: env.kube_json("lease", lease, "-n", namespace)["spec"]["holderIdentity"]
            for lease in ("gitops-helm-a", "gitops-helm-b", "gitops-helm")
        }
        assert holders["gitops-helm-a"].endswith(f"-{a.proc.pid}")
        assert holders["gitops-helm-b"].endswith(f"-{b.proc.pid}")
        assert holders["gitops-helm"].endswith(f"-{rest.proc.pid}")
        assert metric(a, "gitops_helm_shard_info", shard="a", selector=f"{SHARD_LABEL}=a") == 1
        assert metric(rest, "gitops_helm_shard_info", shard="", selector=f"!{SHARD_LABEL}") == 1

        # The unlabelled one first: once a shard has reconciled its own (created later), its
        # watch has passed the unlabelled one's creation, so what it knows is final.
        apply(env, hr(namespace, "none", None, env))
        apply(env, hr(namespace, "in-a", "a", env))
        apply(env, hr(namespace, "in-b", "b", env))
        for name in ("none", "in-a", "in-b"):
            wait_for(f"{name} Ready", lambda n=name: ready_generation(env, namespace, n), timeout=WAIT)  # type: ignore[misc]
        for name in ("none", "in-a", "in-b"):
            assert latest_revision(env, namespace, name) == (1, "deployed")
        # Each agent knows exactly one HelmRelease and installed exactly one release.
        for agent in (a, b, rest):
            assert metric(agent, "gitops_helm_releases") == 1
            assert helm_upgrades(agent) == 1

        # Hand-over: relabelled from a to b, shard a drops it and shard b takes it.
        env.kubectl("label", "helmrelease", "in-a", "-n", namespace, f"{SHARD_LABEL}=b", "--overwrite")
        a.wait_log("HelmRelease left this agent's label selector", WAIT)
        wait_for("shard a drops in-a", lambda: metric(a, "gitops_helm_releases") == 0, WAIT)
        wait_for("shard b knows in-a", lambda: metric(b, "gitops_helm_releases") == 2, WAIT)
        a_upgrades = helm_upgrades(a)
        b_upgrades = helm_upgrades(b)
        patch_spec(env, namespace, "in-a", {"values": {"replicaCount": 2}})
        gen = generation(env, namespace, "in-a")
        wait_for("in-a upgraded by shard b", lambda: ready_generation(env, namespace, "in-a") == gen, WAIT)
        assert latest_revision(env, namespace, "in-a") == (2, "deployed")
        assert helm_upgrades(b) == b_upgrades + 1
        assert helm_upgrades(a) == a_upgrades  # shard a holds no HelmRelease any more

        # Unlabelled: the catch-all takes it.
        env.kubectl("label", "helmrelease", "in-b", "-n", namespace, f"{SHARD_LABEL}-")
        wait_for("the catch-all knows in-b", lambda: metric(rest, "gitops_helm_releases") == 2, WAIT)
        wait_for("shard b drops in-b", lambda: metric(b, "gitops_helm_releases") == 1, WAIT)
        rest_upgrades = helm_upgrades(rest)
        patch_spec(env, namespace, "in-b", {"values": {"replicaCount": 2}})
        gen = generation(env, namespace, "in-b")
        wait_for(
            "in-b upgraded by the catch-all", lambda: ready_generation(env, namespace, "in-b") == gen, WAIT
        )
        assert latest_revision(env, namespace, "in-b") == (2, "deployed")
        assert helm_upgrades(rest) == rest_upgrades + 1
    finally:
        for agent in agents.values():  # all told to stop first: they finish side by side
            if agent.proc.poll() is None:
                agent.proc.send_signal(signal.SIGTERM)
        for agent in agents.values():
            agent.stop()
