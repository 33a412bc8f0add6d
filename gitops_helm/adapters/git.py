"""Every git command of the product, through GitPython, with a clean environment and a timeout.

Place in the data flow: ``gitops_helm.source`` (the sync source) and, later, ``charts`` (Git chart
sources) and ``images`` (commit/push) call this module; nothing else in the package runs git.
It keeps a *mirror* of a remote repository in a directory (:class:`Mirror`), resolves refs to
commits, exports the tree of a commit into a directory, tells whether anything under some paths
changed between two commits, and describes a commit. Errors are classified here, once, into
:class:`GitError` subclasses that say whether a retry can help (:class:`TemporaryGitError`) or
not (:class:`PermanentGitError`); callers never look at git's own words.

How each command runs (:class:`GitRunner`):

- argv lists only, run by ``git.Git.execute`` with ``kill_after_timeout`` = ``GitSettings.timeout_s``.
- A clean environment. GitPython merges ``os.environ`` into every call, so the argv starts with
  ``env -u NAME ...`` for each inherited variable that is not in ``GitSettings.inherit_env`` (only
  *names* go into the argv). Then: ``GIT_CONFIG_NOSYSTEM=1``, ``GIT_CONFIG_GLOBAL=/dev/null``,
  ``HOME``/``XDG_CONFIG_HOME`` in a private empty temporary directory (no ``~/.gitconfig``, no
  ``~/.netrc``), ``GIT_TERMINAL_PROMPT=0``, ``LC_ALL=C``, ``GIT_ALLOW_PROTOCOL`` from the settings,
  and ``-c credential.helper= -c core.hooksPath=/dev/null`` on the command line.
- SSH (:class:`SSHAuth`): ``GIT_SSH_COMMAND`` is ``ssh -F /dev/null -i KEY -o
  UserKnownHostsFile=KNOWN_HOSTS -o StrictHostKeyChecking=yes -o BatchMode=yes -o
  IdentitiesOnly=yes ...`` with every path shell-quoted (git runs it through ``sh``).
- HTTP(S) (:class:`HTTPAuth`): ``GIT_ASKPASS`` names a 0700 script in the private temporary
  directory that prints the username or the password from two environment variables. The
  secret is never in a URL, an argv, a log line, an error message or the mirror's config; a URL
  that carries a password is refused.

The mirror holds ``refs/heads/*`` and ``refs/tags/*`` of the remote, force-updated and pruned on
every :meth:`Mirror.ensure_mirror` (so a force-pushed branch is followed). It is created with
``git init --bare`` + that same fetch rather than ``git clone --mirror``, which would also copy
``refs/pull/*`` / ``refs/merge-requests/*`` of hosting services; the URL is given on each fetch
and never stored. ``info/attributes`` in the mirror switches off ``export-ignore``,
``export-subst`` and end-of-line conversion, so an export holds exactly the committed bytes.

Writing back (image automation, :class:`CommitRepository`): a local bare repository per remote,
branch heads fetched on demand (``ls-remote`` first, so an unchanged head costs one round trip),
commits built with plumbing from the head's tree and the new file bytes (no checkout, no
filters, no hooks), signed with an SSH key (``gpg.format=ssh``) when one is given, and pushed as a
fast-forward only. A push refused because the branch moved is :class:`GitPushRejected`
(read from ``git push --porcelain``), one the remote declined is :class:`GitPushDeclined`;
credentials and error classification are the same as the mirror's.
"""

from __future__ import annotations

import io
import os
import re
import shlex
import shutil
import stat
import tarfile
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import IO, ClassVar, cast
from urllib.parse import urlsplit, urlunsplit

import git

from gitops_helm import log as logging
from gitops_helm.errors import GitopsHelmError

__all__ = [
    "Auth",
    "CommitInfo",
    "CommitRepository",
    "Export",
    "GitAuthError",
    "GitCommandFailed",
    "GitConfigError",
    "GitConnectionRefusedError",
    "GitError",
    "GitExportError",
    "GitHostKeyError",
    "GitHostNotFoundError",
    "GitIdentity",
    "GitPathNotFound",
    "GitPushDeclined",
    "GitPushRejected",
    "GitRefNotFound",
    "GitRepositoryNotFound",
    "GitResult",
    "GitRunner",
    "GitSettingNames",
    "GitSettings",
    "GitSigningError",
    "GitTLSError",
    "GitTimeoutError",
    "GitUnreachableError",
    "HTTPAuth",
    "Mirror",
    "PermanentGitError",
    "Remote",
    "SSHAuth",
    "TemporaryGitError",
    "TreeEntry",
    "build_env",
    "check_branch_name",
    "classify_failure",
    "redact_url",
    "ssh_command",
    "url_protocol",
    "validate_remote",
]

log = logging.get(__name__)

_ASKPASS_USER_VAR = "GITOPS_HELM_GIT_USERNAME"
_ASKPASS_PASSWORD_VAR = "GITOPS_HELM_GIT_PASSWORD"  # noqa: S105 - a variable name
_ASKPASS_SCRIPT = f"""#!/bin/sh
case "$1" in
  [Uu]sername*) printf '%s\\n' "${_ASKPASS_USER_VAR}" ;;
  *) printf '%s\\n' "${_ASKPASS_PASSWORD_VAR}" ;;
esac
"""
_MIRROR_ATTRIBUTES = "* -export-ignore -export-subst -text -eol -ident -filter -working-tree-encoding\n"
_MIRROR_REFSPECS = ("+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*")
_SHA_RE = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
_ABBREV_SHA_RE = re.compile(r"^[0-9a-fA-F]{4,64}$")
_SCP_RE = re.compile(r"^(?:(?P<user>[^@/:\s]+)@)?(?P<host>[^@/:\s]+):(?P<path>(?!//).*)$")
_URL_USERINFO_RE = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s']*@")
_TRANSPORT_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*::")
_BAD_REF_CHARS = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")


