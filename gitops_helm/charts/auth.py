"""Helm repository credentials and URL identity.

Place in the data flow: the reconciler reads the HelmRelease's `chart.chartPullSecret` (a
Kubernetes Secret, passed here as its decoded `data`) and/or the operator-level Helm
`repositories.yaml`, builds a `RepositoryAuth`, and hands it to `helmrepo.HelmRepoClient`,
which turns it into the HTTP adapter's `Identity` for each request with `http_identity`.
Nothing here does network I/O.

Accepted Secret keys (Flux v2 `HelmRepository` conventions; other keys are ignored):

* `username` and `password`: HTTP basic auth; both or neither.
* `ca.crt` (or the older `caFile`): PEM CA bundle used to verify the repository's certificate.
* `tls.crt` + `tls.key` (or the older `certFile` + `keyFile`): PEM client certificate and key.

Credentials go only to the repository's own origin (scheme, host, port) unless
`pass_credentials` is set (Helm's `--pass-credentials` / `pass_credentials_all`). The CA bundle
is used for every request. Secret values never appear in `repr`, logs or error messages.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from gitops_helm import yamlio
from gitops_helm.adapters.http import Identity, origin, redact_url
from gitops_helm.charts.errors import AuthConfigError
from gitops_helm.charts.identity import FingerprintKey, Part

__all__ = [
    "Material",
    "RepositoriesFile",
    "RepositoryAuth",
    "RepositoryEntry",
    "SecretFiles",
    "SecretReader",
    "auth_from_secret",
    "http_identity",
    "load_repositories_file",
    "normalise_url",
    "origin",
    "redact_url",
]

Material = bytes | Path
"""PEM content, or the path of a file holding it."""

_DEFAULT_PORTS = {"http": 80, "https": 443}


class SecretReader(Protocol):
    """Where chart credentials' Secrets are read: the Kubernetes adapter (as the HelmRelease's
    identity) in the agent, the manifests of a directory in ``gitops-helm render``."""

    def get_secret_data(self, namespace: str, name: str) -> Mapping[str, bytes] | None:
        """The Secret's decoded ``data``, or None when it does not exist."""
        ...


# ---------------------------------------------------------------------------------------------
# URL identity


def _netloc(scheme: str, host: str, port: int | None) -> str:
    if ":" in host:
        host = f"[{host}]"
    return host if port is None or port == _DEFAULT_PORTS.get(scheme) else f"{host}:{port}"


def normalise_url(url: str) -> str:
    """The identity of a repository URL: lower-case scheme and host, no default port, no
    userinfo, no fragment, no trailing slash. `https://Charts.example.com:443/a/` and
    `https://charts.example.com/a` are the same repository."""
    parts = urlsplit(url.strip())
    scheme, host, port = origin(url)
    return urlunsplit((scheme, _netloc(scheme, host, port), parts.path.rstrip("/"), parts.query, ""))


# ---------------------------------------------------------------------------------------------
# credentials


@dataclass(frozen=True)
class RepositoryAuth:
    """Credentials and TLS settings for one Helm repository. Secret fields are not in `repr`."""

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca: Material | None = field(default=None, repr=False)
    cert: Material | None = field(default=None, repr=False)
    key: Material | None = field(default=None, repr=False)
    insecure_skip_tls_verify: bool = False
    pass_credentials: bool = False
    source: str = ""  # where it came from, for messages: 'Secret "ns/name"', 'repositories.yaml'

    def __post_init__(self) -> None:
        where = f" in {self.source}" if self.source else ""
        if bool(self.username) != bool(self.password):
            raise AuthConfigError(f"username and password must be given together{where}")
        if (self.cert is None) != (self.key is None):
            raise AuthConfigError(f"a client certificate and its key must be given together{where}")

    def fingerprint(self, key: FingerprintKey) -> str:
        """A keyed hash of everything that decides what the repository lets us see (see
        `charts.identity`): different credentials, a different fingerprint; no secret in it."""
        parts: list[Part] = [self.username, self.password]
        for material in (self.ca, self.cert, self.key):
            parts.append(f"path:{material}" if isinstance(material, Path) else material)
        parts += [self.insecure_skip_tls_verify, self.pass_credentials]
        return key.fingerprint(parts)


_SECRET_KEYS = {"ca": ("ca.crt", "caFile"), "cert": ("tls.crt", "certFile"), "key": ("tls.key", "keyFile")}


def auth_from_secret(data: Mapping[str, bytes], *, secret_ref: str = "") -> RepositoryAuth:
    """Build credentials from a pull Secret's decoded `data` (keys: see the module docstring)."""
    source = f'Secret "{secret_ref}"' if secret_ref else "the pull Secret"

    def text(key: str) -> str | None:
        raw = data.get(key)
        if raw is None:
            return None
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise AuthConfigError(f"key {key!r} of {source} is not UTF-8 text") from None

    materials: dict[str, bytes | None] = {
        name: next((data[k] for k in keys if data.get(k)), None) for name, keys in _SECRET_KEYS.items()
    }
    return RepositoryAuth(
        username=text("username") or None,
        password=text("password") or None,
        ca=materials["ca"],
        cert=materials["cert"],
        key=materials["key"],
        source=source,
    )


