"""OCI chart source: Helm charts stored in an OCI registry (``oci://host/path`` + name + version).

Place in the flow: the reconciler's chart step, for ``chart.repository`` starting with ``oci://``.
It speaks the OCI distribution API directly (through ``adapters.http``), so an unchanged chart
costs at most one conditional manifest request (and none within ``refresh_s``) and never a helm
call:

1. the version constraint is resolved against the repository's tag list when it is a range
   (Helm stores ``+`` in versions as ``_`` in tags);
2. the tag's manifest digest is looked up (cached for ``refresh_s``);
3. the chart layer (``application/vnd.cncf.helm.chart.content.v1.tar+gzip``) is downloaded once,
   verified against its sha256 digest, and kept in a content-addressed store.

Authentication: anonymous, HTTP basic, or the registry token flow (``WWW-Authenticate: Bearer``).
Tokens and looked-up digests are kept per registry, repository and credentials, so what one
HelmRelease's credentials obtained is never used for another's. Hosts listed in
``plain_http_hosts`` are spoken to over plain HTTP (for local registries). HTTP failures become
``ChartError`` classes by their type and status code (``_chart_error``).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from gitops_helm.adapters.distribution import parse_challenge, read_token, token_url
from gitops_helm.adapters.http import (
    Destinations,
    HTTPAddressRefusedError,
    HTTPClient,
    HTTPError,
    HTTPNoTLSError,
    HTTPSizeLimitError,
    HTTPStatusError,
    HTTPTLSVerifyError,
    Identity,
    Limits,
    Response,
)
from gitops_helm.charts import semver
from gitops_helm.charts.cache import ChartCache
from gitops_helm.charts.errors import (
    AddressRefusedError,
    ChartError,
    ChartNotFoundError,
    RepositoryAuthError,
    RepositoryError,
    RepositoryUnavailableError,
    SizeLimitError,
    VersionConstraintError,
)

CHART_LAYER = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"
)


_T = TypeVar("_T")


@dataclass(frozen=True)
class OciSettings:
    """Times in seconds, sizes in bytes."""

    timeout_s: float = 30.0  # connect timeout, and the longest wait for the next bytes
    download_timeout_s: float = 300.0  # a whole exchange, body included
    refresh_s: float = 60.0
    max_chart_bytes: int = 20 * 1024 * 1024
    max_document_bytes: int = 4 * 1024 * 1024  # a manifest, a tag list page, a token response
    max_tag_pages: int = 50  # tag list pagination is bounded
    plain_http_hosts: tuple[str, ...] = ()
    # which addresses registries (and their token services) may be reached at (None: any)
    destinations: Destinations | None = None


@dataclass(frozen=True)
class OciCredentials:
    """How one HelmRelease reaches a registry: its credentials, and whether it asked for plain
    HTTP (``spec.chart.plainHTTP``; hosts in ``plain_http_hosts`` get it for everyone)."""

    username: str = ""
    password: str = field(default="", repr=False)
    plain_http: bool = False

    def identity(self) -> Identity:
        """The HTTP identity of these credentials (anonymous without a user name)."""
        return Identity(self.username, self.password) if self.username else Identity()


@dataclass(frozen=True)
class OciChart:
    name: str
    version: str
    digest: str  # sha256:<hex> of the chart archive
    path: Path  # the .tgz in the content-addressed store


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

    def __init__(self, settings: OciSettings, cache: ChartCache, http: HTTPClient | None = None) -> None:
        self.settings = settings
        self.cache = cache
        self.http = http or HTTPClient()
        self.requests_made = 0
        # (host, repo, identity key of the credentials) -> bearer token
        self._tokens: dict[tuple[str, str, str], str] = {}
        # (host, repo, tag, identity key of the credentials) -> (when, layer digest)
        self._digests: dict[tuple[str, str, str, str], tuple[float, str]] = {}
        self._lock = threading.Lock()

    def forget_idle(self, idle_s: float) -> None:
        """Drop tag digests not refreshed for ``idle_s``, and the tokens of repositories (and
        credentials) that have none left: bounded memory when charts come and go."""
        now = time.monotonic()
        with self._lock:
            for key, (when, _) in list(self._digests.items()):
                if now - when > idle_s:
                    del self._digests[key]
            active = {(host, repo, identity) for host, repo, _, identity in self._digests}
            for token_key in [k for k in self._tokens if k not in active]:
                del self._tokens[token_key]

    def _base(self, host: str, plain_http: bool = False) -> str:
        scheme = "http" if plain_http or host in self.settings.plain_http_hosts else "https"
        return f"{scheme}://{host}/v2"

    def _limits(self, max_bytes: int) -> Limits:
        s = self.settings
        return Limits(s.timeout_s, s.timeout_s, s.download_timeout_s, max_bytes)

    def _call(
        self,
        host: str,
        repo: str,
        creds: OciCredentials,
        what: str,
        call: Callable[[Identity], _T],
    ) -> _T:
        """``call`` with the identity to use (a bearer token when one is known, else the
        credentials); on a 401 with a Bearer challenge, fetch a token once and call again."""
        key = (host, repo, creds.identity().key)
        for attempt in (1, 2):
            with self._lock:
                token = self._tokens.get(key)
                self.requests_made += 1
            identity = Identity(token=token) if token else creds.identity()
            try:
                result = call(identity)
            except HTTPStatusError as exc:
                challenged = exc.status == 401 and attempt == 1
                if challenged and self._authenticate(host, repo, exc.challenge, creds):
                    continue
                raise _chart_error(exc, what, host) from exc
            except HTTPError as exc:
                raise _chart_error(exc, what, host) from exc
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    def _get(
        self, host: str, repo: str, path: str, creds: OciCredentials, what: str, accept: str | None = None
    ) -> Response:
        url = f"{self._base(host, creds.plain_http)}/{repo}/{path}"
        headers = {"Accept": accept} if accept else None
        limits = self._limits(self.settings.max_document_bytes)

        def get(identity: Identity) -> Response:
            where = self.settings.destinations
            return self.http.get(
                url, limits=limits, identity=identity, headers=headers, destinations=where, registry="oci"
            )

        return self._call(host, repo, creds, what, get)

    def _authenticate(self, host: str, repo: str, challenge: str | None, creds: OciCredentials) -> bool:
        parsed = parse_challenge(challenge)
        url = token_url(parsed, f"repository:{repo}:pull") if parsed else None
        if url is None:
            return False
        with self._lock:
            self.requests_made += 1
        try:
            tok = self.http.get(
                url,
                limits=self._limits(self.settings.max_document_bytes),
                identity=creds.identity(),
                destinations=self.settings.destinations,
                registry="oci",
            )
        except HTTPStatusError:
            return False  # the original 401 is reported
        except HTTPError as exc:
            error = _chart_error(exc, f"oci://{host}/{repo}: token request", host)
            raise error from exc
        if tok.status != 200:
            return False
        _json(tok, f"oci://{host}/{repo}: token response")  # not a JSON object: a repository error
        token = read_token(tok.body)
        if token is None:
            return False  # no usable token: the original 401 is reported
        with self._lock:
            self._tokens[(host, repo, creds.identity().key)] = token
        return True

    def tags(self, host: str, repo: str, creds: OciCredentials) -> list[str]:
        out: list[str] = []
        path = "tags/list?n=1000"
        what = f"oci://{host}/{repo} tag list"
        for _ in range(self.settings.max_tag_pages):
            resp = self._get(host, repo, path, creds, what)
            tags = _json(resp, what).get("tags") or []
            if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
                raise RepositoryError(f"{what}: the registry's answer has no list of tags")
            out += tags
            nxt = resp.links.get("next", "")
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
        what = f"chart oci://{host}/{repo}:{tag}"
        resp = self._get(host, repo, f"manifests/{tag}", creds, what, accept=MANIFEST_TYPES)
        manifest = _json(resp, what)
        computed = f"sha256:{hashlib.sha256(resp.body).hexdigest()}"
        digest = resp.headers.get("Docker-Content-Digest") or computed
        return digest, manifest

    def fetch(
        self, repository: str, name: str, version: str, creds: OciCredentials | None = None
    ) -> OciChart:
        """Resolve ``version`` (exact or range) and return the chart archive, downloading only new content."""
        creds = creds or OciCredentials()
        host, repo = parse_reference(repository, name)
        if creds.plain_http and creds.username and host not in self.settings.plain_http_hosts:
            raise RepositoryAuthError(
                f"oci://{host}/{repo}: spec.chart.plainHTTP is set together with chartPullSecret; the "
                f"agent sends registry credentials over plain HTTP only to hosts listed in its "
                f"--oci-plain-http flag: add --oci-plain-http {host} to the agent, or serve the "
                "registry over TLS and remove plainHTTP"
            )
        resolved = self.resolve_version(host, repo, version, creds)
        tag = resolved.replace("+", "_")
        # what one identity saw is not another's (nor what plain HTTP said what TLS would)
        key = (host, repo, tag, f"{creds.identity().key}{'+http' if creds.plain_http else ''}")
        now = time.monotonic()
        with self._lock:
            cached = self._digests.get(key)
        if cached and now - cached[0] < self.settings.refresh_s:
            layer_digest = cached[1]
        else:
            _, manifest = self.manifest_digest(host, repo, tag, creds)
            layer_digest = _chart_layer(
                manifest, f"chart oci://{host}/{repo}:{tag}", self.settings.max_chart_bytes
            )
            with self._lock:
                self._digests[key] = (now, layer_digest)
        if not re.fullmatch(r"sha256:[0-9a-f]{64}", layer_digest):
            raise RepositoryError(f"oci://{host}/{repo}:{tag}: unsupported layer digest {layer_digest!r}")
        hexdigest = layer_digest.split(":", 1)[1]
        path = self.cache.lookup(hexdigest)
        if path is None:
            url = f"{self._base(host, creds.plain_http)}/{repo}/blobs/{layer_digest}"
            limits = self._limits(self.settings.max_chart_bytes)
            what = f"chart oci://{host}/{repo}:{tag}"

            def store(identity: Identity) -> Path:
                with self.http.stream(
                    url,
                    limits=limits,
                    identity=identity,
                    destinations=self.settings.destinations,
                    registry="oci",
                ) as blob:
                    return self.cache.store(
                        blob.iter_bytes(), expected=hexdigest, max_bytes=limits.max_bytes, what=what
                    )[1]

            path = self._call(host, repo, creds, f"oci://{host}/{repo} blob {layer_digest}", store)
        return OciChart(name=name, version=resolved, digest=layer_digest, path=path)


def _json(resp: Response, what: str) -> dict[str, Any]:
    """The body as a JSON object; anything else is a permanent repository error."""
    try:
        doc = json.loads(resp.body)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser goes
        raise RepositoryError(f"{what}: the registry's answer is not JSON") from None
    if not isinstance(doc, dict):
        raise RepositoryError(f"{what}: the registry's answer is not a JSON object")
    return doc


def _chart_layer(manifest: dict[str, Any], what: str, max_bytes: int) -> str:
    """The digest of the manifest's chart layer; a malformed manifest is a `RepositoryError`."""
    layers = manifest.get("layers")
    if not isinstance(layers, list) or not all(isinstance(layer, dict) for layer in layers):
        raise RepositoryError(f"{what}: malformed manifest (layers is not a list of objects)")
    charts = [layer for layer in layers if layer.get("mediaType") == CHART_LAYER]
    if not charts:
        raise RepositoryError(f"{what} is not a Helm chart (no chart layer)")
    digest, size = charts[0].get("digest"), charts[0].get("size", 0)
    if not isinstance(digest, str) or not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
        raise RepositoryError(f"{what}: unsupported layer digest {str(digest)[:100]!r}")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise RepositoryError(f"{what}: malformed manifest (layer size {str(size)[:40]!r})")
    if size > max_bytes:
        raise SizeLimitError(f"{what}: the chart layer is {size} bytes, larger than the limit of {max_bytes}")
    return digest


