"""The registry client of image automation: tags of an image repository, and the image (digest,
build time) behind a tag, over the Registry HTTP API v2 / OCI distribution API.

Place in the flow: the scan (a loop, later) collects the set of image repositories the
HelmReleases use and calls :meth:`RegistryClient.scan` once per interval: one tag listing per
repository however many releases use it. The policy code (task C) picks candidate tags and asks
:meth:`RegistryClient.images` for their build times (and digests, for pinning); nothing else
fetches manifests. Every request goes through ``adapters.http`` (deadlines, size limits, one
session per credential identity).

Costs. An unchanged repository costs one request per scan:

* the tag list is asked for with ``n=`` pages (``Link`` header pagination, bounded in pages and
  tags). When the registry sent an ``ETag`` for a one-page list, the next scan asks with
  ``If-None-Match`` and a 304 costs no body. docker-registry 2.8 (the local test registry, and
  what most self-hosted registries run) sends neither an ``ETag`` nor a ``Docker-Content-Digest``
  for tag lists, so there the request is a plain GET whose answer is compared with the last one;
* the image behind a tag (manifest, platform manifest, config blob) is remembered per tag for
  ``manifest_refresh_s`` and then asked again with ``If-None-Match: <manifest digest>`` (2.8
  supports this on manifests: a 304 when the tag did not move). Manifests fetched by digest and
  config blobs are content-addressed, verified against their digest and never fetched twice.

Authentication. Logins per registry host come from ``images.credentials``. A request carries the
host's basic credentials when there are any; a ``WWW-Authenticate: Bearer`` challenge is answered
with the token flow (basic credentials to the token realm when known, anonymous otherwise).
Tokens are kept per (host, credential identity, scope) until they expire and are never used for
another identity. Nothing secret is logged or put in an error.

Pacing. Per registry host a token bucket (``images.ratelimit``); a 429 pauses the host for its
``Retry-After`` (capped) and halves the rate; the request is repeated up to
``rate_limit_retries`` times, after that (or when the registry asks for a longer pause than
``max_retry_after_s``) the repository's scan fails with :class:`RegistryRateLimitedError`.

Errors. Every HTTP failure is classified once, here, into a :class:`RegistryError` whose message
names the registry and repository: unreachable, unauthorized, not found, rate limited, or a
malformed answer.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from gitops_helm import log as logging
from gitops_helm.adapters.distribution import next_page_url, parse_challenge, read_token, token_url
from gitops_helm.adapters.http import (
    ANONYMOUS,
    Destinations,
    HTTPAddressRefusedError,
    HTTPClient,
    HTTPError,
    HTTPSizeLimitError,
    HTTPStatusError,
    HTTPTLSVerifyError,
    Identity,
    Limits,
    Response,
    origin,
)
from gitops_helm.config import ImageScanSettings
from gitops_helm.errors import GitopsHelmError
from gitops_helm.images import manifest
from gitops_helm.images.credentials import DOCKER_HUB, RegistryCredentials
from gitops_helm.images.ratelimit import HostRateLimiter, RateLimitSettings

__all__ = [
    "ImageInfo",
    "ImageNotFoundError",
    "ImageRepository",
    "RegistryAddressRefusedError",
    "RegistryAnswerError",
    "RegistryClient",
    "RegistryError",
    "RegistryRateLimitedError",
    "RegistryUnauthorizedError",
    "RegistryUnreachableError",
    "ScanResult",
    "TagList",
]

_log = logging.get(__name__)
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_PATH = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_HOST = re.compile(r"(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]+)?")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_DOCKER_HUB_API = "registry-1.docker.io"
_TOKEN_LIFETIME_S = 60.0  # what the token spec says to assume when the answer gives none
_TOKEN_MARGIN_S = 10.0  # a token is renewed this long before it expires


# ---------------------------------------------------------------------------------------------
# what is scanned, and what a scan finds


@dataclass(frozen=True, order=True)
class ImageRepository:
    """An image repository: registry host (``docker.io`` for Docker Hub) and path."""

    host: str
    path: str

    @classmethod
    def parse(cls, text: str) -> ImageRepository:
        """``nginx`` -> docker.io/library/nginx; ``ghcr.io/org/app``; ``localhost:5000/app``.
        A tag or digest is not part of a repository (ValueError)."""
        name = text.strip()
        first, sep, rest = name.partition("/")
        if sep and ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
            host, path = first.lower(), rest
        else:
            host, path = DOCKER_HUB, name
        if host in ("index.docker.io", "registry-1.docker.io"):
            host = DOCKER_HUB
        if host == DOCKER_HUB and "/" not in path:
            path = f"library/{path}"
        if not _HOST.fullmatch(host):
            raise ValueError(f"{text!r}: {host!r} is not a registry host")
        if "@" in path or ":" in path:
            raise ValueError(f"{text!r}: a repository, without a tag or digest, is expected")
        if not _PATH.fullmatch(path) or len(path) > 255:
            raise ValueError(f"{text!r}: not a valid repository name (lower case, digits, . _ - and /)")
        return cls(host, path)

    @property
    def api_host(self) -> str:
        """The host the registry API is served from."""
        return _DOCKER_HUB_API if self.host == DOCKER_HUB else self.host

    def __str__(self) -> str:
        return f"{self.host}/{self.path}"


@dataclass(frozen=True)
class TagList:
    repository: ImageRepository
    tags: tuple[str, ...]
    unchanged: bool  # the same tags as the previous scan of this repository


@dataclass(frozen=True)
class ImageInfo:
    """The image a tag names. Pin ``digest`` (``repo:tag@digest``): for a multi-platform tag
    it is the index digest, which pulls on every platform; ``image_digest`` is the manifest of
    the scanned platform, whose config gave ``created`` (None: the image does not say)."""

    repository: ImageRepository
    tag: str
    digest: str
    image_digest: str
    created: datetime | None


@dataclass(frozen=True)
class ScanResult:
    """One repository's scan: its tags, or why they could not be read."""

    repository: ImageRepository
    tags: TagList | None
    error: RegistryError | None


