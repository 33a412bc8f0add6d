"""B0: the pure hot paths that run on every resync, in-process (no environment needed).

Planner decision, values composition + digest, manifest discovery of a 500-object repository,
parse + resolve in a 5,000-version Helm index. Each is timed ``repeat`` times after a warm-up.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench.framework import Context, Figure, benchmark
from gitops_helm import values
from gitops_helm.api.spec import ConfigMapValuesSource, SecretValuesSource
from gitops_helm.charts.repoindex import parse_index, resolve_in_index
from gitops_helm.release import plan as pl
from gitops_helm.sync.discover import discover


def measure(fn: Callable[[], Any], repeat: int) -> list[float]:
    """Milliseconds of each of ``repeat`` calls, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return times


def bench_plan() -> Callable[[], Any]:
    desired = pl.Desired(digest="d" * 48, generation=3, owner="apps.web")
    memory = pl.Memory(last_applied_digest="d" * 48, last_release_revision=7)
    observed = pl.ObservedRelease(
        revision=7, status=pl.ReleaseStatus.DEPLOYED, owner="apps.web", digest="d" * 48
    )

    def run() -> None:
        for _ in range(1000):
            pl.plan(observed, memory, desired, now=0.0)

    return run


class _Reader:
    def __init__(self) -> None:
        body = "\n".join(f"key{i}:\n  nested: {{a: {i}, b: [1, 2, 3]}}" for i in range(300))
        self.cm = {"values.yaml": body}

    def configmap(self, namespace: str, name: str) -> dict[str, str]:
        return self.cm

    def secret(self, namespace: str, name: str) -> dict[str, bytes]:
        return {"values.yaml": b"password: hunter2\n"}

    def url(self, url: str) -> bytes:
        raise values.SourceNotFound(url)

    def chart_file(self, path: str) -> bytes:
        raise values.SourceNotFound(path)


def bench_values() -> Callable[[], Any]:
    spec = values.ValuesSpec(
        namespace="apps",
        values_from=[
            ConfigMapValuesSource("common", "apps"),
            SecretValuesSource("secret", "apps"),
        ],
        values={"replicaCount": 3, "image": {"tag": "1.2.3"}},
    )
    reader = _Reader()
    return lambda: values.compose_values(spec, reader)


def bench_discover(tmp: Path) -> Callable[[], Any]:
    for d in range(25):
        folder = tmp / f"team-{d}"
        folder.mkdir()
        docs = []
        for i in range(20):
            docs.append(
                f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{d}-{i}\n  namespace: ns-{d}\n"
                f"data:\n  key: value-{i}\n"
            )
        (folder / "objects.yaml").write_text("---\n".join(docs))
    return lambda: discover(tmp)


def bench_index() -> tuple[Callable[[], Any], Callable[[], Any]]:
    lines = ["apiVersion: v1", "entries:"]
    for c in range(50):
        lines.append(f"  chart{c}:")
        for v in range(100):
            lines += [
                f"  - name: chart{c}",
                f"    version: 1.{v // 10}.{v % 10}",
                f"    urls: [chart{c}-1.{v // 10}.{v % 10}.tgz]",
                f"    digest: {'a' * 64}",
                "    created: '2026-01-01T00:00:00Z'",
            ]
    data = "\n".join(lines).encode()
    parsed = parse_index(data, source="bench", max_bytes=len(data))
    return (
        lambda: parse_index(data, source="bench", max_bytes=len(data)),
        lambda: resolve_in_index(parsed, "https://bench.invalid", "chart7", "^1.5.0"),
    )


@benchmark("B0", "pure", "Pure hot paths of a resync, in-process", quick=(1,), full=(1,), needs_env=False)
def run(ctx: Context, size: int) -> Iterator[Figure]:
    del size
    scale = 1 if ctx.quick else 4  # the full run repeats each timing more often
    yield Figure(
        "plan(): unchanged release x1000", "ms", measure(bench_plan(), 20 * scale), size="in-process"
    )
    yield Figure(
        "compose_values: 300 keys + secret", "ms", measure(bench_values(), 50 * scale), size="in-process"
    )
    with tempfile.TemporaryDirectory() as tmp:
        timings = measure(bench_discover(Path(tmp)), 10 * scale)
    yield Figure("discover: 500 objects in 25 files", "ms", timings, size="in-process")
    parse, resolve = bench_index()
    yield Figure("parse_index: 5,000 versions", "ms", measure(parse, 5 * scale), size="in-process")
    yield Figure("resolve '^1.5.0' in parsed index", "ms", measure(resolve, 50 * scale), size="in-process")
