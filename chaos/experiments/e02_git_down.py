"""Experiment 2, Git server down: the agent rides out an outage of its Git server and catches up.

Injects: a real ``gitops-helm run`` subprocess syncs a config repository on the environment's Git
HTTP server through a TCP fault proxy of its own (``chaos.faultproxy``) on loopback. Each trial
"stops the Git server" by switching the proxy to ``refuse`` (connection refused) or ``blackhole``
(accepted, never answered: only the agent's ``--git-timeout`` ends a fetch) for a random period
(3-6 s quick, 5-20 s full; longer when needed until the outage shows), while one to three commits
are pushed straight to the real repository behind it: each changes a ConfigMap, adds one, and the
first removes those the previous trial added (so garbage collection, which is on, has work to do
once the server is back). Then the proxy forwards again. Count: per mode, 1 quick, 10 full.

Checks, during the outage, about every second: every object of the last synced commit is still
there with its data and the sync state still names that commit (``lost`` otherwise: nothing may
be deleted or garbage-collected because Git is unreachable); the agent keeps running; the outage
is visible in the sync-state object (``fetchError``), in ``gitops-helm status`` ("fetch error:")
and in ``/metrics`` (``gitops_helm_git_fetches_total{result="error"}`` rises) - ``violated`` when
it is not. After recovery: the sync state reaches the last commit pushed during the outage with
result ``ok`` and an empty ``fetchError``, every object of that commit is present with its data
and the removed ones are gone (``lost`` if an object of a commit is missing). During a blackhole
(held at least 28 s for this), no git process of the agent lives longer than its timeout plus 10 s:
a hung fetch is killed, not orphaned.
"""

from __future__ import annotations

import json
import random
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from testenvlib import env as testenv

from chaos.faultproxy import FaultProxy, Mode
from chaos.framework import Context, Trial, experiment
from gitops_helm.sync.apply import state_configmap_name
from tests.integration.syncfix import (
    AgentProcess,
    ConfigRepo,
    cli,
    configmap,
    start_agent,
    status_flags,
    synced_revision,
    wait_for,
)

GIT_TIMEOUT_S = 6  # the agent's --git-timeout: how long a blackholed fetch hangs before it is killed
FETCH_KILLED_WITHIN_S = GIT_TIMEOUT_S + 10  # a git process older than this outlived its timeout
MAX_OUTAGE_S = 90.0  # the outage is held this long at most, waiting for it to show
RECOVERY_TIMEOUT_S = 180.0  # bounds a hang only: how fast is a latency, not an invariant here
SCENARIOS: dict[Mode, str] = {"refuse": "refused", "blackhole": "blackholed"}


def fetch_errors(agent: AgentProcess) -> float:
    """``gitops_helm_git_fetches_total{result="error"}`` from the agent's /metrics (0 if absent)."""
    return metric(agent, r'gitops_helm_git_fetches_total\{result="error"\}') or 0.0