# ---------------------------------------------------------------------------------------------
# errors, classified once


class RegistryError(GitopsHelmError):
    """A registry request failed; the message names the registry and the repository."""

    temporary = False

    def __init__(self, repository: ImageRepository, detail: str) -> None:
        self.repository = repository
        self.detail = detail
        super().__init__(f"registry {repository.host}, repository {repository.path}: {detail}")


class RegistryUnreachableError(RegistryError):
    """No answer: connection refused or reset, timeout, TLS failure, or a 5xx."""

    temporary = True


class RegistryUnauthorizedError(RegistryError):
    """401 or 403: no credentials for the host, or the ones given were refused."""


class ImageNotFoundError(RegistryError):
    """404: the repository or tag does not exist (or is hidden from these credentials)."""


class RegistryRateLimitedError(RegistryError):
    """429 after the retries, or a ``Retry-After`` longer than allowed."""

    temporary = True


class RegistryAnswerError(RegistryError):
    """An answer that does not follow the API: not JSON, wrong shape, too large, bad digest."""


class RegistryAddressRefusedError(RegistryError):
    """The registry (or the token service it names) resolves to an address the agent may not
    reach: link-local (cloud metadata) always, loopback or private ones in lockdown."""


# ---------------------------------------------------------------------------------------------
# caches


_K = TypeVar("_K")
_V = TypeVar("_V")


class _LRU(Generic[_K, _V]):
    """A bounded map; the least recently used entries go first. Not locked: the client locks."""

    def __init__(self, capacity: int) -> None:
        self.capacity = max(1, capacity)
        self._items: OrderedDict[_K, _V] = OrderedDict()

    def get(self, key: _K) -> _V | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: _K, value: _V) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)


@dataclass(frozen=True)
class _CachedTags:
    tags: tuple[str, ...]
    etag: str | None  # of the first page, used only when the list had one page


@dataclass(frozen=True)
class _CachedImage:
    checked: float  # monotonic
    info: ImageInfo


@dataclass(frozen=True)
class _Token:
    value: str
    expires: float  # monotonic


