"""What every experiment shares: trials and their outcomes, the registry, and the report.

An experiment injects one kind of fault a bounded number of times and, after each injection, checks
what a user would check: the release or object ended in the desired state, nothing was deleted or
lost, nothing was done twice. Each check gives one :class:`Trial`:

- ``survived``: every invariant held;
- ``lost``: something that worked was deleted or lost (a release, an object, a commit, an
  already-applied state). The suite exists to show this figure is zero;
- ``violated``: another invariant broke (a release left ``pending-*``, an action run twice, a
  condition that did not tell the truth, a fault that went unnoticed);
- ``error``: the experiment itself could not carry out the trial (it counts as a failure too: a
  suite that cannot inject its fault proves nothing).
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from tests.conftest import Env, release_finalizers
from tests.frames import run_heading

Outcome = Literal["survived", "lost", "violated", "error"]
OUTCOMES: tuple[Outcome, ...] = ("survived", "lost", "violated", "error")


@dataclass
class Trial:
    """One injected fault and what was found after it."""

    scenario: str
    outcome: Outcome
    detail: str = ""
    injected: int = 1
    seconds: float = 0.0


@dataclass
class Context:
    """What an experiment is given: the environment, a scratch directory, and the run's mode."""

    env: Env
    workdir: Path
    quick: bool
    log: Callable[[str], None] = print

    @contextlib.contextmanager
    def namespace(self, prefix: str) -> Iterator[str]:
        """A fresh namespace for one experiment, deleted (finalizers released) afterwards."""
        name = f"chaos-{prefix}-{uuid.uuid4().hex[:5]}"
        self.env.kubectl("create", "namespace", name)
        try:
            yield name
        finally:
            release_finalizers(self.env, name)
            self.env.kubectl("delete", "namespace", name, "--wait=false", check=False)

    def scratch(self, name: str) -> Path:
        path = self.workdir / f"{name}-{uuid.uuid4().hex[:5]}"
        path.mkdir(parents=True)
        return path


Run = Callable[[Context, int], Iterator[Trial]]


@dataclass(frozen=True)
class Experiment:
    """A registered experiment: its number in the issue, a key for ``--only``, and its counts."""

    number: int
    key: str
    title: str
    injects: str
    quick_count: int
    full_count: int
    budget_seconds: float
    run: Run


EXPERIMENTS: dict[str, Experiment] = {}


def experiment(
    number: int, key: str, title: str, *, injects: str, quick: int, full: int, budget_seconds: float
) -> Callable[[Run], Run]:
    """Register ``run`` as experiment ``key``: it yields one Trial per injected fault, ``count`` times."""

    def register(run: Run) -> Run:
        if key in EXPERIMENTS:
            raise ValueError(f"experiment {key!r} registered twice")
        EXPERIMENTS[key] = Experiment(number, key, title, injects, quick, full, budget_seconds, run)
        return run

    return register


@dataclass
class Result:
    """One experiment's trials, and why it stopped early if it did."""

    experiment: Experiment
    count: int
    trials: list[Trial] = field(default_factory=list)
    seconds: float = 0.0
    stopped: str = ""

    def rows(self) -> list[tuple[str, int, int, dict[Outcome, int]]]:
        """Per scenario: trials, faults injected, and the number of trials of each outcome."""
        by_scenario: dict[str, list[Trial]] = {}
        for trial in self.trials:
            by_scenario.setdefault(trial.scenario, []).append(trial)
        rows = []
        for scenario, trials in by_scenario.items():
            outcomes: dict[Outcome, int] = {o: sum(t.outcome == o for t in trials) for o in OUTCOMES}
            rows.append((scenario, len(trials), sum(t.injected for t in trials), outcomes))
        return rows

    @property
    def passed(self) -> bool:
        return bool(self.trials) and all(t.outcome == "survived" for t in self.trials) and not self.stopped


def run_experiment(exp: Experiment, ctx: Context) -> Result:
    """Run ``exp`` to its count or its time budget; an exception ends it as an ``error`` trial."""
    count = exp.quick_count if ctx.quick else exp.full_count
    result = Result(exp, count)
    started = time.monotonic()
    deadline = started + exp.budget_seconds
    trials = exp.run(ctx, count)
    try:
        while True:
            trial_started = time.monotonic()
            try:
                trial = next(trials)
            except StopIteration:
                break
            if not trial.seconds:
                trial.seconds = time.monotonic() - trial_started
            result.trials.append(trial)
            detail = f": {trial.detail}" if trial.detail else ""
            ctx.log(f"  [{exp.key}] {trial.scenario}: {trial.outcome}{detail}")
            if time.monotonic() > deadline:
                spent = f"time budget of {exp.budget_seconds:.0f}s spent"
                result.stopped = f"{spent} after {len(result.trials)} trials (count {count} per scenario)"
                break
    except Exception as exc:  # the report must say what broke, and the other experiments go on
        failed = Trial("(experiment)", "error", f"{type(exc).__name__}: {exc}")
        result.trials.append(failed)
        ctx.log(f"  [{exp.key}] {failed.scenario}: error: {failed.detail}")
    finally:
        close = getattr(trials, "close", None)  # a generator's own cleanup (its finally blocks) runs now
        if close is not None:
            close()
    result.seconds = time.monotonic() - started
    return result


def table(results: list[Result]) -> str:
    """The plain-text table printed at the end of a run."""
    header = ("#", "experiment", "scenario", "trials", "injected", *OUTCOMES)
    lines: list[tuple[str, ...]] = [header]
    for res in results:
        for scenario, trials, injected, outcomes in res.rows():
            lines.append(
                (str(res.experiment.number), res.experiment.key, scenario, str(trials), str(injected),
                 *(str(outcomes[o]) for o in OUTCOMES))
            )  # fmt: skip
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)) for line in lines)


def markdown(results: list[Result], *, mode: str, machine: dict[str, str], started: str) -> str:
    """The section of RELIABILITY.md one run writes: machine, table, and every trial."""
    out = run_heading(mode, started, machine)
    out += ["", "| # | experiment | scenario | trials | injected | survived | lost | violated | error |"]
    out += ["|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for res in results:
        for scenario, trials, injected, outcomes in res.rows():
            cells = " | ".join(str(x) for x in (trials, injected, *(outcomes[o] for o in OUTCOMES)))
            out.append(f"| {res.experiment.number} | {res.experiment.key} | {scenario} | {cells} |")
    stops = [f"- `{r.experiment.key}`: {r.stopped}" for r in results if r.stopped]
    if stops:
        out += ["", "Stopped early:", "", *stops]
    out += ["", "<details><summary>Every trial</summary>", "", "```"]
    for res in results:
        out.append(f"{res.experiment.key} (count {res.count}, {res.seconds:.0f}s)")
        for trial in res.trials:
            detail = f" - {trial.detail}" if trial.detail else ""
            out.append(f"  {trial.scenario}: {trial.outcome} ({trial.seconds:.1f}s){detail}")
    out += ["```", "", "</details>"]
    return "\n".join(out)
