"""The sync source: keeps a checkout of the configured branch's head, one directory per commit.

Place in the data flow: the first stage. :class:`GitSource` polls the remote (every
``poll_interval_s``, or at once on :meth:`GitSource.trigger` from a webhook or a manual sync),
refreshes its mirror through ``gitops_helm.adapters.git``, and when the branch head moves
exports the new commit into ``<workdir>/checkouts/<sha>`` and hands a :class:`Checkout` to its
``on_checkout`` callback; ``sync.discover`` then reads ``checkout.path`` with the
configured ``paths``, and ``sync`` applies what it finds.

Behaviour:

- The branch defaults to ``main`` (:data:`DEFAULT_BRANCH`). Flux v1's ``--git-branch`` defaulted
  to ``master``: users migrating without that flag set ``branch="master"``. A missing branch is a
  permanent error whose message lists the branches that exist.
- The last good checkout stays in place when a fetch or an export fails; the previous one is
  kept too (``keep_checkouts``), since a consumer may still be reading it.
- Failures are recorded (:attr:`GitSource.last_error`) and retried: temporary ones with an
  exponential backoff (``SourceSettings.retry``: numbers from the settings), permanent
  ones (credentials, missing branch, host key) at the normal poll interval, since nothing but a
  change elsewhere can fix them. A success resets the backoff.
- :meth:`GitSource.poll_once` does one round synchronously (tests, CLI ``sync --once``);
  :meth:`GitSource.start` runs the same in a daemon thread. Time comes from injectable clocks.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Protocol

from gitops_helm import log as logging
from gitops_helm import metrics
from gitops_helm.adapters.git import (
    Auth,
    CommitInfo,
    Export,
    GitError,
    GitSettingNames,
    GitSettings,
    Mirror,
    Remote,
    redact_url,
)
from gitops_helm.config import RetrySettings

__all__ = [
    "DEFAULT_BRANCH",
    "Checkout",
    "GitSource",
    "GitSourceConfig",
    "MirrorLike",
    "SourceSettings",
    "SourceStatus",
]

log = logging.get(__name__)

DEFAULT_BRANCH = "main"


@dataclass(frozen=True)
class GitSourceConfig:
    """What to follow: one branch of one repository, and the paths the sync reads."""

    url: str
    branch: str = DEFAULT_BRANCH
    paths: tuple[str, ...] = ()
    """Relative paths the sync reads (empty: the whole repository); also decide ``Checkout.changed``."""
    poll_interval_s: float = 60.0
    auth: Auth = None
    names: GitSettingNames = field(default_factory=GitSettingNames)
    """Where the user sets the URL, credentials and branch: named in the hints of Git errors."""

    def __post_init__(self) -> None:
        if self.poll_interval_s <= 0:
            raise ValueError("poll_interval_s must be positive")
        for path in self.paths:
            parts = PurePosixPath(path).parts
            if path.startswith("/") or ".." in parts:
                raise ValueError(f"path {path!r} must be relative and stay inside the repository")

    def remote(self) -> Remote:
        return Remote(self.url, self.auth, self.names)


@dataclass(frozen=True)
class SourceSettings:
    """Retry and housekeeping numbers of the source. Times in seconds."""

    retry: RetrySettings = field(default_factory=lambda: RetrySettings(base_s=5.0))
    """Backoff after consecutive temporary failures (first delay, growth factor, cap)."""
    permanent_retry_s: float | None = None
    """Delay after a permanent failure; ``None``: the poll interval."""
    keep_checkouts: int = 2
    """Checkout directories kept: the current one and the previous ones still possibly in use."""
    git: GitSettings = field(default_factory=GitSettings)


@dataclass(frozen=True)
class Checkout:
    """A commit's tree, complete and immutable, in ``path``."""

    sha: str
    path: Path
    commit: CommitInfo
    changed: bool
    """Whether anything under the configured paths differs from the previous checkout (True
    for the first one)."""
    skipped: tuple[str, ...] = ()
    """Entries not written because they were unsafe (links pointing outside the checkout)."""


