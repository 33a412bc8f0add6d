"""Integration tests of the git adapter (gitops_helm.adapters.git) against real git and the
environment's Git server: HTTP, HTTP basic auth, SSH with key + known_hosts, file://."""

from __future__ import annotations

import os
import socket
import subprocess
import uuid
from pathlib import Path

import pytest

from gitops_helm.adapters.git import (
    GitAuthError,
    GitCommandFailed,
    GitConfigError,
    GitHostKeyError,
    GitPathNotFound,
    GitRefNotFound,
    GitRepositoryNotFound,
    GitSettings,
    GitTimeoutError,
    HTTPAuth,
    Mirror,
    Remote,
    SSHAuth,
)
from tests.conftest import Env

IDENTITY = {
    "GIT_AUTHOR_NAME": "Ann Author",
    "GIT_AUTHOR_EMAIL": "ann@example.invalid",
    "GIT_COMMITTER_NAME": "Ann Author",
    "GIT_COMMITTER_EMAIL": "ann@example.invalid",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_TERMINAL_PROMPT": "0",
}


class Work:
    """A working repository from which tests push commits to a remote."""

    def __init__(self, path: Path) -> None:
        self.path = path
        subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True, timeout=30)

    def git(self, *args: str, env: dict[str, str] | None = None) -> str:
        full = {**os.environ, **IDENTITY, **(env or {})}
        out = subprocess.run(
            ["git", "-C", str(self.path), *args],
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
            env=full,
        )
        assert out.returncode == 0, f"git {' '.join(args)}: {out.stderr}"
        return out.stdout.strip()

    def commit(self, files: dict[str, str | None], message: str) -> str:
        for name, content in files.items():
            target = self.path / name
            if content is None:
                target.unlink()
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)
        return self.git("rev-parse", "HEAD")

    def push(self, url: str, *refspecs: str, force: bool = False, env: dict[str, str] | None = None) -> None:
        self.git("push", "-q", *(["--force"] if force else []), url, *(refspecs or ("main",)), env=env)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}.git"


def ssh_auth(env: Env) -> SSHAuth:
    return SSHAuth(Path(env["TESTENV_GIT_SSH_KEY"]), Path(env["TESTENV_KNOWN_HOSTS"]))


def test_http_mirror_resolve_export_and_commit_info(env: Env, tmp_path: Path) -> None:
    work = Work(tmp_path / "work")
    first = work.commit({"apps/a.yaml": "a: 1\n", "charts/web/Chart.yaml": "name: web\n"}, "Add web\n\nbody")
    work.git("tag", "v1")
    second = work.commit({"apps/a.yaml": "a: 2\n"}, "Bump a")
    name = unique("mirror")
    url = f"{env['TESTENV_GIT_HTTP']}/{name}"
    work.push(url, "main", "v1")

    mirror = Mirror(tmp_path / "mirror", Remote(url))
    mirror.ensure_mirror()
    assert mirror.resolve("main") == second
    assert mirror.resolve("refs/heads/main") == second
    assert mirror.resolve("v1") == first
    assert mirror.resolve(first[:10]) == first
    with pytest.raises(GitRefNotFound, match="branches: main") as info:
        mirror.resolve("master")
    assert not info.value.temporary and url in str(info.value)

    export = mirror.export(second, tmp_path / "out")
    assert (export.path / "apps" / "a.yaml").read_text() == "a: 2\n"
    assert not (export.path / ".git").exists()
    chart = mirror.export(first, tmp_path / "chart", subpath="charts/web")
    assert sorted(p.name for p in chart.path.iterdir()) == ["Chart.yaml"]
    with pytest.raises(GitPathNotFound):
        mirror.export(first, tmp_path / "nope", subpath="charts/absent")
    assert not (tmp_path / "nope").exists()

    info_first = mirror.head_commit_info(first)
    assert (info_first.author_name, info_first.author_email, info_first.subject) == (
        "Ann Author",
        "ann@example.invalid",
        "Add web",
    )
    # The mirror stores neither the URL nor anything else about the remote in its config.
    assert url not in (tmp_path / "mirror" / "config").read_text()


def test_missing_repository_is_a_permanent_error(env: Env, tmp_path: Path) -> None:
    url = f"{env['TESTENV_GIT_HTTP']}/{unique('absent')}"
    with pytest.raises(GitRepositoryNotFound) as info:
        Mirror(tmp_path / "m", Remote(url)).ensure_mirror()
    assert not info.value.temporary
    assert url in str(info.value)
    assert not (tmp_path / "m").exists(), "a failed first fetch leaves no half-made mirror"


