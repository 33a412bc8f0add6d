"""Committing image and chart updates back to Git: all updates of one scan in one commit.

Place in the flow: the last stage of image automation. The scan (registry client, policies)
decides what should change and the editor (``images.edit``) knows how; this module receives the
result as :class:`PlannedUpdate` values, each with a pure ``rewrite(path, content) -> content``
that re-applies its edit to whatever the file holds *now*, and turns them into at most one
commit pushed through ``adapters.git.CommitRepository``.

Behaviour (:meth:`ImageCommitter.commit`):

- The base is the remote's head of the push branch (``--image-push-branch``) when it exists and
  has not been merged into the sync branch, else the head of the sync branch (``--git-branch``):
  a missing push branch is created from it, one merged behind it starts again from it. Both
  are read with one ``ls-remote`` and fetched only when new.
- Every update's ``rewrite`` runs on the base's bytes of its file (several updates of one file
  in turn). An update whose file is gone, is not a regular file, is too big, or whose rewrite
  raises (the file changed shape) is dropped with a per-update error; the others still go in.
  One that leaves the bytes as they are is a no-op (its new value is already there).
- Nothing changed: no commit. Otherwise one commit (message from the template, the configured
  author as author and committer, signed with the SSH key when one is set) on the base, pushed
  as a fast-forward. A push refused because the branch moved starts over from the new head:
  fetch, rewrite, commit, push; at most ``ImageCommitSettings.push_attempts`` times with the
  settings' backoff in between. No merge commits, and the concurrent commits stay.
- One commit at a time per committer (a lock): two scans never race each other.
- Fenced: ``may_act`` (leader election's fence, as for the Git sync) is asked right before every
  push, a retry's included; a replica that lost its Lease mid-pass pushes nothing
  (:class:`ImageCommitFenced`), so the new leader is the only writer of the branch.
- :meth:`ImageCommitter.render_diff` does the same up to the commit and returns the unified
  diff instead (``images update --dry-run``).
"""

from __future__ import annotations

import difflib
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from string import Template

from gitops_helm import log as logging
from gitops_helm.adapters.git import (
    CommitRepository,
    GitError,
    GitIdentity,
    GitPushRejected,
    GitRefNotFound,
    GitSettings,
    Remote,
    check_branch_name,
)
from gitops_helm.config import ConfigError, ImageCommitSettings
from gitops_helm.errors import GitopsHelmError

__all__ = [
    "DEFAULT_TEMPLATE",
    "CommitOutcome",
    "DroppedUpdate",
    "EditNotApplicable",
    "FileChange",
    "ImageCommitError",
    "ImageCommitFenced",
    "ImageCommitter",
    "PlannedUpdate",
    "Rewrite",
    "apply_updates",
    "check_signing_key",
    "check_template",
    "render_message",
    "unified_diff",
]

log = logging.get(__name__)

Rewrite = Callable[[str, bytes], bytes]
"""``rewrite(path, content) -> new content``: the edit of one update, re-applied to the file as it
is now. Pure. Returns ``content`` unchanged when the new value is already there; raises
:class:`EditNotApplicable` (or any ``GitopsHelmError`` or ``ValueError``) when the file no longer
has the shape the edit expects."""

DEFAULT_TEMPLATE = "$summary\n\n$changes\n"
TEMPLATE_FIELDS = ("summary", "changes", "count", "releases", "files")


class EditNotApplicable(GitopsHelmError):
    """An update's edit no longer fits its file (it changed shape since the scan)."""

    temporary = False


class ImageCommitError(GitopsHelmError):
    """No commit could be pushed (the cause is chained and named in the message)."""

    def __init__(self, message: str, *, temporary: bool) -> None:
        super().__init__(message)
        self.temporary = temporary


class ImageCommitFenced(ImageCommitError):
    """The commit was made locally but not pushed: this replica no longer leads."""

    def __init__(self, branch: str) -> None:
        super().__init__(
            f"image update commit not pushed to {branch}: this replica no longer leads "
            "(the new leader's next pass makes it)",
            temporary=True,
        )


