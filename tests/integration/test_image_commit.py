"""Image updates committed back to Git (gitops_helm.images.commit) on the environment's real Git
server: over HTTP basic auth and SSH, one commit per scan, races with a concurrent push, no
empty commits, another push branch, the configured author and message, SSH-signed commits."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from gitops_helm.adapters.git import GitSigningError, HTTPAuth, Remote, SSHAuth
from gitops_helm.config import ImageCommitSettings
from gitops_helm.images.commit import (
    EditNotApplicable,
    ImageCommitError,
    ImageCommitFenced,
    ImageCommitter,
    PlannedUpdate,
    Rewrite,
)
from tests.conftest import Env
from tests.integration.test_git_mirror import IDENTITY, Work, unique

WEB = """\
# the web front end; the tag is bumped by the agent
apiVersion: helm.fluxcd.io/v1
kind: HelmRelease
metadata:
  name: web
  namespace: apps
  annotations:
    fluxcd.io/automated: "true"
spec:
  chart:
    repository: https://charts.example.invalid/
    name: web
    version: 1.2.3
  values:
    image:
      repository: registry.example.invalid/team/web   # pinned registry
      tag: '1.0.0'
    replicas:    3
"""

API = """\
---
apiVersion: helm.fluxcd.io/v1
kind: HelmRelease
metadata: {name: api, namespace: apps}
spec:
  values:
    api:
      image: "registry.example.invalid/team/api:2.0.0"

    worker:
        image: registry.example.invalid/team/worker:2.0.0
"""

UNTOUCHED = "a: 1\r\nb: 2\r\n"  # CRLF, no trailing blank line: must stay as it is


def swap(old: str, new: str) -> Rewrite:
    """The test's stand-in for the real editor: replace the one occurrence of ``old``."""

    def rewrite(path: str, content: bytes) -> bytes:
        if content.count(old.encode()) == 1:
            return content.replace(old.encode(), new.encode())
        if content.count(new.encode()) == 1:
            return content
        raise EditNotApplicable(f"{old!r} is not in the file once")

    return rewrite


def web_update(old: str = "1.0.0", new: str = "1.1.0") -> PlannedUpdate:
    return PlannedUpdate(
        path="apps/web.yaml",
        release="apps/web",
        subject="registry.example.invalid/team/web",
        old=old,
        new=new,
        rewrite=swap(f"tag: '{old}'", f"tag: '{new}'"),
    )


def api_update() -> PlannedUpdate:
    return PlannedUpdate(
        path="apps/api.yaml",
        release="apps/api",
        subject="registry.example.invalid/team/api",
        old="2.0.0",
        new="2.1.0",
        rewrite=swap("team/api:2.0.0", "team/api:2.1.0"),
    )


