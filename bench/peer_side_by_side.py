"""Peer, side by side: gitops-helm and Flux's helm-controller + source-controller, one run.

Both sides get the same cluster, the same chart (``bench/charts/bench-small``) served by the same
Helm repository, the same N and the same concurrency W, one after the other in every repeat (the
order alternating, so a change in the machine's load falls on both):

- gitops-helm: ``gitops-helm run --reconcile-only --workers W`` watching a fresh namespace;
- Flux: ``bench.peer_flux.measure_flux`` (helm-controller ``--concurrent W`` and
  source-controller as local processes, one HelmRepository, N ``helm.toolkit.fluxcd.io/v2``
  HelmReleases).

Measured on each side: the time from ``kubectl apply`` of the N HelmReleases until all N are
Ready for their generation; peak RSS and CPU seconds of the process(es) (Flux: both controllers
summed, since both are needed to do what the agent does alone); one forced resync of all N
(``reconcile.fluxcd.io/requestedAt``, which both honour, then wait until every object reports
``lastHandledReconcileAt``): CPU and Kubernetes API requests per release, and helm subprocess calls
(Flux links helm in: always 0). Reported as figures per side and as ratios gitops-helm / Flux.

The Flux controllers are built from the Go module proxy by ``bench.build_flux`` into the cache
outside the repository (about 40 minutes per controller on a loaded 2-core machine, then cached),
so this benchmark runs in the full run only; ``python -m bench.build_flux`` builds them ahead.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from kubernetes import client

from bench import agentproc as ap
from bench import build_flux, peer_flux
from bench.framework import Context, Figure, benchmark
from tests.integration.syncfix import start_agent, wait_for

WORKERS = 4


def _request_total(scrape: ap.Scrape) -> float:
    return scrape.total("gitops_helm_kube_requests_total")


def _force_resync(ctx: Context, namespace: str, n: int, agent: Any) -> None:
    """Ask for a reconcile of every HelmRelease, as ``peer_flux`` does for Flux's objects."""
    token = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    ctx.env.kubectl(
        "annotate", "helmreleases.helm.fluxcd.io", "--all", "-n", namespace, "--overwrite",
        f"reconcile.fluxcd.io/requestedAt={token}",
    )  # fmt: skip
    api = ap.kube_api(ctx.env)

    def handled() -> bool:
        agent.assert_running()
        listed: dict[str, Any] = client.CustomObjectsApi(api).list_namespaced_custom_object(
            "helm.fluxcd.io", "v1", namespace, "helmreleases", _request_timeout=60
        )
        done = [
            i
            for i in listed.get("items", [])
            if (i.get("status") or {}).get("lastHandledReconcileAt") == token
        ]
        return len(done) >= n

    wait_for("every HelmRelease handled the reconcile request", handled, timeout=120 + 3.0 * n, interval=0.5)


def _settle(agent: Any, quiet_s: float = 3.0, timeout: float = 300.0) -> None:
    """Wait until the agent has made no API request for ``quiet_s`` (its work is counted)."""
    deadline = time.monotonic() + timeout
    last, since = _request_total(ap.scrape(agent)), time.monotonic()
    while time.monotonic() - since < quiet_s and time.monotonic() < deadline:
        time.sleep(0.5)
        now = _request_total(ap.scrape(agent))
        if now != last:
            last, since = now, time.monotonic()