# ---------------------------------------------------------------------------------------------
# the client


class RegistryClient:
    """Thread-safe; one per process (its caches are the point). ``plain_http_hosts`` are spoken
    to over plain HTTP (``--oci-plain-http``: local registries)."""

    def __init__(
        self,
        settings: ImageScanSettings,
        http: HTTPClient,
        credentials: RegistryCredentials | None = None,
        *,
        plain_http_hosts: Iterable[str] = (),
        limiter: HostRateLimiter | None = None,
        clock: Callable[[], float] = time.monotonic,
        destinations: Destinations | None = None,
    ) -> None:
        self.settings = settings
        self._http = http
        # which addresses a registry (and the token service it names) may be: the chart sources'
        # rule (``agent.chart_destinations``): never link-local/metadata, nor internal in lockdown
        self._destinations = destinations
        # called before each repository and each candidate image: the image loop's heartbeat, so
        # a long pass over many slow registries is not mistaken for a stuck one (each request
        # has its own deadline)
        self.on_progress: Callable[[], None] = lambda: None
        self._credentials = credentials or RegistryCredentials()
        self._plain_http = frozenset(h.lower() for h in plain_http_hosts)
        self._limiter = limiter or HostRateLimiter(
            RateLimitSettings(
                rate_per_s=settings.rate_per_s,
                burst=settings.burst,
                max_pause_s=settings.max_retry_after_s,
            )
        )
        self._platform = manifest.Platform.parse(settings.platform)
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens: dict[tuple[str, str, str], _Token] = {}
        self._tag_lists: _LRU[tuple[ImageRepository, str], _CachedTags] = _LRU(settings.max_cached_images)
        self._images: _LRU[tuple[ImageRepository, str, str], _CachedImage] = _LRU(settings.max_cached_images)
        # content-addressed, so shared by identities: a digest names the same bytes for everyone
        # who can read it, and it is only reached through a tag this identity could read
        self._config_digests: _LRU[tuple[ImageRepository, str], str] = _LRU(settings.max_cached_images)
        self._created: _LRU[tuple[ImageRepository, str], tuple[datetime | None]] = _LRU(
            settings.max_cached_images
        )

    def set_credentials(self, credentials: RegistryCredentials) -> None:
        """Replace the logins (pull Secrets re-read). Tokens of the old identities expire unused."""
        with self._lock:
            self._credentials = credentials

    # scans --------------------------------------------------------------------------------

    def scan(self, repositories: Iterable[ImageRepository]) -> dict[ImageRepository, ScanResult]:
        """List the tags of each repository once (duplicates are scanned once). A failure is
        recorded for its repository and the others are still scanned; nothing is raised."""
        results: dict[ImageRepository, ScanResult] = {}
        for repository in sorted(set(repositories)):
            self.on_progress()
            try:
                results[repository] = ScanResult(repository, self.list_tags(repository), None)
            except RegistryError as exc:
                _log.warning("image scan failed", repository=str(repository), error=str(exc))
                results[repository] = ScanResult(repository, None, exc)
        return results

    def list_tags(self, repository: ImageRepository) -> TagList:
        """Every tag of ``repository`` (bounded by ``max_tag_pages`` and ``max_tags``)."""
        identity = self._identity(repository)
        key = (repository, identity.key)
        with self._lock:
            cached = self._tag_lists.get(key)
        s = self.settings
        url: str | None = f"{self._base(repository)}/tags/list?n={s.tag_page_size}"
        headers = {"If-None-Match": cached.etag} if cached and cached.etag else {}
        tags: list[str] = []
        first_etag: str | None = None
        pages = 0
        while url is not None:
            if pages == s.max_tag_pages:
                raise RegistryAnswerError(
                    repository, f"the tag list has more than {s.max_tag_pages} pages (--image-max-tag-pages)"
                )
            resp = self._get(repository, url, "tag list", headers=headers)
            if resp.status == 304 and cached is not None and pages == 0:
                return TagList(repository, cached.tags, unchanged=True)
            headers = {}
            tags += _page_tags(repository, resp)
            if len(tags) > s.max_tags:
                raise RegistryAnswerError(
                    repository, f"more than {s.max_tags} tags (--image-max-tags); not scanned"
                )
            if pages == 0:
                first_etag = resp.headers.get("ETag")
            pages += 1
            link = resp.links.get("next")
            url = next_page_url(resp.url, link)
            if link and url is None:
                raise RegistryAnswerError(repository, "the tag list's next page is on another host")
        result = tuple(tags)
        with self._lock:
            self._tag_lists.put(key, _CachedTags(result, first_etag if pages == 1 else None))
        return TagList(repository, result, unchanged=cached is not None and cached.tags == result)

    def images(
        self, repository: ImageRepository, tags: Iterable[str]
    ) -> dict[str, ImageInfo | RegistryError]:
        """The image of each candidate tag, or why it could not be read (per tag)."""
        out: dict[str, ImageInfo | RegistryError] = {}
        for tag in dict.fromkeys(tags):
            self.on_progress()
            try:
                out[tag] = self.image(repository, tag)
            except RegistryError as exc:
                out[tag] = exc
        return out

    def image(self, repository: ImageRepository, tag: str) -> ImageInfo:
        """The image ``tag`` names: its digest and build time (see :class:`ImageInfo`)."""
        if not _TAG.fullmatch(tag):
            raise RegistryAnswerError(repository, f"{tag[:140]!r} is not a valid tag")
        identity = self._identity(repository)
        key = (repository, tag, identity.key)
        now = self._clock()
        with self._lock:
            cached = self._images.get(key)
        if cached is not None and now - cached.checked < self.settings.manifest_refresh_s:
            return cached.info
        headers = {"Accept": manifest.ACCEPT}
        if cached is not None:
            headers["If-None-Match"] = f'"{cached.info.digest}"'
        what = f"tag {tag}"
        resp = self._get(repository, f"{self._base(repository)}/manifests/{tag}", what, headers=headers)
        if resp.status == 304 and cached is not None:
            info = cached.info
        else:
            info = self._read_image(repository, tag, resp)
        with self._lock:
            self._images.put(key, _CachedImage(now, info))
        return info

    # reading manifests --------------------------------------------------------------------

    def _read_image(self, repository: ImageRepository, tag: str, resp: Response) -> ImageInfo:
        what = f"tag {tag}"
        digest = _served_digest(repository, resp, what)
        doc = _answer(repository, what, lambda: manifest.parse_json_object(resp.body))
        content_type = resp.headers.get("Content-Type")
        if _answer(repository, what, lambda: manifest.is_index(doc, content_type)):
            image_digest = _answer(repository, what, lambda: manifest.select_platform(doc, self._platform))
            config = self._config_of(repository, image_digest, f"{what} ({self._platform})")
        else:
            image_digest = digest
            config = _answer(repository, what, lambda: manifest.config_digest(doc))
        created = self._created_of(repository, config, what)
        return ImageInfo(repository, tag, digest, image_digest, created)

    def _config_of(self, repository: ImageRepository, image_digest: str, what: str) -> str:
        with self._lock:
            known = self._config_digests.get((repository, image_digest))
        if known is not None:
            return known
        url = f"{self._base(repository)}/manifests/{image_digest}"
        resp = self._get(repository, url, what, headers={"Accept": manifest.ACCEPT})
        _answer(repository, what, lambda: manifest.verify_digest(resp.body, image_digest, "manifest"))
        doc = _answer(repository, what, lambda: manifest.parse_json_object(resp.body))
        if _answer(repository, what, lambda: manifest.is_index(doc, resp.headers.get("Content-Type"))):
            raise RegistryAnswerError(repository, f"{what}: an index inside an index is not supported")
        config = _answer(repository, what, lambda: manifest.config_digest(doc))
        with self._lock:
            self._config_digests.put((repository, image_digest), config)
        return config

    def _created_of(self, repository: ImageRepository, config: str, what: str) -> datetime | None:
        with self._lock:
            known = self._created.get((repository, config))
        if known is not None:
            return known[0]
        resp = self._get(repository, f"{self._base(repository)}/blobs/{config}", f"{what} config")
        _answer(repository, what, lambda: manifest.verify_digest(resp.body, config, "image config"))
        created = _answer(repository, f"{what} config", lambda: manifest.created_time(resp.body))
        with self._lock:
            self._created.put((repository, config), (created,))
        return created

    # requests -----------------------------------------------------------------------------

    def _base(self, repository: ImageRepository) -> str:
        scheme = "http" if repository.host in self._plain_http else "https"
        return f"{scheme}://{repository.api_host}/v2/{repository.path}"

    def _identity(self, repository: ImageRepository) -> Identity:
        with self._lock:
            login = self._credentials.for_host(repository.host)
        return login.identity() if login else ANONYMOUS

    def _limits(self) -> Limits:
        s = self.settings
        return Limits(s.timeout_s, s.timeout_s, s.total_timeout_s, s.max_document_bytes)

    def _get(
        self, repository: ImageRepository, url: str, what: str, *, headers: dict[str, str] | None = None
    ) -> Response:
        """GET with the repository's credentials (or its bearer token), paced per host,
        answering one auth challenge and up to ``rate_limit_retries`` 429s."""
        identity = self._identity(repository)
        scope = f"repository:{repository.path}:pull"
        token_key = (repository.api_host, identity.key, scope)
        rate_limited = 0
        challenged = False
        while True:
            self._limiter.acquire(repository.api_host)
            token = self._token(token_key)
            try:
                return self._http.get(
                    url,
                    limits=self._limits(),
                    identity=Identity(token=token) if token else identity,
                    headers=headers,
                    destinations=self._destinations,
                    registry="image",
                )
            except HTTPStatusError as exc:
                if exc.status == 429 and rate_limited < self.settings.rate_limit_retries:
                    if exc.retry_after is not None and exc.retry_after > self.settings.max_retry_after_s:
                        raise RegistryRateLimitedError(
                            repository,
                            f"{what}: rate limited; the registry asks to wait {exc.retry_after:.0f}s, "
                            f"longer than --image-retry-after-max",
                        ) from None
                    pause = self._limiter.limited(repository.api_host, exc.retry_after)
                    _log.info("registry rate limit", registry=repository.host, pause_s=round(pause, 1))
                    rate_limited += 1
                    continue
                if exc.status == 401 and not challenged:
                    challenged = True
                    with self._lock:
                        self._tokens.pop(token_key, None)  # an expired or revoked token
                    if self._fetch_token(repository, exc.challenge, identity, token_key):
                        continue
                raise _classify(repository, what, exc, has_login=identity is not ANONYMOUS) from None
            except HTTPError as exc:
                raise _classify(repository, what, exc, has_login=identity is not ANONYMOUS) from None

    def _token(self, key: tuple[str, str, str]) -> str | None:
        with self._lock:
            token = self._tokens.get(key)
            if token is not None and token.expires <= self._clock():
                del self._tokens[key]
                return None
            return token.value if token else None

    def _fetch_token(
        self, repository: ImageRepository, header: str | None, identity: Identity, key: tuple[str, str, str]
    ) -> bool:
        """Answer a Bearer challenge: ask its realm for a token (with the host's basic
        credentials when known). False when there is no usable challenge or token (the
        original 401 is then reported)."""
        challenge = parse_challenge(header)
        url = token_url(challenge, key[2]) if challenge else None
        if url is None:
            return False
        scheme, realm_host, port = origin(url)
        realm = realm_host if port in (None, 80) else f"{realm_host}:{port}"
        if scheme != "https" and identity is not ANONYMOUS and realm not in self._plain_http:
            # basic credentials in clear to a host nobody declared local: refused, not sent
            raise RegistryUnauthorizedError(
                repository,
                f"the token service {realm} is plain HTTP; credentials are sent to it only when it "
                "is listed in --oci-plain-http",
            )
        self._limiter.acquire(repository.api_host)
        try:
            resp = self._http.get(
                url,
                limits=self._limits(),
                identity=identity,
                destinations=self._destinations,
                registry="image",
            )
        except HTTPStatusError as exc:
            if exc.status in (401, 403):
                return False
            raise _classify(repository, "token request", exc, has_login=identity is not ANONYMOUS) from None
        except HTTPError as exc:
            raise _classify(repository, "token request", exc, has_login=identity is not ANONYMOUS) from None
        token = read_token(resp.body)
        if token is None:
            raise RegistryAnswerError(repository, "token request: the answer holds no token")
        lifetime = _expires_in(resp.body)
        with self._lock:
            now = self._clock()
            for old in [k for k, t in self._tokens.items() if t.expires <= now]:
                del self._tokens[old]
            self._tokens[key] = _Token(token, now + max(1.0, lifetime - _TOKEN_MARGIN_S))
        return True