class Origin:
    """The repository on the Git server, read back through a bare clone of its own."""

    def __init__(self, env: Env, tmp_path: Path) -> None:
        self.name = unique("images")
        self.http = f"{env['TESTENV_GIT_HTTP']}/{self.name}"
        self.work = Work(tmp_path / "seed")
        self.initial = self.work.commit(
            {"apps/web.yaml": WEB, "apps/api.yaml": API, "other/crlf.yaml": UNTOUCHED}, "initial"
        )
        self.work.push(self.http)
        self.check = tmp_path / "check.git"
        subprocess.run(["git", "init", "-q", "--bare", str(self.check)], check=True, timeout=30)

    def git(self, *args: str) -> str:
        self.fetch()
        return self._git(*args)

    def _git(self, *args: str) -> str:
        out = subprocess.run(
            ["git", f"--git-dir={self.check}", *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={"PATH": "/usr/bin:/bin", **IDENTITY},
        )
        assert out.returncode == 0, f"git {' '.join(args)}: {out.stderr}"
        return out.stdout

    def fetch(self) -> None:
        self._git("fetch", "-q", "--prune", self.http, "+refs/heads/*:refs/heads/*")

    def head(self, branch: str = "main") -> str:
        return self.git("rev-parse", f"refs/heads/{branch}").strip()

    def show(self, rev: str, path: str) -> bytes:
        self.fetch()
        out = subprocess.run(
            ["git", f"--git-dir={self.check}", "cat-file", "blob", f"{rev}:{path}"],
            capture_output=True,
            timeout=60,
            check=True,
        )
        return out.stdout

    def parents(self, rev: str) -> list[str]:
        return self.git("rev-list", "--parents", "-n1", rev).split()[1:]


@pytest.fixture
def origin(env: Env, tmp_path: Path) -> Origin:
    return Origin(env, tmp_path)


def committer(
    origin: Origin,
    tmp_path: Path,
    remote: Remote | None = None,
    may_act: Callable[[], bool] = lambda: True,
    **settings: object,
) -> ImageCommitter:
    base = ImageCommitSettings(author_name="Image Bot", author_email="image-bot@example.invalid")
    return ImageCommitter(
        remote or Remote(origin.http),
        "main",
        tmp_path / "commit-work",
        replace(base, **settings),  # type: ignore[arg-type]
        may_act=may_act,
    )


def authenticated_remote(env: Env, origin: Origin, transport: str) -> Remote:
    if transport == "ssh":
        key = SSHAuth(Path(env["TESTENV_GIT_SSH_KEY"]), Path(env["TESTENV_KNOWN_HOSTS"]))
        return Remote(f"{env['TESTENV_GIT_SSH']}/{origin.name}", key)
    auth = HTTPAuth(env["TESTENV_GIT_USER"], env["TESTENV_GIT_PASSWORD"])
    return Remote(f"{env['TESTENV_GIT_HTTP_AUTH']}/{origin.name}", auth)


@pytest.mark.parametrize("transport", ["ssh", "http-basic-auth"])
def test_two_updates_go_into_one_commit_changing_only_their_bytes(
    env: Env, origin: Origin, tmp_path: Path, transport: str
) -> None:
    remote = authenticated_remote(env, origin, transport)
    outcome = committer(origin, tmp_path, remote).commit([web_update(), api_update()])

    assert outcome.commit is not None and outcome.branch == "main"
    assert [u.release for u in outcome.applied] == ["apps/web", "apps/api"]
    assert outcome.dropped == () and outcome.unchanged == ()
    assert origin.head() == outcome.commit
    assert origin.parents(outcome.commit) == [origin.initial]
    changed = origin.git("diff", "--name-only", origin.initial, outcome.commit).split()
    assert changed == ["apps/api.yaml", "apps/web.yaml"]
    assert origin.show("main", "apps/web.yaml") == WEB.replace("tag: '1.0.0'", "tag: '1.1.0'").encode()
    assert origin.show("main", "apps/api.yaml") == API.replace("api:2.0.0", "api:2.1.0").encode()
    assert origin.show("main", "other/crlf.yaml") == UNTOUCHED.encode()

    author = origin.git("log", "-1", "--format=%an <%ae>|%cn <%ce>", "main").strip()
    assert author == "Image Bot <image-bot@example.invalid>|Image Bot <image-bot@example.invalid>"
    message = origin.git("log", "-1", "--format=%B", "main")
    assert message.startswith("Update 2 images in 2 HelmReleases\n\n")
    assert "- apps/web: registry.example.invalid/team/web 1.0.0 -> 1.1.0\n" in message
    assert "- apps/api: registry.example.invalid/team/api 2.0.0 -> 2.1.0\n" in message


def test_a_push_that_lands_between_fetch_and_push_is_kept_and_the_edit_redone_on_it(
    env: Env, origin: Origin, tmp_path: Path
) -> None:
    """The other writer's commit changes the same file (another line) after our fetch; our push
    is refused, and the retry edits the new head: both commits, no merge commit."""
    other = Work(tmp_path / "other")
    other.git("fetch", "-q", origin.http, "main")
    other.git("checkout", "-q", "-B", "main", "FETCH_HEAD")
    raced: list[str] = []
    inner = swap("tag: '1.0.0'", "tag: '1.1.0'")

    def racing_rewrite(path: str, content: bytes) -> bytes:
        if not raced:  # the first attempt: someone pushes after our fetch, before our push
            raced.append(
                other.commit({"apps/web.yaml": WEB.replace("replicas:    3", "replicas:    5")}, "scale")
            )
            other.push(origin.http)
        return inner(path, content)

    update = replace(web_update(), rewrite=racing_rewrite)
    outcome = committer(origin, tmp_path).commit([update, api_update()])

    assert outcome.commit is not None and outcome.attempts == 2
    assert origin.head() == outcome.commit
    assert origin.parents(outcome.commit) == raced
    assert origin.parents(raced[0]) == [origin.initial]
    assert origin.git("rev-list", "--merges", "main").strip() == ""
    expected = WEB.replace("replicas:    3", "replicas:    5").replace("tag: '1.0.0'", "tag: '1.1.0'")
    assert origin.show("main", "apps/web.yaml") == expected.encode()
    assert origin.show("main", "apps/api.yaml") == API.replace("api:2.0.0", "api:2.1.0").encode()


def test_an_update_whose_file_changed_shape_is_dropped_and_the_others_go_in(
    origin: Origin, tmp_path: Path
) -> None:
    origin.work.commit({"apps/api.yaml": API.replace("team/api:2.0.0", "team/api-v2:2.0.0")}, "rename")
    origin.work.push(origin.http)
    moved = origin.head()
    gone = replace(web_update(), path="apps/removed.yaml", release="apps/removed")

    outcome = committer(origin, tmp_path).commit([web_update(), api_update(), gone])

    assert outcome.commit is not None and [u.release for u in outcome.applied] == ["apps/web"]
    errors = {d.update.release: d.error for d in outcome.dropped}
    assert errors["apps/api"].startswith("apps/api.yaml: 'team/api:2.0.0' is not in the file once")
    assert errors["apps/removed"].startswith("apps/removed.yaml: no such file")
    assert origin.parents(outcome.commit) == [moved]
    assert origin.git("diff", "--name-only", moved, "main").split() == ["apps/web.yaml"]
    message = origin.git("log", "-1", "--format=%B", "main")
    assert message == (
        "Update apps/web: registry.example.invalid/team/web 1.0.0 -> 1.1.0\n\n"
        "- apps/web: registry.example.invalid/team/web 1.0.0 -> 1.1.0\n\n"
    )


def test_nothing_changed_makes_no_commit(origin: Origin, tmp_path: Path) -> None:
    images = committer(origin, tmp_path)
    first = images.commit([web_update()])
    assert first.commit is not None

    already = replace(api_update(), new="2.0.0", rewrite=swap("team/api:2.0.0", "team/api:2.0.0"))
    again = images.commit([web_update(), already])

    assert again.commit is None and again.applied == ()
    assert [u.release for u in again.unchanged] == ["apps/web", "apps/api"]
    assert origin.head() == first.commit
    assert origin.git("rev-list", "--count", "main").strip() == "2"


def test_updates_go_to_a_push_branch_created_from_the_sync_branch(origin: Origin, tmp_path: Path) -> None:
    images = committer(origin, tmp_path, push_branch="image-updates")

    first = images.commit([web_update()])
    assert first.commit is not None and first.branch == "image-updates"
    assert origin.head("image-updates") == first.commit
    assert origin.parents(first.commit) == [origin.initial]
    assert origin.head("main") == origin.initial

    # the push branch exists and is not merged: the next update goes on top of it
    second = images.commit([web_update(), api_update()])
    assert second.commit is not None and [u.release for u in second.applied] == ["apps/api"]
    assert origin.parents(second.commit) == [first.commit]

    # merged into main (fast-forward) and main moved on: the next update starts from main
    origin.work.git("fetch", "-q", origin.http, "image-updates")
    origin.work.git("merge", "-q", "--ff-only", "FETCH_HEAD")
    moved = origin.work.commit({"other/new.yaml": "c: 3\n"}, "more")
    origin.work.push(origin.http)
    third = images.commit([web_update("1.1.0", "1.2.0")])
    assert third.commit is not None
    assert origin.parents(third.commit) == [moved]
    assert origin.head("image-updates") == third.commit
    assert origin.head("main") == moved


def test_the_message_template_is_used(origin: Origin, tmp_path: Path) -> None:
    template = "chore: bump $count in $releases [ci skip]\n\n$changes\nFiles: $files\nCost: $$0\n"
    outcome = committer(origin, tmp_path, message_template=template).commit([web_update(), api_update()])
    assert outcome.commit is not None
    assert origin.git("log", "-1", "--format=%B", "main") == (
        "chore: bump 2 in apps/api, apps/web [ci skip]\n\n"
        "- apps/web: registry.example.invalid/team/web 1.0.0 -> 1.1.0\n"
        "- apps/api: registry.example.invalid/team/api 2.0.0 -> 2.1.0\n"
        "Files: apps/api.yaml, apps/web.yaml\nCost: $0\n\n"
    )


def test_a_signed_commit_verifies(origin: Origin, tmp_path: Path) -> None:
    key = tmp_path / "signing" / "id_ed25519"
    key.parent.mkdir()
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "bot", "-f", str(key)], check=True, timeout=30
    )
    outcome = committer(origin, tmp_path, signing_key=key).commit([web_update()])
    assert outcome.commit is not None

    allowed = tmp_path / "signing" / "allowed_signers"
    allowed.write_text(f"image-bot@example.invalid {key.with_suffix('.pub').read_text()}")
    origin.fetch()
    verified = _verify(origin, allowed, outcome.commit)
    assert verified.returncode == 0, verified.stderr
    assert 'Good "git" signature for image-bot@example.invalid' in verified.stderr
    unsigned = _verify(origin, allowed, origin.initial)
    assert unsigned.returncode != 0


