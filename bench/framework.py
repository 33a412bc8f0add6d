"""What every benchmark shares: figures, the registry, the table and the BENCHMARKS.md section.

A benchmark measures one thing the issue names (B1 steady state, B2 rollout throughput, ...) at
one or more sizes and yields :class:`Figure` rows: raw samples (one per repeat) of which the report
gives min, median and max, the unit, the target when the issue sets one, and a note saying what was
counted and how. Benchmarks never assert: a missed target is a row whose ``met`` column says no,
and the run still exits 0; only a benchmark that could not measure at all (an exception) makes the
run fail, because a suite that cannot measure proves nothing.

Registering a benchmark: put a module ``bench/bN_<name>.py`` (or ``bench/peer_<name>.py``) beside
this one and decorate its run function with :func:`benchmark`; ``bench.run`` imports every such
module, so nothing else needs editing::

    @benchmark("B3", "latency", "Git push to Released", quick=(5,), full=(20,), repeats=(1, 3))
    def run(ctx: Context, size: int) -> Iterator[Figure]:
        yield Figure("webhook: push to Released", "s", samples, target="median < 3 s", met=...)

``run`` is called once per size of the mode (quick or full); ``ctx.repeats`` says how often to
repeat a measurement. Namespaces come from ``ctx.namespace`` (prefix ``bench-``, deleted after).
"""

from __future__ import annotations

import contextlib
import math
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.conftest import Env, release_finalizers
from tests.frames import run_heading


@dataclass
class Figure:
    """One measured quantity: its raw samples (one per repeat), unit, target and what it counts."""

    name: str
    unit: str
    samples: list[float]
    target: str = ""
    met: bool | None = None  # None: no target, or not comparable
    note: str = ""
    size: str = ""  # filled by the framework from the run's size unless the benchmark sets it

    @property
    def low(self) -> float:
        return min(self.samples) if self.samples else float("nan")

    @property
    def median(self) -> float:
        return statistics.median(self.samples) if self.samples else float("nan")

    @property
    def high(self) -> float:
        return max(self.samples) if self.samples else float("nan")


@dataclass
class Context:
    """What a benchmark is given: the environment, a scratch directory, the mode and a log."""

    env: Env
    workdir: Path
    quick: bool
    repeats: int = 1
    log: Callable[[str], None] = print
    shared: dict[str, Any] = field(default_factory=dict)  # fixtures built once per run (bench.fleet)
    cleanups: list[Callable[[], None]] = field(default_factory=list)

    @contextlib.contextmanager
    def namespace(self, prefix: str) -> Iterator[str]:
        """A fresh namespace ``bench-PREFIX-xxxxx``, deleted (finalizers released) afterwards."""
        name = self.create_namespace(prefix)
        try:
            yield name
        finally:
            self.delete_namespace(name)

    def create_namespace(self, prefix: str) -> str:
        name = f"bench-{prefix}-{uuid.uuid4().hex[:5]}"
        self.env.kubectl("create", "namespace", name)
        return name

    def delete_namespace(self, name: str) -> None:
        release_finalizers(self.env, name)
        self.env.kubectl("delete", "namespace", name, "--wait=false", check=False)

    def scratch(self, name: str) -> Path:
        path = self.workdir / f"{name}-{uuid.uuid4().hex[:5]}"
        path.mkdir(parents=True)
        return path

    def close(self) -> None:
        """Run the cleanups of run-wide fixtures, newest first; one failing does not stop the rest."""
        while self.cleanups:
            cleanup = self.cleanups.pop()
            try:
                cleanup()
            except Exception as exc:  # cleanup must go on; say what was left behind
                self.log(f"  cleanup failed: {type(exc).__name__}: {exc}")


Run = Callable[[Context, int], Iterator[Figure]]


@dataclass(frozen=True)
class Benchmark:
    """A registered benchmark: its number in the issue (B1...), a key for ``--only``, its sizes."""

    number: str
    key: str
    title: str
    quick_sizes: tuple[int, ...]
    full_sizes: tuple[int, ...]
    quick_repeats: int
    full_repeats: int
    run: Run
    needs_env: bool = True


BENCHMARKS: dict[str, Benchmark] = {}


def benchmark(
    number: str,
    key: str,
    title: str,
    *,
    quick: tuple[int, ...],
    full: tuple[int, ...],
    repeats: tuple[int, int] = (1, 3),
    needs_env: bool = True,
) -> Callable[[Run], Run]:
    """Register ``run`` as benchmark ``key``, run once per size with ``repeats`` (quick, full)."""

    def register(run: Run) -> Run:
        if key in BENCHMARKS:
            raise ValueError(f"benchmark {key!r} registered twice")
        BENCHMARKS[key] = Benchmark(number, key, title, quick, full, repeats[0], repeats[1], run, needs_env)
        return run

    return register