@dataclass(frozen=True)
class SourceStatus:
    head: str | None
    checkout: Checkout | None
    last_error: Exception | None
    last_success_time: datetime | None
    last_attempt_time: datetime | None
    next_poll: datetime | None
    failures: int


class MirrorLike(Protocol):
    """What the source needs from ``adapters.git.Mirror`` (a fake in unit tests)."""

    def ensure_mirror(self) -> None: ...
    def resolve(self, ref: str) -> str: ...
    def export(self, sha: str, dest: Path, subpath: str | None = None) -> Export: ...
    def changed_between(self, old_sha: str | None, new_sha: str, paths: Sequence[str] = ()) -> bool: ...
    def head_commit_info(self, sha: str) -> CommitInfo: ...


def _utcnow() -> datetime:
    return datetime.now(UTC)


class GitSource:
    """Follows ``config.branch`` of ``config.url``; state in ``workdir`` (mirror and checkouts).

    Raises ``GitConfigError`` at once for a URL or auth that cannot work (a password in the URL,
    an ssh URL without a key). ``mirror`` replaces the real mirror (tests).
    """

    def __init__(
        self,
        config: GitSourceConfig,
        workdir: Path,
        settings: SourceSettings | None = None,
        *,
        on_checkout: Callable[[Checkout], None] | None = None,
        mirror: MirrorLike | None = None,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = _utcnow,
        beat: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        self.beat = beat or (lambda: None)  # liveness: once per round of the loop
        self.settings = settings or SourceSettings()
        self.workdir = workdir
        self.checkouts_dir = workdir / "checkouts"
        self._mirror: MirrorLike = mirror or Mirror(workdir / "mirror", config.remote(), self.settings.git)
        self._on_checkout = on_checkout
        self._clock = clock
        self._now = now
        self._state = threading.Lock()
        self._poll_lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._checkouts: list[Checkout] = []
        self._last_error: Exception | None = None
        self._last_success: datetime | None = None
        self._last_attempt: datetime | None = None
        self._failures = 0
        self._triggered = False
        self._due = clock()
        self._next_poll: datetime | None = now()

    # -- state, read from any thread

    @property
    def checkout(self) -> Checkout | None:
        """The last good checkout (kept while fetches fail)."""
        with self._state:
            return self._checkouts[-1] if self._checkouts else None

    @property
    def head(self) -> str | None:
        checkout = self.checkout
        return checkout.sha if checkout else None

    @property
    def last_error(self) -> Exception | None:
        """The error of the last attempt; ``None`` after a success."""
        with self._state:
            return self._last_error

    @property
    def last_success_time(self) -> datetime | None:
        with self._state:
            return self._last_success

    @property
    def next_poll(self) -> datetime | None:
        with self._state:
            return self._next_poll

    def status(self) -> SourceStatus:
        with self._state:
            return SourceStatus(
                head=self._checkouts[-1].sha if self._checkouts else None,
                checkout=self._checkouts[-1] if self._checkouts else None,
                last_error=self._last_error,
                last_success_time=self._last_success,
                last_attempt_time=self._last_attempt,
                next_poll=self._next_poll,
                failures=self._failures,
            )

    # -- one round

    def poll_once(self) -> Checkout | None:
        """Fetch, and export the branch head if it moved. Returns the new checkout, if any.

        A :class:`GitError` is recorded and scheduled for retry, never raised.
        """
        with self._poll_lock:
            with self._state:
                self._last_attempt = self._now()
                self._triggered = False
            try:
                self._mirror.ensure_mirror()
                sha = self._mirror.resolve(f"refs/heads/{self.config.branch}")
                current = self.checkout
                new = self._materialise(sha, current) if current is None or current.sha != sha else None
            except GitError as err:
                self._record_failure(err)
                return None
            self._record_success(new)
        if new is not None:
            self._notify(new)
        return new

    def checkout_ref(self, ref: str) -> Checkout:
        """A checkout of ``ref`` (a branch, tag or commit id of the repository) for ``plan --ref``;
        raises :class:`GitError`."""
        with self._poll_lock:
            self._mirror.ensure_mirror()
            return self._materialise(self._mirror.resolve(ref), None)

    def _materialise(self, sha: str, previous: Checkout | None) -> Checkout:
        dest = self.checkouts_dir / sha
        skipped: tuple[str, ...] = ()
        if not dest.is_dir():
            skipped = self._mirror.export(sha, dest).skipped
        commit = self._mirror.head_commit_info(sha)
        changed = self._mirror.changed_between(previous.sha if previous else None, sha, self.config.paths)
        checkout = Checkout(sha=sha, path=dest, commit=commit, changed=changed, skipped=skipped)
        with self._state:
            self._checkouts = [c for c in self._checkouts if c.sha != sha] + [checkout]
            keep = max(self.settings.keep_checkouts, 1)
            self._checkouts = self._checkouts[-keep:]
            kept = {c.path.name for c in self._checkouts}
        for entry in self.checkouts_dir.iterdir():
            if entry.name not in kept:
                shutil.rmtree(entry, ignore_errors=True)
        log.info(
            "new checkout",
            url=self._mirror_url(),
            branch=self.config.branch,
            revision=sha[:12],
            subject=commit.subject,
        )
        return checkout

    def _mirror_url(self) -> str:
        return redact_url(self.config.url)

    def _record_success(self, new: Checkout | None) -> None:
        with self._state:
            if self._failures:
                log.info("source recovered", url=self._mirror_url(), failed_attempts=self._failures)
            self._failures = 0
            self._last_error = None
            self._last_success = self._now()
            self._schedule(self.config.poll_interval_s)
        metrics.GIT_FETCHES.labels(result="ok").inc()

    def _record_failure(self, err: Exception) -> None:
        temporary = getattr(err, "temporary", True)
        with self._state:
            self._failures += 1
            self._last_error = err
            if temporary:
                delay = self.settings.retry.delay(self._failures)
            else:
                delay = self.settings.permanent_retry_s or self.config.poll_interval_s
            delay = self._schedule(delay)
            failures = self._failures
        kind = "temporary" if temporary else "permanent"
        metrics.GIT_FETCHES.labels(result="error").inc()
        log.warning(
            "source attempt failed", attempt=failures, kind=kind, error=str(err), retry_in=round(delay)
        )

    def _schedule(self, delay: float) -> float:
        if self._triggered:  # a trigger arrived during the attempt: it asked for a fresh fetch
            delay = 0.0
        self._due = self._clock() + delay
        self._next_poll = self._now() + timedelta(seconds=delay)
        return delay

    def _notify(self, checkout: Checkout) -> None:
        if self._on_checkout is None:
            return
        try:
            self._on_checkout(checkout)
        except Exception:
            log.exception("on_checkout callback failed", revision=checkout.sha[:12])

    # -- the loop

    def trigger(self) -> None:
        """Poll as soon as possible (webhook, manual sync); repeated calls coalesce."""
        with self._state:
            self._triggered = True
            self._due = self._clock()
            self._next_poll = self._now()
        self._wake.set()

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="gitops-helm-git-source", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Stop the loop; a git command in progress finishes (bounded by the git timeout)."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stopping.is_set():
            self.beat()
            with self._state:
                delay = self._due - self._clock()
            if delay > 0:
                self._wake.wait(delay)
                self._wake.clear()
                continue
            self._wake.clear()
            try:
                self.poll_once()
            except Exception as err:  # a bug or the disk: keep the loop alive, retry with backoff
                log.exception("source poll failed unexpectedly")
                self._record_failure(err)