@dataclass(frozen=True)
class GitSettings:
    """How git is run. Times in seconds."""

    timeout_s: float = 60.0
    """Upper bound of every git command (a fetch included); the process is killed after it."""
    ssh_connect_timeout_s: int = 15
    """``ssh -o ConnectTimeout``: an unreachable SSH host fails fast instead of using the whole timeout."""
    git_executable: str = "git"
    ssh_executable: str = "ssh"
    env_executable: str = "env"
    allowed_protocols: tuple[str, ...] = ("file", "http", "https", "ssh")
    """``GIT_ALLOW_PROTOCOL``: transports git may use (no ``ext::``, no ``git://`` by default)."""
    inherit_env: tuple[str, ...] = (
        "PATH",
        "TMPDIR",
        "TZ",
        "http_proxy",
        "https_proxy",
        "no_proxy",
        "all_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "ALL_PROXY",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "GIT_SSL_CAINFO",
        "GIT_SSL_CAPATH",
    )
    """The only variables of the agent's own environment that git sees."""
    follow_redirects: bool = True
    """``http.followRedirects``: True is git's default (``initial``: the first request of a fetch
    may be redirected anywhere); False for a URL whose address was checked before git ran
    (``chart.git`` under a destinations policy), so a redirect cannot take git past the check."""


# --- errors -------------------------------------------------------------------------------------


class GitError(GitopsHelmError):
    """A git operation failed. ``str(err)`` names the operation and the URL (without userinfo),
    the cause, what to do next (:attr:`hint`, from the class and the remote's
    :class:`GitSettingNames`) and last git's own words (``detail``), so a message cut to a length
    bound loses git's words before the advice.

    ``temporary`` says whether retrying later can help (network, timeout, server errors) or not
    until something changes (credentials, URL, branch name, host key).
    """

    temporary: bool = True
    reason: ClassVar[str] = "git failed"

    def __init__(self, operation: str, url: str, detail: str = "", *, remote: Remote | None = None) -> None:
        self.operation = operation
        self.url = _redacted(url)
        self.detail = detail
        self.hint = self.advice(_HintContext.of(url, remote))
        message = f"git {operation} of {self.url} failed: {self.reason}"
        if self.hint:
            message += f"; {self.hint}"
        super().__init__(f"{message} ({detail})" if detail else message)

    def advice(self, where: _HintContext) -> str:
        """What the user can do about this failure ('' when nothing specific)."""
        del where
        return ""


class TemporaryGitError(GitError):
    """Retry with backoff: the same call may succeed later."""

    temporary = True


class PermanentGitError(GitError):
    """Surface it and wait for a change of configuration or of the remote; retrying will not help."""

    temporary = False


class GitUnreachableError(TemporaryGitError):
    reason = "remote unreachable (network error, connection refused, server error or early EOF)"

    def advice(self, where: _HintContext) -> str:
        return (
            f"check that the agent can reach {where.address} (network, proxy, firewall); retried with backoff"
        )


class GitHostNotFoundError(GitUnreachableError):
    """The remote's host name does not resolve (DNS). Temporary: a DNS outage ends too."""

    reason = "remote unreachable: host not found (DNS)"

    def advice(self, where: _HintContext) -> str:
        return f"the host name {where.host!r} does not resolve: check the host in {where.names.url}"


class GitConnectionRefusedError(GitUnreachableError):
    reason = "remote unreachable: connection refused"

    def advice(self, where: _HintContext) -> str:
        return (
            f"nothing accepts connections on {where.address}: check the host and port in "
            f"{where.names.url} and that the Git server is running"
        )


class GitTimeoutError(TemporaryGitError):
    reason = "timed out"

    def advice(self, where: _HintContext) -> str:
        return (
            f"{where.address} did not answer in time: check the network path to it (proxy, "
            f"firewall), or raise {where.names.timeout} for a slow server"
        )


class GitCommandFailed(TemporaryGitError):
    """git failed in a way the classification table does not know; retried like a network error."""

    reason = "git command failed"


class GitExportError(TemporaryGitError):
    reason = "could not write the export"


class GitAuthError(PermanentGitError):
    reason = "authentication failed"

    def advice(self, where: _HintContext) -> str:
        names = where.names
        if where.protocol == "ssh":
            return (
                f"the server refused the SSH key: check that {names.ssh_key} is a private key "
                "(unencrypted, mode 0600) whose public key the Git host accepts for this "
                "repository (e.g. a deploy key with read access)"
            )
        if where.has_password:
            return f"the server refused the user name and password (or token): check {names.credentials}"
        return f"the server asks for credentials and none were given: set {names.credentials}"


class GitHostKeyError(PermanentGitError):
    reason = "SSH host key verification failed (host missing from known_hosts or key changed)"

    def advice(self, where: _HintContext) -> str:
        port = f"-p {where.port} " if where.port not in (None, 22) else ""
        return (
            f"{where.names.known_hosts} holds no matching key for {where.address}: get it with "
            f"'ssh-keyscan {port}{where.host}', compare its fingerprint with the one the Git host "
            "publishes, and add the line to that file (a key that changed: find out why first)"
        )


class GitTLSError(PermanentGitError):
    reason = "TLS certificate verification failed (the server's certificate is not trusted)"

    def advice(self, where: _HintContext) -> str:
        return (
            f"give the agent's git the CA that signed the certificate of {where.address} with "
            "GIT_SSL_CAINFO or SSL_CERT_FILE in its environment"
        )


class GitRepositoryNotFound(PermanentGitError):
    reason = "repository not found"

    def advice(self, where: _HintContext) -> str:
        return (
            f"check the repository path in {where.names.url}; some servers (GitHub, GitLab) also "
            "say 'not found' when the credentials may not read a private repository"
        )


class GitRefNotFound(PermanentGitError):
    reason = "ref not found"

    def advice(self, where: _HintContext) -> str:
        return f"set {where.names.ref} to an existing branch, tag or commit"


class GitPathNotFound(PermanentGitError):
    reason = "path not found in the commit"


class GitConfigError(PermanentGitError):
    reason = "invalid configuration"


