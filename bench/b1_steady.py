"""B1 steady state: what one full resync of N HelmReleases already in sync costs the agent.

A fresh ``gitops-helm run`` (4 workers, resync every 30 s, Git fetched on webhook only) starts on a
fleet of N HelmReleases in sync (``bench.fleet``). After its first pass has settled, each repeat
waits for the next periodic resync and counts, from the last reading before the resync began to the
reading on which all N reconciles of it are counted (readings once a second):

- helm subprocess calls (the ``--helm-bin`` wrapper's log; target 0);
- Kubernetes API requests per release, by verb (the agent's ``gitops_helm_kube_requests_total``);
- agent CPU per release (``/proc/PID/stat``), raw, and net of the agent's idle CPU (target < 2 ms)
  measured over a quiet window with the same scrape rate.

Then an unchanged Git commit (only a README changes) is pushed and announced by webhook; from
then to the sync state recording it: write requests (create, update, patch, delete) per object of
the repository (target 0), besides the sync state ConfigMap's own record.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator

from bench import agentproc as ap
from bench.fleet import in_sync_fleet, start_measured_agent
from bench.framework import Context, Figure, benchmark
from tests.integration.syncfix import AgentProcess, synced_revision, wait_for

RESYNC_S = 30
WRITE_VERBS = ("create", "update", "patch", "delete")


def _reconciles(agent: AgentProcess) -> float:
    return ap.scrape(agent).total("gitops_helm_reconciles_total")


def _settle(agent: AgentProcess, quiet_s: float = 4.0, timeout: float = 600.0) -> float:
    """Wait until the reconcile counter has not moved for ``quiet_s``; its value."""
    last = (-1.0, time.monotonic())

    def quiet() -> bool:
        nonlocal last
        now = _reconciles(agent)
        if now != last[0]:
            last = (now, time.monotonic())
            return False
        return time.monotonic() - last[1] >= quiet_s

    wait_for("the agent's reconciles to settle", quiet, timeout=timeout, interval=1.0)
    return last[0]


def _one_resync(
    agent: AgentProcess, size: int, timeout: float
) -> tuple[ap.Scrape, ap.Scrape, float, float, float]:
    """Readings (metrics, own CPU) just before a periodic resync began and once all of it is
    counted, and the seconds between the two."""
    pid = agent.proc.pid
    before = ap.scrape(agent)
    cpu_before = ap.own_cpu_seconds(pid)
    began = time.monotonic()
    base = before.total("gitops_helm_reconciles_total")
    deadline = time.monotonic() + timeout
    while True:
        agent.assert_running()
        time.sleep(1.0)
        cpu = ap.own_cpu_seconds(pid)
        now = ap.scrape(agent)
        done = now.total("gitops_helm_reconciles_total") - base
        if done == 0:
            before, cpu_before, began = now, cpu, time.monotonic()  # not begun: move the window's start
            continue
        if done >= size:
            return before, now, cpu_before, cpu, time.monotonic() - began
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {done:.0f} of {size} reconciles of a resync within {timeout:.0f}s")


def net_cpu_ms(raw_ms: list[float], windows_s: list[float], idle_per_s: float, size: int) -> list[float]:
    """Per release CPU of each resync less the idle agent's CPU over its window, in ms."""
    return [
        max(0.0, raw - idle_per_s * window * 1000 / size)
        for raw, window in zip(raw_ms, windows_s, strict=True)
    ]


def _idle_cpu_per_s(agent: AgentProcess, seconds: float) -> float:
    """The agent's own CPU per second with nothing to do, scraped once a second like a resync."""
    pid = agent.proc.pid
    start_cpu, start = ap.own_cpu_seconds(pid), time.monotonic()
    begin = _reconciles(agent)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(1.0)
        ap.scrape(agent)
    if _reconciles(agent) != begin:
        return float("nan")  # a resync fell into the window: no idle figure this time
    return (ap.own_cpu_seconds(pid) - start_cpu) / (time.monotonic() - start)