def test_http_basic_auth(env: Env, tmp_path: Path) -> None:
    work = Work(tmp_path / "work")
    head = work.commit({"a.yaml": "a: 1\n"}, "one")
    name = unique("auth")
    work.push(f"{env['TESTENV_GIT_HTTP']}/{name}")
    url = f"{env['TESTENV_GIT_HTTP_AUTH']}/{name}"
    password = env["TESTENV_GIT_PASSWORD"]

    good = Mirror(tmp_path / "good", Remote(url, HTTPAuth(env["TESTENV_GIT_USER"], password)))
    good.ensure_mirror()
    good.ensure_mirror()
    assert good.resolve("main") == head
    for path in (tmp_path / "good").rglob("*"):
        if path.is_file() and path.suffix not in (".pack", ".idx", ".rev"):
            assert password.encode() not in path.read_bytes(), path

    wrong_password = "wrong-" + password
    bad = Mirror(tmp_path / "bad", Remote(url, HTTPAuth(env["TESTENV_GIT_USER"], wrong_password)))
    with pytest.raises(GitAuthError) as info:
        bad.ensure_mirror()
    message = str(info.value)
    assert not info.value.temporary
    assert url in message and "authentication failed" in message
    assert wrong_password not in message and wrong_password not in repr(info.value)

    with pytest.raises(GitAuthError):
        Mirror(tmp_path / "anon", Remote(url)).ensure_mirror()


def test_ssh_with_key_and_known_hosts(env: Env, tmp_path: Path) -> None:
    work = Work(tmp_path / "work")
    head = work.commit({"a.yaml": "a: 1\n"}, "one")
    name = unique("ssh")
    work.push(f"{env['TESTENV_GIT_HTTP']}/{name}")
    url = f"{env['TESTENV_GIT_SSH']}/{name}"

    mirror = Mirror(tmp_path / "ok", Remote(url, ssh_auth(env)))
    mirror.ensure_mirror()
    assert mirror.resolve("main") == head

    empty_known_hosts = tmp_path / "known_hosts"
    empty_known_hosts.write_text("")
    stranger = SSHAuth(Path(env["TESTENV_GIT_SSH_KEY"]), empty_known_hosts)
    with pytest.raises(GitHostKeyError) as info:
        Mirror(tmp_path / "stranger", Remote(url, stranger)).ensure_mirror()
    assert not info.value.temporary

    other_key = tmp_path / "other_key"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other_key)], check=True, timeout=30
    )
    with pytest.raises(GitAuthError):
        Mirror(
            tmp_path / "other", Remote(url, SSHAuth(other_key, Path(env["TESTENV_KNOWN_HOSTS"])))
        ).ensure_mirror()


def test_force_pushed_branch_is_followed(env: Env, tmp_path: Path) -> None:
    work = Work(tmp_path / "work")
    base = work.commit({"a.yaml": "a: 1\n"}, "base")
    old = work.commit({"a.yaml": "a: 2\n"}, "to be rewritten")
    work.commit({"b.yaml": "b: 1\n"}, "on a branch that goes away")
    url = f"{env['TESTENV_GIT_HTTP']}/{unique('force')}"
    work.git("branch", "feature")
    work.git("reset", "-q", "--hard", old)
    work.push(url, "main", "feature")
    mirror = Mirror(tmp_path / "mirror", Remote(url))
    mirror.ensure_mirror()
    assert mirror.resolve("main") == old

    work.git("reset", "-q", "--hard", base)
    rewritten = work.commit({"a.yaml": "a: 3\n"}, "rewritten")
    work.push(url, "main", force=True)
    work.push(url, ":feature")
    mirror.ensure_mirror()
    assert mirror.resolve("main") == rewritten
    with pytest.raises(GitRefNotFound):
        mirror.resolve("feature")  # pruned
    assert mirror.changed_between(old, rewritten, ["a.yaml"])


def test_changed_between_is_limited_to_paths(env: Env, tmp_path: Path) -> None:
    work = Work(tmp_path / "work")
    c1 = work.commit({"charts/a/values.yaml": "x: 1\n", "charts/b/values.yaml": "y: 1\n"}, "c1")
    c2 = work.commit({"charts/b/values.yaml": "y: 2\n"}, "only b")
    c3 = work.commit({"charts/a/values.yaml": "x: 2\n"}, "a")
    c4 = work.commit({"charts/a/values.yaml": "x: 1\n"}, "revert a")
    url = f"{env['TESTENV_GIT_HTTP']}/{unique('changed')}"
    work.push(url)
    mirror = Mirror(tmp_path / "mirror", Remote(url))
    mirror.ensure_mirror()

    assert not mirror.changed_between(c1, c2, ["charts/a"])
    assert mirror.changed_between(c1, c2, ["charts/b"])
    assert mirror.changed_between(c1, c2, ["charts/a", "./charts/b/"])
    assert mirror.changed_between(c2, c3, ["charts/a"])
    assert not mirror.changed_between(c2, c4, ["charts/a"]), "trees are compared, not the log"
    assert mirror.changed_between(c1, c2, [])
    assert not mirror.changed_between(c3, c3, ["charts/a"])
    assert mirror.changed_between(None, c3, ["charts/a"])
    assert mirror.changed_between("f" * 40, c3, ["charts/a"]), "an unknown old commit counts as changed"
    assert not mirror.changed_between(c1, c2, ["charts/[ab]"]), "paths are literal, not globs"