@dataclass(frozen=True)
class PlannedUpdate:
    """One change to write: ``release`` (``namespace/name`` of the HelmRelease) moves ``subject``
    (an image repository, or the chart's name when ``kind`` is ``"chart"``) from ``old`` to
    ``new`` in the file ``path`` (relative to the repository root, ``/``-separated)."""

    path: str
    release: str
    subject: str
    old: str
    new: str
    rewrite: Rewrite = field(repr=False, compare=False)
    kind: str = "image"

    def __post_init__(self) -> None:
        parts = PurePosixPath(self.path).parts
        if not self.path or self.path.startswith("/") or ".." in parts or ".git" in parts:
            raise ValueError(
                f"update of {self.release}: path {self.path!r} must be relative, inside the repository"
            )

    @property
    def line(self) -> str:
        what = f"chart {self.subject}" if self.kind == "chart" else self.subject
        return f"{self.release}: {what} {self.old} -> {self.new}"


@dataclass(frozen=True)
class DroppedUpdate:
    update: PlannedUpdate
    error: str


@dataclass(frozen=True)
class FileChange:
    path: str
    old: bytes
    new: bytes


@dataclass(frozen=True)
class AppliedUpdates:
    """The edits of one attempt on one base."""

    files: tuple[FileChange, ...]
    applied: tuple[PlannedUpdate, ...]
    unchanged: tuple[PlannedUpdate, ...]
    dropped: tuple[DroppedUpdate, ...]


@dataclass(frozen=True)
class CommitOutcome:
    """What :meth:`ImageCommitter.commit` did. ``commit`` is None when nothing was committed."""

    commit: str | None
    branch: str
    base: str
    applied: tuple[PlannedUpdate, ...]
    unchanged: tuple[PlannedUpdate, ...]
    dropped: tuple[DroppedUpdate, ...]
    attempts: int


FileReader = Callable[[str], bytes]
"""Reads a file of the base commit; raises :class:`EditNotApplicable` when it cannot be edited."""


def apply_updates(updates: Sequence[PlannedUpdate], read: FileReader) -> AppliedUpdates:
    """Run every update's rewrite on the current bytes of its file, in order (pure apart from
    ``read``). A failing update is dropped with its error; the others are unaffected."""
    current: dict[str, bytes] = {}
    original: dict[str, bytes] = {}
    applied: list[PlannedUpdate] = []
    unchanged: list[PlannedUpdate] = []
    dropped: list[DroppedUpdate] = []
    for update in updates:
        try:
            if update.path not in current:
                original[update.path] = current[update.path] = read(update.path)
            before = current[update.path]
            after = update.rewrite(update.path, before)
        except (GitopsHelmError, ValueError) as err:
            dropped.append(DroppedUpdate(update, f"{update.path}: {err}"))
            continue
        if not isinstance(after, bytes):
            dropped.append(DroppedUpdate(update, f"{update.path}: the edit returned no bytes"))
        elif after == before:
            unchanged.append(update)
        else:
            current[update.path] = after
            applied.append(update)
    files = tuple(
        FileChange(path, original[path], content)
        for path, content in current.items()
        if content != original[path]
    )
    return AppliedUpdates(files, tuple(applied), tuple(unchanged), tuple(dropped))


