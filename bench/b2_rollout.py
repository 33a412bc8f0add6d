"""B2 rollout throughput: N new releases of a small chart, the agent against raw helm.

The chart is ``bench/charts/bench-small`` (a Deployment scaled to 0, a Service and a ConfigMap:
the flux-benchmark's shape), served by the environment's Helm repository.
For each worker count W, side by side in one run (the order alternating between repeats, so a
change in the machine's load falls on both):

- agent: ``gitops-helm run --reconcile-only --workers W`` watching a fresh namespace; the clock
  starts when ``kubectl apply`` of the N HelmReleases begins and stops when all N are Ready with
  their generation observed (read every 0.5 s);
- baseline: ``helm upgrade --install NAME bench-small --repo URL --version 0.1.0``
  run N times by W threads in another fresh namespace (what a user's script does, no cache).

The full run adds N = 1000 at W = 10, one repeat.

Both use the same helm binary (helm 4). Reported: releases per minute of each, and the ratio
agent time / baseline time (target <= 1.0: the agent caches the index and the chart).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

from bench import agentproc as ap
from bench.framework import Context, Figure, benchmark
from tests.integration.syncfix import start_agent

WORKERS = (1, 4, 10)
# The full run's N = 1000 (the large rollout) is measured at the highest worker count
# once: two sides of ~8 minutes each; every W and three repeats would take hours on 2 cores.
LARGE = 1000
LARGE_WORKERS = (10,)


def _agent_seconds(ctx: Context, size: int, workers: int) -> float:
    namespace = ctx.create_namespace(f"b2a-w{workers}")
    api = ap.kube_api(ctx.env)
    agent = start_agent(
        ctx.env,
        ctx.scratch(f"b2-agent-{workers}"),
        namespace,
        "https://git.invalid/unused.git",  # --reconcile-only: no Git sync
        "--reconcile-only",
        "--workers",
        str(workers),
        "--log-level",
        "warning",
    )
    try:
        agent.wait_acting(timeout=120)
        names = [f"rel-{i:04d}" for i in range(size)]
        manifests = ap.helmrelease_manifests(ctx.env, names, ap.SMALL_VALUES)
        started = time.monotonic()
        # kubectl applies one object after another while the agent already installs the first
        # ones on the same 2 cores: 1000 took over two minutes in the first full run
        apply = [ctx.env["KUBECTL_BIN"], "apply", "-n", namespace, "-f", "-"]
        ctx.env.run(apply, input_text=manifests, timeout=120 + size * 1.0)
        finished = ap.wait_all_ready(api, namespace, size, timeout=300 + size * 10.0, agent=agent)
        return finished - started
    finally:
        ap.stop(agent)
        ap.release_finalizers_fast(api, namespace)
        ctx.env.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def _baseline_seconds(ctx: Context, size: int, workers: int) -> float:
    namespace = ctx.create_namespace(f"b2h-w{workers}")
    environ = ctx.env.environ()
    argv = [ctx.env["HELM_BIN"], "upgrade", "--install", "--namespace", namespace]
    chart = [ap.CHART, "--repo", ctx.env["TESTENV_CHARTS"], "--version", "0.1.0"]

    def install(name: str) -> None:
        ap.check_output([*argv, name, *chart, "--timeout", "300s"], environ, timeout=600)

    try:
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(install, [f"rel-{i:04d}" for i in range(size)]))
        return time.monotonic() - started
    finally:
        ctx.env.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


@benchmark(
    "B2",
    "rollout",
    "Rollout throughput: N releases, agent vs raw helm, W workers",
    quick=(20,),
    full=(100, LARGE),
)
def run(ctx: Context, size: int) -> Iterator[Figure]:
    large = size >= LARGE
    for workers in LARGE_WORKERS if large else WORKERS:
        agent_s: list[float] = []
        helm_s: list[float] = []
        for attempt in range(1 if large else ctx.repeats):
            sides = [(agent_s, _agent_seconds), (helm_s, _baseline_seconds)]
            for samples, measure in sides if attempt % 2 == 0 else reversed(sides):
                samples.append(measure(ctx, size, workers))
        where = f"N={size} W={workers}"
        yield Figure(
            "agent: releases per minute",
            "rel/min",
            [size * 60 / s for s in agent_s],
            size=where,
            note="N / (kubectl apply of N HelmReleases -> all N Ready) x 60",
        )
        yield Figure(
            "raw helm upgrade --install: releases per minute",
            "rel/min",
            [size * 60 / s for s in helm_s],
            size=where,
            note="N / (N helm upgrade --install --repo ... run by W threads) x 60",
        )
        ratios = [a / h for a, h in zip(agent_s, helm_s, strict=True)]
        yield Figure(
            "agent / baseline time",
            "ratio",
            ratios,
            size=where,
            target="<= 1.0",
            met=max(ratios) <= 1.0,
            note="the agent's time over raw helm's, pairwise per repeat",
        )
