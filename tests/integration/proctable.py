"""The helm processes on this machine, read from the process table (``/proc``): what a person
checking "which helm runs on which release now" with ``ps`` would see."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class HelmProcess:
    pid: int
    action: str  # install, upgrade, rollback, ...
    release: str
    namespace: str


def helm_processes(helm_bins: set[str], namespace: str) -> list[HelmProcess]:
    """The running helm processes (one of ``helm_bins``, as started) acting in ``namespace``."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as fh:
                argv = [part.decode(errors="replace") for part in fh.read().split(b"\0") if part]
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if len(argv) < 3 or argv[0] not in helm_bins or "--namespace" not in argv[:-1]:
            continue
        ns = argv[argv.index("--namespace") + 1]
        if ns == namespace:
            found.append(HelmProcess(int(entry.name), argv[1], argv[2], ns))
    return found