@dataclass(frozen=True)
class RepositoryEntry:
    """One entry of a Helm `repositories.yaml`."""

    name: str
    url: str
    auth: RepositoryAuth


@dataclass(frozen=True)
class RepositoriesFile:
    """A parsed Helm `repositories.yaml` (the operator-level repository configuration)."""

    path: Path
    entries: tuple[RepositoryEntry, ...]

    def auth_for(self, url: str) -> RepositoryAuth | None:
        """The credentials of the first entry whose normalised URL equals `url`'s, if any."""
        wanted = normalise_url(url)
        return next((e.auth for e in self.entries if normalise_url(e.url) == wanted), None)


def load_repositories_file(path: Path) -> RepositoriesFile:
    """Read a Helm `repositories.yaml`. Relative file paths are relative to its directory.

    Keys read per entry: name, url, username, password, caFile, certFile, keyFile,
    insecure_skip_tls_verify, pass_credentials_all. File contents are read when used.
    """
    try:
        doc: Any = yamlio.load(yamlio.read_file(path), unique_keys=False)  # as helm: the last key wins
    except OSError as exc:
        raise AuthConfigError(f"cannot read {path}: {exc.strerror}") from None
    except yamlio.YAMLError as exc:
        # position only: the file holds passwords, and a YAML message may quote the text
        raise AuthConfigError(f"{path} is not valid YAML ({exc.position or 'unknown position'})") from None
    repos = (doc or {}).get("repositories") if isinstance(doc, dict) else None
    if not isinstance(repos, list):
        raise AuthConfigError(f"{path}: 'repositories' must be a list")
    entries = []
    for i, item in enumerate(repos):
        if not isinstance(item, dict) or not isinstance(item.get("url"), str) or not item["url"]:
            raise AuthConfigError(f"{path}: repositories[{i}] has no url")
        name = str(item.get("name") or f"repositories[{i}]")

        def file(key: str, item: dict[str, Any] = item) -> Path | None:
            value = item.get(key)
            return path.parent / str(value) if value else None

        entries.append(
            RepositoryEntry(
                name=name,
                url=item["url"],
                auth=RepositoryAuth(
                    username=str(item.get("username") or "") or None,
                    password=str(item.get("password") or "") or None,
                    ca=file("caFile"),
                    cert=file("certFile"),
                    key=file("keyFile"),
                    insecure_skip_tls_verify=bool(item.get("insecure_skip_tls_verify")),
                    pass_credentials=bool(item.get("pass_credentials_all")),
                    source=f'{path} entry "{name}"',
                ),
            )
        )
    return RepositoriesFile(path, tuple(entries))


# ---------------------------------------------------------------------------------------------
# per-request options


class SecretFiles:
    """Writes PEM bytes to private files, because TLS material is loaded from files.

    Files live in one 0700 directory, are created 0600, are named by the sha256 of their
    content (so a Secret used on every sync makes one file), and are removed by `close`.
    """

    def __init__(self, parent: Path | None = None) -> None:
        self._parent = parent
        self._dir: Path | None = None
        self._lock = threading.Lock()

    def path(self, material: Material, *, what: str = "TLS file") -> str:
        """The path of a file holding `material`; a missing file is an `AuthConfigError`."""
        if isinstance(material, Path):
            if not material.is_file():
                raise AuthConfigError(f"{what} {material} does not exist or is not a file")
            return str(material)
        with self._lock:
            if self._dir is None:
                self._dir = Path(tempfile.mkdtemp(prefix="gitops-helm-tls-", dir=self._parent))
            target = self._dir / hashlib.sha256(material).hexdigest()
            if not target.exists():
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as fh:
                    fh.write(material)
            return str(target)

    def close(self) -> None:
        with self._lock:
            if self._dir is not None:
                shutil.rmtree(self._dir, ignore_errors=True)
                self._dir = None


def http_identity(auth: RepositoryAuth | None, files: SecretFiles, *, send_credentials: bool) -> Identity:
    """The HTTP adapter's identity for one request. `send_credentials` is the host rule's answer
    (see `repoindex.sends_credentials`); without it neither basic auth nor the client certificate
    is sent, but the CA bundle still verifies the server."""
    if auth is None:
        return Identity()
    ca = None
    if auth.ca is not None and not auth.insecure_skip_tls_verify:
        ca = files.path(auth.ca, what=f"CA bundle of {auth.source or 'the credentials'}")
    send_basic = send_credentials and auth.username and auth.password
    cert = None
    if send_credentials and auth.cert is not None and auth.key is not None:
        what = f"of {auth.source or 'the credentials'}"
        cert = (
            files.path(auth.cert, what=f"client certificate {what}"),
            files.path(auth.key, what=f"key {what}"),
        )
    return Identity(
        username=auth.username if send_basic else None,
        password=auth.password if send_basic else None,
        client_cert=cert,
        ca_file=ca,
        verify=not auth.insecure_skip_tls_verify,
    )
