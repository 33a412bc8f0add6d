"""Helm repository chart source: repository index, version resolution, chart download.

Place in the data flow: the reconciler calls `HelmRepoClient.fetch(repository, name, version,
auth)` for a HelmRelease with `chart.repository`. The client

1. gets the repository index (`<repository>/index.yaml`): at most one request per repository and
   identity per `min_refresh_interval`; that request is conditional (`If-None-Match` /
   `If-Modified-Since`), so an unchanged index costs one 304 and no parsing. The reduced index
   is kept on disk (`<cache>/index/<fingerprint of URL and credentials>.{meta,entries}.json`)
   and parsed indexes stay in memory keyed by that and the sha256 of the index body;
2. resolves `version` (exact or a semver range, via `semver.select_version`) to one concrete
   version: callers compare that, so a range never causes a spurious upgrade;
3. downloads the chart archive into the content-addressed `cache.ChartCache` (a cached digest
   is never downloaded again), verifying the index's sha256 digest;
4. returns a `ChartArtifact` (name, version, digest, path of the `.tgz`) for the helm adapter.

Index state, in memory and on disk, is kept per repository *and* credentials (a keyed
fingerprint, `charts.identity`, whose key is `<cache>/identity.key`), so a caller without
credentials, or with others, never rides on an index that another caller fetched with them: it
makes its own request, which the server answers 401. The archive store is shared (same digest,
same bytes), but an identity reaches an archive only through its own index (the digest it
lists) or its own download of the chart URL. Parsing and resolution are the pure functions of
`repoindex`.

HTTP goes through `gitops_helm.adapters.http` (sessions per identity, deadlines, size limits,
TLS); this module retries its temporary errors with the delays of `HelmRepoSettings` and turns
every `HTTPError` into a `gitops_helm.charts.errors.ChartError` by type and status code.
Credentials follow Helm's rule (see `sends_credentials`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, TypeVar

from gitops_helm import log as logging
from gitops_helm.adapters.http import (
    Destinations,
    HTTPAddressRefusedError,
    HTTPClient,
    HTTPConnectionRefusedError,
    HTTPDeadlineError,
    HTTPError,
    HTTPInvalidRequestError,
    HTTPNameResolutionError,
    HTTPNoTLSError,
    HTTPSizeLimitError,
    HTTPStatusError,
    HTTPTimeoutError,
    HTTPTLSVerifyError,
    Identity,
    Limits,
    Stream,
)
from gitops_helm.charts.auth import (
    RepositoriesFile,
    RepositoryAuth,
    SecretFiles,
    http_identity,
    normalise_url,
    origin,
    redact_url,
)
from gitops_helm.charts.cache import ChartCache, is_sha256
from gitops_helm.charts.errors import (
    AddressRefusedError,
    ChartError,
    ChartNotFoundError,
    IndexFormatError,
    RepositoryAuthError,
    RepositoryError,
    RepositoryUnavailableError,
    SizeLimitError,
)
from gitops_helm.charts.identity import FingerprintKey
from gitops_helm.charts.repoindex import (
    ChartVersion,
    RepoIndex,
    ResolvedChart,
    index_url,
    parse_index,
    resolve_in_index,
    sends_credentials,
)

__all__ = ["ChartArtifact", "HelmRepoClient", "HelmRepoSettings"]

_log = logging.get(__name__)
_MiB = 1024 * 1024
_T = TypeVar("_T")


@dataclass(frozen=True)
class HelmRepoSettings:
    """Settings of the Helm repository source. Times in seconds, sizes in bytes."""

    cache_dir: Path
    connect_timeout: float = 10.0
    read_timeout: float = 30.0  # between two reads of the socket
    download_timeout: float = 300.0  # for a whole exchange (index or chart), body included
    # One delay per retry of a temporary error: attempts = len(retry_delays) + 1. A download that
    # ran out of `download_timeout` is not retried (the reconciler tries again later).
    retry_delays: tuple[float, ...] = (1.0, 3.0)
    max_retry_after: float = 30.0  # cap on a server's Retry-After
    min_refresh_interval: float = 60.0  # an index younger than this is used without a request
    max_index_bytes: int = 100 * _MiB
    max_chart_bytes: int = 20 * _MiB
    max_parsed_indexes: int = 16  # parsed indexes kept in memory (LRU)
    user_agent: str = "gitops-helm"
    # which addresses repositories may be reached at (None: any); see ``agent.chart_destinations``
    destinations: Destinations | None = None


@dataclass(frozen=True)
class ChartArtifact:
    """A downloaded chart: what the helm adapter installs and the release digest records."""

    name: str
    version: str
    digest: str  # "sha256:<hex>" of the .tgz
    path: Path


# ---------------------------------------------------------------------------------------------
# HTTP validators and the on-disk index cache


@dataclass(frozen=True)
class _IndexMeta:
    etag: str | None
    last_modified: str | None
    sha256: str  # of the index body; the key of the parsed index in memory and on disk

    def conditional_headers(self) -> dict[str, str]:
        headers = {}
        if self.etag:
            headers["If-None-Match"] = self.etag
        if self.last_modified:
            headers["If-Modified-Since"] = self.last_modified
        return headers


def _meta_from_response(headers: Mapping[str, str], sha256: str) -> _IndexMeta:
    """Validators to send next time. A `Last-Modified` less than one second older than the
    response's `Date` is weak (RFC 9110 8.8.2.2): the index may change again within that
    second without changing the header, so it is not used."""
    last_modified = headers.get("Last-Modified")
    try:
        modified = parsedate_to_datetime(last_modified or "")
        date = parsedate_to_datetime(headers.get("Date") or "")
        strong = (date - modified).total_seconds() >= 1
    except (TypeError, ValueError):
        strong = False
    return _IndexMeta(headers.get("ETag"), last_modified if strong else None, sha256)


class _DiskIndexCache:
    """`<dir>/<key>.meta.json` (validators) and `<key>.entries.json` (the reduced index)."""

    _FORMAT = 1

    def __init__(self, directory: Path) -> None:
        self._dir = directory

    def _write(self, path: Path, doc: object) -> None:
        self._dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=self._dir)
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(doc, fh, separators=(",", ":"))
            os.replace(tmp, path)
        finally:
            Path(tmp).unlink(missing_ok=True)

    def _read(self, path: Path) -> Any:
        try:
            doc = json.loads(path.read_bytes())
        except (OSError, ValueError):
            return None
        return doc if isinstance(doc, dict) and doc.get("format") == self._FORMAT else None

    def files(self, key: str) -> tuple[Path, ...]:
        return (self._dir / f"{key}.meta.json", self._dir / f"{key}.entries.json")

    def meta(self, key: str) -> _IndexMeta | None:
        doc = self._read(self._dir / f"{key}.meta.json")
        if doc is None or not isinstance(doc.get("sha256"), str):
            return None
        etag, modified = doc.get("etag"), doc.get("last_modified")
        return _IndexMeta(
            etag if isinstance(etag, str) else None,
            modified if isinstance(modified, str) else None,
            doc["sha256"],
        )

    def entries(self, key: str, sha256: str) -> RepoIndex | None:
        doc = self._read(self._dir / f"{key}.entries.json")
        if doc is None or doc.get("sha256") != sha256:
            return None
        try:
            return RepoIndex(
                {
                    name: tuple(ChartVersion(v, tuple(u), d, c) for v, u, d, c in vs)
                    for name, vs in doc["entries"].items()
                }
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            return None

    def save(self, key: str, url: str, meta: _IndexMeta, index: RepoIndex | None) -> None:
        """Write the validators, and the reduced index when given (before its validators)."""
        if index is not None:
            entries = {
                n: [[v.version, v.urls, v.digest, v.created] for v in vs] for n, vs in index.entries.items()
            }
            doc = {"format": self._FORMAT, "sha256": meta.sha256, "entries": entries}
            self._write(self._dir / f"{key}.entries.json", doc)
        fields = {"url": url, "etag": meta.etag, "last_modified": meta.last_modified, "sha256": meta.sha256}
        self._write(self._dir / f"{key}.meta.json", {"format": self._FORMAT, **fields})


# ---------------------------------------------------------------------------------------------
# the client


@dataclass
class _RepoState:
    """What one identity (repository URL + credentials) last saw of a repository index."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    meta: _IndexMeta | None = None
    checked_at: float | None = None