def measure_agent(ctx: Context, n: int, workers: int) -> dict[str, float]:
    """The gitops-helm side, with the keys of ``peer_flux.measure_flux`` where they mean the same."""
    namespace = ctx.create_namespace("peer-agent")
    scratch = ctx.scratch(f"peer-agent-{n}")
    wrapper, calls = ap.helm_wrapper(scratch, ctx.env["HELM_BIN"])
    api = ap.kube_api(ctx.env)
    agent = start_agent(
        ctx.env, scratch, namespace, "https://git.invalid/unused.git",
        "--reconcile-only", "--workers", str(workers), "--helm-bin", str(wrapper),
        "--resync-interval", "1h", "--log-level", "warning",
    )  # fmt: skip
    result: dict[str, float] = {"n": n, "workers": workers}
    try:
        agent.wait_acting(timeout=120)
        pid = agent.proc.pid
        manifests = ap.helmrelease_manifests(ctx.env, [f"rel-{i:04d}" for i in range(n)], ap.SMALL_VALUES)
        started = time.monotonic()
        ctx.env.run([ctx.env["KUBECTL_BIN"], "apply", "-n", namespace, "-f", "-"], input_text=manifests)
        # polled like the Flux side (bench.peer_flux), so both sides wait alike
        finished = ap.poll_all_ready(
            api, namespace, n, timeout=300 + n * 10.0, agent=agent, interval=peer_flux.POLL_INTERVAL_S
        )
        result["install_all_ready_s"] = round(finished - started, 2)
        result["install_releases_per_min"] = round(60.0 * n / result["install_all_ready_s"], 1)
        _settle(agent)
        cpu_before, requests_before = ap.own_cpu_seconds(pid), _request_total(ap.scrape(agent))
        helm_before = ap.helm_calls(calls)
        _force_resync(ctx, namespace, n, agent)
        _settle(agent)
        cpu = ap.own_cpu_seconds(pid) - cpu_before
        requests = _request_total(ap.scrape(agent)) - requests_before
        result["resync_cpu_ms_per_release"] = round(1000.0 * cpu / n, 3)
        result["resync_api_requests_per_release"] = round(requests / n, 3)
        result["resync_helm_calls"] = ap.helm_calls(calls) - helm_before
        result["peak_rss_mib"] = round(ap.memory_kib(pid).get("VmHWM", 0) / 1024.0, 1)
        result["cpu_s_total"] = round(ap.cpu_seconds(pid), 3)  # helm children included: Flux links helm in
    finally:
        ap.stop(agent)
        ap.release_finalizers_fast(api, namespace)
        ctx.env.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
    return result


def _flux_totals(flux: dict[str, float]) -> dict[str, float]:
    """Flux's two controllers summed: together they do what the agent does alone."""
    both = ("helm", "source")
    return {
        "install_all_ready_s": flux["install_all_ready_s"],
        "peak_rss_mib": sum(flux[f"{c}_peak_rss_mib"] for c in both),
        "cpu_s_total": sum(flux[f"{c}_cpu_s_total"] for c in both),
        "resync_cpu_ms_per_release": sum(flux[f"resync_{c}_cpu_ms_per_release"] for c in both),
        "resync_api_requests_per_release": sum(flux[f"resync_{c}_api_requests_per_release"] for c in both),
    }


FIGURES = (
    ("install_all_ready_s", "time until all N Ready", "s"),
    ("peak_rss_mib", "peak RSS", "MiB"),
    ("cpu_s_total", "CPU seconds, whole run (gitops-helm: with its helm processes)", "s"),
    ("resync_cpu_ms_per_release", "one forced resync: CPU per release", "ms"),
    ("resync_api_requests_per_release", "one forced resync: API requests per release", "req"),
)


@benchmark(
    "P1",
    "flux",
    "Peer side by side: gitops-helm vs Flux helm-controller + source-controller",
    quick=(),  # the Flux build takes ~40 min per controller on a fresh machine: full run only
    full=(20, 100),
    repeats=(1, 3),
)
def run(ctx: Context, size: int) -> Iterator[Figure]:
    build_flux.build_all()  # cached after the first time
    agent_runs: list[dict[str, float]] = []
    flux_runs: list[dict[str, float]] = []
    for attempt in range(ctx.repeats):
        sides = [
            lambda: agent_runs.append(measure_agent(ctx, size, WORKERS)),
            lambda: flux_runs.append(
                _flux_totals(peer_flux.measure_flux(ctx.env, size, WORKERS, chart=ap.CHART))
            ),
        ]
        for measure in sides if attempt % 2 == 0 else reversed(sides):
            measure()
    where = f"N={size} W={WORKERS}"
    versions = (
        f"helm-controller {build_flux.HELM_CONTROLLER_VERSION}, "
        f"source-controller {build_flux.SOURCE_CONTROLLER_VERSION}"
    )
    for key, title, unit in FIGURES:
        mine = [r[key] for r in agent_runs]
        theirs = [r[key] for r in flux_runs]
        yield Figure(f"gitops-helm: {title}", unit, mine, size=where)
        yield Figure(f"Flux: {title}", unit, theirs, size=where, note=f"{versions}; both controllers summed")
        yield Figure(
            f"gitops-helm / Flux: {title}",
            "ratio",
            [a / b for a, b in zip(mine, theirs, strict=True) if b],
            size=where,
            note="pairwise per repeat; below 1 means gitops-helm uses less",
        )
    yield Figure(
        "gitops-helm: helm calls in one forced resync",
        "calls",
        [r["resync_helm_calls"] for r in agent_runs],
        size=where,
        target="0",
        met=all(r["resync_helm_calls"] == 0 for r in agent_runs),
        note="Flux links helm in and runs no helm process",
    )