_STATUS_DETAIL = {401: "unauthorized", 403: "forbidden", 404: "not found"}


def _chart_error(error: HTTPError, what: str, host: str) -> ChartError:
    """The chart source's error for an HTTP failure, by the failure's type and status code, with
    the next step a user can take."""
    if isinstance(error, HTTPAddressRefusedError):
        return AddressRefusedError.of("spec.chart.repository", f"{what}: {error.detail}")
    if isinstance(error, HTTPNoTLSError):
        return RepositoryError(
            f"{what}: the registry {host} does not speak TLS (it answered in plain HTTP); if it is "
            f"meant to serve plain HTTP, set spec.chart.plainHTTP: true on this HelmRelease or "
            f"start the agent with --oci-plain-http {host}"
        )
    if isinstance(error, HTTPTLSVerifyError):
        return RepositoryError(
            f"{what}: {error.detail}; the registry's certificate is not trusted by the agent: add "
            "its CA to the agent's trust store (SSL_CERT_FILE or REQUESTS_CA_BUNDLE)"
        )
    if isinstance(error, HTTPStatusError):
        code = error.status
        if error.temporary:
            return RepositoryUnavailableError(
                f"{what}: HTTP {code} {_STATUS_DETAIL.get(code, '')}".rstrip(), retry_after=error.retry_after
            )
        if code in (401, 403):
            return RepositoryAuthError(
                f"{what}: HTTP {code} {_STATUS_DETAIL[code]}; check spec.chart.chartPullSecret (a "
                "Secret with username and password keys the registry accepts for this repository)"
            )
        if code == 404:
            return ChartNotFoundError(
                f"{what}: HTTP 404 not found; check spec.chart.repository, name and version"
            )
        return RepositoryError(f"{what}: HTTP {code}")
    if isinstance(error, HTTPSizeLimitError):
        return SizeLimitError(f"{what} is larger than the limit of {error.limit} bytes")
    if error.temporary and "name resolution" in error.detail:
        return RepositoryUnavailableError(
            f"{what}: {error.detail}: the host name {host.rsplit(':', 1)[0]} does not resolve; check "
            "spec.chart.repository and the agent's DNS"
        )
    kind = RepositoryUnavailableError if error.temporary else RepositoryError
    return kind(f"{what}: {error.detail}")
