"""The sync loop records a fetch only after it has synced the commit that fetch brought.

The Git source records a fetch (its next poll) before it announces the new commit, so the loop could
write the new ``nextPoll`` beside the old revision; ``gitops-helm reconcile --with-source`` takes a
new ``nextPoll`` as "fetched" and reported the old revision. The fakes stand for the source and the
syncer; the loop and its thread are real.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from gitops_helm.sync.loop import SyncLoop


@dataclass
class FakeSource:
    checkout: Any = None
    next_poll: datetime | None = None
    attempt: datetime | None = None

    def status(self) -> Any:
        return SimpleNamespace(last_attempt_time=self.attempt, next_poll=self.next_poll, last_error=None)

    def trigger(self) -> None:
        pass


@dataclass
class FakeSyncer:
    calls: list[tuple[str, str]] = field(default_factory=list)
    noted: threading.Event = field(default_factory=threading.Event)
    settings: Any = field(default_factory=lambda: SimpleNamespace(handoff_poll_s=3600.0))
    revision: str = ""

    def sync_requested(self) -> None:
        return None

    def sync(self, path: Path, paths: tuple[str, ...], sha: str) -> Any:
        self.revision = sha
        self.calls.append(("sync", sha))
        return SimpleNamespace(ok=True, errors=[], applied=[], unchanged=[], deleted=[])

    def note_poll(self, next_poll: float, error: str | None) -> None:
        # what a reader of the sync state sees when the fetch is recorded
        self.calls.append(("note", self.revision))
        self.noted.set()


def checkout(sha: str) -> Any:
    return SimpleNamespace(sha=sha, path=Path("/nonexistent"), commit=None, changed=True, skipped=())


def test_a_fetch_is_recorded_beside_the_commit_it_brought_not_the_old_one() -> None:
    now = datetime.now(UTC)
    source = FakeSource(checkout("a" * 40), now + timedelta(minutes=10), now)
    syncer = FakeSyncer()
    loop = SyncLoop(syncer, (".",), interval_s=3600.0)  # type: ignore[arg-type]
    loop.source = source  # type: ignore[assignment]
    loop.start()
    try:
        assert syncer.noted.wait(10), syncer.calls
        assert syncer.calls == [("sync", "a" * 40), ("note", "a" * 40)]
        # a fetch brings commit b: the source records the fetch before it announces the commit
        syncer.noted.clear()
        later = now + timedelta(seconds=5)
        source.checkout, source.next_poll, source.attempt = (
            checkout("b" * 40),
            later + timedelta(minutes=10),
            later,
        )
        assert syncer.noted.wait(10), syncer.calls
        assert syncer.calls[2:] == [("sync", "b" * 40), ("note", "b" * 40)], syncer.calls
    finally:
        loop.stop()
        loop.thread.join(10)
