"""OCI chart source: Helm charts stored in an OCI registry (``oci://host/path`` + name + version).

Place in the flow: the reconciler's chart step, for ``chart.repository`` starting with ``oci://``.
It speaks the OCI distribution API directly (``requests``), so an unchanged chart costs at most
one conditional manifest request (and none within ``refresh_s``) and never a helm call:

1. the version constraint is resolved against the repository's tag list when it is a range
   (Helm stores ``+`` in versions as ``_`` in tags);
2. the tag's manifest digest is looked up (cached for ``refresh_s``);
3. the chart layer (``application/vnd.cncf.helm.chart.content.v1.tar+gzip``) is downloaded once,
   verified against its sha256 digest, and kept in a content-addressed store.

Authentication: anonymous, HTTP basic, or the registry token flow (``WWW-Authenticate: Bearer``).
Hosts listed in ``plain_http_hosts`` are spoken to over plain HTTP (for local registries).
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import requests

from gitops_helm.charts import semver
from gitops_helm.charts.cache import ChartCache
from gitops_helm.charts.errors import (
    ChartError,
    ChartNotFoundError,
    RepositoryAuthError,
    RepositoryError,
    RepositoryUnavailableError,
    VersionConstraintError,
)

CHART_LAYER = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"
)


@dataclass(frozen=True)
class OciSettings:
    timeout_s: float = 30.0
    refresh_s: float = 60.0
    max_chart_bytes: int = 20 * 1024 * 1024
    plain_http_hosts: tuple[str, ...] = ()


@dataclass(frozen=True)
class OciCredentials:
    username: str = ""
    password: str = field(default="", repr=False)


@dataclass(frozen=True)
class OciChart:
    name: str
    version: str
    digest: str  # sha256:<hex> of the chart archive
    path: Path  # the .tgz in the content-addressed store


_BEARER = re.compile(r'(\w+)="([^"]*)"')


def parse_reference(repository: str, name: str) -> tuple[str, str]:
    """``oci://host:port/charts`` + ``hello`` -> (``host:port``, ``charts/hello``)."""
    if not repository.startswith("oci://"):
        raise RepositoryError(f"{repository}: not an oci:// repository")
    rest = repository[len("oci://") :].strip("/")
    host, _, path = rest.partition("/")
    if not host or ".." in path.split("/"):
        raise RepositoryError(f"{repository}: not a valid OCI repository reference")
    repo = "/".join(p for p in (path, name) if p)
    if not re.fullmatch(r"[a-z0-9]+(?:[._/-][a-z0-9]+)*", repo):
        raise RepositoryError(f"oci://{host}/{repo}: invalid repository name")
    return host, repo


