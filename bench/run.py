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
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT))

from testenvlib import env as testenv  # noqa: E402
from testenvlib.state import State  # noqa: E402

from bench.agentproc import CHART_DIR  # noqa: E402
from bench.framework import (  # noqa: E402
    BENCHMARKS,
    Context,
    Result,
    load_average,
    markdown,
    replace_section,
    run_benchmark,
    table,
)
from chaos.framework import machine  # noqa: E402
from tests.conftest import Env  # noqa: E402

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
    if args.only:
        wanted = [k.strip() for k in args.only.split(",") if k.strip()]
        unknown = [k for k in wanted if k not in BENCHMARKS]
        if unknown:
            print(f"bench: unknown benchmark(s) {', '.join(unknown)}; --list shows them", file=sys.stderr)
            return 2
        chosen = [b for b in chosen if b.key in wanted]
    if args.sizes:
        sizes = tuple(int(n) for n in args.sizes.split(","))
        chosen = [dataclasses.replace(b, quick_sizes=sizes, full_sizes=sizes) for b in chosen]
    for b in [b for b in chosen if not (b.quick_sizes if args.quick else b.full_sizes)]:
        print(f"== {b.number} {b.key}: not in this mode (full run only: {b.title})", flush=True)
        chosen.remove(b)

    needs_env = any(b.needs_env for b in chosen)
    started_here = needs_env and not testenv.is_up()
    state = testenv.up() if started_here else State.load()
    if needs_env and state is None:
        print("bench: the test environment is not up and could not be started", file=sys.stderr)
        return 2
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    results: list[Result] = []
    loads = [load_average()]
    figures: dict[str, str] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="gitops-helm-bench-") as tmp:
            env = Env(vars=dict(state.env) if state else {}, helm_home=Path(tmp) / "helm-home")
            if needs_env:
                testenv.publish_chart([str(CHART_DIR)])
            ctx = Context(env=env, workdir=Path(tmp), quick=args.quick)
            try:
                for bench in chosen:
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
    finally:
        if started_here and not os.environ.get("TESTENV_KEEP"):
            testenv.down()
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
        current = args.report.read_text() if args.report.exists() else _HEAD
        args.report.write_text(replace_section(current, "quick" if args.quick else "full", body))
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