def _verify(origin: Origin, allowed: Path, rev: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "git",
            f"--git-dir={origin.check}",
            "-c",
            f"gpg.ssh.allowedSignersFile={allowed}",
            "verify-commit",
            rev,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin", **IDENTITY},
    )


def test_render_diff_shows_the_change_and_commits_nothing(origin: Origin, tmp_path: Path) -> None:
    diff = committer(origin, tmp_path).render_diff([web_update()])
    assert diff == (
        "diff --git a/apps/web.yaml b/apps/web.yaml\n"
        "--- a/apps/web.yaml\n"
        "+++ b/apps/web.yaml\n"
        "@@ -14,5 +14,5 @@\n"
        "   values:\n"
        "     image:\n"
        "       repository: registry.example.invalid/team/web   # pinned registry\n"
        "-      tag: '1.0.0'\n"
        "+      tag: '1.1.0'\n"
        "     replicas:    3\n"
    )
    assert origin.head() == origin.initial


def test_losing_every_race_ends_in_a_clear_error_and_keeps_the_other_writers_commits(
    origin: Origin, tmp_path: Path
) -> None:
    other = Work(tmp_path / "other")
    other.git("fetch", "-q", origin.http, "main")
    other.git("checkout", "-q", "-B", "main", "FETCH_HEAD")
    theirs: list[str] = []
    inner = swap("tag: '1.0.0'", "tag: '1.1.0'")

    def always_raced(path: str, content: bytes) -> bytes:
        theirs.append(other.commit({f"other/{len(theirs)}.yaml": "x: 1\n"}, f"theirs {len(theirs)}"))
        other.push(origin.http)
        return inner(path, content)

    images = committer(origin, tmp_path, push_attempts=2)
    with pytest.raises(
        ImageCommitError, match=r"not pushed to main after 2 attempts: .*the branch moved"
    ) as info:
        images.commit([replace(web_update(), rewrite=always_raced)])
    assert info.value.temporary
    assert origin.head() == theirs[-1] and len(theirs) == 2
    assert origin.show("main", "apps/web.yaml") == WEB.encode()