# Checked in order, on git's stderr in lower case: permanent causes first, because git often adds
# generic lines ("the remote end hung up unexpectedly") after the real cause.
_CLASSIFICATION: tuple[tuple[re.Pattern[str], type[GitError]], ...] = tuple(
    (re.compile(pattern), cls)
    for pattern, cls in (
        (r"host key verification failed|remote host identification has changed", GitHostKeyError),
        (r"no \S+ host key is known", GitHostKeyError),
        (r"authentication failed|permission denied|could not read (username|password)", GitAuthError),
        (r"terminal prompts disabled|invalid username or password|returned error: 40[13]\b", GitAuthError),
        (r"\bhttp (basic: )?access denied|load key .*: (bad permissions|invalid format)", GitAuthError),
        # gnutls ("server certificate verification failed") and openssl ("SSL certificate
        # problem: ..."): before the generic "ssl" of an unreachable remote below
        (r"certificate verification failed|ssl certificate problem|certificate verify failed", GitTLSError),
        (r"repository .*not found|does not appear to be a git repository", GitRepositoryNotFound),
        (r"returned error: 404\b|project .* could not be found|no such repository", GitRepositoryNotFound),
        (r"timed out|timeout", GitTimeoutError),
        (
            r"could not resolve (host|hostname)\b|temporary failure in name resolution"
            r"|name or service not known|no address associated with hostname",
            GitHostNotFoundError,
        ),
        (r"connection refused|couldn't connect to server", GitConnectionRefusedError),
        (r"failed to connect|network is unreachable|no route to host|connection reset", GitUnreachableError),
        (r"early eof|remote end hung up|rpc failed|returned error: (5\d\d|429)\b", GitUnreachableError),
        (r"connection closed by|broken pipe|unexpected disconnect|gnutls|ssl", GitUnreachableError),
    )
)


def classify_failure(stderr: str) -> type[GitError]:
    """The error class for git's stderr of a failed command (unknown => :class:`GitCommandFailed`)."""
    text = stderr.lower()
    for pattern, cls in _CLASSIFICATION:
        if pattern.search(text):
            return cls
    return GitCommandFailed


# --- URLs and auth ------------------------------------------------------------------------------


@dataclass(frozen=True)
class HTTPAuth:
    """Username and password (or token) for an ``http(s)://`` remote, given to git via askpass."""

    username: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class SSHAuth:
    """Private key and known_hosts file for an SSH remote (``ssh://`` or ``user@host:path``)."""

    private_key: Path
    known_hosts: Path


Auth = HTTPAuth | SSHAuth | None


@dataclass(frozen=True)
class GitSettingNames:
    """Where the user sets what a remote's errors are about, named in their hints: the agent's
    flags for the sync source, HelmRelease fields for a Git chart source. The defaults say it
    in general words."""

    url: str = "the repository URL"
    credentials: str = "the HTTPS user name and password"
    ssh_key: str = "the SSH private key"
    known_hosts: str = "the known_hosts file"
    ref: str = "the branch or ref"
    timeout: str = "the git timeout"


@dataclass(frozen=True)
class Remote:
    """Where a repository lives, how to authenticate to it, and where the user configures both
    (``names``, for the hints of its errors)."""

    url: str
    auth: Auth = None
    names: GitSettingNames = field(default_factory=GitSettingNames, compare=False)

    def __post_init__(self) -> None:
        validate_remote(self)

    @property
    def display_url(self) -> str:
        return redact_url(self.url)

    def secrets(self) -> tuple[str, ...]:
        return (self.auth.password,) if isinstance(self.auth, HTTPAuth) and self.auth.password else ()


@dataclass(frozen=True)
class _HintContext:
    """What an error's hint may name: the remote's host and port, protocol, whether a password
    was given (never the password), and the user's names of the settings."""

    host: str
    port: int | None
    protocol: str
    has_password: bool
    names: GitSettingNames

    @property
    def address(self) -> str:
        if self.port is None:
            return self.host
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @classmethod
    def of(cls, url: str, remote: Remote | None) -> _HintContext:
        names = remote.names if remote is not None else GitSettingNames()
        has_password = remote is not None and bool(remote.secrets())
        host, port, protocol = "", None, "file"
        if "://" in url:
            try:  # an error about a malformed URL (e.g. "https://[::1/x") must still be made
                parts = urlsplit(url)
                protocol = parts.scheme.lower()
                host = parts.hostname or ""
                port = parts.port or _DEFAULT_PORTS.get(protocol)
            except ValueError:
                port = None
        elif not url.startswith("/") and (scp := _SCP_RE.match(url)):
            protocol, host, port = "ssh", scp["host"], 22
        # no host found: the URL itself names the place, never with its userinfo
        return cls(host or _redacted(url), port, protocol, has_password, names)


def _redacted(url: str) -> str:
    try:
        return redact_url(url)
    except ValueError:
        return "the repository URL"


_DEFAULT_PORTS = {"http": 80, "https": 443, "ssh": 22}


def redact_url(url: str) -> str:
    """``url`` without userinfo (``https://user:pw@host/x`` => ``https://host/x``)."""
    if "://" in url:
        parts = urlsplit(url)
        host = parts.netloc.rpartition("@")[2]
        return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    scp = _SCP_RE.match(url)
    if scp and not url.startswith("/"):
        return f"{scp['host']}:{scp['path']}"
    return url


def url_protocol(url: str) -> str:
    """``ssh``, ``http``, ``https`` or ``file`` (an absolute path is ``file``); else GitConfigError."""
    if not url or url.startswith("-") or any(ord(c) < 0x20 or c == "\x7f" for c in url):
        raise GitConfigError("check", url, "not a usable URL")
    if _TRANSPORT_RE.match(url):
        raise GitConfigError("check", url, "git remote helpers (<transport>::<address>) are not supported")
    if "://" in url:
        scheme = url.partition("://")[0].lower()
        if scheme in ("ssh", "http", "https", "file"):
            return scheme
        raise GitConfigError("check", url, f"unsupported URL scheme {scheme!r}")
    if url.startswith("/"):
        return "file"
    if _SCP_RE.match(url):
        return "ssh"
    raise GitConfigError(
        "check", url, "expected ssh://, https://, http://, file://, user@host:path or an absolute path"
    )


