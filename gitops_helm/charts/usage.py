"""Which HelmRelease uses which cached file or directory: the lock between users and eviction.

Place in the flow: the chart sources (``charts.resolver``, ``charts.gitchart``) *claim* every
path they are about to read or hand to helm (a Git mirror, an export, a chart archive, an
unpacked chart) for the HelmRelease they fetch for, BEFORE they look whether it exists. The
janitor (``charts.evict``) removes a path only through :meth:`ChartUsage.take_unused`, which
atomically checks that nobody claims it and renames it out of the way under the same lock.
So a path a fetch has found is never removed afterwards, and helm never sees its chart
directory vanish: a HelmRelease keeps the claims of its last fetch until its next fetch (the
work queue runs one reconcile per key at a time, so a running helm's chart stays claimed) or
until the HelmRelease is gone (:meth:`ChartUsage.retain`).

Pure bookkeeping plus one ``rename``; no network, no subprocess.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["ChartUsage"]


@dataclass
class _User:
    claims: set[Path] = field(default_factory=set)  # what its last complete fetch used
    fetching: set[Path] | None = None  # claims of the fetch under way, if any
    active_at: float = 0.0  # monotonic time of its last claim or fetch


class ChartUsage:
    """Claims by user (a HelmRelease key), last-use times by path; thread-safe."""

    def __init__(
        self, clock: Callable[[], float] = time.time, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self._clock = clock
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._users: dict[str, _User] = {}
        self._last_used: dict[Path, float] = {}  # wall-clock time a claimed path was last used

    @contextmanager
    def fetching(self, user: str) -> Iterator[None]:
        """One fetch for ``user``: when it succeeds, its claims replace the user's previous ones
        (the chart it used before may now age out); when it fails, both are kept."""
        with self._lock:
            entry = self._users.setdefault(user, _User())
            entry.fetching = set()
            entry.active_at = self._monotonic()
        ok = False
        try:
            yield
            ok = True
        finally:
            with self._lock:
                entry = self._users.setdefault(user, _User())
                new = entry.fetching or set()
                entry.claims = new if ok else entry.claims | new
                entry.fetching = None
                entry.active_at = self._monotonic()

    def claim(self, user: str, path: Path) -> None:
        """``user`` is about to use ``path``: from now on it is not evicted."""
        with self._lock:
            entry = self._users.setdefault(user, _User())
            (entry.fetching if entry.fetching is not None else entry.claims).add(path)
            entry.active_at = self._monotonic()
            self._last_used[path] = self._clock()

    def retain(self, users: Iterable[str], since: float) -> list[str]:
        """Forget the users not in ``users`` (the HelmReleases that exist or are being
        reconciled), except those active after ``since`` (monotonic: when ``users`` was read);
        returns the forgotten users."""
        keep = set(users)
        with self._lock:
            gone = [
                u
                for u, e in self._users.items()
                if u not in keep and e.fetching is None and e.active_at < since
            ]
            for user in gone:
                del self._users[user]
            return gone

    def users(self) -> set[str]:
        with self._lock:
            return set(self._users)

    def in_use(self) -> set[Path]:
        """Every path some user claims now."""
        with self._lock:
            return self._claimed()

    def _claimed(self) -> set[Path]:
        out: set[Path] = set()
        for entry in self._users.values():
            out |= entry.claims
            out |= entry.fetching or set()
        return out

    def last_used(self, path: Path) -> float | None:
        """When ``path`` was last claimed by this process (wall clock), if it was."""
        with self._lock:
            return self._last_used.get(path)

    def take_unused(self, path: Path, trash: Path) -> Path | None:
        """Move ``path`` into ``trash`` (a directory on the same file system) unless someone
        claims it; returns its new place (for the caller to delete at leisure) or None."""
        with self._lock:
            if path in self._claimed():
                return None
            trash.mkdir(parents=True, exist_ok=True)
            moved = trash / f"{path.name}-{uuid.uuid4().hex[:8]}"
            self._last_used.pop(path, None)
            try:
                os.replace(path, moved)
            except FileNotFoundError:
                return None
            return moved

    def forget_missing(self) -> None:
        """Drop the last-use times of paths that no longer exist and nobody claims."""
        with self._lock:
            claimed = self._claimed()
            for path in [p for p in self._last_used if p not in claimed and not p.exists()]:
                del self._last_used[path]
