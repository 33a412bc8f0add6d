"""Run the fault-injection suite: ``python -m chaos.run [--quick] [--only KEY,...]``.

Prints a table and writes the run's section of RELIABILITY.md (the quick and the full run each
have their own section, so a quick run never overwrites the figures of a full one). Exits 1 when
any trial did not survive, 2 when the run could not start.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT))

from testenvlib import env as testenv  # noqa: E402
from testenvlib.state import State  # noqa: E402

from chaos import experiments  # noqa: E402
from chaos.framework import (  # noqa: E402
    EXPERIMENTS,
    Context,
    Result,
    machine,
    markdown,
    replace_section,
    run_experiment,
    table,
)
from tests.conftest import CHARTS, Env  # noqa: E402

REPORT = ROOT / "RELIABILITY.md"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chaos", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small count of each fault (a few minutes)")
    parser.add_argument("--only", default="", help="comma-separated experiment keys (default: all)")
    parser.add_argument("--list", action="store_true", help="list the experiments and exit")
    parser.add_argument("--report", type=Path, default=REPORT, help="the file whose section to rewrite")
    parser.add_argument("--no-report", action="store_true", help="print the table only")
    args = parser.parse_args(argv)
    experiments.load()
    chosen = sorted(EXPERIMENTS.values(), key=lambda e: (e.number, e.key))
    if args.list:
        for exp in chosen:
            counts = f"quick {exp.quick_count:>3}  full {exp.full_count:>3}"
            print(f"{exp.number:>2} {exp.key:<28} {counts}  {exp.title}")
        return 0
    if args.only:
        wanted = [k.strip() for k in args.only.split(",") if k.strip()]
        unknown = [k for k in wanted if k not in EXPERIMENTS]
        if unknown:
            print(f"chaos: unknown experiment(s) {', '.join(unknown)}; --list shows them", file=sys.stderr)
            return 2
        chosen = [e for e in chosen if e.key in wanted]

    started_here = not testenv.is_up()
    state = testenv.up() if started_here else State.load()
    if state is None:
        print("chaos: the test environment is not up and could not be started", file=sys.stderr)
        return 2
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    results: list[Result] = []
    try:
        with tempfile.TemporaryDirectory(prefix="gitops-helm-chaos-") as tmp:
            env = Env(vars=dict(state.env), helm_home=Path(tmp) / "helm-home")
            testenv.publish_chart([str(CHARTS / "hello")])
            for exp in chosen:
                count = exp.quick_count if args.quick else exp.full_count
                print(f"== {exp.number} {exp.key} (count {count}): {exp.title}", flush=True)
                ctx = Context(env=env, workdir=Path(tmp), quick=args.quick)
                begun = time.monotonic()
                results.append(run_experiment(exp, ctx))
                print(f"   done in {time.monotonic() - begun:.0f}s", flush=True)
            figures = machine(env)
    finally:
        if started_here and not os.environ.get("TESTENV_KEEP"):
            testenv.down()
    print()
    print(table(results))
    mode = "make chaos-quick" if args.quick else "make chaos"
    if not args.no_report:
        body = markdown(results, mode=mode, machine=figures, started=started)
        current = args.report.read_text() if args.report.exists() else ""
        args.report.write_text(replace_section(current, "quick" if args.quick else "full", body))
        print(f"\nwrote {args.report}")
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
