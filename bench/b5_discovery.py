"""B5 discovery and indexes, in-process with the agent's own code (no cluster needed).

- Discover + validate a repository of N manifests (half ConfigMaps, half HelmReleases, 50 files
  in 10 folders): ``sync.discover.discover`` then, per object, the sync's own validation (the size
  bound and ``api.parse_helmrelease`` for HelmReleases). Target: 5000 manifests in under 2 s.
- A chart index of about 20 MB (quick: 5 MB) served with an ETag by a local HTTP server on
  127.0.0.1, read by ``charts.helmrepo.HelmRepoClient``: the first fetch, then a refresh of the
  unchanged index by the same client (target: one conditional request, answered 304, and no
  re-parse: ``parse_index`` calls are counted by a pass-through wrapper), and by a new client on
  the same cache directory (an agent restarted). Peak memory of each with ``tracemalloc`` in a
  separate pass (tracing slows the timed passes).
"""

from __future__ import annotations

import json
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench.framework import Context, Figure, benchmark
from gitops_helm.api.parse import parse_helmrelease
from gitops_helm.charts import helmrepo
from gitops_helm.charts.helmrepo import HelmRepoClient, HelmRepoSettings
from gitops_helm.sync.discover import discover
from gitops_helm.sync.plan import size_problem
from tests.localhttp import LocalServer, Reply, Seen

_MiB = 1024 * 1024


def _write_repository(root: Path, size: int) -> None:
    files = 50
    for f in range(files):
        docs = []
        for i in range(f, size, files):
            if i % 2:
                docs.append(
                    json.dumps(
                        {
                            "apiVersion": "v1",
                            "kind": "ConfigMap",
                            "metadata": {"name": f"cm-{i}"},
                            "data": {"key": f"value-{i}", "other": "x" * 40},
                        }
                    )
                )
            else:
                docs.append(
                    json.dumps(
                        {
                            "apiVersion": "helm.fluxcd.io/v1",
                            "kind": "HelmRelease",
                            "metadata": {"name": f"hr-{i}"},
                            "spec": {
                                "releaseName": f"hr-{i}",
                                "chart": {
                                    "repository": "https://charts.example/",
                                    "name": "app",
                                    "version": "1.2.3",
                                },
                                "values": {"replicaCount": 2, "image": {"tag": f"1.0.{i}"}},
                            },
                        }
                    )
                )
        folder = root / f"team-{f % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"objects-{f}.yaml").write_text("\n---\n".join(docs) + "\n")


def _discover_and_validate(root: Path) -> int:
    found = discover(root)
    if found.errors:
        raise RuntimeError(f"discovery errors: {found.errors[:3]}")
    for m in found.objects:
        if size_problem(m.body):
            raise RuntimeError(f"{m.origin}: too large")
        if m.key.kind == "HelmRelease":
            parse_helmrelease(m.body, default_namespace="apps")
    return len(found.objects)


def _index_bytes(target: int) -> bytes:
    lines = ["apiVersion: v1", "entries:"]
    chart = 0
    while sum(len(x) + 1 for x in lines) < target:
        lines.append(f"  chart{chart}:")
        for v in range(200):
            version = f"1.{v // 20}.{v % 20}"
            lines += [
                f"  - name: chart{chart}",
                f"    version: {version}",
                f"    appVersion: '{version}'",
                f"    description: A chart of the benchmark, number {chart}, version {version}",
                f"    urls: [charts/chart{chart}-{version}.tgz]",
                f"    digest: {'a' * 64}",
                "    created: '2026-01-01T00:00:00Z'",
            ]
        chart += 1
    return ("\n".join(lines) + "\n").encode()


def _peak_mib(fn: Callable[[], Any]) -> float:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / _MiB
    finally:
        tracemalloc.stop()