def check_template(template: str) -> None:
    """ConfigError naming the flag when the template is malformed or names unknown fields."""
    parsed = Template(template)
    if not parsed.is_valid():
        raise ConfigError("--image-commit-template: a $ must start a field name or be written $$")
    unknown = sorted(set(parsed.get_identifiers()) - set(TEMPLATE_FIELDS))
    if unknown:
        known = ", ".join(f"${name}" for name in TEMPLATE_FIELDS)
        raise ConfigError(f"--image-commit-template: unknown field ${unknown[0]} (known: {known})")
    if not render_message(template, ()).strip():
        raise ConfigError("--image-commit-template: renders an empty message")


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def render_message(template: str, updates: Sequence[PlannedUpdate]) -> str:
    """The commit message for ``updates`` (``string.Template``: no code, no attribute access)."""
    releases = sorted({u.release for u in updates})
    if len(updates) == 1:
        summary = f"Update {updates[0].line}"
    else:
        kinds = sorted({u.kind for u in updates})
        what = " and ".join(_plural(sum(u.kind == k for u in updates), k) for k in kinds) or "nothing"
        summary = f"Update {what} in {_plural(len(releases), 'HelmRelease')}"
    values = {
        "summary": summary,
        "changes": "\n".join(f"- {u.line}" for u in updates),
        "count": str(len(updates)),
        "releases": ", ".join(releases),
        "files": ", ".join(sorted({u.path for u in updates})),
    }
    message = Template(template).substitute(values)
    return message if message.endswith("\n") else message + "\n"


def unified_diff(files: Sequence[FileChange]) -> str:
    """``git diff``-like unified diff of the changes (``a/`` and ``b/`` prefixes, 3 lines of
    context, a missing final newline marked). Bytes that are not UTF-8 are shown escaped."""
    out: list[str] = []
    for change in sorted(files, key=lambda c: c.path):
        old = change.old.decode("utf-8", "backslashreplace").splitlines(keepends=True)
        new = change.new.decode("utf-8", "backslashreplace").splitlines(keepends=True)
        out.append(f"diff --git a/{change.path} b/{change.path}\n")
        for line in difflib.unified_diff(old, new, f"a/{change.path}", f"b/{change.path}"):
            out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return "".join(out)


