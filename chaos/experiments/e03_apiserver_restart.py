"""Experiment 3, API server restart: watches resume and every change made meanwhile is reconciled.

Injects: kube-apiserver stopped (SIGTERM to the recorded process) and started again with the same
arguments and port (``scripts/testenv restart-apiserver``'s library functions; etcd and everything
else keep running), under a real ``gitops-helm run`` subprocess (helm 4) that syncs a config
repository on the environment's Git server. The API server stays down for a random 2-5 s (quick)
or 3-15 s (full) beyond its own stop and start. Count: 1 quick, 5 full.

Changes made "meanwhile": while it is down, a commit is pushed that changes a HelmRelease's values
and a ConfigMap (the agent fetches it during the outage and can apply it only once the API is
back); right after ``/readyz`` answers again, before the agent's watch can have reconnected,
another HelmRelease (not in Git) is edited and a new one is created.

Checks: the agent never exits; within 30 s of the API server being ready again (measured; the
wait itself is bounded at 180 s so a slow recovery is reported, not hung on), the sync state
names the new commit, the ConfigMap has its new data, and each of the three releases has its new
values deployed with its HelmRelease Ready for the current generation (``violated`` when late);
Helm history then shows exactly one new revision per changed release and none for the releases
created in earlier trials (unchanged), and no ``pending-*`` revision (``violated`` on a duplicate
helm action); a release that was there before and is gone after is ``lost``.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Iterator
from typing import Any

from testenvlib import env as testenv

from chaos.framework import Context, Outcome, Trial, experiment
from tests.integration.reconcile_helpers import apply, hr_manifest, patch_spec, repo_chart
from tests.integration.syncfix import (
    AgentProcess,
    ConfigRepo,
    configmap,
    helmrelease,
    start_agent,
    sync_state,
    wait_for,
)

RECONCILED_WITHIN_S = 30.0  # the promise: every change reconciled this soon after the API is back
WAIT_BOUND_S = 180.0  # how long a late recovery is waited for (reported, never hung on)


def history(ctx: Context, namespace: str, release: str) -> list[dict[str, Any]]:
    out = ctx.env.run(
        [ctx.env["HELM_BIN"], "history", release, "-n", namespace, "--max", "1000", "-o", "json"], check=False
    )
    if out.returncode != 0:
        if "not found" in out.stderr:
            return []
        raise AssertionError(f"helm history {release}: {out.stderr.strip()}")
    return list(json.loads(out.stdout))


def deployed_message(ctx: Context, namespace: str, release: str) -> str | None:
    out = ctx.env.run(
        [ctx.env["HELM_BIN"], "get", "values", release, "-n", namespace, "-o", "json"], check=False
    )
    if out.returncode != 0:
        return None
    return (json.loads(out.stdout) or {}).get("message")


def hr_ready(ctx: Context, namespace: str, name: str) -> bool:
    out = ctx.env.kubectl("get", "helmrelease", name, "-n", namespace, "-o", "json", "--ignore-not-found")
    if not out.strip():
        return False
    hr = json.loads(out)
    status = hr.get("status") or {}
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []
    )
    return ready and status.get("observedGeneration") == hr["metadata"].get("generation")


@experiment(
    3,
    "apiserver-restart",
    "API server restart: watches resume, changes made meanwhile reconciled within 30 s, no duplicates",
    injects="kube-apiserver stopped and started again (etcd kept) under a running agent",
    quick=1,
    full=5,
    budget_seconds=1500,
)
def run(ctx: Context, count: int) -> Iterator[Trial]:
    rng = random.Random()
    down_range = (2.0, 5.0) if ctx.quick else (3.0, 15.0)
    with ctx.namespace("apiserver") as namespace:
        repo_name = f"chaos-apiserver-{uuid.uuid4().hex[:8]}"
        repo = ConfigRepo(ctx.scratch("apiserver-repo"), testenv.new_repo(repo_name))
        agent: AgentProcess | None = None
        stopped = False
        try:

            def tree(message: str) -> dict[str, str]:
                return {
                    "from-git.yaml": helmrelease(ctx.env, "from-git", {"message": message}),
                    "settings.yaml": configmap("settings", {"message": message}),
                }

            sha = repo.replace(tree("v0"), "first")
            agent = start_agent(ctx.env, ctx.scratch("apiserver-agent"), namespace, repo.push_url, poll="1s")
            agent.wait_acting()
            apply(
                ctx.env,
                hr_manifest("edited", namespace, repo_chart(ctx.env), values={"message": "v0"}),
            )
            settled = {"from-git": "v0", "edited": "v0"}
            problem = wait_settled(ctx, namespace, agent, sha, "v0", settled, WAIT_BOUND_S)
            if problem:
                yield Trial(
                    "restart", "error", f"the agent did not settle before the first restart: {problem}"
                )
                return
            for trial in range(1, count + 1):
                started = time.monotonic()
                message = f"v{trial}"
                before = {name: len(history(ctx, namespace, name)) for name in settled}
                down_for = rng.uniform(*down_range)

                testenv.stop_apiserver()
                stopped = True
                down_at = time.monotonic()
                sha = repo.replace(tree(message), f"trial {trial}: pushed while the API server is down")
                time.sleep(max(0.0, down_for - (time.monotonic() - down_at)))
                agent_alive_in_outage = agent.proc.poll() is None
                testenv.start_apiserver()
                stopped = False
                back_at = time.monotonic()
                # Right after it is back: before the agent's watch can have reconnected.
                patch_spec(ctx.env, namespace, "edited", {"values": {"message": message}})
                created = f"new-{trial}"
                apply(
                    ctx.env,
                    hr_manifest(created, namespace, repo_chart(ctx.env), values={"message": message}),
                )
                changed = {"from-git": message, "edited": message, created: message}
                settled = {**settled, **changed}  # earlier new-* releases keep their values
                problem = wait_settled(ctx, namespace, agent, sha, message, settled, WAIT_BOUND_S)
                took = time.monotonic() - back_at
                outcome, detail = judge(
                    ctx, namespace, agent, settled, changed, before, problem, took, agent_alive_in_outage
                )
                detail += f" (down {back_at - down_at:.1f}s, all reconciled {took:.1f}s after /readyz)"
                yield Trial("restart", outcome, detail, seconds=time.monotonic() - started)
        finally:
            if stopped:
                testenv.start_apiserver()
            if agent is not None:
                agent.stop()


def wait_settled(
    ctx: Context,
    namespace: str,
    agent: AgentProcess,
    sha: str,
    message: str,
    releases: dict[str, str],
    timeout: float,
) -> str:
    """Wait until the commit is synced and every release has its values deployed and is Ready;
    returns "" or what was still missing at the timeout."""
    missing: list[str] = []

    def done() -> bool:
        agent.assert_running()
        missing.clear()
        if sync_state(ctx.env, namespace, agent.sync_name).get("revision") != sha:
            missing.append(f"sync of {sha[:12]}")
        data = ctx.env.kubectl("get", "configmap", "settings", "-n", namespace, "-o", "json", check=False)
        if not data.strip() or json.loads(data).get("data", {}).get("message") != message:
            missing.append("ConfigMap settings")
        for name, want in releases.items():
            if deployed_message(ctx, namespace, name) != want or not hr_ready(ctx, namespace, name):
                missing.append(f"release {name}")
        return not missing

    try:
        wait_for("every change reconciled", done, timeout, interval=0.5)
    except AssertionError:
        return ", ".join(missing) or "unknown"
    return ""


def judge(
    ctx: Context,
    namespace: str,
    agent: AgentProcess,
    releases: dict[str, str],
    changed: dict[str, str],
    before: dict[str, int],
    problem: str,
    took: float,
    alive_in_outage: bool,
) -> tuple[Outcome, str]:
    if not alive_in_outage or agent.proc.poll() is not None:
        return "violated", f"the agent exited (code {agent.proc.poll()})"
    if problem:
        gone = [name for name in before if not history(ctx, namespace, name)]
        if gone:
            return "lost", f"releases gone: {gone}; not reconciled: {problem}"
        return "violated", f"not reconciled within {WAIT_BOUND_S:.0f}s: {problem}"
    counts: list[str] = []
    for name in releases:
        revisions = history(ctx, namespace, name)
        pending = [r["revision"] for r in revisions if str(r.get("status", "")).startswith("pending")]
        if pending:
            return "violated", f"release {name} left pending: revisions {pending}"
        added = len(revisions) - before.get(name, 0)
        counts.append(f"{name} +{added}")
        want = 1 if name in changed else 0
        if added != want:
            return "violated", f"release {name}: {added} new revisions for {want} change(s): {revisions}"
    if took > RECONCILED_WITHIN_S:
        return (
            "violated",
            f"reconciled {took:.1f}s after the API server was back (> {RECONCILED_WITHIN_S:.0f}s)",
        )
    return "survived", "helm revisions " + ", ".join(counts)
