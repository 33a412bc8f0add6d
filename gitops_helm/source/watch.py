"""File-watch trigger for a local working-directory source.

Place in the data flow: instead of polling a remote, a developer can point the agent at a
directory on disk (``run --dir``); :class:`DirectoryWatcher` watches it with ``watchdog`` and
calls its callback, debounced, when files change, and the caller re-reads the directory
(``sync.discover``) and syncs. Anything inside a ``.git`` directory is ignored (git touches
it on every status, fetch or commit), and so are open/close-without-write events: reading the
files, which the sync itself does, must not trigger another sync.

The :class:`Debouncer` waits until changes have been quiet for ``debounce_s`` but never more than
``max_delay_s`` after the first change of a burst, then calls the callback once, from its own
thread.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePath
from types import TracebackType

from watchdog.events import (
    EVENT_TYPE_CLOSED,
    EVENT_TYPE_CREATED,
    EVENT_TYPE_DELETED,
    EVENT_TYPE_MODIFIED,
    EVENT_TYPE_MOVED,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

from gitops_helm import log as logging

__all__ = ["Debouncer", "DirectoryWatcher", "WatchSettings", "is_ignored"]

log = logging.get(__name__)

_RELEVANT = {EVENT_TYPE_CREATED, EVENT_TYPE_DELETED, EVENT_TYPE_MODIFIED, EVENT_TYPE_MOVED, EVENT_TYPE_CLOSED}


@dataclass(frozen=True)
class WatchSettings:
    """Times in seconds."""

    debounce_s: float = 0.5
    """Quiet time after the last change before the callback runs."""
    max_delay_s: float = 5.0
    """Upper bound between the first change of a burst and the callback, even if changes go on."""
    ignored_names: tuple[str, ...] = (".git",)
    """Path components whose whole subtree is ignored."""


def is_ignored(root: Path, path: str | bytes, ignored_names: tuple[str, ...] = (".git",)) -> bool:
    """Whether a changed ``path`` (under ``root``) lies in an ignored directory such as ``.git``."""
    text = os.fsdecode(path)
    try:
        relative = PurePath(text).relative_to(root)
    except ValueError:
        return True  # outside the watched tree
    return any(part in ignored_names for part in relative.parts)


class Debouncer:
    """Calls ``callback`` once per burst of :meth:`poke` calls (see the module docstring)."""

    def __init__(
        self,
        callback: Callable[[], None],
        settings: WatchSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._callback = callback
        self._settings = settings or WatchSettings()
        self._clock = clock
        self._cond = threading.Condition()
        self._first: float | None = None
        self._last = 0.0
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="gitops-helm-watch-debounce", daemon=True)
        self._thread.start()

    def poke(self) -> None:
        with self._cond:
            now = self._clock()
            if self._first is None:
                self._first = now
            self._last = now
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join()

    def _deadline(self) -> float | None:
        if self._first is None:
            return None
        return min(self._last + self._settings.debounce_s, self._first + self._settings.max_delay_s)

    def _run(self) -> None:
        with self._cond:
            while not self._closed:
                deadline = self._deadline()
                if deadline is None:
                    self._cond.wait()
                    continue
                remaining = deadline - self._clock()
                if remaining > 0:
                    self._cond.wait(remaining)
                    continue
                self._first = None
                self._cond.release()
                try:
                    self._callback()
                except Exception as exc:  # the watch thread must survive a failing callback
                    log.error("file-watch callback failed", error=f"{type(exc).__name__}: {exc}")
                finally:
                    self._cond.acquire()


class _Handler(FileSystemEventHandler):
    def __init__(self, root: Path, debouncer: Debouncer, ignored_names: tuple[str, ...]) -> None:
        super().__init__()
        self._root = root
        self._debouncer = debouncer
        self._ignored = ignored_names

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type not in _RELEVANT:
            return
        paths = [event.src_path, event.dest_path] if event.dest_path else [event.src_path]
        if all(is_ignored(self._root, path, self._ignored) for path in paths):
            return
        self._debouncer.poke()


class DirectoryWatcher:
    """Watches ``root`` recursively; ``callback()`` runs (debounced) after relevant changes."""

    def __init__(
        self, root: Path, callback: Callable[[], None], settings: WatchSettings | None = None
    ) -> None:
        self.root = root.resolve()
        self.settings = settings or WatchSettings()
        self._callback = callback
        self._debouncer: Debouncer | None = None
        self._observer: BaseObserver | None = None

    def start(self) -> None:
        if self._observer is not None:
            return
        self._debouncer = Debouncer(self._callback, self.settings)
        observer = Observer()
        observer.schedule(
            _Handler(self.root, self._debouncer, self.settings.ignored_names), str(self.root), recursive=True
        )
        observer.start()
        self._observer = observer

    def stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join()
            self._observer = None
        if self._debouncer is not None:
            self._debouncer.close()
            self._debouncer = None

    def __enter__(self) -> DirectoryWatcher:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
