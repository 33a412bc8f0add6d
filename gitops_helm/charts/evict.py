"""Keep the agent's chart caches bounded: remove what no current HelmRelease uses.

Place in the flow: the agent's cache janitor loop calls :meth:`Janitor.sweep` every
``EvictionSettings.interval_s``. The janitor looks at the entries of its *roots* (Git chart
mirrors and exports, chart archives, unpacked charts, repository indexes) and removes, through
``charts.usage.ChartUsage.take_unused`` (so never a path a HelmRelease claims):

1. every entry not used for ``max_age_s`` (last use: the later of its mtime and its last claim);
2. then, while the roots hold more than ``max_bytes`` in all, the least recently used ones.

Entries in use are never removed, even over the size limit (a warning says so). Names starting
with ``.`` are writers' temporary files (an export or a download under way): they are left
alone unless older than a day (left behind by a crash). Removal is a rename into a trash
directory under the same lock as the claims, then a delete outside it.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from gitops_helm import log as logging
from gitops_helm.charts.usage import ChartUsage

__all__ = ["EvictionSettings", "Janitor", "Sweep"]

log = logging.get(__name__)

_GiB = 1024 * 1024 * 1024
_STALE_TEMP_S = 24 * 3600.0


@dataclass(frozen=True)
class EvictionSettings:
    max_age_s: float = 6 * 3600.0
    """An unused mirror, export, archive, unpacked chart or index is removed after this long."""
    max_bytes: int = 4 * _GiB
    """Above this total, unused entries are removed least recently used first."""
    interval_s: float = 300.0
    """How often the janitor sweeps."""


@dataclass(frozen=True)
class Sweep:
    removed: tuple[Path, ...]
    in_use: int
    total_bytes: int  # what the roots hold after the sweep


@dataclass
class _Entry:
    path: Path
    size: int
    last_used: float


def _size(path: Path) -> int:
    try:
        st = path.lstat()
    except OSError:
        return 0
    if not path.is_dir() or path.is_symlink():
        return st.st_size
    total = 0
    for dirpath, dirnames, filenames in os.walk(path):
        for name in [*dirnames, *filenames]:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                continue
    return total


def _mtime(path: Path) -> float:
    try:
        return path.lstat().st_mtime
    except OSError:
        return 0.0


def _delete(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


class Janitor:
    def __init__(
        self,
        usage: ChartUsage,
        roots: Sequence[Path],
        trash: Path,
        settings: EvictionSettings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.usage = usage
        self.roots = tuple(roots)
        self.trash = trash
        self.settings = settings
        self._clock = clock

    def _entries(self) -> tuple[list[_Entry], list[Path]]:
        entries: list[_Entry] = []
        stale_temps: list[Path] = []
        now = self._clock()
        for root in self.roots:
            try:
                children = sorted(root.iterdir())
            except OSError:
                continue  # not created yet
            for child in children:
                if child.name.startswith("."):
                    if now - _mtime(child) > _STALE_TEMP_S:
                        stale_temps.append(child)
                    continue
                last = max(_mtime(child), self.usage.last_used(child) or 0.0)
                entries.append(_Entry(child, _size(child), last))
        return entries, stale_temps

    def _remove(self, path: Path) -> bool:
        moved = self.usage.take_unused(path, self.trash)
        if moved is None:
            return False
        _delete(moved)
        return True

    def sweep(self) -> Sweep:
        """Remove what is unused and too old, then what is over the size limit; see the module."""
        entries, stale_temps = self._entries()
        in_use = self.usage.in_use()
        now = self._clock()
        removed: list[Path] = []
        kept: list[_Entry] = []
        for entry in entries:
            too_old = now - entry.last_used > self.settings.max_age_s
            if too_old and entry.path not in in_use and self._remove(entry.path):
                removed.append(entry.path)
                continue
            kept.append(entry)
        total = sum(e.size for e in kept)
        if total > self.settings.max_bytes:
            in_use = self.usage.in_use()
            for entry in sorted((e for e in kept if e.path not in in_use), key=lambda e: e.last_used):
                if total <= self.settings.max_bytes:
                    break
                if self._remove(entry.path):
                    removed.append(entry.path)
                    total -= entry.size
            if total > self.settings.max_bytes:
                log.warning(
                    "chart caches over their size limit with everything left in use",
                    bytes=total,
                    limit=self.settings.max_bytes,
                )
        for temp in stale_temps:
            _delete(temp)
        if self.trash.is_dir():
            for leftover in self.trash.iterdir():  # a sweep interrupted before its deletes
                _delete(leftover)
        self.usage.forget_missing()
        if removed:
            log.info("evicted unused chart cache entries", count=len(removed), bytes_left=total)
        return Sweep(removed=tuple(removed), in_use=len(in_use), total_bytes=total)