def _expires_in(body: bytes) -> float:
    try:
        doc = manifest.parse_json_object(body)
    except manifest.ManifestError:
        return _TOKEN_LIFETIME_S
    value = doc.get("expires_in")
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    return _TOKEN_LIFETIME_S


_R = TypeVar("_R")


def _answer(repository: ImageRepository, what: str, read: Callable[[], _R]) -> _R:
    """``read()``, with a malformed answer classified as :class:`RegistryAnswerError`."""
    try:
        return read()
    except manifest.ManifestError as exc:
        raise RegistryAnswerError(repository, f"{what}: {exc}") from None


def _served_digest(repository: ImageRepository, resp: Response, what: str) -> str:
    """The digest of a manifest as served; a ``Docker-Content-Digest`` header that does not
    match the body is a malformed answer."""
    computed = "sha256:" + hashlib.sha256(resp.body).hexdigest()
    declared = resp.headers.get("Docker-Content-Digest")
    if declared and declared.startswith("sha256:") and declared != computed:
        raise RegistryAnswerError(repository, f"{what}: the manifest does not match its digest {declared}")
    return computed


def _page_tags(repository: ImageRepository, resp: Response) -> list[str]:
    doc = _answer(repository, "tag list", lambda: manifest.parse_json_object(resp.body))
    tags = doc.get("tags")
    if tags is None:
        return []  # a repository whose tags were all deleted
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise RegistryAnswerError(repository, "tag list: 'tags' is not a list of strings")
    return tags