def test_a_push_the_remote_refuses_is_a_permanent_error(tmp_path: Path) -> None:
    """A non-bare repository refuses a push to its checked-out branch: declined, not a race."""
    checked_out = Work(tmp_path / "checked-out")
    checked_out.commit({"apps/web.yaml": WEB}, "initial")
    images = ImageCommitter(Remote(checked_out.path.as_uri()), "main", tmp_path / "commit-work")
    with pytest.raises(
        ImageCommitError, match=r"push refused by the remote \(branch main: .*checked out"
    ) as info:
        images.commit([web_update()])
    assert not info.value.temporary
    assert checked_out.git("rev-list", "--count", "main") == "1"


def test_an_unusable_signing_key_is_a_permanent_signing_error_and_nothing_is_pushed(
    origin: Origin, tmp_path: Path
) -> None:
    key = tmp_path / "broken_key"
    key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nnot a key\n-----END OPENSSH PRIVATE KEY-----\n")
    key.chmod(0o600)
    with pytest.raises(GitSigningError, match="could not sign the commit") as info:
        committer(origin, tmp_path, signing_key=key).commit([web_update()])
    assert not info.value.temporary
    assert origin.head() == origin.initial


def test_a_committer_that_lost_the_lease_before_its_push_pushes_nothing(
    origin: Origin, tmp_path: Path
) -> None:
    """The Lease is lost while the edits are made (after the fetch, before the push): the commit
    exists only locally, nothing reaches the branch, and the error says why."""
    leading = [True]
    inner = swap("tag: '1.0.0'", "tag: '1.1.0'")

    def lease_lost_meanwhile(path: str, content: bytes) -> bytes:
        leading[0] = False
        return inner(path, content)

    images = committer(origin, tmp_path, may_act=lambda: leading[0])
    with pytest.raises(ImageCommitFenced, match="not pushed to main: this replica no longer leads"):
        images.commit([replace(web_update(), rewrite=lease_lost_meanwhile), api_update()])
    assert origin.head() == origin.initial
    assert origin.show("main", "apps/web.yaml") == WEB.encode()