def test_file_urls_exact_bytes_and_unsafe_links(tmp_path: Path) -> None:
    bare = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True, timeout=30)
    work = Work(tmp_path / "work")
    (work.path / "escape").symlink_to("/etc/passwd")
    (work.path / "inside").symlink_to("apps/a.yaml")
    head = work.commit(
        {
            ".gitattributes": "secret.yaml export-ignore\nsubst.yaml export-subst\n*.txt text eol=crlf\n",
            "secret.yaml": "kept: true\n",
            "subst.yaml": "sha: $Format:%H$\n",
            "notes.txt": "line\n",
            "apps/a.yaml": "a: 1\n",
        },
        "attributes",
    )
    work.push(str(bare))

    for url in (f"file://{bare}", str(bare)):
        mirror = Mirror(tmp_path / f"mirror-{len(url)}", Remote(url))
        mirror.ensure_mirror()
        assert mirror.resolve("main") == head
    export = mirror.export(head, tmp_path / "out")
    out = export.path
    assert (out / "secret.yaml").read_text() == "kept: true\n"
    assert (out / "subst.yaml").read_text() == "sha: $Format:%H$\n"
    assert (out / "notes.txt").read_bytes() == b"line\n"
    assert (out / "inside").read_text() == "a: 1\n"
    assert export.skipped == ("escape",)
    assert not (out / "escape").exists()
    with pytest.raises(FileExistsError):
        mirror.export(head, out)


def test_inherited_git_environment_is_ignored(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    bare = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True, timeout=30)
    work = Work(tmp_path / "work")
    head = work.commit({"a.yaml": "a: 1\n"}, "one")
    work.push(str(bare))
    monkeypatch.setenv("GIT_DIR", str(tmp_path / "nowhere"))
    monkeypatch.setenv("GIT_OBJECT_DIRECTORY", str(tmp_path / "nowhere"))
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", f"url.{tmp_path}/nowhere.insteadOf")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", str(bare))
    monkeypatch.setenv("HOME", str(tmp_path / "home-with-config"))
    (tmp_path / "home-with-config").mkdir()
    (tmp_path / "home-with-config" / ".gitconfig").write_text(
        "[core]\n\tbare = false\n[fetch]\n\tprune = false\n"
    )
    mirror = Mirror(tmp_path / "mirror", Remote(str(bare)))
    mirror.ensure_mirror()
    assert mirror.resolve("main") == head


def test_unsupported_urls_are_refused_before_running_git(tmp_path: Path) -> None:
    for url in ("ext::sh -c touch% /tmp/pwned", "https://user:secret@h/r.git", "relative/path"):
        with pytest.raises(GitConfigError) as info:
            Mirror(tmp_path / "m", Remote(url)).ensure_mirror()
        assert "secret" not in str(info.value)


def test_hanging_server_times_out_as_a_temporary_error(tmp_path: Path) -> None:
    with socket.socket() as black_hole:  # accepts connections (backlog) and never answers
        black_hole.bind(("127.0.0.1", 0))
        black_hole.listen(8)
        port = black_hole.getsockname()[1]
        mirror = Mirror(tmp_path / "m", Remote(f"http://127.0.0.1:{port}/r.git"), GitSettings(timeout_s=1.5))
        with pytest.raises(GitTimeoutError) as info:
            mirror.ensure_mirror()
    assert info.value.temporary
    assert "1.5s" in str(info.value)


def test_tree_ids_file_reads_and_exports_of_some_paths(tmp_path: Path) -> None:
    bare = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True, timeout=30)
    work = Work(tmp_path / "work")
    first = work.commit(
        {"charts/app/Chart.yaml": "name: app\n", "charts/lib/Chart.yaml": "name: lib\n", "docs/a.md": "1\n"},
        "charts",
    )
    second = work.commit({"docs/a.md": "2\n"}, "docs only")
    work.push(str(bare))
    mirror = Mirror(tmp_path / "mirror", Remote(str(bare)))
    mirror.ensure_mirror()

    assert mirror.tree_id(first, "charts/app") == mirror.tree_id(second, "charts/app")
    assert mirror.tree_id(first, "docs") != mirror.tree_id(second, "docs")
    assert mirror.tree_id(first, "") != mirror.tree_id(second, "")
    assert mirror.tree_id(first, "charts/app/Chart.yaml") is None  # a file, not a directory
    assert mirror.tree_id(first, "absent") is None
    assert mirror.read_file(first, "charts/lib/Chart.yaml", 1000) == b"name: lib\n"
    assert mirror.read_file(first, "charts/lib/values.yaml", 1000) is None
    with pytest.raises(GitCommandFailed, match="larger than 3 bytes"):
        mirror.read_file(first, "charts/lib/Chart.yaml", 3)

    out = mirror.export_paths(second, tmp_path / "out", ["charts/app", "charts/lib"]).path
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == [
        "charts/app/Chart.yaml",
        "charts/lib/Chart.yaml",
    ]
    with pytest.raises(GitPathNotFound):
        mirror.export_paths(second, tmp_path / "nope", ["charts/app", "charts/absent"])
    assert not (tmp_path / "nope").exists()
