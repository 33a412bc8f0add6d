"""Liveness of the agent's loops: each long-running loop beats, and ``/healthz`` fails when one
has been silent for longer than it may be, so Kubernetes restarts an agent that is stuck.

Place in the flow: the composition root (``agent``) registers every loop (the Git source, the
sync loop, the HelmRelease and values watches, the resync loop, each worker) with the silence it
may keep, from ``config.LivenessSettings``, and hands each loop its beat. A loop about to run
one long but bounded operation (a helm subprocess, whose timeout is known) says so with
:meth:`Heartbeats.allow`, so a two-hour ``--wait`` is not mistaken for a stuck worker. Every
network call and subprocess has its own deadline; this catches what deadlines cannot: a
deadlock, a loop that died, a bug that spins without doing its work.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Heartbeats"]


@dataclass
class _Loop:
    max_silence_s: float
    last_beat: float
    allowed_until: float = 0.0  # a bounded long operation in progress may last until then
    thread: int | None = None


class Heartbeats:
    """Thread-safe registry of loops and their last beat (monotonic clock, injectable)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._loops: dict[str, _Loop] = {}

    def register(self, name: str, max_silence_s: float) -> Callable[[], None]:
        """Watch the loop ``name`` from now on; returns its beat (call it from the loop's thread)."""
        with self._lock:
            self._loops[name] = _Loop(max_silence_s, self._clock())
        return lambda: self.beat(name)

    def beat(self, name: str) -> None:
        with self._lock:
            loop = self._loops.get(name)
            if loop is not None:
                loop.last_beat = self._clock()
                loop.allowed_until = 0.0
                loop.thread = threading.get_ident()

    def allow(self, seconds: float) -> None:
        """The calling thread's loop starts an operation bounded by ``seconds``: it may be silent
        that long from now (on top of its usual allowance)."""
        me = threading.get_ident()
        with self._lock:
            for loop in self._loops.values():
                if loop.thread == me:
                    loop.allowed_until = max(loop.allowed_until, self._clock() + seconds)

    def stale(self) -> list[str]:
        """The loops silent for longer than they may be, as ``name (silent Ns)``."""
        now = self._clock()
        with self._lock:
            return [
                f"{name} (silent {now - loop.last_beat:.0f}s)"
                for name, loop in sorted(self._loops.items())
                if now > max(loop.last_beat + loop.max_silence_s, loop.allowed_until)
            ]

    def check(self) -> tuple[bool, str]:
        """``/healthz``: healthy, or the loops that stopped making progress."""
        stale = self.stale()
        if stale:
            return False, "not making progress: " + ", ".join(stale)
        return True, "ok"
