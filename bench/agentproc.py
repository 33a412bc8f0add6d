"""The real agent as a measured subprocess: its helm calls, API requests, CPU and memory.

Counted by real means only: a ``--helm-bin`` wrapper script appends one line per helm call to a
file before it runs the real helm; the agent's own ``/metrics`` gives its Kubernetes requests by
verb (``gitops_helm_kube_requests_total``, counted where the adapter sends them) and its
reconciles; CPU time and memory come from ``/proc/PID``.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import shlex
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Env
from tests.integration.syncfix import AgentProcess, process_env

_TICKS = os.sysconf("SC_CLK_TCK")


def helm_wrapper(directory: Path, real_helm: str) -> tuple[Path, Path]:
    """A ``--helm-bin`` that logs each call's verb (never its arguments: values may be secret)."""
    directory.mkdir(parents=True, exist_ok=True)
    log = directory / "helm-calls.log"
    log.touch()
    script = directory / "helm"
    script.write_text(
        f'#!/bin/sh\nprintf \'%s\\n\' "$1" >> {shlex.quote(str(log))}\nexec {shlex.quote(real_helm)} "$@"\n'
    )
    script.chmod(0o755)
    return script, log


def helm_calls(log: Path, ignore: Iterable[str] = ("version",)) -> int:
    """Helm calls logged so far, less the ``helm version`` probes the agent makes at start."""
    return sum(helm_verbs(log, ignore).values())


def helm_verbs(log: Path, ignore: Iterable[str] = ("version",)) -> collections.Counter[str]:
    """Helm calls logged so far by verb, less ``ignore``."""
    skipped = set(ignore)
    return collections.Counter(
        v for v in (x.strip() for x in log.read_text().splitlines()) if v not in skipped
    )


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` (and its reaped children: helm calls count as the agent's)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return (utime + stime + cutime + cstime) / _TICKS


def own_cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` itself, without its children."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS (now) and VmHWM (the peak resident set) of ``pid``, in KiB."""
    found: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            found[name] = int(rest.split()[0])
    return found


@dataclass(frozen=True)
class Scrape:
    """One reading of the agent's /metrics: every sample by name and labels."""

    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]

    def total(self, name: str, **labels: str) -> float:
        return sum(
            value
            for (sample, have), value in self.samples.items()
            if sample == name and all((k, v) in have for k, v in labels.items())
        )

    def by_label(self, name: str, label: str) -> dict[str, float]:
        out: dict[str, float] = {}
        for (sample, have), value in self.samples.items():
            if sample == name:
                key = dict(have).get(label, "")
                out[key] = out.get(key, 0.0) + value
        return out


def scrape(agent: AgentProcess) -> Scrape:
    status, text = agent.request("GET", "/metrics")
    if status != 200:
        raise RuntimeError(f"GET /metrics answered {status}")
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return Scrape(samples)


def kube_api(env: Env) -> client.ApiClient:
    """A Kubernetes client of the benchmark's own (not the agent's), for fast bulk reads."""
    cfg = client.Configuration()
    config.load_kube_config(config_file=env["KUBECONFIG"], client_configuration=cfg)
    return client.ApiClient(cfg)


def is_ready(item: dict[str, Any]) -> bool:
    """A HelmRelease done with its current spec: Ready=True for its generation."""
    generation = item.get("metadata", {}).get("generation")
    status = item.get("status") or {}
    conditions = {c.get("type"): c for c in status.get("conditions") or [] if isinstance(c, dict)}
    cond = conditions.get("Ready") or {}
    return cond.get("status") == "True" and status.get("observedGeneration") == generation


def poll_all_ready(
    api: client.ApiClient, namespace: str, n: int, timeout: float, agent: AgentProcess, interval: float
) -> float:
    """Like :func:`wait_all_ready`, by listing every ``interval``: the way the Flux side of P1
    waits (``kubectl get`` in a loop), so both sides of that comparison wait alike."""
    custom = client.CustomObjectsApi(api)
    deadline = time.monotonic() + timeout
    while True:
        agent.assert_running()
        listed: dict[str, Any] = custom.list_namespaced_custom_object(
            "helm.fluxcd.io", "v1", namespace, "helmreleases", _request_timeout=60
        )
        if sum(1 for item in listed.get("items", []) if is_ready(item)) >= n:
            return time.monotonic()
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {n} HelmReleases Ready")
        time.sleep(interval)


