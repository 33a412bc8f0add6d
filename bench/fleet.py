"""A fleet of N HelmReleases in sync, built once per run and shared by B1 and B4.

The fleet is what a user has after the first rollout: a Git repository on the environment's Git
server declaring N HelmReleases of the small chart (``bench/charts/bench-small``: a Deployment
scaled to 0, a Service, a ConfigMap), all synced, installed and Ready. It is built by a
first agent that is then stopped, so the agent a benchmark measures starts on a fleet in sync.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from bench import agentproc as ap
from bench.framework import Context
from tests.integration.syncfix import AgentProcess, ConfigRepo, start_agent, unique_name

WEBHOOK_SECRET = "bench-webhook-secret"  # noqa: S105 - a loopback agent's test secret


@dataclass
class Fleet:
    namespace: str
    size: int
    repo: ConfigRepo
    url: str
    secret_file: Path
    build_seconds: float

    def push_unrelated_change(self, message: str) -> str:
        """A new commit that changes no object: only a README beside the manifests."""
        return self.repo.commit({"README.md": f"{message}\n"}, message)

    def webhook(self, agent: AgentProcess, sha: str) -> None:
        push = {"ref": "refs/heads/main", "after": sha, "repository": {"clone_url": self.url}}
        status, body = agent.webhook(push, WEBHOOK_SECRET)
        if status != 202:
            raise RuntimeError(f"webhook answered {status}: {body}")


def start_measured_agent(
    ctx: Context, fleet: Fleet, name: str, *extra: str, helm_bin: str | None = None
) -> AgentProcess:
    """``gitops-helm run`` on the fleet's repository: Git polled hourly, fetched on webhook."""
    return start_agent(
        ctx.env,
        ctx.scratch(name),
        fleet.namespace,
        fleet.url,
        "--git-webhook-secret-file",
        str(fleet.secret_file),
        "--helm-bin",
        helm_bin or ctx.env["HELM_BIN"],
        "--log-level",
        "warning",
        *extra,
        poll="1h",
    )


def in_sync_fleet(ctx: Context, size: int) -> Fleet:
    """The run's fleet of ``size`` HelmReleases in sync (built on first use, deleted at the end)."""
    key = f"fleet-{size}"
    found = ctx.shared.get(key)
    if isinstance(found, Fleet):
        return found
    namespace = ctx.create_namespace(f"fleet{size}")
    api = ap.kube_api(ctx.env)

    def cleanup() -> None:
        ap.release_finalizers_fast(api, namespace)
        ctx.env.kubectl("delete", "namespace", namespace, "--wait=false", check=False)

    ctx.cleanups.append(cleanup)
    work = ctx.scratch(key)
    url = f"{ctx.env['TESTENV_GIT_HTTP']}/{unique_name('bench-fleet')}.git"
    repo = ConfigRepo(work / "repo", url)
    names = [f"app-{i:04d}" for i in range(size)]
    repo.commit({"apps/releases.yaml": ap.helmrelease_manifests(ctx.env, names, ap.SMALL_VALUES)}, "fleet")
    secret_file = work / "webhook-secret"
    secret_file.write_text(WEBHOOK_SECRET + "\n")
    fleet = Fleet(namespace, size, repo, url, secret_file, 0.0)
    ctx.log(f"  building a fleet of {size} HelmReleases in {namespace}")
    started = time.monotonic()
    builder = start_measured_agent(ctx, fleet, "fleet-builder", "--workers", "10")
    try:
        ap.wait_all_ready(api, namespace, size, timeout=120 + size * 3.0, agent=builder)
    finally:
        ap.stop(builder)
    fleet.build_seconds = time.monotonic() - started
    ctx.shared[key] = fleet
    return fleet
