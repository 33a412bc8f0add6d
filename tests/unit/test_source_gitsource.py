"""Unit tests of the sync source loop (gitops_helm.source.gitsource) with an in-memory mirror.

The real mirror is exercised in tests/integration/test_git_source.py.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gitops_helm.adapters.git import (
    CommitInfo,
    Export,
    GitAuthError,
    GitConfigError,
    GitError,
    GitRefNotFound,
    GitUnreachableError,
)
from gitops_helm.config import RetrySettings
from gitops_helm.source.gitsource import (
    Checkout,
    GitSource,
    GitSourceConfig,
    SourceSettings,
)

URL = "https://git.example.com/team/config.git"
T0 = datetime(2030, 1, 1, tzinfo=UTC)


def sha(n: int) -> str:
    return f"{n:040x}"


class FakeMirror:
    """Branch heads in a dict; ``fail`` makes the next fetches raise."""

    def __init__(self) -> None:
        self.heads: dict[str, str] = {"refs/heads/main": sha(1)}
        self.fail: GitError | None = None
        self.fetches = 0
        self.exports: list[str] = []
        self.changed = True

    def ensure_mirror(self) -> None:
        self.fetches += 1
        if self.fail is not None:
            raise self.fail

    def resolve(self, ref: str) -> str:
        if ref not in self.heads:
            raise GitRefNotFound("resolve", URL, ref)
        return self.heads[ref]

    def export(self, sha: str, dest: Path, subpath: str | None = None) -> Export:
        dest.mkdir(parents=True)
        (dest / "commit.txt").write_text(sha)
        self.exports.append(sha)
        return Export(sha=sha, path=dest)

    def changed_between(self, old_sha: str | None, new_sha: str, paths: Sequence[str] = ()) -> bool:
        return old_sha is None or self.changed

    def head_commit_info(self, sha: str) -> CommitInfo:
        return CommitInfo(sha, "Ann", "ann@example.com", T0, T0, f"commit {sha[-4:]}")


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def monotonic(self) -> float:
        return self.t

    def wall(self) -> datetime:
        return T0 + timedelta(seconds=self.t - 1000.0)


def make_source(
    tmp_path: Path,
    mirror: FakeMirror,
    clock: Clock,
    settings: SourceSettings | None = None,
    seen: list[Checkout] | None = None,
    **config: object,
) -> GitSource:
    return GitSource(
        GitSourceConfig(URL, **config),  # type: ignore[arg-type]
        tmp_path,
        settings or SourceSettings(retry=RetrySettings(base_s=2, factor=3, max_s=50)),
        on_checkout=seen.append if seen is not None else None,
        mirror=mirror,
        clock=clock.monotonic,
        now=clock.wall,
    )


def test_defaults() -> None:
    config = GitSourceConfig(URL)
    assert config.branch == "main"
    assert config.poll_interval_s == 60.0
    assert config.paths == ()


@pytest.mark.parametrize(
    "kwargs", [{"paths": ("/abs",)}, {"paths": ("a/../../b",)}, {"poll_interval_s": 0.0}]
)
def test_config_validation(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        GitSourceConfig(URL, **kwargs)  # type: ignore[arg-type]


def test_unusable_remote_is_refused_at_construction(tmp_path: Path) -> None:
    with pytest.raises(GitConfigError):
        GitSource(GitSourceConfig("ssh://git@h/r.git"), tmp_path)


def test_backoff_delay_grows_and_is_capped() -> None:
    settings = SourceSettings(retry=RetrySettings(base_s=2, factor=3, max_s=50))
    assert [settings.retry.delay(n) for n in range(1, 6)] == [2, 6, 18, 50, 50]


def test_first_poll_exports_and_notifies(tmp_path: Path) -> None:
    mirror, clock, seen = FakeMirror(), Clock(), []
    source = make_source(tmp_path, mirror, clock, seen=seen)
    checkout = source.poll_once()
    assert checkout is not None and seen == [checkout]
    assert checkout.sha == sha(1) and checkout.changed
    assert checkout.path == tmp_path / "checkouts" / sha(1)
    assert (checkout.path / "commit.txt").read_text() == sha(1)
    assert checkout.commit.subject == "commit 0001"
    assert source.head == sha(1)
    assert source.last_error is None
    assert source.last_success_time == T0
    assert source.next_poll == T0 + timedelta(seconds=60)


def test_unchanged_head_does_nothing(tmp_path: Path) -> None:
    mirror, clock, seen = FakeMirror(), Clock(), []
    source = make_source(tmp_path, mirror, clock, seen=seen)
    source.poll_once()
    clock.t += 60
    assert source.poll_once() is None
    assert mirror.fetches == 2 and mirror.exports == [sha(1)]
    assert len(seen) == 1
    assert source.last_success_time == T0 + timedelta(seconds=60)


def test_new_head_and_old_checkouts_are_pruned(tmp_path: Path) -> None:
    mirror, clock = FakeMirror(), Clock()
    (tmp_path / "checkouts" / "stale-from-last-run").mkdir(parents=True)
    source = make_source(tmp_path, mirror, clock, paths=("apps",))
    source.poll_once()
    assert sorted(p.name for p in (tmp_path / "checkouts").iterdir()) == [sha(1)]
    for n in (2, 3):
        mirror.heads["refs/heads/main"] = sha(n)
        mirror.changed = n == 2
        checkout = source.poll_once()
        assert checkout is not None and checkout.changed is (n == 2)
    assert sorted(p.name for p in (tmp_path / "checkouts").iterdir()) == [sha(2), sha(3)]
    assert source.head == sha(3)


def test_temporary_failures_back_off_and_keep_the_last_checkout(tmp_path: Path) -> None:
    mirror, clock = FakeMirror(), Clock()
    source = make_source(tmp_path, mirror, clock)
    good = source.poll_once()
    assert good is not None
    mirror.fail = GitUnreachableError("fetch", URL, "Connection refused")
    delays = []
    for _ in range(5):
        before = clock.wall()
        assert source.poll_once() is None
        next_poll = source.next_poll
        assert next_poll is not None
        delays.append((next_poll - before).total_seconds())
    assert delays == [2, 6, 18, 50, 50]
    status = source.status()
    assert status.failures == 5
    assert isinstance(status.last_error, GitUnreachableError)
    assert source.checkout == good and good.path.is_dir()
    assert source.last_success_time == T0

    mirror.fail = None
    mirror.heads["refs/heads/main"] = sha(2)
    clock.t += 100
    recovered = source.poll_once()
    assert recovered is not None and recovered.sha == sha(2)
    assert source.last_error is None and source.status().failures == 0
    assert source.next_poll == clock.wall() + timedelta(seconds=60)


def test_permanent_failures_wait_the_poll_interval(tmp_path: Path) -> None:
    mirror, clock = FakeMirror(), Clock()
    source = make_source(tmp_path, mirror, clock, poll_interval_s=30.0)
    mirror.fail = GitAuthError("fetch", URL)
    for _ in range(3):
        source.poll_once()
        assert source.next_poll == clock.wall() + timedelta(seconds=30)
    assert source.checkout is None
    assert isinstance(source.last_error, GitAuthError)

    settings = SourceSettings(permanent_retry_s=7)
    other = make_source(tmp_path / "b", FakeMirror(), clock, settings=settings, branch="nope")
    other.poll_once()
    assert isinstance(other.last_error, GitRefNotFound)
    assert other.next_poll == clock.wall() + timedelta(seconds=7)


def test_callback_errors_do_not_break_the_source(tmp_path: Path) -> None:
    def boom(_: Checkout) -> None:
        raise RuntimeError("consumer bug")

    source = GitSource(GitSourceConfig(URL), tmp_path, on_checkout=boom, mirror=FakeMirror())
    assert source.poll_once() is not None
    assert source.last_error is None


def test_trigger_makes_the_poll_due_now(tmp_path: Path) -> None:
    mirror, clock = FakeMirror(), Clock()
    source = make_source(tmp_path, mirror, clock)
    source.poll_once()
    assert source.next_poll == T0 + timedelta(seconds=60)
    source.trigger()
    assert source.next_poll == T0


def test_thread_polls_on_trigger_and_stops(tmp_path: Path) -> None:
    mirror = FakeMirror()
    arrived = threading.Event()
    seen: list[Checkout] = []

    def on_checkout(checkout: Checkout) -> None:
        seen.append(checkout)
        arrived.set()

    source = GitSource(
        GitSourceConfig(URL, poll_interval_s=3600), tmp_path, on_checkout=on_checkout, mirror=mirror
    )
    source.start()
    try:
        assert arrived.wait(5), "the first poll happens at once"
        arrived.clear()
        mirror.heads["refs/heads/main"] = sha(2)
        source.trigger()
        assert arrived.wait(5), "trigger() polls without waiting for the interval"
        assert [c.sha for c in seen] == [sha(1), sha(2)]
    finally:
        source.stop(timeout=5)
    assert mirror.fetches == 2


@pytest.mark.parametrize("keep", [1, 3])
def test_keep_checkouts(tmp_path: Path, keep: int) -> None:
    mirror, clock = FakeMirror(), Clock()
    source = make_source(tmp_path, mirror, clock, settings=SourceSettings(keep_checkouts=keep))
    for n in range(1, 6):
        mirror.heads["refs/heads/main"] = sha(n)
        source.poll_once()
    kept = sorted(p.name for p in (tmp_path / "checkouts").iterdir())
    assert kept == [sha(n) for n in range(6 - keep, 6)]