def wait_all_ready(
    api: client.ApiClient, namespace: str, n: int, timeout: float, agent: AgentProcess
) -> float:
    """Wait until ``n`` HelmReleases of ``namespace`` are Ready; the monotonic time it was seen.

    One list, then a watch: the time is that of the event that made the n-th Ready (a poll adds
    up to its interval), and the wait puts no load of its own on the API server and the machine
    while the agent is measured (a list of all N every half second did: at N = 1000 a thousand
    objects with their status, twice a second, on the same 2 cores).
    """
    custom = client.CustomObjectsApi(api)
    deadline = time.monotonic() + timeout
    ready: set[str] = set()
    version = ""
    while True:
        if not version:  # first, or the watch's resourceVersion expired: read everything again
            listed: dict[str, Any] = custom.list_namespaced_custom_object(
                "helm.fluxcd.io", "v1", namespace, "helmreleases", _request_timeout=60
            )
            ready = {i["metadata"]["name"] for i in listed.get("items", []) if is_ready(i)}
            version = str(listed.get("metadata", {}).get("resourceVersion", ""))
        if len(ready) >= n:
            return time.monotonic()
        agent.assert_running()
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s: {len(ready)} of {n} HelmReleases Ready")
        events = watch.Watch()
        try:
            for event in events.stream(
                custom.list_namespaced_custom_object, "helm.fluxcd.io", "v1", namespace, "helmreleases",
                resource_version=version, allow_watch_bookmarks=True, timeout_seconds=2,
                _request_timeout=30,
            ):  # fmt: skip
                obj = event["object"]
                if event["type"] == "ERROR":
                    version = ""
                    break
                version = str(obj.get("metadata", {}).get("resourceVersion", version))
                if event["type"] == "BOOKMARK":
                    continue
                name = obj["metadata"]["name"]
                if event["type"] != "DELETED" and is_ready(obj):
                    ready.add(name)
                else:
                    ready.discard(name)
                if len(ready) >= n:
                    return time.monotonic()
        except ApiException as exc:
            if exc.status != 410:
                raise
            version = ""
        finally:
            events.stop()


def release_finalizers_fast(api: client.ApiClient, namespace: str) -> None:
    """Drop the agent's finalizers from every HelmRelease of ``namespace`` (one request each)."""
    custom = client.CustomObjectsApi(api)
    listed = custom.list_namespaced_custom_object("helm.fluxcd.io", "v1", namespace, "helmreleases")
    for item in listed.get("items", []):
        if item["metadata"].get("finalizers"):
            custom.patch_namespaced_custom_object(
                "helm.fluxcd.io", "v1", namespace, "helmreleases", item["metadata"]["name"],
                {"metadata": {"finalizers": None}}, _request_timeout=30,
            )  # fmt: skip


def helmrelease_manifests(env: Env, names: Iterable[str], values: dict[str, Any]) -> str:
    """HelmReleases of the benchmark's small chart, one JSON document each."""
    docs = []
    for name in names:
        docs.append(
            json.dumps(
                {
                    "apiVersion": "helm.fluxcd.io/v1",
                    "kind": "HelmRelease",
                    "metadata": {"name": name},
                    "spec": {
                        "releaseName": name,
                        "chart": {"repository": env["TESTENV_CHARTS"], "name": CHART, "version": "0.1.0"},
                        "values": values,
                    },
                }
            )
        )
    return "\n---\n".join(docs) + "\n"


# bench/charts/bench-small, the flux-benchmark's shape: a Deployment scaled to 0, a Service and a
# ConfigMap. Its own name, published by this run only: the environment's ``hello`` is packaged
# again by every test session on the machine, and each new archive (a new digest) would upgrade
# every release of a fleet that uses it.
CHART = "bench-small"
CHART_DIR = Path(__file__).resolve().parent / "charts" / CHART
SMALL_VALUES: dict[str, Any] = {}


def run_env(env: Env) -> dict[str, str]:
    return process_env(env)


def stop(agent: AgentProcess) -> None:
    with contextlib.suppress(AssertionError):  # a stop past its grace is killed; nothing to report
        agent.stop()


def check_output(argv: list[str], env: dict[str, str], timeout: float = 300) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])}... exited {done.returncode}: {done.stderr.strip()[-500:]}")
    return done.stdout
