"""The benchmark frame's bookkeeping (``bench.framework``, ``bench.run``): figures per size, a
benchmark that cannot measure reported as an error (exit 1) while the others go on, the
BENCHMARKS.md section written in place, and every benchmark of issue #13 registered, all but the
Flux peer in ``make bench-quick``. Nothing here needs the environment."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import run as bench_run
from bench.framework import BENCHMARKS, Benchmark, Context, Figure, markdown, run_benchmark, table
from tests.conftest import Env


def context(tmp_path: Path, quick: bool = True) -> Context:
    return Context(env=Env(vars={}, helm_home=tmp_path), workdir=tmp_path, quick=quick, log=lambda _: None)


def make(run: object, key: str = "demo", quick: tuple[int, ...] = (1, 2)) -> Benchmark:
    return Benchmark("B9", key, "a demo", quick, (10,), 1, 3, run, needs_env=False)  # type: ignore[arg-type]


def test_figures_are_kept_per_size_and_a_failing_size_is_an_error_the_next_size_still_runs(
    tmp_path: Path,
) -> None:
    closed: list[int] = []

    def run(ctx: Context, size: int) -> Iterator[Figure]:
        try:
            yield Figure("time", "s", [float(size), 2.0 * size], target="< 3 s", met=size < 2)
            if size == 1:
                raise RuntimeError("the cluster went away")
        finally:
            closed.append(size)

    result = run_benchmark(make(run), context(tmp_path))
    assert [(f.size, f.median) for f in result.figures] == [("N=1", 1.5), ("N=2", 3.0)]
    assert result.error == "N=1: RuntimeError: the cluster went away"
    assert closed == [1, 2]  # each size's own cleanup ran
    rows = table([result]).splitlines()
    assert rows[0].split()[:4] == ["#", "benchmark", "size", "figure"]
    assert "ERROR" in rows[-1] and "the cluster went away" in rows[-1]


def test_the_section_holds_the_machine_the_table_the_notes_and_every_raw_sample(tmp_path: Path) -> None:
    def run(ctx: Context, size: int) -> Iterator[Figure]:
        yield Figure("calls", "calls", [0.0, 0.0, 1.0], target="0", met=False, note="helm calls")

    result = run_benchmark(make(run, quick=(5,)), context(tmp_path))
    report = markdown([result], mode="make bench-quick", machine={"CPU": "x"}, started="now", noise="low")
    assert report.startswith("Run `make bench-quick` started now.")
    assert "| CPU | x |" in report
    assert "| B9 | demo | N=5 | calls | 0 | 0 | 1.00 | calls | 0 | NO |" in report
    assert "- `demo` calls: helm calls" in report
    assert "N=5 calls [calls]: 0, 0, 1" in report


def test_a_run_writes_its_own_section_and_exits_1_when_a_benchmark_could_not_measure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fine(ctx: Context, size: int) -> Iterator[Figure]:
        yield Figure("time", "s", [0.5])

    def broken(ctx: Context, size: int) -> Iterator[Figure]:
        raise RuntimeError("no cluster")
        yield  # a generator

    monkeypatch.setitem(BENCHMARKS, "zz-fine", make(fine, key="zz-fine"))
    monkeypatch.setitem(BENCHMARKS, "zz-broken", make(broken, key="zz-broken"))
    report = tmp_path / "BENCHMARKS.md"
    assert bench_run.main(["--quick", "--only", "zz-fine", "--report", str(report)]) == 0
    written = report.read_text()
    assert written.startswith("# Benchmarks") and "<!-- bench:quick -->" in written
    assert "| B9 | zz-fine | N=1 | time |" in written
    assert bench_run.main(["--quick", "--only", "zz-fine,zz-broken", "--report", str(report)]) == 1
    assert written.count("<!-- bench:quick -->") == report.read_text().count("<!-- bench:quick -->") == 1
    assert bench_run.main(["--quick", "--only", "zz-nothing", "--no-report"]) == 2


def test_every_benchmark_of_the_issue_is_registered_and_all_but_the_peer_run_in_bench_quick(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert bench_run.main(["--list"]) == 0  # imports every bench/bN_*.py and peer_*.py
    numbers = {b.number: b for b in BENCHMARKS.values()}
    assert {"B0", "B1", "B2", "B3", "B4", "B5", "B6", "P1"} <= set(numbers)
    assert [n for n, b in numbers.items() if not b.quick_sizes] == ["P1"]  # the Flux build: full run only
    assert all(b.full_sizes for b in BENCHMARKS.values())
    assert "latency" in capsys.readouterr().out


def test_b1_net_cpu_takes_the_idle_agents_share_of_each_window_off_the_raw_figure() -> None:
    from bench.b1_steady import net_cpu_ms

    # 100 releases, 8 ms each raw over a 10 s window; idle 25 ms/s is 250 ms, 2.5 ms per release
    assert net_cpu_ms([8.0, 6.0], [10.0, 4.0], 0.025, 100) == pytest.approx([5.5, 5.0])
    assert net_cpu_ms([1.0], [100.0], 0.025, 10) == [0.0]  # never below zero


def test_b2_full_run_adds_the_large_rollout() -> None:
    from bench.b2_rollout import LARGE

    assert bench_run.main(["--list"]) == 0
    assert LARGE in BENCHMARKS["rollout"].full_sizes and LARGE not in BENCHMARKS["rollout"].quick_sizes


def test_a_helmrelease_is_ready_for_its_generation_only() -> None:
    from bench.agentproc import is_ready

    def hr(ready: str, observed: int, generation: int = 2) -> dict[str, object]:
        status = {"observedGeneration": observed, "conditions": [{"type": "Ready", "status": ready}]}
        return {"metadata": {"name": "a", "generation": generation}, "status": status}

    assert is_ready(hr("True", 2))
    assert not is_ready(hr("True", 1))  # Ready of the previous spec
    assert not is_ready(hr("False", 2))
    assert not is_ready({"metadata": {"name": "a", "generation": 1}})
