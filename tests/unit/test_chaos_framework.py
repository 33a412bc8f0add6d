"""The fault-injection suite's bookkeeping: outcomes counted per scenario, a broken experiment
reported as an error instead of ending the run, and RELIABILITY.md sections replaced in place."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from chaos.framework import Context, Experiment, Trial, markdown, run_experiment, table
from tests.conftest import Env
from tests.frames import replace_section


def context(tmp_path: Path, quick: bool = True, logged: list[str] | None = None) -> Context:
    sink = logged if logged is not None else []
    return Context(env=Env(vars={}, helm_home=tmp_path), workdir=tmp_path, quick=quick, log=sink.append)


def make(run: object, quick: int = 2, full: int = 5, budget: float = 60) -> Experiment:
    return Experiment(1, "demo", "a demo", "nothing", quick, full, budget, run)  # type: ignore[arg-type]


def test_outcomes_are_counted_per_scenario_with_the_count_of_the_mode(tmp_path: Path) -> None:
    def run(ctx: Context, count: int) -> Iterator[Trial]:
        for i in range(count):
            yield Trial("install", "survived" if i else "lost", detail=f"trial {i}")
            yield Trial("upgrade", "survived", injected=2)

    quick = run_experiment(make(run), context(tmp_path, quick=True))
    assert quick.count == 2
    assert quick.rows() == [
        ("install", 2, 2, {"survived": 1, "lost": 1, "violated": 0, "error": 0}),
        ("upgrade", 2, 4, {"survived": 2, "lost": 0, "violated": 0, "error": 0}),
    ]
    assert not quick.passed
    full = run_experiment(make(run), context(tmp_path, quick=False))
    assert full.count == 5 and len(full.trials) == 10


def test_an_experiment_that_raises_is_an_error_trial_not_a_crash(tmp_path: Path) -> None:
    def run(ctx: Context, count: int) -> Iterator[Trial]:
        yield Trial("install", "survived")
        raise RuntimeError("could not inject")

    logged: list[str] = []
    result = run_experiment(make(run), context(tmp_path, logged=logged))
    assert [t.outcome for t in result.trials] == ["survived", "error"]
    assert "could not inject" in logged[-1]
    assert "could not inject" in result.trials[-1].detail
    assert not result.passed
    assert "error" in table([result])


def test_an_experiment_that_yields_nothing_has_not_passed(tmp_path: Path) -> None:
    def run(ctx: Context, count: int) -> Iterator[Trial]:
        return iter(())

    assert not run_experiment(make(run), context(tmp_path)).passed


def test_the_time_budget_stops_an_experiment_and_the_report_says_so(tmp_path: Path) -> None:
    def run(ctx: Context, count: int) -> Iterator[Trial]:
        for _ in range(count):
            yield Trial("install", "survived")

    result = run_experiment(make(run, quick=3, budget=-1), context(tmp_path))
    assert len(result.trials) == 1
    assert "after 1 trials (count 3 per scenario)" in result.stopped
    assert not result.passed
    report = markdown([result], mode="make chaos-quick", machine={"CPU": "x"}, started="now")
    assert "Stopped early" in report and "| 1 | demo | install | 1 | 1 | 1 | 0 | 0 | 0 |" in report


def test_a_section_is_replaced_in_place_and_the_other_kept() -> None:
    document = (
        "head\n<!-- chaos:full -->\nold full\n<!-- /chaos:full -->\n"
        "<!-- chaos:quick -->\nq\n<!-- /chaos:quick -->\n"
    )
    updated = replace_section(document, "chaos:quick", "new quick $1 \\1")
    assert "old full" in updated and "new quick $1 \\1" in updated and "\nq\n" not in updated
    assert updated.startswith("head\n")
    appended = replace_section("head\n", "chaos:full", "figures")
    assert appended == "head\n\n<!-- chaos:full -->\nfigures\n<!-- /chaos:full -->\n"
