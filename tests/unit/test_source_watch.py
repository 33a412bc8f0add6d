"""Unit tests of the file-watch trigger (gitops_helm.source.watch), on a real temporary directory."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from gitops_helm.source.watch import Debouncer, DirectoryWatcher, WatchSettings, is_ignored

FAST = WatchSettings(debounce_s=0.1, max_delay_s=1.0)


@pytest.mark.parametrize(
    ("path", "ignored"),
    [
        ("/repo/apps/a.yaml", False),
        ("/repo/.git/index.lock", True),
        ("/repo/.git", True),
        ("/repo/vendor/sub/.git/HEAD", True),
        ("/repo/.github/workflows/ci.yaml", False),
        ("/elsewhere/a.yaml", True),
        (b"/repo/apps/b.yaml", False),
    ],
)
def test_is_ignored(path: str | bytes, ignored: bool) -> None:
    assert is_ignored(Path("/repo"), path) is ignored


# How long a test waits for the debouncer's thread to act: it bounds a hang, not a latency.
PATIENCE = 30


class Counter:
    def __init__(self, clock: FakeClock | None = None) -> None:
        self.count = 0
        self.event = threading.Event()
        self.clock = clock
        self.fired_at: list[float] = []

    def __call__(self) -> None:
        if self.clock is not None:
            self.fired_at.append(self.clock())
        self.count += 1
        self.event.set()


class FakeClock:
    """The debouncer's clock, moved by the test: its decisions no longer depend on how fast the
    machine runs the test."""

    def __init__(self) -> None:
        self.now = 0.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now = round(self.now + seconds, 6)


def test_debouncer_coalesces_a_burst() -> None:
    clock = FakeClock()
    counter = Counter(clock)
    debouncer = Debouncer(counter, WatchSettings(debounce_s=0.3, max_delay_s=2.0), clock=clock)
    try:
        for _ in range(20):
            debouncer.poke()
        clock.advance(0.3)  # quiet for debounce_s
        assert counter.event.wait(PATIENCE)
        assert counter.count == 1
        assert counter.fired_at == [0.3]
        counter.event.clear()
        debouncer.poke()
        clock.advance(0.3)
        assert counter.event.wait(PATIENCE)
        assert counter.count == 2
    finally:
        debouncer.close()


def test_debouncer_fires_at_max_delay_under_continuous_changes() -> None:
    """Changes every 0.05 s never leave the 0.2 s of quiet the debounce waits for; the callback
    still runs, max_delay_s (0.4 s) after the first change, while the changes go on."""
    clock = FakeClock()
    counter = Counter(clock)
    debouncer = Debouncer(counter, WatchSettings(debounce_s=0.2, max_delay_s=0.4), clock=clock)
    try:
        for _ in range(7):  # changes at 0.00 .. 0.30, the clock now at 0.35
            debouncer.poke()
            clock.advance(0.05)
        assert counter.count == 0, "fired before max_delay_s although changes went on"
        debouncer.poke()  # a change at 0.35, then the clock reaches first change + max_delay_s
        clock.advance(0.05)
        debouncer.poke()  # and the changes go on
        assert counter.event.wait(PATIENCE)
        assert counter.fired_at == [0.4]
    finally:
        debouncer.close()


def test_debouncer_survives_a_failing_callback() -> None:
    calls = Counter()

    def failing() -> None:
        calls()
        raise RuntimeError("boom")

    debouncer = Debouncer(failing, FAST)
    try:
        debouncer.poke()
        assert calls.event.wait(PATIENCE)
        calls.event.clear()
        debouncer.poke()
        assert calls.event.wait(PATIENCE)
    finally:
        debouncer.close()


def test_watcher_reacts_to_changes_but_not_to_git_or_reads(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / "apps").mkdir()
    manifest = tmp_path / "apps" / "a.yaml"
    manifest.write_text("kind: ConfigMap\n")
    counter = Counter()
    with DirectoryWatcher(tmp_path, counter, FAST):
        (tmp_path / ".git" / "index").write_text("x")
        manifest.read_text()
        time.sleep(0.4)
        assert counter.count == 0, "reads and .git/ changes must not trigger"
        manifest.write_text("kind: Secret\n")
        assert counter.event.wait(PATIENCE)
        time.sleep(0.3)
        after_first = counter.count
        counter.event.clear()
        (tmp_path / "apps" / "b.yaml").write_text("kind: Namespace\n")
        assert counter.event.wait(PATIENCE)
    assert after_first >= 1 and counter.count > after_first