def metric(agent: AgentProcess, series: str) -> float | None:
    code, text = agent.request("GET", "/metrics")
    if code != 200:
        return None
    found = re.search(rf"^{series} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else None


class Repo:
    """The config repository and what its newest commit declares (ConfigMap name -> data)."""

    def __init__(self, ctx: Context, namespace: str) -> None:
        name = f"chaos-gitdown-{uuid.uuid4().hex[:8]}"
        self.real_url = testenv.new_repo(name)
        self.name = name + ".git"
        self.work = ConfigRepo(ctx.scratch("gitdown-repo"), self.real_url)
        self.namespace = namespace
        self.declared: dict[str, dict[str, str]] = {}

    def push(self, declared: dict[str, dict[str, str]], message: str) -> str:
        """Make the tree declare exactly ``declared``; push straight to the real server."""
        self.declared = {k: dict(v) for k, v in declared.items()}
        files = {f"{name}.yaml": configmap(name, data) for name, data in declared.items()}
        return self.work.replace(files, message)


def live_configmaps(ctx: Context, namespace: str, names: set[str]) -> dict[str, dict[str, str]]:
    """The data of the ConfigMaps among ``names`` that exist in ``namespace`` (one list call)."""
    items = json.loads(ctx.env.kubectl("get", "configmaps", "-n", namespace, "-o", "json"))["items"]
    return {
        item["metadata"]["name"]: dict(item.get("data") or {})
        for item in items
        if item["metadata"]["name"] in names
    }


def sync_state(ctx: Context, namespace: str, sync_name: str) -> dict[str, str]:
    name = state_configmap_name(sync_name)
    out = ctx.env.kubectl("get", "configmap", name, "-n", namespace, "-o", "json", "--ignore-not-found")
    return dict(json.loads(out).get("data") or {}) if out.strip() else {}


def processes_fetching(url_part: str, but: int) -> set[tuple[int, str]]:
    """(pid, start time) of the processes but ``but`` (the agent) whose argv holds ``url_part``
    (the proxy's address, which only this experiment uses): the agent's git children."""
    found = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == but:
            continue
        try:
            argv = (proc / "cmdline").read_bytes()
            started = (proc / "stat").read_text().rsplit(")", 1)[1].split()[19]
        except (OSError, IndexError):
            continue
        if url_part.encode() in argv:
            found.add((int(proc.name), started))
    return found


@experiment(
    2,
    "git-down",
    "Git server down: last synced state kept, outage visible, every commit applied after it",
    injects="Git server connections refused or blackholed (own TCP proxy) while commits are pushed behind it",
    quick=1,
    full=10,
    budget_seconds=1800,
)
def run(ctx: Context, count: int) -> Iterator[Trial]:
    rng = random.Random()
    outage_range = (3.0, 6.0) if ctx.quick else (5.0, 20.0)
    with ctx.namespace("gitdown") as namespace:
        repo = Repo(ctx, namespace)
        target = urlsplit(repo.real_url)
        proxy = FaultProxy((target.hostname or "127.0.0.1", int(target.port or 80)))
        agent: AgentProcess | None = None
        try:
            proxy_base = f"127.0.0.1:{proxy.port}"
            agent_url = f"http://{proxy_base}/{repo.name}"
            synced = repo.push({"settings": {"trial": "0"}}, "first")
            agent = start_agent(
                ctx.env,
                ctx.scratch("gitdown-agent"),
                namespace,
                agent_url,
                "--sync-garbage-collection",
                "true",
                "--git-timeout",
                f"{GIT_TIMEOUT_S}s",
                poll="1s",
            )
            synced_revision(ctx.env, namespace, agent.sync_name, synced, timeout=120)
            trial = 0
            for _ in range(count):
                for mode in ("refuse", "blackhole"):
                    trial += 1
                    started = time.monotonic()
                    outcome, detail = one_outage(
                        ctx, rng, repo, proxy, agent, namespace, mode, trial, outage_range, proxy_base
                    )
                    yield Trial(SCENARIOS[mode], outcome, detail, seconds=time.monotonic() - started)
        finally:
            if agent is not None:
                agent.stop()
            proxy.close()


def one_outage(
    ctx: Context,
    rng: random.Random,
    repo: Repo,
    proxy: FaultProxy,
    agent: AgentProcess,
    namespace: str,
    mode: Mode,
    trial: int,
    outage_range: tuple[float, float],
    proxy_base: str,
) -> tuple[Any, str]:
    """One outage in ``mode``; returns (outcome, detail)."""
    kept = {k: dict(v) for k, v in repo.declared.items()}  # the last synced commit's objects
    kept_sha = repo.work.work.git("rev-parse", "HEAD")
    state = sync_state(ctx, namespace, agent.sync_name)
    if state.get("revision") != kept_sha or state.get("fetchError"):
        return "error", f"not settled before the outage: {state}"
    errors_before = fetch_errors(agent)
    length = rng.uniform(*outage_range)
    if mode == "blackhole":  # long enough to see a hung fetch killed by its timeout
        length = max(length, FETCH_KILLED_WITHIN_S + 2 * GIT_TIMEOUT_S)

    proxy.set_mode(mode)
    down_at = time.monotonic()
    try:
        # Commits queue up behind the unreachable server.
        commits = rng.randint(1, 3)
        declared = {k: v for k, v in kept.items() if not k.startswith("added-")}
        for j in range(commits):
            declared["settings"] = {"trial": str(trial), "commit": str(j)}
            declared[f"added-{trial}-{j}"] = {"from": f"trial {trial} commit {j}"}
            last_sha = repo.push(declared, f"trial {trial} commit {j} during the outage")

        first_seen: dict[tuple[int, str], float] = {}  # the agent's git processes, when first seen
        seen_state = seen_status = seen_metric = False
        status_line = ""
        while True:
            live = live_configmaps(ctx, namespace, set(kept))
            missing = sorted(set(kept) - set(live))
            changed = sorted(k for k in kept if k in live and live[k] != kept[k])
            if missing or changed:
                return "lost", f"during the outage: missing {missing}, changed {changed}"
            state = sync_state(ctx, namespace, agent.sync_name)
            if state.get("revision") != kept_sha:
                return "violated", f"sync state moved during the outage: {state.get('revision')}"
            agent.assert_running()
            now = time.monotonic()
            fetching = processes_fetching(proxy_base, agent.proc.pid)
            for fetch in fetching:
                first_seen.setdefault(fetch, now)
            stuck = sorted(f[0] for f in fetching if now - first_seen[f] > FETCH_KILLED_WITHIN_S)
            if stuck:
                return "violated", f"git processes {stuck} outlived --git-timeout {GIT_TIMEOUT_S}s"
            seen_state = seen_state or bool(state.get("fetchError"))
            seen_metric = seen_metric or fetch_errors(agent) > errors_before
            if seen_state and not seen_status:
                out = cli(ctx.env, "status", *status_flags(ctx.env, namespace, agent.sync_name), timeout=60)
                status_line = next((ln.strip() for ln in out.stdout.splitlines() if "fetch error:" in ln), "")
                seen_status = bool(status_line)
            elapsed = time.monotonic() - down_at
            visible = seen_state and seen_status and seen_metric
            if elapsed >= length and visible:
                break
            if elapsed >= MAX_OUTAGE_S:
                shown = f"state {seen_state}, status {seen_status}, metrics {seen_metric}"
                return "violated", f"outage not visible after {elapsed:.0f}s ({shown})"
            time.sleep(1.0)
        lag = metric(agent, "gitops_helm_sync_lag_seconds")
    finally:
        proxy.set_mode("forward")
    outage_s = time.monotonic() - down_at

    # Every commit pushed during the outage is applied once the server is back.
    def caught_up() -> dict[str, str] | None:
        now = sync_state(ctx, namespace, agent.sync_name)
        ok = now.get("revision") == last_sha and now.get("result") == "ok" and now.get("fetchError") == ""
        return now if ok else None

    try:
        wait_for(f"sync of {last_sha[:12]} after the outage", caught_up, RECOVERY_TIMEOUT_S, interval=0.5)
    except AssertionError as exc:
        return "violated", f"no recovery: {exc}"
    recovered_s = time.monotonic() - down_at - outage_s
    names = set(kept) | set(declared)
    live = live_configmaps(ctx, namespace, names)
    missing = sorted(k for k in declared if live.get(k) != declared[k])
    if missing:
        return "lost", f"after recovery, objects of the last commit missing or stale: {missing}"
    leftover = sorted(set(live) - set(declared))
    if leftover:
        return "violated", f"objects removed in Git still there after recovery: {leftover}"
    return "survived", (
        f"{commits} commit(s) pushed during a {outage_s:.1f}s outage; shown as '{status_line[:80]}', "
        f"sync lag {lag}s; caught up {recovered_s:.1f}s after recovery"
    )
