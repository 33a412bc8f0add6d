"""Registry credentials for image scans, per registry host.

Place in the flow: the composition root reads the Docker config file (``--image-docker-config``)
and the dockerconfigjson Secrets named by ``--image-pull-secrets NS/NAME,...`` (through the Kube
adapter, :func:`read_pull_secrets`) into one :class:`RegistryCredentials`, and hands it to
``images.registry.RegistryClient``, which asks it for the credentials of each host it talks to.

Formats read (what ``docker login`` and ``kubectl create secret docker-registry`` write):

* ``{"auths": {"<host>": {"auth": base64("user:password")}}}`` or ``{"username": ..., "password": ...}``
  (a Docker config file, and the ``.dockerconfigjson`` key of a ``kubernetes.io/dockerconfigjson``
  Secret);
* ``{"<host>": {"auth": ...}}`` (the legacy ``.dockercfg`` key of a ``kubernetes.io/dockercfg`` Secret).

Host keys are normalised: scheme, path and case dropped (``https://index.docker.io/v1/`` is
``docker.io``; Docker Hub's other names are ``docker.io`` too). Later sources win for the same
host: the file first, then the Secrets in flag order. Passwords are never in ``repr``, logs or
error messages; an error names the file or Secret and the host entry, never its content.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from gitops_helm.adapters.http import Identity
from gitops_helm.errors import ConfigError

__all__ = [
    "DOCKER_HUB",
    "CredentialsError",
    "PullSecretReader",
    "RegistryCredentials",
    "RegistryLogin",
    "load_docker_config",
    "normalise_registry_host",
    "parse_docker_config",
    "parse_pull_secret",
    "read_pull_secrets",
    "registry_credentials",
]

DOCKER_HUB = "docker.io"
_DOCKER_HUB_NAMES = frozenset(
    {"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}
)
MAX_CONFIG_BYTES = 1024 * 1024  # a Docker config with hundreds of registries is a few KiB


class CredentialsError(ConfigError):
    """A Docker config file or pull Secret that cannot be read; the message names which, and
    which entry, never a credential."""


@dataclass(frozen=True)
class RegistryLogin:
    username: str
    password: str = field(repr=False)

    def identity(self) -> Identity:
        return Identity(self.username, self.password)


def normalise_registry_host(key: str) -> str:
    """``https://Index.Docker.io/v1/`` -> ``docker.io``; ``ghcr.io`` -> ``ghcr.io``;
    ``localhost:5000`` -> ``localhost:5000``."""
    text = key.strip()
    netloc = urlsplit(text).netloc if "://" in text else text.split("/", 1)[0]
    host = netloc.rsplit("@", 1)[-1].lower()
    return DOCKER_HUB if host in _DOCKER_HUB_NAMES else host


@dataclass(frozen=True)
class RegistryCredentials:
    """Logins by normalised registry host. Immutable; merge with :meth:`merged`."""

    logins: Mapping[str, RegistryLogin] = field(default_factory=dict)

    def for_host(self, host: str) -> RegistryLogin | None:
        return self.logins.get(normalise_registry_host(host))

    def merged(self, later: RegistryCredentials) -> RegistryCredentials:
        return RegistryCredentials({**self.logins, **later.logins})

    def __repr__(self) -> str:
        return f"RegistryCredentials(hosts={sorted(self.logins)})"


def _login(entry: Any, where: str, host_key: str) -> RegistryLogin | None:
    what = f"{where}: registry {host_key!r}"
    if not isinstance(entry, dict):
        raise CredentialsError(f"{what}: the entry is not an object")
    auth, user, password = entry.get("auth"), entry.get("username"), entry.get("password")
    if auth:
        if not isinstance(auth, str):
            raise CredentialsError(f"{what}: 'auth' is not a string")
        try:
            decoded = base64.b64decode(auth.strip(), validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            raise CredentialsError(f"{what}: 'auth' is not base64 of user:password") from None
        user, sep, password = decoded.partition(":")
        if not sep:
            raise CredentialsError(f"{what}: 'auth' is not base64 of user:password")
    if user is None and password is None:
        return None  # e.g. only "identitytoken" or a credential helper: not a login we can use
    if not isinstance(user, str) or not isinstance(password, str) or not user:
        raise CredentialsError(f"{what}: needs both a user name and a password")
    return RegistryLogin(user, password)


def parse_docker_config(data: bytes | str, where: str, *, legacy: bool = False) -> RegistryCredentials:
    """Parse a Docker config (``auths``) or, with ``legacy``, a ``.dockercfg`` host map.
    ``where`` names the file or Secret in error messages."""
    if len(data) > MAX_CONFIG_BYTES:
        raise CredentialsError(f"{where}: larger than {MAX_CONFIG_BYTES} bytes")
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        raise CredentialsError(f"{where}: not valid JSON") from None
    if not isinstance(doc, dict):
        raise CredentialsError(f"{where}: not a JSON object")
    auths = doc if legacy else doc.get("auths", {})
    if not isinstance(auths, dict):
        raise CredentialsError(f"{where}: 'auths' is not an object")
    logins: dict[str, RegistryLogin] = {}
    for key, entry in auths.items():
        login = _login(entry, where, str(key))
        if login is not None:
            logins[normalise_registry_host(str(key))] = login
    return RegistryCredentials(logins)


def load_docker_config(path: str | Path) -> RegistryCredentials:
    """Read a Docker config file (``~/.docker/config.json`` format)."""
    where = f"--image-docker-config {path}"
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise CredentialsError(f"{where}: cannot read it ({exc.strerror})") from None
    return parse_docker_config(data, where)


def parse_pull_secret(namespace: str, name: str, data: Mapping[str, bytes]) -> RegistryCredentials:
    """The logins of a Secret's decoded data: ``.dockerconfigjson`` or the legacy ``.dockercfg``."""
    where = f"Secret {namespace}/{name}"
    if ".dockerconfigjson" in data:
        return parse_docker_config(data[".dockerconfigjson"], f"{where} key .dockerconfigjson")
    if ".dockercfg" in data:
        return parse_docker_config(data[".dockercfg"], f"{where} key .dockercfg", legacy=True)
    raise CredentialsError(f"{where}: has no .dockerconfigjson (or .dockercfg) key")


class PullSecretReader(Protocol):
    """The Kube adapter's read of a Secret (``adapters.kube.Kube.get_secret_data``)."""

    def get_secret_data(self, namespace: str, name: str) -> dict[str, bytes] | None: ...


def read_pull_secrets(kube: PullSecretReader, refs: Sequence[tuple[str, str]]) -> RegistryCredentials:
    """Read and merge the named Secrets (later ones win for the same host). A missing Secret is
    an error naming it: a scan without the credentials it was configured with would only report
    "unauthorized" later, far from the cause."""
    merged = RegistryCredentials()
    for namespace, name in refs:
        data = kube.get_secret_data(namespace, name)
        if data is None:
            raise CredentialsError(f"--image-pull-secrets: Secret {namespace}/{name} not found")
        merged = merged.merged(parse_pull_secret(namespace, name, data))
    return merged


def registry_credentials(
    docker_config: str | None, pull_secrets: Sequence[tuple[str, str]], kube: PullSecretReader
) -> RegistryCredentials:
    """Every login of ``--image-docker-config`` and ``--image-pull-secrets``, the Secrets
    winning over the file for the same host (what the composition root calls, at start and
    whenever it re-reads the Secrets)."""
    from_file = load_docker_config(docker_config) if docker_config else RegistryCredentials()
    return from_file.merged(read_pull_secrets(kube, pull_secrets))