@benchmark(
    "B1", "steady", "Steady state: one full resync of N HelmReleases in sync", quick=(100,), full=(100, 500)
)
def run(ctx: Context, size: int) -> Iterator[Figure]:
    fleet = in_sync_fleet(ctx, size)
    wrapper, calls_log = ap.helm_wrapper(ctx.scratch("b1-helm"), ctx.env["HELM_BIN"])
    agent = start_measured_agent(
        ctx, fleet, f"b1-{size}", "--workers", "4", "--resync-interval", f"{RESYNC_S}s", helm_bin=str(wrapper)
    )
    try:
        agent.wait_acting(timeout=120)
        wait_for("the first pass", lambda: _reconciles(agent) >= size, timeout=60 + size, interval=1.0)
        _settle(agent)
        first_pass_helm = ap.helm_calls(calls_log)
        first_pass_verbs = dict(ap.helm_verbs(calls_log))
        helm, requests, cpu_ms, per_verb = [], [], [], {}
        windows: list[float] = []
        resync_verbs: dict[str, int] = {}
        for _ in range(ctx.repeats):
            helm_before = ap.helm_calls(calls_log)
            before, after, cpu0, cpu1, window = _one_resync(agent, size, timeout=RESYNC_S * 2 + size)
            windows.append(window)
            helm.append(float(ap.helm_calls(calls_log) - helm_before))
            resync_verbs = dict(ap.helm_verbs(calls_log))
            by_verb0 = before.by_label("gitops_helm_kube_requests_total", "verb")
            by_verb1 = after.by_label("gitops_helm_kube_requests_total", "verb")
            delta = {verb: by_verb1[verb] - by_verb0.get(verb, 0.0) for verb in by_verb1}
            for verb, count in delta.items():
                per_verb.setdefault(verb, []).append(count / size)
            requests.append(sum(delta.values()) / size)
            cpu_ms.append((cpu1 - cpu0) * 1000 / size)
            _settle(agent, quiet_s=2.0)
        idle = _idle_cpu_per_s(agent, 10.0)
        for _ in range(2):  # a resync fell into the window: measure again once it has settled
            if not math.isnan(idle):
                break
            _settle(agent, quiet_s=2.0)
            idle = _idle_cpu_per_s(agent, 10.0)
        # the resync window: at most a second before it began, plus the resync itself
        yield Figure(
            "helm calls in the first pass of a new agent",
            "calls",
            [float(first_pass_helm)],
            target="0",
            met=first_pass_helm == 0,
            note="helm subprocess calls (less `helm version` probes) while a freshly started agent "
            f"reconciles the whole fleet in sync once; by verb: {first_pass_verbs or 'none'}",
        )
        yield Figure(
            "helm calls per full resync",
            "calls",
            helm,
            target="0",
            met=max(helm) == 0,
            note="helm subprocess calls logged by the --helm-bin wrapper during one periodic resync; "
            f"by verb, since the agent started: {resync_verbs or 'none'}",
        )
        yield Figure(
            "API requests per release per resync",
            "requests",
            requests,
            note="the agent's gitops_helm_kube_requests_total (all verbs) over one resync / N; "
            "by verb: " + ", ".join(f"{v} {sum(c) / len(c):.2f}" for v, c in sorted(per_verb.items())),
        )
        yield Figure(
            "agent CPU per release per resync (raw)",
            "ms",
            cpu_ms,
            note="utime+stime of the agent process over the resync window / N; the window "
            "includes up to 1 s before the resync began and one /metrics scrape a second",
        )
        if not math.isnan(idle):
            yield Figure(
                "agent idle CPU",
                "ms/s",
                [idle * 1000],
                note="the agent's CPU per second with nothing to reconcile (one scrape a second)",
            )
            net = net_cpu_ms(cpu_ms, windows, idle, size)
            yield Figure(
                "agent CPU per release per resync (net of idle)",
                "ms",
                net,
                target="< 2 ms",
                met=max(net) < 2.0,
                note="the raw figure less what the idle agent (scraped once a second) spends over "
                "the same window: the work of the resync itself / N; windows "
                + ", ".join(f"{w:.1f}" for w in windows)
                + " s",
            )

        # an unchanged commit: only a README changes
        _settle(agent, quiet_s=2.0)
        writes, reads = [], []
        for attempt in range(ctx.repeats):
            before = ap.scrape(agent)
            sha = fleet.push_unrelated_change(f"unrelated change {size}-{attempt}-{time.time_ns()}")
            fleet.webhook(agent, sha)
            synced_revision(ctx.env, fleet.namespace, agent.sync_name, sha, timeout=120 + size)
            after = ap.scrape(agent)
            by0 = before.by_label("gitops_helm_kube_requests_total", "verb")
            by1 = after.by_label("gitops_helm_kube_requests_total", "verb")
            delta = {v: by1[v] - by0.get(v, 0.0) for v in by1}
            writes.append(sum(delta.get(v, 0.0) for v in WRITE_VERBS))
            reads.append(delta.get("get", 0.0) / size)
        yield Figure(
            "unchanged commit: write requests",
            "requests",
            writes,
            note="create/update/patch/delete requests from webhook to the sync state naming the "
            "commit, all objects unchanged; the sync state, the source's fetch record and the "
            "webhook delivery record are writes of their own, not per object (any resync "
            "reconcile that fell in the window is counted too)",
        )
        per_object = [max(0.0, w - 3) / size for w in writes]
        yield Figure(
            "unchanged commit: writes per unchanged object",
            "requests",
            per_object,
            target="0",
            met=max(per_object) == 0,
            note="(writes - the 3 records of the sync itself: state, fetch, webhook delivery) / N",
        )
        yield Figure(
            "unchanged commit: reads per object",
            "requests",
            reads,
            note="get/list requests of that sync / N (the checksum comparison reads each object)",
        )
    finally:
        ap.stop(agent)


@benchmark(
    "B4",
    "memory",
    "Memory: agent peak RSS with N HelmReleases watched and in sync",
    quick=(100,),
    full=(1000,),
)
def run_memory(ctx: Context, size: int) -> Iterator[Figure]:
    fleet = in_sync_fleet(ctx, size)
    agent = start_measured_agent(
        ctx, fleet, f"b4-{size}", "--workers", "4", "--resync-interval", f"{RESYNC_S}s"
    )
    try:
        agent.wait_acting(timeout=120)
        wait_for("the first pass", lambda: _reconciles(agent) >= size, timeout=60 + size, interval=1.0)
        _settle(agent)
        _one_resync(agent, size, timeout=RESYNC_S * 2 + size)  # a full resync is part of steady state
        _settle(agent, quiet_s=2.0)
        memory = ap.memory_kib(agent.proc.pid)
        peak, now = memory["VmHWM"] / 1024, memory["VmRSS"] / 1024
        yield Figure(
            "agent peak RSS",
            "MiB",
            [peak],
            target="< 150 MB",
            met=peak * 1.048576 < 150,
            note="VmHWM of the agent process after start, first pass and one full resync over "
            "the fleet in sync (Python, kubernetes client, watch cache of N objects)",
        )
        yield Figure("agent RSS after the resync", "MiB", [now], note="VmRSS at the end")
    finally:
        ap.stop(agent)
