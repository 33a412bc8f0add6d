"""What the two measuring frames share, ``bench.run`` (BENCHMARKS.md) and ``chaos.run``
(RELIABILITY.md): the ``--only`` choice, the environment of one run, the machine a report
describes, and a report's section rewritten in place."""

from __future__ import annotations

import contextlib
import os
import platform
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

from tests.conftest import Env, State, testenv  # the conftest puts scripts/ (testenvlib) on the path

T = TypeVar("T")


def only(entries: Sequence[T], spec: str, key: Callable[[T], str], prog: str, noun: str) -> list[T] | None:
    """The entries ``--only KEY,...`` names, in ``entries``' order (all when ``spec`` is empty);
    None, once said on stderr, when it names one that does not exist."""
    wanted = [k.strip() for k in spec.split(",") if k.strip()]
    if not wanted:
        return list(entries)
    unknown = [k for k in wanted if k not in {key(e) for e in entries}]
    if unknown:
        print(f"{prog}: unknown {noun}(s) {', '.join(unknown)}; --list shows them", file=sys.stderr)
        return None
    return [e for e in entries if key(e) in wanted]


class EnvironmentDown(RuntimeError):
    """The test environment is not up and could not be started."""


@contextlib.contextmanager
def environment(prefix: str, *, needed: bool = True) -> Iterator[tuple[Env, Path]]:
    """The environment of one run and a scratch directory (its helm home inside), removed after.

    The environment is started if it is down, and then stopped again at the end unless
    ``TESTENV_KEEP`` is set; one that was up is left up. ``needed=False``: nothing is started and
    the Env has no variables (in-process measurements only)."""
    started_here = needed and not testenv.is_up()
    state = testenv.up() if started_here else State.load()
    try:
        if needed and state is None:
            raise EnvironmentDown("the test environment is not up and could not be started")
        with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
            env = Env(vars=dict(state.env) if state else {}, helm_home=Path(tmp) / "helm-home")
            yield env, Path(tmp)
    finally:
        if started_here and not os.environ.get("TESTENV_KEEP"):
            testenv.down()


def publish_charts(*charts: Path) -> None:
    """Package the chart directories into the environment's Helm repository."""
    testenv.publish_chart([str(c) for c in charts])


def machine(env: Env) -> dict[str, str]:
    """What the figures were measured on."""
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "unknown"
    with contextlib.suppress(OSError, IndexError, ValueError):
        kib = int(Path("/proc/meminfo").read_text().split("MemTotal:", 1)[1].split()[0])
        mem = f"{kib / 1024 / 1024:.1f} GiB"

    def version(argv: list[str]) -> str:
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=30, env=env.environ())
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"unavailable ({exc})"
        text = (out.stdout or out.stderr).strip()
        found = re.search(r'"gitVersion":\s*"([^"]+)"', text)
        return found.group(1) if found else (text.splitlines()[0] if text else "unknown")

    return {
        "CPU": f"{cpu} ({os.cpu_count()} cores)",
        "memory": mem,
        "kernel": platform.release(),
        "Python": platform.python_version(),
        "helm 4": version([env["HELM_BIN"], "version", "--short"]),
        "helm 3": version([env["HELM3_BIN"], "version", "--short"]),
        "Kubernetes": version([env["KUBECTL_BIN"], "get", "--raw", "/version"]).strip(),
    }


def run_heading(mode: str, started: str, machine: dict[str, str]) -> list[str]:
    """The head of a run's section: the command, when, and the machine as a table."""
    return [
        f"Run `{mode}` started {started}.",
        "",
        "| | |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in machine.items()),
    ]


def replace_section(document: str, marker: str, body: str) -> str:
    """Replace what lies between ``<!-- MARKER -->`` and ``<!-- /MARKER -->`` (e.g. ``chaos:quick``),
    or append the section when the document has none."""
    begin, end = f"<!-- {marker} -->", f"<!-- /{marker} -->"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    block = f"{begin}\n{body}\n{end}"
    if pattern.search(document):
        return pattern.sub(lambda _: block, document, count=1)
    return document.rstrip("\n") + "\n\n" + block + "\n"


def write_section(report: Path, marker: str, body: str, head: str = "") -> None:
    """Rewrite one section of ``report`` (created from ``head`` when it does not exist yet)."""
    current = report.read_text() if report.exists() else head
    report.write_text(replace_section(current, marker, body))