def validate_remote(remote: Remote) -> None:
    """Refuse URLs with a password, and auth that does not fit the URL's protocol."""
    protocol = url_protocol(remote.url)
    try:
        password = urlsplit(remote.url).password if "://" in remote.url else None
    except ValueError:  # e.g. "https://[::1/x": an unclosed IPv6 address
        raise GitConfigError("check", remote.url, "not a usable URL") from None
    if password is not None:
        raise GitConfigError("check", remote.url, "credentials must not be put in the URL; use HTTP auth")
    if isinstance(remote.auth, HTTPAuth) and protocol not in ("http", "https"):
        raise GitConfigError("check", remote.url, "username/password auth needs an http(s) URL")
    if isinstance(remote.auth, SSHAuth) and protocol != "ssh":
        raise GitConfigError("check", remote.url, "SSH key auth needs an ssh URL")
    if protocol == "ssh" and not isinstance(remote.auth, SSHAuth):
        raise GitConfigError("check", remote.url, "an ssh URL needs SSH auth (private key and known_hosts)")


def ssh_command(settings: GitSettings, auth: SSHAuth) -> str:
    """The ``GIT_SSH_COMMAND`` value (git runs it with ``sh -c``; every value is quoted)."""
    argv = [
        settings.ssh_executable,
        "-F",
        "/dev/null",
        "-i",
        str(auth.private_key),
        "-o",
        f"UserKnownHostsFile={auth.known_hosts}",
        "-o",
        "GlobalKnownHostsFile=/dev/null",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        f"ConnectTimeout={settings.ssh_connect_timeout_s}",
    ]
    return shlex.join(argv)


def build_env(
    settings: GitSettings, home: Path, remote: Remote | None, askpass: Path | None
) -> dict[str, str]:
    """The whole environment of one git call (secrets only as askpass variables)."""
    env = {name: os.environ[name] for name in settings.inherit_env if name in os.environ}
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home),
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL="/dev/null",
        GIT_TERMINAL_PROMPT="0",
        GIT_ALLOW_PROTOCOL=":".join(settings.allowed_protocols),
        LC_ALL="C",
        LANGUAGE="C",
    )
    if remote is not None and isinstance(remote.auth, SSHAuth):
        env["GIT_SSH_COMMAND"] = ssh_command(settings, remote.auth)
    if remote is not None and isinstance(remote.auth, HTTPAuth) and askpass is not None:
        env["GIT_ASKPASS"] = str(askpass)
        env[_ASKPASS_USER_VAR] = remote.auth.username
        env[_ASKPASS_PASSWORD_VAR] = remote.auth.password
    return env


def _scrub(text: str, secrets: Sequence[str]) -> str:
    text = _URL_USERINFO_RE.sub(r"\1", text)
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def _excerpt(stderr: str, limit: int = 400) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip() and not line.startswith("hint:")]
    text = "; ".join(lines)
    return text if len(text) <= limit else "..." + text[-limit:]


# --- running git --------------------------------------------------------------------------------


@dataclass(frozen=True)
class GitResult:
    """Exit status and output of a git command that ended with an accepted status."""

    status: int
    stdout: bytes
    stderr: str


class GitRunner:
    """Runs one git command at a time as described in the module docstring."""

    def __init__(self, settings: GitSettings | None = None) -> None:
        self.settings = settings or GitSettings()

    def run(
        self,
        args: Sequence[str],
        *,
        operation: str,
        url: str,
        cwd: Path,
        remote: Remote | None = None,
        output: IO[bytes] | None = None,
        ok: tuple[int, ...] = (0,),
    ) -> GitResult:
        """Run ``git ARGS``; a status outside ``ok`` raises the classified :class:`GitError`.

        ``remote`` adds its credentials (network commands only); ``url`` names the repository in
        errors; ``output`` receives stdout instead of memory (large archives).
        """
        with tempfile.TemporaryDirectory(prefix="gitops-helm-git-") as tmp:
            home = Path(tmp)
            askpass = None
            if remote is not None and isinstance(remote.auth, HTTPAuth):
                askpass = home / "askpass"
                fd = os.open(askpass, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IRWXU)
                with os.fdopen(fd, "w") as script:
                    script.write(_ASKPASS_SCRIPT)
            env = build_env(self.settings, home, remote, askpass)
            unset = sorted(name for name in os.environ if name not in env)
            argv = [self.settings.env_executable]
            for name in unset:
                argv += ["-u", name]
            argv += [
                self.settings.git_executable,
                "-c",
                "credential.helper=",
                "-c",
                "core.hooksPath=/dev/null",
                "-c",
                "gc.autoDetach=false",
                "-c",
                "maintenance.autoDetach=false",
                *([] if self.settings.follow_redirects else ["-c", "http.followRedirects=false"]),
                *args,
            ]
            started = time.monotonic()
            try:
                raw = git.Git(str(cwd)).execute(
                    argv,
                    with_extended_output=True,
                    with_exceptions=False,
                    stdout_as_string=False,
                    kill_after_timeout=self.settings.timeout_s,
                    env=env,
                    output_stream=output,
                )
            except git.GitCommandNotFound as err:
                raise GitCommandFailed(operation, url, f"cannot run git: {err.__class__.__name__}") from None
            elapsed = time.monotonic() - started
        status, stdout, stderr = cast(tuple[int, bytes | None, bytes | str | None], raw)
        err_text = stderr.decode("utf-8", "replace") if isinstance(stderr, bytes) else (stderr or "")
        out_bytes = stdout if isinstance(stdout, bytes) else b""
        log.debug("git", operation=operation, url=redact_url(url), status=status, seconds=round(elapsed, 2))
        if status in ok:
            return GitResult(status, out_bytes, err_text)
        secrets = remote.secrets() if remote is not None else ()
        detail = _scrub(_excerpt(err_text), secrets)
        if elapsed >= self.settings.timeout_s or err_text.startswith("Timeout: the command"):
            raise GitTimeoutError(
                operation, url, f"no answer within {self.settings.timeout_s:g}s", remote=remote
            )
        raise classify_failure(err_text)(operation, url, detail, remote=remote)


# --- the mirror ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CommitInfo:
    sha: str
    author_name: str
    author_email: str
    authored_at: datetime
    committed_at: datetime
    subject: str
    """The first line of the message."""