def test_a_retry_after_a_lost_race_asks_the_fence_again_and_pushes_nothing_once_fenced(
    origin: Origin, tmp_path: Path
) -> None:
    """First push refused (another writer moved the branch); before the retry's push the Lease is
    gone: the other writer's commit stays the head, ours is never pushed."""
    other = Work(tmp_path / "other")
    other.git("fetch", "-q", origin.http, "main")
    other.git("checkout", "-q", "-B", "main", "FETCH_HEAD")
    theirs: list[str] = []
    asked: list[bool] = []
    inner = swap("tag: '1.0.0'", "tag: '1.1.0'")

    def raced_once(path: str, content: bytes) -> bytes:
        if not theirs:
            theirs.append(other.commit({"other/theirs.yaml": "x: 1\n"}, "theirs"))
            other.push(origin.http)
        return inner(path, content)

    def may_act() -> bool:
        asked.append(not asked)  # leads for the first push only
        return asked[-1]

    images = committer(origin, tmp_path, may_act=may_act, push_attempts=3)
    with pytest.raises(ImageCommitFenced):
        images.commit([replace(web_update(), rewrite=raced_once)])
    assert asked == [True, False]  # asked before each push, the retry's included
    assert origin.head() == theirs[0]
    assert origin.show("main", "apps/web.yaml") == WEB.encode()
