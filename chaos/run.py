"""Run the fault-injection suite: ``python -m chaos.run [--quick] [--only KEY,...]``.

Prints a table and writes the run's section of RELIABILITY.md (the quick and the full run each
have their own section, so a quick run never overwrites the figures of a full one). Exits 1 when
any trial did not survive, 2 when the run could not start.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from chaos import experiments  # noqa: E402
from chaos.framework import EXPERIMENTS, Context, Result, markdown, run_experiment, table  # noqa: E402
from tests.conftest import CHARTS  # noqa: E402
from tests.frames import EnvironmentDown, environment, machine, only, publish_charts, write_section  # noqa: E402

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
    picked = only(chosen, args.only, lambda e: e.key, "chaos", "experiment")
    if picked is None:
        return 2
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    results: list[Result] = []
    try:
        with environment("gitops-helm-chaos-") as (env, tmp):
            publish_charts(CHARTS / "hello")
            for exp in picked:
                count = exp.quick_count if args.quick else exp.full_count
                print(f"== {exp.number} {exp.key} (count {count}): {exp.title}", flush=True)
                ctx = Context(env=env, workdir=tmp, quick=args.quick)
                begun = time.monotonic()
                results.append(run_experiment(exp, ctx))
                print(f"   done in {time.monotonic() - begun:.0f}s", flush=True)
            figures = machine(env)
    except EnvironmentDown as exc:
        print(f"chaos: {exc}", file=sys.stderr)
        return 2
    print()
    print(table(results))
    mode = "make chaos-quick" if args.quick else "make chaos"
    if not args.no_report:
        body = markdown(results, mode=mode, machine=figures, started=started)
        write_section(args.report, "chaos:quick" if args.quick else "chaos:full", body)
        print(f"\nwrote {args.report}")
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