class ImageCommitter:
    """Writes planned updates to ``branch`` of ``remote`` (or to the configured push branch).

    ``remote`` carries the same credentials as the Git sync (the agent builds both alike);
    ``workdir`` holds the local repository. Raises ConfigError at once for an unusable
    template, branch or signing key.
    """

    def __init__(
        self,
        remote: Remote,
        branch: str,
        workdir: Path,
        settings: ImageCommitSettings | None = None,
        git: GitSettings | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        may_act: Callable[[], bool] = lambda: True,
    ) -> None:
        self.settings = settings or ImageCommitSettings()
        self.template = self.settings.message_template or DEFAULT_TEMPLATE
        check_template(self.template)
        try:
            self.branch = check_branch_name(branch)
            self.push_branch = check_branch_name(self.settings.push_branch or branch)
        except ValueError as err:
            flag = "--image-push-branch" if self.settings.push_branch else "--git-branch"
            raise ConfigError(f"{flag}: {err}") from None
        try:
            self.identity = GitIdentity(self.settings.author_name, self.settings.author_email)
        except ValueError as err:
            raise ConfigError(f"--image-commit-author: {err}") from None
        if self.settings.signing_key is not None:
            check_signing_key(self.settings.signing_key)
        if self.settings.push_attempts < 1:
            raise ConfigError("--image-push-attempts: must be at least 1")
        self.repo = CommitRepository(workdir, remote, git)
        self._sleep = sleep
        self.may_act = may_act
        self._lock = threading.Lock()

    # -- the two entry points

    def commit(self, updates: Sequence[PlannedUpdate]) -> CommitOutcome:
        """At most one commit holding every applicable update, pushed; see the module docstring.

        Raises the classified ``GitError`` when the remote cannot be read, and
        :class:`ImageCommitError` when every push attempt lost the race or the remote refused it
        (:class:`ImageCommitFenced` when ``may_act`` said no right before a push).
        """
        with self._lock:
            attempt = 0
            while True:
                attempt += 1
                base = self._base()
                result = apply_updates(updates, self._reader(base))
                outcome = CommitOutcome(
                    commit=None,
                    branch=self.push_branch,
                    base=base,
                    applied=result.applied,
                    unchanged=result.unchanged,
                    dropped=result.dropped,
                    attempts=attempt,
                )
                for dropped in result.dropped:
                    log.warning(
                        "image update dropped",
                        release=dropped.update.release,
                        subject=dropped.update.subject,
                        new=dropped.update.new,
                        error=dropped.error,
                    )
                if not result.files:
                    log.info("image updates: nothing to commit", branch=self.push_branch, base=base[:12])
                    return outcome
                message = render_message(self.template, result.applied)
                files = {change.path: change.new for change in result.files}
                sha = self.repo.commit(base, files, message, self.identity, self.settings.signing_key)
                if sha is None:
                    return outcome
                if not self.may_act():
                    log.warning("image update commit not pushed: leadership lost", branch=self.push_branch)
                    raise ImageCommitFenced(self.push_branch)
                try:
                    self.repo.push(sha, self.push_branch)
                except GitPushRejected as err:
                    if attempt >= self.settings.push_attempts:
                        raise ImageCommitError(
                            f"image update commit not pushed to {self.push_branch} after {attempt} "
                            f"attempts: {err}",
                            temporary=True,
                        ) from err
                    delay = self.settings.push_retry.delay(attempt)
                    log.info("image update push lost a race; redoing it on the new head", attempt=attempt)
                    self._sleep(delay)
                    continue
                except GitError as err:
                    raise ImageCommitError(
                        f"image update commit not pushed to {self.push_branch}: {err}",
                        temporary=err.temporary,
                    ) from err
                log.info(
                    "image updates committed",
                    commit=sha[:12],
                    branch=self.push_branch,
                    updates=len(result.applied),
                    attempts=attempt,
                )
                return CommitOutcome(
                    commit=sha,
                    branch=self.push_branch,
                    base=base,
                    applied=result.applied,
                    unchanged=result.unchanged,
                    dropped=result.dropped,
                    attempts=attempt,
                )

    def render_diff(self, updates: Sequence[PlannedUpdate]) -> str:
        """The unified diff the next :meth:`commit` would commit (empty: nothing would change)."""
        with self._lock:
            base = self._base()
            return unified_diff(apply_updates(updates, self._reader(base)).files)

    # -- steps

    def _base(self) -> str:
        """The commit to build on, fetched (see the module docstring)."""
        wanted = [self.branch] if self.push_branch == self.branch else [self.branch, self.push_branch]
        heads = self.repo.remote_heads(wanted)
        if self.branch not in heads:
            raise GitRefNotFound("ls-remote", self.repo.remote.url, f"no branch {self.branch!r}")
        self.repo.fetch(heads)
        sync_head = heads[self.branch]
        push_head = heads.get(self.push_branch)
        if push_head is None or push_head == sync_head:
            return sync_head
        if self.repo.is_ancestor(push_head, sync_head):
            return sync_head  # merged into the sync branch: start again from there, fast-forward
        return push_head

    def _reader(self, base: str) -> FileReader:
        limit = self.settings.max_file_bytes

        def read(path: str) -> bytes:
            entry = self.repo.entry(base, path)
            if entry is None:
                raise EditNotApplicable(f"no such file in {base[:12]}")
            if not entry.is_regular_file:
                raise EditNotApplicable("not a regular file (a link or a submodule)")
            content = self.repo.read_blob(entry.object_id, limit)
            if content is None:
                raise EditNotApplicable(f"larger than {limit} bytes")
            return content

        return read


def check_signing_key(path: Path) -> None:
    """ConfigError unless ``path`` is an OpenSSH private key (git signs with ``gpg.format=ssh``,
    which needs no gpg agent; GPG keys are not supported). Only the first line is read."""
    try:
        with path.open("rb") as key:
            first = key.readline(100).strip()
    except OSError as err:
        raise ConfigError(f"--image-signing-key: cannot read {path}: {err.strerror}") from None
    if first.startswith(b"-----BEGIN PGP"):
        raise ConfigError(
            f"--image-signing-key: {path} is a GPG key; give an SSH private key (commits are signed "
            "with git's gpg.format=ssh)"
        )
    if first not in (b"-----BEGIN OPENSSH PRIVATE KEY-----",):
        raise ConfigError(f"--image-signing-key: {path} is not an OpenSSH private key")