class HelmRepoClient:
    """Fetches charts from Helm repositories over HTTP(S). Thread-safe; share one per process.

    `repositories` (a parsed Helm `repositories.yaml`) supplies credentials for a repository
    when the caller passes none; credentials passed in (from a `chartPullSecret`) replace it.
    `http` is the process's HTTP client (one is made, and closed with this, when not given).
    `clock` (monotonic seconds) and `sleep` are injectable for tests.
    """

    def __init__(
        self,
        settings: HelmRepoSettings,
        *,
        http: HTTPClient | None = None,
        repositories: RepositoriesFile | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.cache = ChartCache(settings.cache_dir)
        self._http = http or HTTPClient()
        self._owns_http = http is None
        self._repositories = repositories
        self._clock = clock
        self._sleep = sleep
        self._files = SecretFiles()
        self._disk = _DiskIndexCache(settings.cache_dir / "index")
        self._fingerprints = FingerprintKey.load_or_create(settings.cache_dir / "identity.key")
        self._lock = threading.Lock()
        self._states: dict[str, _RepoState] = {}  # index key (repository + identity) -> state
        self._parsed: OrderedDict[tuple[str, str], RepoIndex] = OrderedDict()
        self._url_digests: dict[tuple[str, str], str] = {}  # for index entries without a digest
        self._downloads: dict[str, threading.Lock] = {}

    def close(self) -> None:
        self._files.close()
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> HelmRepoClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # public API ---------------------------------------------------------------------------

    def index(
        self, repository: str, auth: RepositoryAuth | None = None, *, refresh: bool = False
    ) -> RepoIndex:
        """The repository's index; `refresh` skips the `min_refresh_interval` shortcut."""
        return self._index(repository, self._auth(repository, auth), refresh)[0]

    def forget_idle(self, idle_s: float) -> None:
        """Drop the per-repository state not used for ``idle_s`` and the remembered digests of
        archives no longer cached (bounded memory when repositories come and go)."""
        now = self._clock()
        with self._lock:
            for key, state in list(self._states.items()):
                idle = state.checked_at is None or now - state.checked_at > idle_s
                if idle and not state.lock.locked():
                    del self._states[key]
            # only whether the archive is still there: verifying it (hashing up to 20 MiB each)
            # is for the fetch that uses it, not for a sweep that holds every fetch's lock
            for identity, digest in list(self._url_digests.items()):
                if not self.cache.archive_path(digest).is_file():
                    del self._url_digests[identity]

    def index_files(self, repository: str, auth: RepositoryAuth | None = None) -> tuple[Path, ...]:
        """The files in which the index of ``repository``, as seen with ``auth`` (or the
        repositories file's credentials when None), is cached on disk."""
        return self._disk.files(self._index_key(repository, self._auth(repository, auth)))

    def identity_key(self, repository: str, auth: RepositoryAuth | None = None) -> str:
        """Names the index of ``repository`` as seen with ``auth`` (or the repositories file's
        credentials when None): equal keys share one index state, different credentials never do."""
        return self._index_key(repository, self._auth(repository, auth))

    def resolve(
        self, repository: str, name: str, version: str, auth: RepositoryAuth | None = None
    ) -> ResolvedChart:
        """Resolve `version` (exact or a range) to the concrete version in the repository.

        A miss on an index served from memory is retried once after a conditional refresh,
        so a version published a moment ago is found without waiting for the interval.
        """
        auth = self._auth(repository, auth)
        index, requested = self._index(repository, auth, False)
        try:
            return resolve_in_index(index, repository, name, version)
        except ChartNotFoundError:
            if requested:
                raise
        return resolve_in_index(self._index(repository, auth, True)[0], repository, name, version)

    def fetch(
        self, repository: str, name: str, version: str, auth: RepositoryAuth | None = None
    ) -> ChartArtifact:
        """Resolve and download a chart (or find it in the cache); see the module docstring."""
        auth = self._auth(repository, auth)
        try:
            chart = self.resolve(repository, name, version, auth)
        except ChartNotFoundError:
            raise  # names the chart already
        except ChartError as exc:  # the index failed: say which chart it was wanted for
            shown = version if len(version) <= 64 else version[:61] + "..."  # a hostile one is long
            error = type(exc)(f'chart "{name}" version "{shown}": {exc}', retry_after=exc.retry_after)
            raise error from exc
        what = f'chart "{name}" version "{chart.version}" from {redact_url(chart.url)}'
        if chart.digest is not None and not is_sha256(chart.digest):
            raise IndexFormatError(f"{what}: the index has an invalid digest")
        identity = (self._fingerprint(auth), chart.url)
        cached = self._cached(chart.digest or self._url_digests.get(identity))
        if cached is None:
            with self._lock:
                lock = self._downloads.setdefault(chart.url, threading.Lock())
            with lock:  # one download per URL at a time; the others find it cached
                cached = self._cached(chart.digest or self._url_digests.get(identity))
                if cached is None:
                    cached = self._download(repository, chart, auth, what)
                    self._url_digests[identity] = cached[0]
            with self._lock:  # late waiters hold the lock object; newcomers find the cache
                self._downloads.pop(chart.url, None)
        return ChartArtifact(name, chart.version, f"sha256:{cached[0]}", cached[1])

    def _cached(self, digest: str | None) -> tuple[str, Path] | None:
        path = self.cache.lookup(digest) if digest else None
        return None if digest is None or path is None else (digest, path)

    # index --------------------------------------------------------------------------------

    def _auth(self, repository: str, auth: RepositoryAuth | None) -> RepositoryAuth | None:
        scheme, host, _ = origin(repository)
        if scheme not in ("http", "https") or not host:
            raise RepositoryError(
                f"unsupported Helm repository URL {redact_url(repository)!r}: expected http:// or https://"
            )
        if auth is None and self._repositories is not None:
            auth = self._repositories.auth_for(repository)
        return auth

    def _fingerprint(self, auth: RepositoryAuth | None) -> str:
        return (auth or RepositoryAuth()).fingerprint(self._fingerprints)  # anonymous: no fields

    def _index_key(self, repository: str, auth: RepositoryAuth | None) -> str:
        """The key of a repository's index as one identity sees it (memory and file names)."""
        return self._fingerprints.fingerprint(["index", normalise_url(repository), self._fingerprint(auth)])

    def _state(self, key: str) -> _RepoState:
        with self._lock:
            return self._states.setdefault(key, _RepoState())

    def _parsed_get(self, key: str, sha256: str) -> RepoIndex | None:
        with self._lock:
            index = self._parsed.get((key, sha256))
            if index is not None:
                self._parsed.move_to_end((key, sha256))
            return index

    def _parsed_put(self, key: str, sha256: str, index: RepoIndex) -> None:
        with self._lock:
            self._parsed[(key, sha256)] = index
            self._parsed.move_to_end((key, sha256))
            while len(self._parsed) > self.settings.max_parsed_indexes:
                self._parsed.popitem(last=False)

    def _index(self, repository: str, auth: RepositoryAuth | None, refresh: bool) -> tuple[RepoIndex, bool]:
        """(index, whether a request was made)."""
        normalised = normalise_url(repository)
        key = self._index_key(repository, auth)
        state = self._state(key)
        with state.lock:
            now = self._clock()
            fresh = (
                state.checked_at is not None and now - state.checked_at < self.settings.min_refresh_interval
            )
            if fresh and not refresh and state.meta is not None:
                index = self._parsed_get(key, state.meta.sha256) or self._disk.entries(key, state.meta.sha256)
                if index is not None:
                    self._parsed_put(key, state.meta.sha256, index)
                    return index, False
            meta = state.meta or self._disk.meta(key)
            index, meta = self._revalidate(repository, key, redact_url(normalised), auth, meta)
            state.meta, state.checked_at = meta, now
            return index, True

    def _revalidate(
        self, repository: str, key: str, shown: str, auth: RepositoryAuth | None, meta: _IndexMeta | None
    ) -> tuple[RepoIndex, _IndexMeta]:
        url = index_url(repository)
        what = f"index of Helm repository {shown}"
        send = sends_credentials(repository, url, auth)
        identity = http_identity(auth, self._files, send_credentials=send)
        read = self._read_index
        hint = _auth_hint(auth, send)
        max_bytes = self.settings.max_index_bytes
        if meta is not None:
            cached = self._parsed_get(key, meta.sha256) or self._disk.entries(key, meta.sha256)
            if cached is not None:
                result = self._request(
                    url,
                    read,
                    meta.conditional_headers(),
                    identity,
                    what,
                    hint,
                    max_bytes=max_bytes,
                    index=True,
                )
                if result is None:  # 304 Not Modified
                    _log.debug("not modified", what=what)
                    self._parsed_put(key, meta.sha256, cached)
                    return cached, meta
                return self._store_index(key, shown, *result)
        result = self._request(url, read, {}, identity, what, hint, max_bytes=max_bytes, index=True)
        if result is None:
            raise RepositoryError(f"{what}: unexpected 304 Not Modified to an unconditional request")
        return self._store_index(key, shown, *result)

    def _store_index(
        self, key: str, shown: str, meta: _IndexMeta, body: bytes
    ) -> tuple[RepoIndex, _IndexMeta]:
        index = self._parsed_get(key, meta.sha256)
        if index is None:
            index = parse_index(body, source=shown, max_bytes=self.settings.max_index_bytes)
            _log.info("index fetched", repository=shown, bytes=len(body), charts=len(index.entries))
            self._disk.save(key, shown, meta, index)
        else:  # same body as a parsed index (e.g. a server without validators): no re-parse
            self._disk.save(key, shown, meta, None)
        self._parsed_put(key, meta.sha256, index)
        return index, meta

    def _read_index(self, response: Stream) -> tuple[_IndexMeta, bytes] | None:
        if response.status == 304:
            return None
        body = response.read()
        return _meta_from_response(response.headers, hashlib.sha256(body).hexdigest()), body

    # download -----------------------------------------------------------------------------

    def _download(
        self, repository: str, chart: ResolvedChart, auth: RepositoryAuth | None, what: str
    ) -> tuple[str, Path]:
        if origin(chart.url)[0] not in ("http", "https"):
            raise RepositoryError(f"{what}: unsupported URL scheme")
        send = sends_credentials(repository, chart.url, auth)
        identity = http_identity(auth, self._files, send_credentials=send)
        _log.info("downloading", what=what)
        # identity: the digest is of the bytes as published, not of a transfer encoding
        store = functools.partial(self._store_chart, chart=chart, what=what)
        headers = {"Accept-Encoding": "identity"}
        return self._request(
            chart.url,
            store,
            headers,
            identity,
            what,
            _auth_hint(auth, send),
            max_bytes=self.settings.max_chart_bytes,
            not_found=ChartNotFoundError,
        )

    def _store_chart(self, response: Stream, chart: ResolvedChart, what: str) -> tuple[str, Path]:
        limit = self.settings.max_chart_bytes
        return self.cache.store(response.iter_bytes(), expected=chart.digest, max_bytes=limit, what=what)

    # HTTP ---------------------------------------------------------------------------------

    def _limits(self, max_bytes: int) -> Limits:
        s = self.settings
        return Limits(s.connect_timeout, s.read_timeout, s.download_timeout, max_bytes)

    def _request(
        self,
        url: str,
        read: Callable[[Stream], _T],
        headers: dict[str, str],
        identity: Identity,
        what: str,
        auth_hint: str,
        *,
        max_bytes: int,
        not_found: type[ChartError] = RepositoryError,
        index: bool = False,
    ) -> _T:
        """GET `url` and `read` the response, retrying temporary errors per the settings.
        `index`: the repository's index (else a chart archive), for the messages and metrics."""
        headers = {"User-Agent": self.settings.user_agent, **headers}
        attempts = len(self.settings.retry_delays) + 1
        for attempt in range(1, attempts + 1):
            try:
                limits = self._limits(max_bytes)
                where = self.settings.destinations
                kind = "helm-index" if index else "helm-chart"
                with self._http.stream(
                    url, limits=limits, identity=identity, headers=headers, destinations=where, registry=kind
                ) as response:
                    return read(response)
            except HTTPError as exc:
                error = _chart_error(exc, what, auth_hint, not_found, index=index)
                error.__cause__ = exc
                retry = error.temporary and not isinstance(exc, HTTPDeadlineError)
            if not retry or attempt == attempts:
                raise error
            delay = self.settings.retry_delays[attempt - 1]
            if error.retry_after is not None:
                delay = max(delay, min(error.retry_after, self.settings.max_retry_after))
            _log.warning(
                "attempt failed",
                attempt=attempt,
                attempts=attempts,
                error=str(error),
                retry_in=round(delay, 1),
            )
            self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover


def _auth_hint(auth: RepositoryAuth | None, sent: bool) -> str:
    """What to say when the server refuses the request with 401 or 403."""
    if sent and auth is not None and (auth.username or auth.cert):
        where = auth.source or "the pull Secret or repositories file"
        return f"the credentials were refused: check the user name and password (or certificate) in {where}"
    if auth is not None and (auth.username or auth.cert):
        return "credentials are sent only to the repository's own host unless pass_credentials is set"
    return (
        "no credentials were given: set spec.chart.chartPullSecret (a Secret with username and "
        "password) or add the repository to the agent's --repositories-file"
    )


def _chart_error(
    error: HTTPError,
    what: str,
    auth_hint: str,
    not_found: type[ChartError],
    *,
    index: bool = False,
) -> ChartError:
    """The chart source's error for an HTTP failure, by the failure's type and status code, with
    what the user can do next (the field or file to check)."""
    _, host, port = origin(error.url)
    address = f"{host}:{port}" if port is not None else host
    if isinstance(error, HTTPAddressRefusedError):
        return AddressRefusedError.of("spec.chart.repository", f"{what}: {error.detail}")
    if isinstance(error, HTTPStatusError):
        code = error.status
        if code in (401, 403):
            return RepositoryAuthError(f"{what}: HTTP {code}; {auth_hint}")
        if code == 404 and index:
            return not_found(
                f"{what}: not found (HTTP 404) at {error.url}: is this a Helm repository? "
                "spec.chart.repository must be the URL under which index.yaml is served"
            )
        if code == 404:
            return not_found(f"{what}: not found (HTTP 404); the repository's index lists a missing archive")
        if error.temporary:
            return RepositoryUnavailableError(f"{what}: HTTP {code}", retry_after=error.retry_after)
        return RepositoryError(f"{what}: HTTP {code}")
    if isinstance(error, HTTPTLSVerifyError):
        return RepositoryError(
            f"{what}: the TLS certificate of {address} could not be verified; if a private CA signed "
            "it, give that CA as ca.crt in spec.chart.chartPullSecret or as caFile in the agent's "
            f"--repositories-file entry ({error.detail})"
        )
    if isinstance(error, HTTPNoTLSError):
        return RepositoryError(
            f"{what}: {address} does not speak TLS (it answered in plain HTTP); use an http:// "
            "URL in spec.chart.repository if it is meant to serve plain HTTP"
        )
    if isinstance(error, HTTPSizeLimitError):
        return SizeLimitError(f"{what} is larger than the limit of {error.limit} bytes")
    if isinstance(error, HTTPInvalidRequestError):
        return RepositoryError(f"{what}: {error.detail}")
    if isinstance(error, HTTPDeadlineError):
        return RepositoryUnavailableError(f"{what}: download took longer than {error.total_s}s")
    if isinstance(error, HTTPNameResolutionError):
        return RepositoryUnavailableError(
            f"{what}: the host {host!r} was not found (DNS); check the host name in spec.chart.repository"
        )
    if isinstance(error, HTTPConnectionRefusedError):
        return RepositoryUnavailableError(
            f"{what}: connection refused by {address}; check the host and port in "
            "spec.chart.repository and that the repository server is running"
        )
    if isinstance(error, HTTPTimeoutError):
        return RepositoryUnavailableError(
            f"{what}: {address} did not answer in time ({error.detail}); check the network path to it"
        )
    if error.temporary:
        return RepositoryUnavailableError(f"{what}: connection to {address} failed ({error.detail})")
    return RepositoryError(f"{what}: {error.detail}")
