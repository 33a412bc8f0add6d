"""Run the benchmark suite: ``python -m bench.run [--quick] [--only KEY,...]``.

Prints a table and writes the run's section of BENCHMARKS.md (the quick and the full run each have
their own section, so a quick run never overwrites the figures of a full one). Benchmarks measure
and never assert: a missed target is reported, not failed. Exits 1 when a benchmark could not
measure (an error), 2 when the run could not start. Every module ``bench/bN_*.py`` and
``bench/peer_*.py`` is imported, and registers itself with ``bench.framework.benchmark``.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import os
import pkgutil
import re
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.agentproc import CHART_DIR  # noqa: E402
from bench.framework import BENCHMARKS, Context, Result, load_average, markdown, run_benchmark, table  # noqa: E402
from tests.frames import EnvironmentDown, environment, machine, only, publish_charts, write_section  # noqa: E402

REPORT = ROOT / "BENCHMARKS.md"
_MODULE = re.compile(r"^(b\d+_|peer_)\w+$")


def load() -> None:
    """Import every benchmark module of ``bench/`` (importing one registers it)."""
    for module in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if _MODULE.match(module.name):
            importlib.import_module(f"bench.{module.name}")


def _order(key: str) -> tuple[int, str]:
    found = re.match(r"B(\d+)", BENCHMARKS[key].number)
    return (int(found.group(1)) if found else 99, key)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one repeat (a few minutes)")
    parser.add_argument("--only", default="", help="comma-separated benchmark keys (default: all)")
    parser.add_argument("--sizes", default="", help="comma-separated sizes N for every chosen benchmark")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("--report", type=Path, default=REPORT, help="the file whose section to rewrite")
    parser.add_argument("--no-report", action="store_true", help="print the table only")
    args = parser.parse_args(argv)
    load()
    chosen = [BENCHMARKS[k] for k in sorted(BENCHMARKS, key=_order)]
    if args.list:
        for b in chosen:
            sizes = (
                f"quick {','.join(map(str, b.quick_sizes)):>8}  full {','.join(map(str, b.full_sizes)):>10}"
            )
            print(f"{b.number:>4} {b.key:<14} {sizes}  {b.title}")
        return 0
    picked = only(chosen, args.only, lambda b: b.key, "bench", "benchmark")
    if picked is None:
        return 2
    if args.sizes:
        sizes = tuple(int(n) for n in args.sizes.split(","))
        picked = [dataclasses.replace(b, quick_sizes=sizes, full_sizes=sizes) for b in picked]
    for b in [b for b in picked if not (b.quick_sizes if args.quick else b.full_sizes)]:
        print(f"== {b.number} {b.key}: not in this mode (full run only: {b.title})", flush=True)
        picked.remove(b)

    needs_env = any(b.needs_env for b in picked)
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    results: list[Result] = []
    loads = [load_average()]
    figures: dict[str, str] = {}
    try:
        with environment("gitops-helm-bench-", needed=needs_env) as (env, tmp):
            if needs_env:
                publish_charts(CHART_DIR)
            ctx = Context(env=env, workdir=tmp, quick=args.quick)
            try:
                for bench in picked:
                    sizes = bench.quick_sizes if args.quick else bench.full_sizes
                    shown = ", ".join(f"N={s}" for s in sizes)
                    print(f"== {bench.number} {bench.key} ({shown}): {bench.title}", flush=True)
                    begun = time.monotonic()
                    results.append(run_benchmark(bench, ctx))
                    loads.append(load_average())
                    print(f"   done in {time.monotonic() - begun:.0f}s (load {loads[-1]})", flush=True)
            finally:
                ctx.close()
            if needs_env:
                figures = machine(env)
    except EnvironmentDown as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    print()
    print(table(results))
    noise = (
        f"1/5/15-minute load averages {', then '.join(loads)} (before, and after each benchmark; "
        f"{os.cpu_count()} cores, shared with other work)"
    )
    mode = "make bench-quick" if args.quick else "make bench"
    if not args.no_report:
        body = markdown(
            results, mode=mode, machine=figures or {"machine": "not read"}, started=started, noise=noise
        )
        write_section(args.report, "bench:quick" if args.quick else "bench:full", body, head=_HEAD)
        print(f"\nwrote {args.report}")
    return 1 if any(r.error for r in results) else 0


_HEAD = """# Benchmarks

Written by `make bench` (full sizes, three repeats) and `make bench-quick` (small sizes, one
repeat); each run rewrites its own section. Figures are raw: min, median and max over the
repeats, measured on the shared machine described in each section. Targets come from issue #13;
a benchmark never fails on a missed target, the `met` column says so.
"""


if __name__ == "__main__":
    sys.exit(main())
