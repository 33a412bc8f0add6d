"""Unit tests of the git adapter's pure parts: error classification, URLs, environment, argv.

No git process runs here: :class:`GitRunner` is observed through a stub of GitPython's
``Git.execute``. Real git runs in tests/integration/test_git_*.py.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import git
import pytest

from gitops_helm.adapters.git import (
    GitAuthError,
    GitCommandFailed,
    GitConfigError,
    GitConnectionRefusedError,
    GitError,
    GitHostKeyError,
    GitHostNotFoundError,
    GitRefNotFound,
    GitRepositoryNotFound,
    GitRunner,
    GitSettingNames,
    GitSettings,
    GitTimeoutError,
    GitUnreachableError,
    HTTPAuth,
    PermanentGitError,
    Remote,
    SSHAuth,
    TemporaryGitError,
    build_env,
    classify_failure,
    redact_url,
    ssh_command,
    url_protocol,
)

PASSWORD = "pa55-w0rd-value"
SSH = SSHAuth(Path("/keys/id"), Path("/keys/known_hosts"))


@pytest.mark.parametrize(
    ("stderr", "cls"),
    [
        ("fatal: Authentication failed for 'https://h/r.git/'", GitAuthError),
        ("fatal: could not read Username for 'https://h': terminal prompts disabled", GitAuthError),
        (
            "git@h: Permission denied (publickey).\nfatal: Could not read from remote repository.",
            GitAuthError,
        ),
        ("fatal: unable to access 'https://h/r/': The requested URL returned error: 403", GitAuthError),
        ('Load key "/k": bad permissions\ngit@h: Permission denied (publickey).', GitAuthError),
        (
            "No ED25519 host key is known for [h]:22\nHost key verification failed.\nfatal: ...",
            GitHostKeyError,
        ),
        ("@@@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @@@", GitHostKeyError),
        ("fatal: repository 'https://h/nope.git/' not found", GitRepositoryNotFound),
        (
            "ERROR: Repository not found.\nfatal: Could not read from remote repository.",
            GitRepositoryNotFound,
        ),
        ("fatal: '/srv/x' does not appear to be a git repository", GitRepositoryNotFound),
        ("fatal: unable to access 'https://h/': Could not resolve host: h", GitHostNotFoundError),
        ("ssh: Could not resolve hostname h: Name or service not known", GitHostNotFoundError),
        ("ssh: connect to host h port 22: Connection refused", GitConnectionRefusedError),
        (
            "fatal: unable to access 'http://h:9/r.git/': Failed to connect to h port 9 after 0 ms: "
            "Couldn't connect to server",
            GitConnectionRefusedError,
        ),
        ("fatal: unable to access 'http://h/': Failed to connect to h port 80", GitUnreachableError),
        ("error: RPC failed; HTTP 502 curl 22 The requested URL returned error: 502", GitUnreachableError),
        ("fatal: early EOF\nfatal: index-pack failed", GitUnreachableError),
        ("fatal: the remote end hung up unexpectedly", GitUnreachableError),
        ("ssh: connect to host h port 22: Connection timed out", GitTimeoutError),
        ("fatal: something nobody has seen before", GitCommandFailed),
    ],
)
def test_classification(stderr: str, cls: type[GitError]) -> None:
    assert classify_failure(stderr) is cls


def test_error_hierarchy_and_message() -> None:
    for cls in (GitAuthError, GitHostKeyError, GitRepositoryNotFound, GitConfigError):
        assert issubclass(cls, PermanentGitError) and not cls.temporary
    for cls in (GitUnreachableError, GitTimeoutError, GitCommandFailed):
        assert issubclass(cls, TemporaryGitError) and cls.temporary
    for cls in (GitHostNotFoundError, GitConnectionRefusedError):
        assert issubclass(cls, GitUnreachableError) and cls.temporary
    err = GitAuthError("fetch", f"https://bot:{PASSWORD}@h/r.git", "detail")
    assert str(err) == (
        "git fetch of https://h/r.git failed: authentication failed; the server asks for credentials "
        "and none were given: set the HTTPS user name and password (detail)"
    )
    assert err.url == "https://h/r.git" and PASSWORD not in repr(err)
    # The library's own exceptions do not leak through our classes.
    assert not issubclass(GitError, git.GitError)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://u:p@h:8443/r.git", "https://h:8443/r.git"),
        ("ssh://git@h:2222/r.git", "ssh://h:2222/r.git"),
        ("git@github.com:org/r.git", "github.com:org/r.git"),
        ("/srv/git/r.git", "/srv/git/r.git"),
        ("file:///srv/git/r.git", "file:///srv/git/r.git"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@pytest.mark.parametrize(
    ("url", "protocol"),
    [
        ("https://h/r.git", "https"),
        ("HTTP://h/r.git", "http"),
        ("ssh://git@h/r.git", "ssh"),
        ("git@h:org/r.git", "ssh"),
        ("file:///srv/r.git", "file"),
        ("/srv/r.git", "file"),
    ],
)
def test_url_protocol(url: str, protocol: str) -> None:
    assert url_protocol(url) == protocol


@pytest.mark.parametrize(
    "url", ["", "-uhoh", "ext::sh -c x", "git://h/r.git", "relative/path", "https://h/\nx"]
)
def test_unusable_urls_are_refused(url: str) -> None:
    with pytest.raises(GitConfigError):
        url_protocol(url)


def test_remote_validation() -> None:
    with pytest.raises(GitConfigError, match="credentials must not be put in the URL") as info:
        Remote(f"https://bot:{PASSWORD}@h/r.git")
    assert PASSWORD not in str(info.value)
    with pytest.raises(GitConfigError, match="needs an http"):
        Remote("git@h:r.git", HTTPAuth("u", PASSWORD))
    with pytest.raises(GitConfigError, match="needs an ssh URL"):
        Remote("https://h/r.git", SSH)
    with pytest.raises(GitConfigError, match="needs SSH auth"):
        Remote("ssh://git@h/r.git")
    assert PASSWORD not in repr(HTTPAuth("u", PASSWORD))
    Remote("https://bot@h/r.git", HTTPAuth("bot", PASSWORD))  # a username alone is fine


def test_ssh_command_quotes_paths() -> None:
    auth = SSHAuth(Path("/keys/my key's/id"), Path("/etc/known hosts; rm -rf ~"))
    argv = shlex.split(ssh_command(GitSettings(ssh_connect_timeout_s=7), auth))
    assert argv[:5] == ["ssh", "-F", "/dev/null", "-i", "/keys/my key's/id"]
    assert "UserKnownHostsFile=/etc/known hosts; rm -rf ~" in argv
    for option in ("StrictHostKeyChecking=yes", "BatchMode=yes", "IdentitiesOnly=yes", "ConnectTimeout=7"):
        assert option in argv


def test_build_env_is_clean(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GIT_DIR", "/elsewhere")
    monkeypatch.setenv("GIT_SSH_COMMAND", "evil")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy:3128")
    env = build_env(
        GitSettings(), tmp_path, Remote("https://h/r.git", HTTPAuth("bot", PASSWORD)), tmp_path / "ap"
    )
    assert "GIT_DIR" not in env and "GIT_SSH_COMMAND" not in env
    assert env["HTTPS_PROXY"] == "http://proxy:3128"
    assert env["HOME"] == str(tmp_path)
    assert env["GIT_CONFIG_NOSYSTEM"] == "1" and env["GIT_CONFIG_GLOBAL"] == "/dev/null"
    assert env["GIT_TERMINAL_PROMPT"] == "0" and env["LC_ALL"] == "C"
    assert env["GIT_ALLOW_PROTOCOL"] == "file:http:https:ssh"
    assert env["GIT_ASKPASS"] == str(tmp_path / "ap")
    assert [k for k, v in env.items() if v == PASSWORD] == ["GITOPS_HELM_GIT_PASSWORD"]
    ssh_env = build_env(GitSettings(), tmp_path, Remote("ssh://git@h/r.git", SSH), None)
    assert "StrictHostKeyChecking=yes" in ssh_env["GIT_SSH_COMMAND"]
    assert "GIT_ASKPASS" not in ssh_env


class _Recorder:
    """Stands in for ``git.Git.execute``: records the call, returns a canned result."""

    def __init__(self, status: int = 0, stderr: bytes = b"") -> None:
        self.status = status
        self.stderr = stderr
        self.calls: list[dict[str, Any]] = []

    def install(self, monkeypatch: pytest.MonkeyPatch) -> _Recorder:
        def execute(_git: git.Git, command: list[str], **kwargs: Any) -> tuple[int, bytes, bytes]:
            return self(command, **kwargs)

        monkeypatch.setattr(git.Git, "execute", execute)
        return self

    def __call__(self, command: list[str], **kwargs: Any) -> tuple[int, bytes, bytes]:
        env = kwargs["env"]
        askpass = env.get("GIT_ASKPASS")
        script = Path(askpass) if askpass else None
        self.calls.append(
            {
                "argv": command,
                "env": env,
                "askpass_mode": script.stat().st_mode & 0o777 if script else None,
                "askpass_dir_mode": script.parent.stat().st_mode & 0o777 if script else None,
                "timeout": kwargs["kill_after_timeout"],
            }
        )
        return self.status, b"out", self.stderr


def test_runner_keeps_the_secret_out_of_argv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    recorder = _Recorder().install(monkeypatch)
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    remote = Remote("https://h/r.git", HTTPAuth("bot", PASSWORD))
    result = GitRunner(GitSettings(timeout_s=9)).run(
        ["fetch", "--", remote.url], operation="fetch", url=remote.url, cwd=tmp_path, remote=remote
    )
    assert result.stdout == b"out"
    call = recorder.calls[0]
    assert PASSWORD not in " ".join(call["argv"])
    assert call["timeout"] == 9
    assert call["askpass_mode"] == 0o700 and call["askpass_dir_mode"] == 0o700
    assert not Path(call["env"]["GIT_ASKPASS"]).exists(), "the askpass script is removed after the call"
    argv = call["argv"]
    assert argv[0] == "env"
    assert argv[argv.index("GIT_CONFIG_COUNT") - 1] == "-u"
    git_at = argv.index("git")
    assert argv[git_at + 1 : git_at + 3] == ["-c", "credential.helper="]


def test_runner_classifies_and_scrubs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    stderr = f"fatal: Authentication failed for 'https://bot:{PASSWORD}@h/r.git/'".encode()
    _Recorder(status=128, stderr=stderr).install(monkeypatch)
    remote = Remote("https://h/r.git", HTTPAuth("bot", PASSWORD))
    with pytest.raises(GitAuthError) as info:
        GitRunner().run(["fetch"], operation="fetch", url=remote.url, cwd=tmp_path, remote=remote)
    assert PASSWORD not in str(info.value)
    assert "bot:" not in str(info.value)
    assert "https://h/r.git" in str(info.value)


def test_runner_reports_a_timeout(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    stderr = b'Timeout: the command "git fetch" did not complete in 2 secs.'
    _Recorder(status=-9, stderr=stderr).install(monkeypatch)
    with pytest.raises(GitTimeoutError, match="no answer within 2s"):
        GitRunner(GitSettings(timeout_s=2)).run(["fetch"], operation="fetch", url="https://h/r", cwd=tmp_path)


def test_runner_accepts_listed_statuses(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _Recorder(status=1).install(monkeypatch)
    result = GitRunner().run(["diff", "--quiet"], operation="diff", url="/r", cwd=tmp_path, ok=(0, 1))
    assert result.status == 1


NAMES = GitSettingNames(
    url="--git-url",
    credentials="--git-user and --git-password-file",
    ssh_key="--git-ssh-key",
    known_hosts="--git-known-hosts",
    ref="--git-branch",
    timeout="--git-timeout",
)


@pytest.mark.parametrize(
    ("cls", "url", "auth", "expected"),
    [
        (GitAuthError, "https://h/r.git", None, "none were given: set --git-user and --git-password-file"),
        (
            GitAuthError,
            "https://h/r.git",
            HTTPAuth("bot", PASSWORD),
            "refused the user name and password (or token): check --git-user and --git-password-file",
        ),
        (GitAuthError, "ssh://git@h:2222/r.git", SSH, "refused the SSH key: check that --git-ssh-key"),
        (GitAuthError, "git@h:r.git", SSH, "refused the SSH key: check that --git-ssh-key"),
        (
            GitHostKeyError,
            "ssh://git@h:2222/r.git",
            SSH,
            "--git-known-hosts holds no matching key for h:2222: get it with 'ssh-keyscan -p 2222 h'",
        ),
        (GitHostKeyError, "git@h:r.git", SSH, "no matching key for h:22: get it with 'ssh-keyscan h'"),
        (GitHostNotFoundError, "https://no-such.invalid/r.git", None, "'no-such.invalid' does not resolve"),
        (
            GitConnectionRefusedError,
            "http://127.0.0.1:9/r.git",
            None,
            "on 127.0.0.1:9: check the host and port in --git-url",
        ),
        (GitConnectionRefusedError, "https://h/r.git", None, "on h:443"),
        (GitTimeoutError, "ssh://git@h/r.git", SSH, "h:22 did not answer in time"),
        (GitTimeoutError, "ssh://git@h/r.git", SSH, "raise --git-timeout"),
        (GitRepositoryNotFound, "https://h/r.git", None, "check the repository path in --git-url"),
        (GitRefNotFound, "https://h/r.git", None, "set --git-branch to an existing branch"),
    ],
)
def test_each_error_class_says_what_to_do_next(
    cls: type[GitError], url: str, auth: HTTPAuth | SSHAuth | None, expected: str
) -> None:
    err = cls("fetch", url, "what git said", remote=Remote(url, auth, NAMES))
    assert expected in err.hint
    message = str(err)
    # the advice comes before git's own words: a message cut to a length bound keeps it
    assert message.index(err.hint) < message.index("what git said")
    assert PASSWORD not in message


def test_errors_without_a_remote_give_advice_in_general_words() -> None:
    err = GitRefNotFound("resolve", "https://h/r.git", "no branch")
    assert "set the branch or ref to an existing branch" in str(err)
    assert GitCommandFailed("fetch", "https://h/r.git", "x").hint == ""


def test_a_hint_about_a_url_without_host_shows_no_userinfo_and_a_malformed_url_makes_an_error() -> None:
    from gitops_helm.adapters.git import GitHostKeyError, GitUnreachableError

    leaky = str(GitUnreachableError("fetch", "https://user:s3cret@/x", "d"))
    assert "s3cret" not in leaky and "user" not in leaky, leaky
    malformed = GitHostKeyError("fetch", "ssh://git@[::1/x", "d")  # was ValueError: Invalid IPv6 URL
    assert "known_hosts" in str(malformed)
    from gitops_helm.adapters.git import GitConfigError, Remote

    with pytest.raises(GitConfigError, match="not a usable URL"):
        Remote("https://[::1/x")  # a HelmRelease's chart.git: was a ValueError its caller did not expect
