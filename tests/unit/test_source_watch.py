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


class Counter:
    def __init__(self) -> None:
        self.count = 0
        self.event = threading.Event()

    def __call__(self) -> None:
        self.count += 1
        self.event.set()


def test_debouncer_coalesces_a_burst() -> None:
    counter = Counter()
    debouncer = Debouncer(counter, WatchSettings(debounce_s=0.3, max_delay_s=2.0))
    try:
        for _ in range(20):
            debouncer.poke()
        assert counter.event.wait(2)
        time.sleep(0.3)
        assert counter.count == 1
        counter.event.clear()
        debouncer.poke()
        assert counter.event.wait(2)
        assert counter.count == 2
    finally:
        debouncer.close()


def test_debouncer_fires_within_max_delay_under_continuous_changes() -> None:
    counter = Counter()
    debouncer = Debouncer(counter, WatchSettings(debounce_s=0.2, max_delay_s=0.4))
    try:
        start = time.monotonic()
        while not counter.event.is_set() and time.monotonic() - start < 3:
            debouncer.poke()
            time.sleep(0.05)
        assert counter.event.is_set()
        assert time.monotonic() - start < 1.5
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
        assert calls.event.wait(2)
        calls.event.clear()
        debouncer.poke()
        assert calls.event.wait(2)
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
        assert counter.event.wait(3)
        time.sleep(0.3)
        after_first = counter.count
        counter.event.clear()
        (tmp_path / "apps" / "b.yaml").write_text("kind: Namespace\n")
        assert counter.event.wait(3)
    assert after_first >= 1 and counter.count > after_first