@dataclass
class Result:
    """One benchmark's figures, and the error that ended it early if one did."""

    benchmark: Benchmark
    sizes: tuple[int, ...]
    figures: list[Figure] = field(default_factory=list)
    seconds: float = 0.0
    error: str = ""


def run_benchmark(bench: Benchmark, ctx: Context) -> Result:
    """Run ``bench`` at each size of the mode; an exception ends that size and is reported."""
    sizes = bench.quick_sizes if ctx.quick else bench.full_sizes
    ctx.repeats = bench.quick_repeats if ctx.quick else bench.full_repeats
    result = Result(bench, sizes)
    started = time.monotonic()
    for size in sizes:
        figures = bench.run(ctx, size)
        try:
            for figure in figures:
                figure.size = figure.size or figure_size(size)
                result.figures.append(figure)
                ctx.log(f"  [{bench.key} {figure.size}] {figure.name}: {describe(figure)}")
        except Exception as exc:  # the report must say what broke, and the other benchmarks go on
            error = f"{figure_size(size)}: {type(exc).__name__}: {exc}"
            result.error = f"{result.error}; {error}" if result.error else error
            ctx.log(f"  [{bench.key}] error: {error}")
        finally:
            close = getattr(figures, "close", None)  # the generator's own cleanup runs now
            if close is not None:
                close()
    result.seconds = time.monotonic() - started
    return result


def figure_size(size: int) -> str:
    return f"N={size}"


def number(value: float) -> str:
    """A figure for the table: three significant digits, no exponent for the usual ranges."""
    if math.isnan(value):  # nothing measured
        return "-"
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 0.01:
        return f"{value:.2f}"
    return f"{value:.2g}"


def met_text(figure: Figure) -> str:
    return {True: "yes", False: "NO", None: ""}[figure.met]


def describe(figure: Figure) -> str:
    spread = ""
    if len(figure.samples) > 1:
        spread = f" (min {number(figure.low)}, max {number(figure.high)}, n={len(figure.samples)})"
    target = f"; target {figure.target}: {met_text(figure) or 'n/a'}" if figure.target else ""
    return f"{number(figure.median)} {figure.unit}{spread}{target}"


_HEADER = ("#", "benchmark", "size", "figure", "min", "median", "max", "unit", "target", "met")


def _rows(results: list[Result]) -> list[tuple[str, ...]]:
    rows = []
    for res in results:
        for f in res.figures:
            rows.append(
                (res.benchmark.number, res.benchmark.key, f.size, f.name, number(f.low), number(f.median),
                 number(f.high), f.unit, f.target, met_text(f))
            )  # fmt: skip
        if res.error:
            rows.append((res.benchmark.number, res.benchmark.key, "", "ERROR", "", "", "", "", "", res.error))
    return rows


def table(results: list[Result]) -> str:
    """The plain-text table printed at the end of a run."""
    lines = [_HEADER, *_rows(results)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(_HEADER))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines
    )


def markdown(results: list[Result], *, mode: str, machine: dict[str, str], started: str, noise: str) -> str:
    """The section of BENCHMARKS.md one run writes: machine, table, notes and raw samples."""
    out = run_heading(mode, started, machine)
    out += ["", f"Load on the machine during the run: {noise}", ""]
    out += ["| # | benchmark | size | figure | min | median | max | unit | target | met |"]
    out += ["|---|---|---|---|---:|---:|---:|---|---|---|"]
    for row in _rows(results):
        out.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
    notes = [(r.benchmark.key, f) for r in results for f in r.figures if f.note]
    if notes:
        out += ["", "What each figure counts:", ""]
        seen: set[tuple[str, str]] = set()
        for key, f in notes:
            if (key, f.name) not in seen:
                seen.add((key, f.name))
                out.append(f"- `{key}` {f.name}: {f.note}")
    out += ["", "<details><summary>Raw samples</summary>", "", "```"]
    for res in results:
        out.append(f"{res.benchmark.key} (sizes {', '.join(map(str, res.sizes))}, {res.seconds:.0f}s)")
        for f in res.figures:
            samples = ", ".join(f"{s:.6g}" for s in f.samples)
            out.append(f"  {f.size} {f.name} [{f.unit}]: {samples}")
    out += ["```", "", "</details>"]
    return "\n".join(out)


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, to tell how noisy the shared machine was."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"