_STATUS_DETAIL = {401: "unauthorized", 403: "forbidden", 404: "not found", 429: "rate limited"}


def _classify(repository: ImageRepository, what: str, error: HTTPError, *, has_login: bool) -> RegistryError:
    """The one place an HTTP failure of a registry request becomes a :class:`RegistryError`."""
    if isinstance(error, HTTPStatusError):
        code = error.status
        text = f"{what}: HTTP {code} {_STATUS_DETAIL.get(code, '')}".rstrip()
        if code in (401, 403):
            hint = (
                "the credentials for this registry were refused"
                if has_login
                else "no credentials for this registry (--image-docker-config, --image-pull-secrets)"
            )
            return RegistryUnauthorizedError(repository, f"{text}; {hint}")
        if code == 404:
            return ImageNotFoundError(repository, text)
        if code == 429:
            return RegistryRateLimitedError(repository, text)
        if error.temporary:
            return RegistryUnreachableError(repository, text)
        return RegistryAnswerError(repository, text)
    if isinstance(error, HTTPAddressRefusedError):
        return RegistryAddressRefusedError(
            repository,
            f"{what}: {error.detail}; registries may not be link-local (metadata) addresses, nor "
            "loopback or private ones in lockdown mode (--allow-internal-urls lifts this)",
        )
    if isinstance(error, HTTPSizeLimitError):
        return RegistryAnswerError(repository, f"{what}: larger than the limit of {error.limit} bytes")
    if isinstance(error, HTTPTLSVerifyError):
        return RegistryUnreachableError(repository, f"{what}: {error.detail}")
    if error.temporary:
        return RegistryUnreachableError(repository, f"{what}: unreachable ({error.detail})")
    return RegistryAnswerError(repository, f"{what}: {error.detail}")