@dataclass(frozen=True)
class Export:
    """A commit's tree written to ``path``; ``skipped`` lists entries refused as unsafe (links
    pointing outside the export, special files), which are not written."""

    sha: str
    path: Path
    skipped: tuple[str, ...] = ()


def _clean_subpath(subpath: str) -> str:
    parts = [p for p in PurePosixPath(subpath).parts if p not in ("", ".")]
    if subpath.startswith("/") or ".." in parts:
        raise ValueError(f"path {subpath!r} must be relative and stay inside the repository")
    return "/".join(parts)


def _check_sha(sha: str) -> str:
    if not _SHA_RE.match(sha):
        raise ValueError(f"expected a full commit id, got {sha!r}")
    return sha


class Mirror:
    """A bare mirror of ``remote`` in ``path``; its methods are serialised by a lock.

    The directory is created by the first :meth:`ensure_mirror`; reads (:meth:`resolve`,
    :meth:`export`, ...) see the refs of the last successful fetch.
    """

    def __init__(self, path: Path, remote: Remote, settings: GitSettings | None = None) -> None:
        self.path = path
        self.remote = remote
        self.runner = GitRunner(settings)
        self._lock = threading.RLock()

    # -- network

    def ensure_mirror(self) -> None:
        """Create the mirror if needed, then fetch: heads and tags, forced and pruned."""
        with self._lock:
            if not self._valid():
                self._create()
                return
            self._fetch(self.path, "fetch")

    def _valid(self) -> bool:
        return (self.path / "HEAD").is_file() and (self.path / "objects").is_dir()

    def _create(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            shutil.rmtree(self.path)
        tmp = Path(tempfile.mkdtemp(prefix=f".{self.path.name}-", dir=self.path.parent))
        try:
            init = ["-c", "init.defaultBranch=main", "init", "--bare", "--quiet", str(tmp)]
            self.runner.run(init, operation="init", url=self.remote.url, cwd=tmp.parent)
            (tmp / "info").mkdir(exist_ok=True)
            (tmp / "info" / "attributes").write_text(_MIRROR_ATTRIBUTES)
            self._fetch(tmp, "clone")
            tmp.rename(self.path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def _fetch(self, repo: Path, operation: str) -> None:
        args = [f"--git-dir={repo}", "fetch", "--quiet", "--prune", "--force", "--no-write-fetch-head"]
        self.runner.run(
            [*args, "--", self.remote.url, *_MIRROR_REFSPECS],
            operation=operation,
            url=self.remote.url,
            cwd=repo.parent,
            remote=self.remote,
        )

    # -- local reads

    def _git(
        self,
        args: Sequence[str],
        operation: str,
        *,
        ok: tuple[int, ...] = (0,),
        output: IO[bytes] | None = None,
    ) -> GitResult:
        """A local command on the mirror (``--git-dir`` is absolute: never the process's cwd)."""
        if not self._valid():
            raise GitCommandFailed(operation, self.remote.url, "the mirror has not been fetched yet")
        return self.runner.run(
            [f"--git-dir={self.path.resolve()}", *args],
            operation=operation,
            url=self.remote.url,
            cwd=self.path,
            ok=ok,
            output=output,
        )

    def _rev(self, expr: str) -> str | None:
        result = self._git(["rev-parse", "--verify", "--quiet", expr], "resolve", ok=(0, 1, 128))
        return result.stdout.decode().strip() if result.status == 0 else None

    def resolve(self, ref: str) -> str:
        """The commit id of a branch, tag (``refs/...`` names too) or commit id; else GitRefNotFound."""
        with self._lock:
            if not ref or ref.startswith(("-", "/")) or ".." in ref or _BAD_REF_CHARS.search(ref):
                raise GitRefNotFound(
                    "resolve", self.remote.url, f"{ref!r} is not a valid ref name", remote=self.remote
                )
            if ref.startswith("refs/"):
                candidates = [ref]
            else:
                candidates = [f"refs/heads/{ref}", f"refs/tags/{ref}"]
                if _ABBREV_SHA_RE.match(ref):
                    candidates.append(ref.lower())
            for candidate in candidates:
                sha = self._rev(f"{candidate}^{{commit}}")
                if sha:
                    return sha
            branches = self.branches()
            known = ", ".join(branches[:10]) + (", ..." if len(branches) > 10 else "") if branches else "none"
            raise GitRefNotFound(
                "resolve",
                self.remote.url,
                f"no branch, tag or commit {ref!r}; branches: {known}",
                remote=self.remote,
            )

    def branches(self) -> list[str]:
        with self._lock:
            out = self._git(["for-each-ref", "--format=%(refname:strip=2)", "refs/heads"], "list")
            return out.stdout.decode("utf-8", "replace").split()

    def has_commit(self, sha: str) -> bool:
        with self._lock:
            return self._rev(f"{_check_sha(sha)}^{{commit}}") is not None

    def changed_between(self, old_sha: str | None, new_sha: str, paths: Sequence[str] = ()) -> bool:
        """Whether the trees of the two commits differ under ``paths`` (all of it when empty).

        A missing or unknown ``old_sha`` counts as changed. Trees are compared, not the commit
        log: a change reverted in between, or a force-push to an equal tree, is no change.
        """
        with self._lock:
            _check_sha(new_sha)
            if old_sha is None or not _SHA_RE.match(old_sha) or not self.has_commit(old_sha):
                return True
            if old_sha == new_sha:
                return False
            specs = [_clean_subpath(p) or "." for p in paths]
            args = ["--literal-pathspecs", "diff", "--quiet", "--no-ext-diff", "--no-textconv"]
            result = self._git([*args, "--no-renames", old_sha, new_sha, "--", *specs], "diff", ok=(0, 1))
            return result.status == 1

    def tree_id(self, sha: str, subpath: str = "") -> str | None:
        """The id of the tree at ``subpath`` (the root when empty) in commit ``sha``; None when
        there is no directory there. Equal ids mean equal contents, whatever the commit."""
        with self._lock:
            clean = _clean_subpath(subpath)
            expr = f"{_check_sha(sha)}:{clean}" if clean else f"{_check_sha(sha)}^{{tree}}"
            kind = self._git(["cat-file", "-t", expr], "resolve", ok=(0, 1, 128))
            if kind.status != 0 or kind.stdout.strip() != b"tree":
                return None
            return self._rev(expr)

    def read_file(self, sha: str, path: str, max_bytes: int) -> bytes | None:
        """The committed bytes of the file ``path`` in ``sha``; None when there is no such file.
        A file over ``max_bytes`` raises :class:`GitCommandFailed` (nothing unbounded in memory)."""
        with self._lock:
            expr = f"{_check_sha(sha)}:{_clean_subpath(path)}"
            kind = self._git(["cat-file", "-t", expr], "read", ok=(0, 1, 128))
            if kind.status != 0 or kind.stdout.strip() != b"blob":
                return None
            size = int(self._git(["cat-file", "-s", expr], "read").stdout.strip() or b"0")
            if size > max_bytes:
                raise GitCommandFailed("read", self.remote.url, f"{path} is larger than {max_bytes} bytes")
            content = io.BytesIO()  # streamed: captured output would lose its last newline
            self._git(["cat-file", "blob", expr], "read", output=content)
            return content.getvalue()

    def head_commit_info(self, sha: str) -> CommitInfo:
        """Author, times and first message line of a commit."""
        with self._lock:
            fmt = "--format=%H%x00%an%x00%ae%x00%at%x00%ct%x00%B"
            out = self._git(["show", "-s", "--no-show-signature", fmt, _check_sha(sha)], "show")
            fields = out.stdout.decode("utf-8", "replace").split("\x00", 5)
            if len(fields) != 6:
                raise GitCommandFailed("show", self.remote.url, f"unexpected output for {sha}")
            full, name, email, authored, committed, message = fields
            lines = message.strip().splitlines()
            return CommitInfo(
                sha=full,
                author_name=name,
                author_email=email,
                authored_at=datetime.fromtimestamp(int(authored), UTC),
                committed_at=datetime.fromtimestamp(int(committed), UTC),
                subject=lines[0] if lines else "",
            )

    def export(self, sha: str, dest: Path, subpath: str | None = None) -> Export:
        """Write the tree of commit ``sha`` (or only its ``subpath`` directory, as the root) to
        ``dest``, which must not exist. Atomic: ``dest`` appears complete or not at all.
        Nothing is ever written outside ``dest``."""
        with self._lock:
            _check_sha(sha)
            treeish = f"{sha}:{_clean_subpath(subpath)}" if subpath and _clean_subpath(subpath) else sha
            if dest.exists():
                raise FileExistsError(f"export destination {dest} exists")
            if subpath and _clean_subpath(subpath):
                kind = self._git(["cat-file", "-t", treeish], "export", ok=(0, 1, 128))
                if kind.status != 0 or kind.stdout.strip() != b"tree":
                    raise GitPathNotFound(
                        "export", self.remote.url, f"no directory {subpath!r} in {sha[:12]}"
                    )
            return Export(sha=sha, path=dest, skipped=self._publish(treeish, dest))

    def export_paths(self, sha: str, dest: Path, paths: Sequence[str]) -> Export:
        """Write only the directories ``paths`` of commit ``sha`` to ``dest`` (which must not
        exist), each at its place in the repository, so relative references between them (a
        chart's ``file://../lib`` dependency) still resolve. Atomic like :meth:`export`."""
        with self._lock:
            _check_sha(sha)
            specs = sorted({_clean_subpath(p) for p in paths})
            if not specs or "" in specs:
                return self.export(sha, dest)
            if dest.exists():
                raise FileExistsError(f"export destination {dest} exists")
            for spec in specs:
                if self.tree_id(sha, spec) is None:
                    raise GitPathNotFound("export", self.remote.url, f"no directory {spec!r} in {sha[:12]}")
            return Export(sha=sha, path=dest, skipped=self._publish(sha, dest, specs))

    def _publish(self, treeish: str, dest: Path, paths: Sequence[str] = ()) -> tuple[str, ...]:
        """Archive ``treeish`` (only ``paths``, when given) into a private temporary directory
        beside ``dest`` and rename it into place, so ``dest`` appears complete or not at all.
        Returns the skipped members."""
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
        except OSError as err:
            raise GitExportError("export", self.remote.url, f"{dest}: {err.strerror}") from None
        try:
            skipped = self._archive_into(treeish, tmp, paths)
            tmp.chmod(0o755)
            tmp.rename(dest)
        except OSError as err:
            shutil.rmtree(tmp, ignore_errors=True)
            raise GitExportError("export", self.remote.url, f"{dest}: {err.strerror or err}") from None
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return tuple(skipped)

    def _archive_into(self, treeish: str, target: Path, paths: Sequence[str] = ()) -> list[str]:
        skipped: list[str] = []

        def safe(member: tarfile.TarInfo, dest_path: str) -> tarfile.TarInfo | None:
            try:
                return tarfile.data_filter(member, dest_path)
            except tarfile.FilterError:
                skipped.append(member.name)
                return None

        with tempfile.TemporaryFile() as archive:
            pathspec = ["--", *paths] if paths else []
            args = ["--literal-pathspecs", "archive", "--format=tar", treeish, *pathspec]
            self._git(args, "export", output=archive)
            archive.seek(0)
            with tarfile.open(fileobj=archive, mode="r:") as tar:
                tar.extractall(target, filter=safe)  # noqa: S202 - the data filter is applied
        if skipped:
            log.warning(
                "export skipped unsafe entries", url=self.remote.display_url, entries=", ".join(skipped)
            )
        return skipped


# --- writing back -------------------------------------------------------------------------------


class GitPushRejected(TemporaryGitError):
    """The branch moved since it was fetched: fetch the new head, redo the change, push again."""

    reason = "push rejected: the branch moved (not a fast-forward)"


class GitPushDeclined(PermanentGitError):
    """The remote refused the push itself (a hook, a protected branch, a read-only repository)."""

    reason = "push refused by the remote"


class GitSigningError(PermanentGitError):
    reason = "could not sign the commit (check the signing key: an unencrypted SSH private key, mode 0600)"


@dataclass(frozen=True)
class GitIdentity:
    """Author and committer of the commits the agent writes."""

    name: str
    email: str

    def __post_init__(self) -> None:
        for value, what in ((self.name, "name"), (self.email, "email")):
            if not value.strip() or any(c in value for c in "<>\n\r\x00"):
                raise ValueError(f"commit author {what} {value!r} is empty or holds <, > or a line break")


@dataclass(frozen=True)
class TreeEntry:
    """A file of a commit: its mode (``100644``, ``100755``, ``120000`` link, ``160000``
    submodule) and object id."""

    mode: str
    object_id: str

    @property
    def is_regular_file(self) -> bool:
        return self.mode in ("100644", "100755")


# ``git push --porcelain``: "<flag>\t<from>:<to>\t<summary>"; "!" is a refused ref.
_PUSH_REJECTED_RE = re.compile(r"^!\t[^\t]*\t\[rejected\]", re.MULTILINE)
_PUSH_DECLINED_RE = re.compile(r"^!\t[^\t]*\t\[remote (?:rejected|failure)\] ?(?P<why>.*)$", re.MULTILINE)


def check_branch_name(branch: str) -> str:
    """``branch`` when it is a valid branch name (``git check-ref-format`` rules); else ValueError."""
    parts = branch.split("/")
    bad = (
        not branch
        or branch.startswith("-")
        or branch == "@"
        or _BAD_REF_CHARS.search(branch) is not None
        or ".." in branch
        or "@{" in branch
        or branch.endswith(".")
        or any(not part or part.startswith(".") or part.endswith(".lock") for part in parts)
    )
    if bad:
        raise ValueError(f"{branch!r} is not a valid branch name")
    return branch


class CommitRepository:
    """A local bare repository in ``path`` for writing commits on branches of ``remote``.

    No work tree is ever checked out: a commit is built from the fetched head's tree plus the
    new file contents (``read-tree``, ``hash-object --no-filters``, ``update-index --cacheinfo``,
    ``write-tree``, ``commit-tree``), so the bytes given are the bytes committed (no attributes,
    filters or line-ending conversion) and nothing in the repository (hooks, ``.gitattributes``
    drivers) runs. Branch heads are fetched into ``refs/gitops-helm/heads/*``. Pushes are plain
    (fast-forward only): a branch that moved is :class:`GitPushRejected`, never overwritten.
    Methods are serialised by a lock; every git call has the settings' deadline.
    """

    _REFS = "refs/gitops-helm/heads"

    def __init__(self, path: Path, remote: Remote, settings: GitSettings | None = None) -> None:
        self.path = path
        self.remote = remote
        self.runner = GitRunner(settings)
        self._lock = threading.RLock()

    def _ensure(self) -> None:
        if (self.path / "HEAD").is_file() and (self.path / "objects").is_dir():
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            shutil.rmtree(self.path)
        tmp = Path(tempfile.mkdtemp(prefix=f".{self.path.name}-", dir=self.path.parent))
        try:
            init = ["-c", "init.defaultBranch=main", "init", "--bare", "--quiet", str(tmp)]
            self.runner.run(init, operation="init", url=self.remote.url, cwd=tmp.parent)
            tmp.rename(self.path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def _git(
        self,
        args: Sequence[str],
        operation: str,
        *,
        ok: tuple[int, ...] = (0,),
        output: IO[bytes] | None = None,
        remote: Remote | None = None,
    ) -> GitResult:
        self._ensure()
        return self.runner.run(
            [f"--git-dir={self.path.resolve()}", *args],
            operation=operation,
            url=self.remote.url,
            cwd=self.path,
            ok=ok,
            output=output,
            remote=remote,
        )

    # -- network

    def remote_heads(self, branches: Sequence[str]) -> dict[str, str]:
        """The commit ids of those of ``branches`` that exist on the remote (one round trip)."""
        with self._lock:
            refs = [f"refs/heads/{check_branch_name(b)}" for b in branches]
            out = self._git(
                ["ls-remote", "--heads", "--", self.remote.url, *refs], "ls-remote", remote=self.remote
            )
            heads: dict[str, str] = {}
            for line in out.stdout.decode("utf-8", "replace").splitlines():
                sha, _, ref = line.partition("\t")
                if ref in refs and _SHA_RE.match(sha):
                    heads[ref.removeprefix("refs/heads/")] = sha
            return heads

    def fetch(self, heads: dict[str, str]) -> None:
        """Fetch the given branches (name -> expected commit) unless their commits are here."""
        with self._lock:
            missing = [name for name, sha in heads.items() if not self.has_commit(sha)]
            if not missing:
                return
            specs = [f"+refs/heads/{check_branch_name(b)}:{self._REFS}/{b}" for b in missing]
            args = ["fetch", "--quiet", "--no-tags", "--no-write-fetch-head", "--", self.remote.url, *specs]
            self._git(args, "fetch", remote=self.remote)

    def push(self, sha: str, branch: str) -> None:
        """Make ``branch`` on the remote point at ``sha``, only as a fast-forward (or a new branch).

        Raises :class:`GitPushRejected` when the branch moved, :class:`GitPushDeclined` when the
        remote refused it for another reason.
        """
        with self._lock:
            refspec = f"{_check_sha(sha)}:refs/heads/{check_branch_name(branch)}"
            args = ["push", "--porcelain", "--no-verify", "--", self.remote.url, refspec]
            result = self._git(args, "push", ok=(0, 1), remote=self.remote)
            if result.status == 0:
                return
            report = _scrub(result.stdout.decode("utf-8", "replace"), self.remote.secrets())
            if _PUSH_REJECTED_RE.search(report):
                raise GitPushRejected("push", self.remote.url, f"branch {branch}")
            declined = _PUSH_DECLINED_RE.search(report)
            if declined:
                raise GitPushDeclined("push", self.remote.url, f"branch {branch}: {declined['why'][:200]}")
            detail = _scrub(_excerpt(result.stderr), self.remote.secrets())
            raise classify_failure(result.stderr)("push", self.remote.url, detail, remote=self.remote)

    # -- local

    def has_commit(self, sha: str) -> bool:
        with self._lock:
            result = self._git(
                ["rev-parse", "--verify", "--quiet", f"{_check_sha(sha)}^{{commit}}"],
                "resolve",
                ok=(0, 1, 128),
            )
            return result.status == 0

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        with self._lock:
            args = ["merge-base", "--is-ancestor", _check_sha(ancestor), _check_sha(descendant)]
            return self._git(args, "merge-base", ok=(0, 1)).status == 0

    def entry(self, sha: str, path: str) -> TreeEntry | None:
        """The file ``path`` of commit ``sha``; None when there is none (a directory is none)."""
        with self._lock:
            clean = _clean_subpath(path)
            args = ["--literal-pathspecs", "ls-tree", "-z", "--full-tree", _check_sha(sha), "--", clean]
            out = self._git(args, "read").stdout.decode("utf-8", "surrogateescape")
            for record in out.split("\x00"):
                meta, _, name = record.partition("\t")
                fields = meta.split()
                if name == clean and len(fields) == 3 and fields[1] in ("blob", "commit"):
                    return TreeEntry(mode=fields[0], object_id=fields[2])
            return None

    def read_blob(self, object_id: str, max_bytes: int) -> bytes | None:
        """The bytes of a blob; None when it is larger than ``max_bytes`` (never read then)."""
        with self._lock:
            size = int(self._git(["cat-file", "-s", _check_sha(object_id)], "read").stdout.strip() or b"0")
            if size > max_bytes:
                return None
            content = io.BytesIO()
            self._git(["cat-file", "blob", object_id], "read", output=content)
            return content.getvalue()

    def commit(
        self,
        parent: str,
        files: dict[str, bytes],
        message: str,
        identity: GitIdentity,
        signing_key: Path | None = None,
    ) -> str | None:
        """A new commit on ``parent`` whose tree is the parent's with ``files`` (path -> bytes)
        replaced, each keeping its mode; None when that tree equals the parent's (nothing to
        commit: never an empty commit). Every path must be a regular file of ``parent``.
        ``signing_key`` is an SSH private key (``gpg.format=ssh``: no gpg agent needed)."""
        with self._lock:
            _check_sha(parent)
            self._git(["read-tree", parent], "commit")
            with tempfile.TemporaryDirectory(prefix="gitops-helm-commit-") as tmp:
                for path, content in sorted(files.items()):
                    entry = self.entry(parent, path)
                    if entry is None or not entry.is_regular_file:
                        raise GitPathNotFound("commit", self.remote.url, f"{path} is not a regular file")
                    blob_file = Path(tmp) / "blob"
                    blob_file.write_bytes(content)
                    blob = self._git(["hash-object", "-w", "--no-filters", str(blob_file)], "commit")
                    object_id = blob.stdout.decode().strip()
                    cacheinfo = f"{entry.mode},{object_id},{_clean_subpath(path)}"
                    self._git(["update-index", "--cacheinfo", cacheinfo], "commit")
                tree = self._git(["write-tree"], "commit").stdout.decode().strip()
                parent_tree = self._git(["rev-parse", f"{parent}^{{tree}}"], "commit").stdout.decode().strip()
                if tree == parent_tree:
                    return None
                message_file = Path(tmp) / "message"
                message_file.write_text(message, encoding="utf-8")
                config = ["-c", f"user.name={identity.name}", "-c", f"user.email={identity.email}"]
                sign: list[str] = []
                if signing_key is not None:
                    config += ["-c", "gpg.format=ssh", "-c", f"user.signingKey={signing_key.resolve()}"]
                    sign = ["-S"]
                args = [*config, "commit-tree", tree, "-p", parent, "-F", str(message_file), *sign]
                try:
                    out = self._git(args, "commit")
                except GitError as err:
                    if signing_key is None:
                        raise
                    raise GitSigningError("commit", self.remote.url, err.detail) from None
                return _check_sha(out.stdout.decode().strip())


# --- a local work tree (gitops-helm render) -------------------------------------------------------


@dataclass(frozen=True)
class WorkTree:
    """The git work tree a local directory belongs to, and the URLs of its remotes."""

    root: Path
    remote_urls: tuple[str, ...]


def same_repository_url(a: str, b: str) -> bool:
    """Whether two remote URLs name the same repository: credentials, the scheme's case, a
    trailing ``/`` or ``.git`` and the scp-like spelling of SSH (``git@host:path`` =
    ``ssh://git@host/path``) do not count."""
    return _comparable_url(a) == _comparable_url(b)


def _comparable_url(url: str) -> str:
    text = url.strip()
    scp = _SCP_RE.match(text) if "://" not in text and not text.startswith("/") else None
    if scp:
        text = f"ssh://{scp['host']}/{scp['path'].lstrip('/')}"
    if "://" in text:
        parts = urlsplit(text)
        host = (parts.hostname or "").lower()
        port = f":{parts.port}" if parts.port else ""
        text = f"{parts.scheme.lower()}://{host}{port}{parts.path}"
    text = text.rstrip("/")
    return text[: -len(".git")] if text.endswith(".git") else text


def find_work_tree(path: Path, settings: GitSettings | None = None) -> WorkTree | None:
    """The work tree holding ``path`` (a directory), or None when it is in none (or git cannot
    tell, e.g. a repository another user owns): a local question, no network."""
    runner = GitRunner(settings)
    where = str(path)
    try:
        top = runner.run(
            ["rev-parse", "--show-toplevel"], operation="rev-parse", url=where, cwd=path, ok=(0, 128)
        )
        if top.status != 0:
            return None
        root = Path(top.stdout.decode("utf-8", "replace").strip())
        remotes = runner.run(
            ["config", "--get-regexp", r"^remote\..*\.url$"],
            operation="config",
            url=where,
            cwd=root,
            ok=(0, 1),
        )
    except GitError:
        return None
    urls = tuple(
        line.split(" ", 1)[1]
        for line in remotes.stdout.decode("utf-8", "replace").splitlines()
        if " " in line
    )
    return WorkTree(root, urls)