class OciClient:
    """Fetch charts from OCI registries, with caches shared by all HelmReleases."""

    def __init__(self, settings: OciSettings, cache: ChartCache) -> None:
        self.settings = settings
        self.cache = cache
        self.session = requests.Session()
        self.requests_made = 0
        self._tokens: dict[tuple[str, str], str] = {}
        self._digests: dict[tuple[str, str, str], tuple[float, str]] = {}
        self._lock = threading.Lock()

    def _base(self, host: str) -> str:
        scheme = "http" if host in self.settings.plain_http_hosts else "https"
        return f"{scheme}://{host}/v2"

    def _request(
        self, method: str, host: str, repo: str, path: str, creds: OciCredentials, **kw: Any
    ) -> requests.Response:
        url = f"{self._base(host)}/{repo}/{path}"
        headers = dict(kw.pop("headers", {}))
        for attempt in range(2):
            token = self._tokens.get((host, repo))
            if token:
                headers["Authorization"] = f"Bearer {token}"
            elif creds.username:
                headers.pop("Authorization", None)
            try:
                self.requests_made += 1
                resp = self.session.request(
                    method,
                    url,
                    headers=headers,
                    timeout=self.settings.timeout_s,
                    auth=(creds.username, creds.password) if creds.username and not token else None,
                    **kw,
                )
            except requests.RequestException as exc:
                raise RepositoryUnavailableError(f"oci://{host}/{repo}: {type(exc).__name__}") from None
            if resp.status_code == 401 and attempt == 0 and self._authenticate(host, repo, resp, creds):
                continue
            return resp
        return resp

    def _authenticate(self, host: str, repo: str, resp: requests.Response, creds: OciCredentials) -> bool:
        challenge = resp.headers.get("WWW-Authenticate", "")
        if not challenge.lower().startswith("bearer"):
            return False
        params = dict(_BEARER.findall(challenge))
        realm = params.pop("realm", "")
        if not realm:
            return False
        params.setdefault("scope", f"repository:{repo}:pull")
        try:
            self.requests_made += 1
            tok = self.session.get(
                f"{realm}?{urlencode(params)}",
                auth=(creds.username, creds.password) if creds.username else None,
                timeout=self.settings.timeout_s,
            )
        except requests.RequestException as exc:
            raise RepositoryUnavailableError(
                f"oci://{host}/{repo}: token request failed: {type(exc).__name__}"
            ) from None
        if tok.status_code != 200:
            return False
        body = tok.json()
        token = body.get("token") or body.get("access_token")
        if not token:
            return False
        self._tokens[(host, repo)] = str(token)
        return True

    def _check(self, resp: requests.Response, what: str) -> None:
        code = resp.status_code
        if code < 300:
            return
        error: type[ChartError] = RepositoryError
        if code >= 500 or code in (408, 429):
            error = RepositoryUnavailableError
        elif code in (401, 403):
            error = RepositoryAuthError
        elif code == 404:
            error = ChartNotFoundError
        detail = {401: "unauthorized", 403: "forbidden", 404: "not found"}.get(code, "")
        raise error(f"{what}: HTTP {code} {detail}".rstrip())

    def tags(self, host: str, repo: str, creds: OciCredentials) -> list[str]:
        out: list[str] = []
        path = "tags/list?n=1000"
        for _ in range(50):  # bounded pagination
            resp = self._request("GET", host, repo, path, creds)
            self._check(resp, f"oci://{host}/{repo} tag list")
            out += list(resp.json().get("tags") or [])
            nxt = resp.links.get("next", {}).get("url", "")
            if not nxt:
                break
            path = nxt.split(f"/{repo}/", 1)[-1]
        return out

    def resolve_version(self, host: str, repo: str, constraint: str, creds: OciCredentials) -> str:
        if constraint and semver.is_exact(constraint):
            return constraint
        tags = self.tags(host, repo, creds)
        versions = [t.replace("_", "+") for t in tags]
        try:
            best = semver.select_version(constraint or "*", versions)
        except semver.ConstraintError as exc:
            raise VersionConstraintError(str(exc)) from None
        if best is None:
            shown = ", ".join(sorted(versions)[-10:]) or "none"
            raise ChartNotFoundError(
                f'chart oci://{host}/{repo} version "{constraint}" not found (available: {shown})'
            )
        return best

    def manifest_digest(
        self, host: str, repo: str, tag: str, creds: OciCredentials
    ) -> tuple[str, dict[str, Any]]:
        resp = self._request("GET", host, repo, f"manifests/{tag}", creds, headers={"Accept": MANIFEST_TYPES})
        self._check(resp, f"chart oci://{host}/{repo}:{tag}")
        manifest = resp.json()
        digest = (
            resp.headers.get("Docker-Content-Digest") or "sha256:" + hashlib.sha256(resp.content).hexdigest()
        )
        return digest, manifest

    def fetch(
        self, repository: str, name: str, version: str, creds: OciCredentials | None = None
    ) -> OciChart:
        """Resolve ``version`` (exact or range) and return the chart archive, downloading only new content."""
        creds = creds or OciCredentials()
        host, repo = parse_reference(repository, name)
        resolved = self.resolve_version(host, repo, version, creds)
        tag = resolved.replace("+", "_")
        key = (host, repo, tag)
        now = time.monotonic()
        with self._lock:
            cached = self._digests.get(key)
        if cached and now - cached[0] < self.settings.refresh_s:
            layer_digest = cached[1]
        else:
            _, manifest = self.manifest_digest(host, repo, tag, creds)
            layers = [layer for layer in manifest.get("layers", []) if layer.get("mediaType") == CHART_LAYER]
            if not layers:
                raise RepositoryError(f"oci://{host}/{repo}:{tag} is not a Helm chart (no chart layer)")
            layer_digest = str(layers[0].get("digest", ""))
            if int(layers[0].get("size", 0)) > self.settings.max_chart_bytes:
                raise RepositoryError(f"oci://{host}/{repo}:{tag}: chart larger than the limit")
            with self._lock:
                self._digests[key] = (now, layer_digest)
        if not re.fullmatch(r"sha256:[0-9a-f]{64}", layer_digest):
            raise RepositoryError(f"oci://{host}/{repo}:{tag}: unsupported layer digest {layer_digest!r}")
        hexdigest = layer_digest.split(":", 1)[1]
        path = self.cache.lookup(hexdigest)
        if path is None:
            resp = self._request("GET", host, repo, f"blobs/{layer_digest}", creds, stream=True)
            self._check(resp, f"oci://{host}/{repo} blob {layer_digest}")
            _, path = self.cache.store(
                resp.iter_content(65536),
                expected=hexdigest,
                max_bytes=self.settings.max_chart_bytes,
                what=f"chart oci://{host}/{repo}:{tag}",
            )
        return OciChart(name=name, version=resolved, digest=layer_digest, path=path)