@benchmark(
    "B5",
    "discovery",
    "Discovery of N manifests; a large chart index fetched again unchanged",
    quick=(5000,),
    full=(5000,),
    repeats=(3, 5),
    needs_env=False,
)
def run(ctx: Context, size: int) -> Iterator[Figure]:
    root = ctx.scratch("b5-repo")
    _write_repository(root, size)
    timings, cpu = [], []
    for _ in range(ctx.repeats):
        started, started_cpu = time.perf_counter(), time.process_time()
        count = _discover_and_validate(root)
        timings.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    if count != size:
        raise RuntimeError(f"discovered {count} objects of {size}")
    yield Figure(
        "discover + validate",
        "s",
        timings,
        target="< 2 s",
        met=max(timings) < 2.0,
        note="sync.discover.discover and the sync's validation (size bound, parse_helmrelease) "
        "of N manifests in 50 files, half of them HelmReleases",
    )

    yield Figure(
        "discover + validate: CPU time",
        "s",
        cpu,
        target="< 2 s",
        met=max(cpu) < 2.0,
        note="the same, CPU seconds of this process: what the wall time would be on an idle core",
    )

    body = _index_bytes((5 if ctx.quick else 20) * _MiB)
    etag = f'"{len(body)}-bench"'

    def answer(seen: Seen) -> Reply:
        if seen.headers.get("if-none-match") == etag:
            return (304, {"ETag": etag}, b"")
        return (200, {"ETag": etag, "Content-Type": "application/x-yaml"}, body)

    parses = 0
    real_parse = helmrepo.parse_index

    def counted_parse(*args: Any, **kwargs: Any) -> Any:
        nonlocal parses
        parses += 1
        return real_parse(*args, **kwargs)

    helmrepo.parse_index = counted_parse  # type: ignore[assignment]
    size_label = f"{len(body) / _MiB:.0f} MiB index"
    try:
        with LocalServer(answer) as server:
            first, again, restart, requests, conditional, reparsed = [], [], [], [], [], []
            for _ in range(ctx.repeats):
                cache = ctx.scratch("b5-cache")
                settings = HelmRepoSettings(cache, retry_delays=())
                with HelmRepoClient(settings) as client:
                    started = time.perf_counter()
                    client.index(server.url, refresh=True)
                    first.append(time.perf_counter() - started)
                    seen, parsed = len(server.seen), parses
                    started = time.perf_counter()
                    client.index(server.url, refresh=True)
                    again.append(time.perf_counter() - started)
                    requests.append(float(len(server.seen) - seen))
                    conditional.append(
                        float(sum(1 for s in server.seen[seen:] if "if-none-match" in s.headers))
                    )
                    reparsed.append(float(parses - parsed))
                with HelmRepoClient(settings) as client:
                    started = time.perf_counter()
                    client.index(server.url, refresh=True)
                    restart.append(time.perf_counter() - started)
            yield Figure("index: first fetch and parse", "s", first, size=size_label)
            yield Figure(
                "index again, unchanged: requests",
                "requests",
                requests,
                size=size_label,
                target="1",
                met=max(requests) == 1,
                note="requests the server saw for the refresh of the unchanged index",
            )
            yield Figure(
                "index again, unchanged: conditional requests",
                "requests",
                conditional,
                size=size_label,
                note="requests carrying If-None-Match (answered 304)",
            )
            yield Figure(
                "index again, unchanged: parses",
                "parses",
                reparsed,
                size=size_label,
                target="0",
                met=max(reparsed) == 0,
                note="parse_index calls during the refresh",
            )
            yield Figure("index again, unchanged: time", "s", again, size=size_label)
            yield Figure(
                "index after a restart, unchanged: time",
                "s",
                restart,
                size=size_label,
                note="a new client on the same cache directory: one conditional request and the "
                "parsed index read back from the disk cache",
            )

            cache = ctx.scratch("b5-cache-mem")
            settings = HelmRepoSettings(cache, retry_delays=())
            with HelmRepoClient(settings) as client:
                peak_first = _peak_mib(lambda: client.index(server.url, refresh=True))
                peak_again = _peak_mib(lambda: client.index(server.url, refresh=True))
            with HelmRepoClient(settings) as client:
                peak_restart = _peak_mib(lambda: client.index(server.url, refresh=True))
            yield Figure(
                "index: peak Python memory, first fetch",
                "MiB",
                [peak_first],
                size=size_label,
                note="tracemalloc peak of the allocations made during the call",
            )
            yield Figure("index: peak Python memory, fetched again", "MiB", [peak_again], size=size_label)
            yield Figure("index: peak Python memory, after a restart", "MiB", [peak_restart], size=size_label)
    finally:
        helmrepo.parse_index = real_parse  # type: ignore[assignment]
