"""Every HTTP request of the product, through ``requests``: deadlines, size limits, TLS, a
session per credential identity, and failures classified ONCE into :class:`HTTPError`.

Place in the data flow: the chart sources (``charts.helmrepo``: repository indexes and chart
archives; ``charts.oci``: the registry API and its token flow) and the values reader
(``release.values_reader``: ``externalSourceRef`` URLs) call :class:`HTTPClient`; the
composition root (``agent``) builds one and hands it to all three. Nothing else in the package
imports ``requests`` (import-linter holds that). Callers turn the error classes below into their
own errors by type and status code, never by text.

    HTTPError (GitopsHelmError)           .url (redacted), .detail
    ├── HTTPConnectionError      temporary  refused, name resolution, reset, body cut short,
    │   │                                   TLS handshake failure (other than verification)
    │   ├── HTTPNameResolutionError         the host name does not resolve (DNS)
    │   └── HTTPConnectionRefusedError      nothing accepts connections on host:port
    ├── HTTPTimeoutError         temporary  connect or read timeout (Limits.connect_s / read_s)
    │   └── HTTPDeadlineError    temporary  the exchange took longer than Limits.total_s
    ├── HTTPStatusError          by status  .status, .retry_after, .challenge; temporary for
    │                                       408, 425, 429 and 5xx, permanent for the rest
    ├── HTTPTLSVerifyError       permanent  the server's certificate could not be verified
    ├── HTTPNoTLSError           permanent  an https:// URL, and the server answers in plain HTTP
    ├── HTTPSizeLimitError       permanent  the body is larger than Limits.max_bytes
    ├── HTTPAddressRefusedError  permanent  the host resolves to an address the Destinations
    │                                       policy refuses (loopback, link-local, internal)
    └── HTTPInvalidRequestError  permanent  invalid URL or scheme, too many redirects, a
                                            redirect to another scheme under a policy

Sessions. A ``requests.Session`` keeps cookies and a connection pool, so one is never shared
between credentials, and it never adds credentials of its own (``requests`` reads ``~/.netrc``
for a request without any; ours do not). :class:`HTTPClient` keeps one session per (origin of the URL,
:attr:`Identity.key`); the key is a salted hash of everything that authenticates the caller or
decides whom it trusts (basic credentials, bearer token, client certificate, CA bundle,
verification). A request carries only the credentials of the identity it names, and callers may
not pass an ``Authorization`` header. The keying lives here, not in each caller, so that the rule
holds for every caller by construction and no caller keeps session state; the key holds no
secret in clear (the salt is per process). Sessions live in a bounded LRU; an evicted session is
closed once no request uses it any more.

Deadlines. Every request has a connect timeout, a read timeout (the longest wait for the next
bytes) and a total deadline, checked after every response (redirect hops included) and while
the body streams. The body is read with ``read1`` (what one receive returns), so a
server that drips its body a byte at a time is cut off at the first read after
``Limits.total_s``: at most ``read_s`` late. (The status line and headers are bounded by the
read timeout per receive and by http.client's limits on header lines.)

Destinations. A caller that fetches a URL written by a user (``externalSourceRef``, a chart
repository, an OCI registry) passes a :class:`Destinations` policy. Then only http and https
are spoken, a redirect may not change the scheme, and the addresses a host name resolves to are
checked when the connection is made: the name is resolved once, every address it resolves to
is checked (one refused address refuses the request), and the socket connects to one of exactly
those addresses, so a DNS answer that changes between a check and the connect (rebinding)
cannot slip through. Every connection is checked when
it is opened, so every redirect hop is checked the same way. Such a session ignores proxy
settings from the environment (a proxy would resolve the name itself, out of reach of the check),
unless the policy says ``via_proxy``: then a request the environment sends through a proxy has
its destination checked on our own resolution before each hop, and the proxy resolves it again.

Registry requests. A caller that talks to a chart repository or a registry names the kind of
request (``registry=``: ``helm-index``, ``helm-chart``, ``oci``, ``image``); each such request
(one per call, redirects included) is counted here, where its outcome is classified, in
``gitops_helm_registry_requests_total`` by kind, host (``host[:port]``, never a path) and
outcome (:func:`request_outcome`).

Size limits apply to the decoded body while it streams, before anything is buffered, and up
front from ``Content-Length``. Messages and logs show URLs without userinfo and with a query
string replaced by ``?...``; credentials are never logged.
"""

from __future__ import annotations

import functools
import hashlib
import http.client
import ipaddress
import os
import socket
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any, cast
from urllib.parse import urljoin, urlsplit, urlunsplit

import requests
import requests.adapters
import requests.auth
import urllib3.connection
import urllib3.connectionpool
import urllib3.exceptions
from requests.utils import parse_header_links, select_proxy

from gitops_helm import log as logging
from gitops_helm import metrics
from gitops_helm.errors import GitopsHelmError

__all__ = [
    "ANONYMOUS",
    "Destinations",
    "Exchange",
    "HTTPAddressRefusedError",
    "HTTPClient",
    "HTTPConnectionError",
    "HTTPConnectionRefusedError",
    "HTTPDeadlineError",
    "HTTPError",
    "HTTPInvalidRequestError",
    "HTTPNameResolutionError",
    "HTTPSettings",
    "HTTPSizeLimitError",
    "HTTPStatusError",
    "HTTPTLSVerifyError",
    "HTTPTimeoutError",
    "Headers",
    "Identity",
    "Limits",
    "Response",
    "Stream",
    "check_destination",
    "origin",
    "redact_url",
    "request_outcome",
]

_log = logging.get(__name__)
_DEFAULT_PORTS = {"http": 80, "https": 443}
_TEMPORARY_STATUS = frozenset({408, 425, 429})
_SALT = os.urandom(16)


# ---------------------------------------------------------------------------------------------
# URLs


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) with the default port filled in: the unit of session keys and of
    the chart sources' credentials rule."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower(), port or _DEFAULT_PORTS.get(scheme)


def _netloc(scheme: str, host: str, port: int | None) -> str:
    if ":" in host:
        host = f"[{host}]"
    return host if port is None or port == _DEFAULT_PORTS.get(scheme) else f"{host}:{port}"


def redact_url(url: str) -> str:
    """A URL safe for logs and messages: userinfo dropped, a query string shown as ``?...``."""
    parts = urlsplit(url.strip())
    scheme, host, port = origin(url)
    return urlunsplit((scheme, _netloc(scheme, host, port), parts.path, "..." if parts.query else "", ""))


# ---------------------------------------------------------------------------------------------
# errors


class HTTPError(GitopsHelmError):
    """An HTTP exchange failed. ``url`` is redacted; ``detail`` says what happened, without it."""

    temporary: bool = True

    def __init__(self, url: str, detail: str) -> None:
        self.url = redact_url(url)
        self.detail = detail
        super().__init__(f"GET {self.url}: {detail}")


class HTTPConnectionError(HTTPError):
    """The connection could not be made or broke (the server may answer later)."""


class HTTPNameResolutionError(HTTPConnectionError):
    """The URL's host name does not resolve (DNS); temporary, as a DNS outage ends too."""


class HTTPConnectionRefusedError(HTTPConnectionError):
    """Nothing accepts connections on the URL's host and port."""


class HTTPTimeoutError(HTTPError):
    """The connect or read timeout expired."""


class HTTPDeadlineError(HTTPTimeoutError):
    """The whole exchange took longer than its total deadline (``Limits.total_s``)."""

    def __init__(self, url: str, total_s: float) -> None:
        self.total_s = total_s
        super().__init__(url, f"took longer than {total_s:g}s")


class HTTPStatusError(HTTPError):
    """The server answered with a status other than 2xx or 304.

    ``retry_after``: seconds from a ``Retry-After`` header (delta or HTTP date), if any;
    ``challenge``: the ``WWW-Authenticate`` header of a 401, if any.
    """

    def __init__(
        self, url: str, status: int, *, retry_after: float | None = None, challenge: str | None = None
    ) -> None:
        self.status = status
        self.retry_after = retry_after
        self.challenge = challenge
        self.temporary = status in _TEMPORARY_STATUS or status >= 500
        super().__init__(url, f"HTTP {status}")


class HTTPTLSVerifyError(HTTPError):
    """The server's TLS certificate could not be verified (unknown CA, wrong host name, expired)."""

    temporary = False


class HTTPNoTLSError(HTTPError):
    """The server does not speak TLS: an ``https://`` request got a plain-HTTP answer (the TLS
    record layer read ``HTTP/1.1 400`` as a record). Retrying will not help; plain HTTP might."""

    temporary = False


class HTTPSizeLimitError(HTTPError):
    """The body is larger than the caller's limit."""

    temporary = False

    def __init__(self, url: str, limit: int) -> None:
        self.limit = limit
        super().__init__(url, f"larger than the limit of {limit} bytes")


class HTTPInvalidRequestError(HTTPError):
    """The request cannot succeed as given: invalid URL or scheme, too many redirects."""

    temporary = False


class HTTPAddressRefusedError(HTTPError):
    """The host resolves to an address that the request's :class:`Destinations` refuses."""

    temporary = False


class _AddressRefused(Exception):
    """Raised inside a guarded connection; :func:`classify` turns it into
    :class:`HTTPAddressRefusedError` with the request's URL."""

    def __init__(self, host: str, address: str, kind: str) -> None:
        where = f"{host} is" if host == address else f"{host} resolves to {address},"
        super().__init__(f"{where} a {kind} address")
        self.host = host
        self.address = address
        self.kind = kind


# ---------------------------------------------------------------------------------------------
# what a request is made with


@dataclass(frozen=True)
class Limits:
    """Bounds of one exchange, from the caller's settings. Times in seconds, size in bytes."""

    connect_s: float
    read_s: float  # longest wait for the next bytes from the server
    total_s: float  # the whole exchange, body included
    max_bytes: int  # of the body, after content decoding


@dataclass(frozen=True)
class Identity:
    """Who the caller is to a server, and whom it trusts. Secret fields are not in ``repr``.

    TLS material is given as file paths (``client_cert`` = (certificate, key)). A bearer
    ``token`` replaces basic credentials; giving both is a programming error.
    """

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    client_cert: tuple[str, str] | None = None
    ca_file: str | None = None
    verify: bool = True

    def __post_init__(self) -> None:
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password must be given together")
        if self.token is not None and self.username is not None:
            raise ValueError("a bearer token and basic credentials exclude each other")

    @property
    def key(self) -> str:
        """A salted hash of every field: equal keys, same session. Useless outside this process."""
        h = hashlib.sha256(_SALT)
        cert = self.client_cert or ("", "")
        for part in (self.username, self.password, self.token, *cert, self.ca_file):
            data = b"\x00" if part is None else b"\x01" + part.encode()
            h.update(len(data).to_bytes(8, "big") + data)
        h.update(bytes([self.verify]))
        return h.hexdigest()


ANONYMOUS = Identity()


class Headers(Mapping[str, str]):
    """Response headers, looked up without regard to case."""

    def __init__(self, items: Mapping[str, str]) -> None:
        self._items = {k.lower(): v for k, v in items.items()}

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)


@dataclass(frozen=True)
class Response:
    """A complete response: status 2xx (or 304), headers and the whole body."""

    url: str  # the final URL, after redirects (not redacted: do not log it)
    status: int
    headers: Headers
    body: bytes

    @property
    def links(self) -> dict[str, str]:
        """``Link`` header targets by ``rel`` (e.g. ``next`` for pagination)."""
        links = parse_header_links(self.headers.get("Link", ""))
        return {str(link["rel"]): str(link["url"]) for link in links if "rel" in link and "url" in link}


@dataclass(frozen=True)
class Exchange:
    """What an observer of :class:`HTTPClient` learns about each response: no headers, no body."""

    method: str
    url: str  # redacted
    status: int
    seconds: float


@dataclass(frozen=True)
class HTTPSettings:
    user_agent: str = "gitops-helm"
    max_sessions: int = 64  # sessions kept (LRU); one per origin and credential identity
    chunk_bytes: int = 64 * 1024  # largest piece of body handed out at once
    # distinct hosts named in gitops_helm_registry_requests_total; later ones are counted as
    # "other" (a registry names its token host itself, so a hostile one could add series at will)
    max_metric_hosts: int = 128


# Cloud metadata endpoints outside the link-local ranges (AWS over IPv6, Alibaba Cloud).
_METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in ("fd00:ec2::254", "100.100.100.200"))
# IPv6 addresses that a NAT64 gateway turns into the IPv4 address in their last 32 bits
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _effective(
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """The address a connection to ``ip`` really reaches when it embeds an IPv4 address."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip in _NAT64:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if ip.sixtofour is not None:
            return ip.sixtofour
    return ip


@dataclass(frozen=True)
class Destinations:
    """Which addresses a request may connect to (see "Destinations" in the module docstring).

    ``refuse_local``: loopback, unspecified (0.0.0.0 reaches the host itself), link-local and
    the cloud metadata endpoints. ``refuse_internal``: additionally every address that is not
    globally routable (private ranges, shared/CGNAT space, a cluster's pod and service ranges,
    reserved and documentation ranges). With neither set every address is allowed; the scheme
    and redirect rules hold regardless.
    """

    refuse_local: bool = True
    refuse_internal: bool = False
    # link-local and the cloud metadata endpoints only, loopback allowed (implied by the others):
    # chart sources outside lockdown, where a repository on the agent's own host is ordinary
    refuse_link_local: bool = False
    # an environment proxy (HTTPS_PROXY, ...) may carry the request: the destination is then
    # checked against our own resolution of its host before each hop, and the proxy resolves it
    # again (a DNS answer that changes in between is out of reach; without a proxy it is not)
    via_proxy: bool = False
    # a redirect from http to https is followed (repositories commonly send one); https to http
    # never is
    https_upgrade: bool = False

    @property
    def checks_addresses(self) -> bool:
        return self.refuse_local or self.refuse_internal or self.refuse_link_local

    def refusal(self, address: str) -> str | None:
        """Why ``address`` (an IP address as getaddrinfo gives it) is refused, or None."""
        ip = _effective(ipaddress.ip_address(address.split("%", 1)[0]))  # without an IPv6 scope id
        if (self.refuse_local or self.refuse_internal) and (ip.is_loopback or ip.is_unspecified):
            return "loopback"
        if self.checks_addresses and (ip.is_link_local or ip in _METADATA_ADDRESSES):
            return "link-local (cloud metadata)"
        if self.refuse_internal and not ip.is_global:
            return "private or cluster-internal"
        return None


class Stream:
    """An open response; its body is read piece by piece within its limits (:meth:`HTTPClient.stream`)."""

    def __init__(
        self, response: requests.Response, url: str, limits: Limits, deadline: float, chunk_bytes: int
    ) -> None:
        self._response = response
        self._url = url
        self._limits = limits
        self._deadline = deadline
        self._chunk_bytes = chunk_bytes
        self.status = response.status_code
        self.headers = Headers(response.headers)
        self.url = str(response.url)

    def iter_bytes(self) -> Iterator[bytes]:
        """The decoded body; raises :class:`HTTPSizeLimitError`, :class:`HTTPDeadlineError`,
        or any other :class:`HTTPError` when the connection breaks while reading."""
        raw = self._response.raw
        size = 0
        while True:
            if time.monotonic() > self._deadline:
                raise HTTPDeadlineError(self._url, self._limits.total_s)
            try:
                chunk = raw.read1(self._chunk_bytes, decode_content=True)
            except Exception as exc:
                raise classify(exc, self._url) from exc
            if not chunk:
                return
            size += len(chunk)
            if size > self._limits.max_bytes:
                raise HTTPSizeLimitError(self._url, self._limits.max_bytes)
            if time.monotonic() > self._deadline:
                raise HTTPDeadlineError(self._url, self._limits.total_s)
            yield chunk

    def read(self) -> bytes:
        return b"".join(self.iter_bytes())


# ---------------------------------------------------------------------------------------------
# classification


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception it wraps: causes, contexts, arguments, urllib3's ``reason``."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        e = todo.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo += [a for a in e.args if isinstance(a, BaseException)]
        todo += [
            x
            for x in (e.__cause__, e.__context__, getattr(e, "reason", None))
            if isinstance(x, BaseException)
        ]


_CONNECTION_DETAILS: tuple[tuple[type[BaseException], str], ...] = (
    (urllib3.exceptions.NameResolutionError, "name resolution failed"),
    (socket.gaierror, "name resolution failed"),
    (ConnectionRefusedError, "connection refused"),
    (ConnectionResetError, "connection reset"),
    (http.client.RemoteDisconnected, "server closed the connection"),
    (http.client.IncompleteRead, "body cut short"),
    (urllib3.exceptions.ProxyError, "proxy failed"),
    (ssl.SSLError, "TLS handshake failed"),
    (urllib3.exceptions.SSLError, "TLS handshake failed"),
    (urllib3.exceptions.DecodeError, "content decoding failed"),
    (urllib3.exceptions.ProtocolError, "connection broken"),
)


# OpenSSL's reasons when the "TLS record" it read was a plain-HTTP answer (by OpenSSL version)
_PLAIN_HTTP_REPLY = frozenset({"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG"})


def classify(exc: BaseException, url: str) -> HTTPError:
    """The one mapping of ``requests``/``urllib3``/socket failures to :class:`HTTPError`.

    By exception type and the chain of wrapped exceptions, never by message text. Raises
    ``exc`` itself when it is none of those (a bug, not an outcome).
    """
    if isinstance(exc, HTTPError):
        return exc
    chain = list(_chain(exc))
    refused = next((e for e in chain if isinstance(e, _AddressRefused)), None)
    if refused is not None:
        return HTTPAddressRefusedError(url, f"refused: {refused}")
    verify = next((e for e in chain if isinstance(e, ssl.SSLCertVerificationError)), None)
    if verify is not None:
        reason = getattr(verify, "verify_message", "") or "unknown reason"
        return HTTPTLSVerifyError(url, f"TLS certificate verification failed ({reason})")
    plain = next((e for e in chain if isinstance(e, ssl.SSLError) and e.reason in _PLAIN_HTTP_REPLY), None)
    if plain is not None:
        return HTTPNoTLSError(url, f"the server does not speak TLS (TLS handshake failed: {plain.reason})")
    if isinstance(exc, requests.TooManyRedirects):
        return HTTPInvalidRequestError(url, "too many redirects")
    if isinstance(
        exc,
        requests.exceptions.InvalidURL
        | requests.exceptions.InvalidSchema
        | requests.exceptions.MissingSchema
        | requests.exceptions.URLRequired,
    ):
        return HTTPInvalidRequestError(url, "invalid URL")
    if isinstance(exc, requests.exceptions.InvalidHeader):
        return HTTPInvalidRequestError(url, "invalid request header")
    if isinstance(exc, requests.ConnectTimeout):
        return HTTPTimeoutError(url, "connect timed out")
    if isinstance(exc, requests.Timeout | urllib3.exceptions.ReadTimeoutError | TimeoutError):
        return HTTPTimeoutError(url, "read timed out")
    if isinstance(
        exc, requests.RequestException | urllib3.exceptions.HTTPError | OSError | http.client.HTTPException
    ):
        detail = next(
            (text for kind, text in _CONNECTION_DETAILS if any(isinstance(e, kind) for e in chain)),
            f"connection failed ({type(exc).__name__})",
        )
        if any(isinstance(e, urllib3.exceptions.NameResolutionError | socket.gaierror) for e in chain):
            return HTTPNameResolutionError(url, detail)
        if any(isinstance(e, ConnectionRefusedError) for e in chain):
            return HTTPConnectionRefusedError(url, detail)
        return HTTPConnectionError(url, detail)
    raise exc


def request_outcome(error: HTTPError) -> str:
    """The outcome label of a failed request in ``gitops_helm_registry_requests_total``: one of
    a small, closed set (``unauthorized``, ``not-found``, ``rate-limited``, ``tls``,
    ``unreachable``, ``error``), so the series stay bounded."""
    if isinstance(error, HTTPStatusError):
        if error.status in (401, 403):
            return "unauthorized"
        return {404: "not-found", 429: "rate-limited"}.get(error.status, "error")
    if isinstance(error, HTTPTLSVerifyError | HTTPNoTLSError):
        return "tls"
    return "unreachable" if error.temporary else "error"


#: a ``Retry-After`` longer than this is read as this (a hostile or broken server may send a
#: number of any length; ``float`` would make it infinite)
MAX_RETRY_AFTER_S = 86_400.0


def _retry_after(value: str | None, now: float) -> float | None:
    """Seconds from a ``Retry-After`` value: delta-seconds or an HTTP date (never negative, at
    most :data:`MAX_RETRY_AFTER_S`)."""
    text = (value or "").strip()
    # ASCII only: a header is decoded as latin-1, and "\u00b2" (byte 0xB2) is a digit to
    # str.isdigit() that float() refuses
    if text.isascii() and text.isdigit():
        return min(float(text), MAX_RETRY_AFTER_S)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(max(0.0, when.timestamp() - now), MAX_RETRY_AFTER_S)


# ---------------------------------------------------------------------------------------------
# guarded connections (Destinations)


def _resolve_checked(host: str, port: int, policy: Destinations) -> list[Any]:
    """Resolve ``host`` once; refuse it when any of its addresses is refused."""
    infos = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
    for *_, sockaddr in infos:
        kind = policy.refusal(str(sockaddr[0]))
        if kind is not None:
            raise _AddressRefused(host, str(sockaddr[0]), kind)
    return infos


def check_destination(url: str, policy: Destinations) -> None:
    """Refuse ``url`` now when its host resolves to an address ``policy`` refuses.

    For a connection this module does not make itself (``git`` fetching an https chart
    repository): the check is on our resolution, and the other program resolves the name again,
    so a DNS answer that changes in between is not caught. Connections made here are checked
    when they are made instead (see "Destinations" in the module docstring). Raises
    :class:`HTTPAddressRefusedError`, or :class:`HTTPConnectionError` when the name does not
    resolve."""
    _, host, port = origin(url)
    if not policy.checks_addresses or not host:
        return
    try:
        _resolve_checked(host.strip("[]"), port or 0, policy)
    except _AddressRefused as exc:
        raise HTTPAddressRefusedError(url, f"refused: {exc}") from None
    except OSError as exc:
        raise HTTPNameResolutionError(url, "name resolution failed") from exc


def _connect_checked(
    host: str, port: int, timeout: Any, source_address: Any, options: Any, policy: Destinations
) -> socket.socket:
    """Resolve ``host`` once, refuse it when any address is refused, connect to a checked one."""
    infos = _resolve_checked(host, port, policy)
    last: OSError | None = None
    for family, socktype, proto, _, sockaddr in infos:
        sock = socket.socket(family, socktype, proto)
        try:
            for option in options or ():
                sock.setsockopt(*option)
            if isinstance(timeout, int | float):
                sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            last = exc
            sock.close()
    raise last or OSError(f"{host} resolves to no address")


@functools.cache
def _guarded_pools(
    policy: Destinations,
) -> dict[str, type[urllib3.connectionpool.HTTPConnectionPool]]:
    """Connection pool classes whose connections check ``policy`` when they connect."""

    def new_conn(conn: urllib3.connection.HTTPConnection) -> socket.socket:
        try:
            return _connect_checked(
                conn._dns_host, conn.port, conn.timeout, conn.source_address, conn.socket_options, policy
            )
        except socket.gaierror as exc:
            raise urllib3.exceptions.NameResolutionError(conn.host, conn, exc) from exc
        except TimeoutError as exc:
            raise urllib3.exceptions.ConnectTimeoutError(
                conn, f"connecting to {conn.host} timed out"
            ) from exc
        except OSError as exc:
            raise urllib3.exceptions.NewConnectionError(conn, f"failed to connect: {exc}") from exc

    class Plain(urllib3.connection.HTTPConnection):
        def _new_conn(self) -> socket.socket:
            return new_conn(self)

    class Secure(urllib3.connection.HTTPSConnection):
        def _new_conn(self) -> socket.socket:
            return new_conn(self)

    class PlainPool(urllib3.connectionpool.HTTPConnectionPool):
        ConnectionCls = Plain

    class SecurePool(urllib3.connectionpool.HTTPSConnectionPool):
        ConnectionCls = Secure

    return {"http": PlainPool, "https": SecurePool}


class _GuardedAdapter(requests.adapters.HTTPAdapter):
    def __init__(self, policy: Destinations) -> None:
        self._policy = policy
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        # an instance attribute: the module-wide default stays untouched
        self.poolmanager.pool_classes_by_scheme = _guarded_pools(self._policy)

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        # through a proxy (only under ``via_proxy``) the connection made is to the proxy, which
        # the operator chose: check the destination itself first, at every hop
        proxies = kwargs.get("proxies") or {}
        if proxies and select_proxy(str(request.url), proxies):
            _, host, port = origin(str(request.url))
            _resolve_checked(host.strip("[]"), port or 0, self._policy)
        return super().send(request, *args, **kwargs)


class _NoAuth(requests.auth.AuthBase):
    """Sends nothing: set as a session's default, it keeps ``requests`` from reading ``~/.netrc``."""

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        return r


class _IdentitySession(requests.Session):
    """A session that sends only what its :class:`Identity` holds. ``requests`` would add the
    agent's ``~/.netrc`` (or ``$NETRC``) credentials to a request without its own, and to every
    redirect hop: the operator's login for a host would then go with a tenant's anonymous
    request. (Proxies from the environment are still used.)"""

    def __init__(self) -> None:
        super().__init__()
        self.auth = _NoAuth()

    def rebuild_auth(self, prepared_request: requests.PreparedRequest, response: requests.Response) -> None:
        # requests' own rule for a redirect, without its netrc lookup: credentials are dropped
        # when the hop leaves the original host
        previous = response.request.url if response.request is not None else None
        headers = prepared_request.headers
        target = prepared_request.url
        if "Authorization" not in headers or not previous or not target:
            return
        if self.should_strip_auth(previous, target):  # type: ignore[no-untyped-call]
            del headers["Authorization"]


class _GuardedSession(_IdentitySession):
    """A session under a :class:`Destinations` policy: checked connections, no proxy from the
    environment, and no redirect to another scheme."""

    def __init__(self, policy: Destinations) -> None:
        super().__init__()
        # with no address to check (``--allow-internal-urls``) the environment's proxy is kept: a
        # cluster that reaches the internet only through one still gets its values
        # a proxy is dropped unless the policy allows one (the destination is then checked
        # before each hop by the adapter, on our own resolution)
        self._checks = policy.checks_addresses and not policy.via_proxy
        self._https_upgrade = policy.https_upgrade
        if policy.checks_addresses:
            adapter = _GuardedAdapter(policy)
            self.mount("http://", adapter)
            self.mount("https://", adapter)

    def merge_environment_settings(self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any) -> Any:
        merged = super().merge_environment_settings(url, proxies, stream, verify, cert)
        if self._checks:
            merged["proxies"] = {}  # a proxy would resolve and connect out of the check's reach
        return merged

    def rebuild_proxies(self, prepared_request: requests.PreparedRequest, proxies: Any) -> dict[str, str]:
        if not self._checks:
            return cast(dict[str, str], super().rebuild_proxies(prepared_request, proxies))  # type: ignore[no-untyped-call]
        prepared_request.headers.pop("Proxy-Authorization", None)
        return {}  # the same for every redirect hop

    def get_redirect_target(self, resp: requests.Response) -> str | None:
        target = super().get_redirect_target(resp)
        if target is not None:
            here = str(resp.url)
            there = urlsplit(urljoin(here, target)).scheme.lower()
            upgrade = self._https_upgrade and (urlsplit(here).scheme.lower(), there) == ("http", "https")
            if there != urlsplit(here).scheme.lower() and not upgrade:
                resp.close()
                scheme = urlsplit(here).scheme.lower()
                raise HTTPInvalidRequestError(here, f"redirect from {scheme} to {there or '?'} refused")
        return target


# ---------------------------------------------------------------------------------------------
# the client


@dataclass
class _Session:
    session: requests.Session
    identity: Identity
    users: int = 0
    evicted: bool = False

    def request_options(self, headers: dict[str, str]) -> dict[str, Any]:
        """``headers`` plus the credentials and TLS options of this session's identity: a
        request never carries anything of another identity."""
        ident = self.identity
        if ident.token is not None:
            headers = {**headers, "Authorization": f"Bearer {ident.token}"}
        basic = (ident.username, ident.password) if ident.username and ident.password is not None else None
        verify: bool | str = ident.ca_file if ident.verify and ident.ca_file else ident.verify
        return {"headers": headers, "auth": basic, "cert": ident.client_cert, "verify": verify}


class HTTPClient:
    """The HTTP client of the process. Thread-safe; share one (see the module docstring).

    ``on_exchange`` is called after each response with an :class:`Exchange` (for metrics or
    tests).
    """

    def __init__(
        self, settings: HTTPSettings | None = None, *, on_exchange: Callable[[Exchange], None] | None = None
    ) -> None:
        self.settings = settings or HTTPSettings()
        self._on_exchange = on_exchange
        self._lock = threading.Lock()
        self._sessions: OrderedDict[tuple[str, str, int | None, str, Destinations | None], _Session] = (
            OrderedDict()
        )
        self._metric_hosts: set[str] = set()

    def close(self) -> None:
        """Close every session (a later request opens a new one)."""
        with self._lock:
            entries = list(self._sessions.values())
            self._sessions.clear()
        for entry in entries:
            entry.session.close()

    def __enter__(self) -> HTTPClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # public API ---------------------------------------------------------------------------

    def get(
        self,
        url: str,
        *,
        limits: Limits,
        identity: Identity = ANONYMOUS,
        headers: Mapping[str, str] | None = None,
        destinations: Destinations | None = None,
        registry: str | None = None,
    ) -> Response:
        """GET ``url`` and read the whole body within ``limits``. A status other than 2xx or 304
        raises :class:`HTTPStatusError`; every other failure another :class:`HTTPError`.
        ``registry``: see :meth:`stream`."""
        with self.stream(
            url,
            limits=limits,
            identity=identity,
            headers=headers,
            destinations=destinations,
            registry=registry,
        ) as stream:
            body = stream.read()
            return Response(stream.url, stream.status, stream.headers, body)

    @contextmanager
    def stream(
        self,
        url: str,
        *,
        limits: Limits,
        identity: Identity = ANONYMOUS,
        headers: Mapping[str, str] | None = None,
        destinations: Destinations | None = None,
        registry: str | None = None,
    ) -> Iterator[Stream]:
        """GET ``url`` and hand out the open response; its body is read with
        :meth:`Stream.iter_bytes` inside the ``with`` block (the connection is released after).

        With ``destinations``, only http(s) URLs are fetched and every connection, redirects
        included, is checked against it (see the module docstring). With ``registry`` (the kind
        of registry request), the request is counted in ``gitops_helm_registry_requests_total``."""
        if headers and any(name.lower() == "authorization" for name in headers):
            raise ValueError("credentials are given as an Identity, never as a header")
        if destinations is not None and origin(url)[0] not in _DEFAULT_PORTS:
            raise HTTPInvalidRequestError(url, "only http and https URLs are allowed")
        deadline = time.monotonic() + limits.total_s
        entry = self._acquire(url, identity, destinations)
        outcome = "ok"
        try:
            options = entry.request_options({"User-Agent": self.settings.user_agent, **(headers or {})})
            started = time.monotonic()

            def within_deadline(hop: requests.Response, *args: Any, **kwargs: Any) -> None:
                # every response, redirect hops included: a chain of slow redirects ends at the
                # total deadline, not after max_redirects x (connect + read) timeouts
                if time.monotonic() > deadline:
                    hop.close()
                    raise HTTPDeadlineError(url, limits.total_s)

            try:
                response = entry.session.get(
                    url,
                    timeout=(limits.connect_s, limits.read_s),
                    stream=True,
                    allow_redirects=True,
                    hooks={"response": within_deadline},
                    **options,
                )
            except Exception as exc:
                error = classify(exc, url)
                _log.debug("GET failed", url=error.url, error=error.detail)
                raise error from exc
            with response:
                self._observe(url, response.status_code, time.monotonic() - started)
                _check_status(response, url)
                _check_length(response, url, limits.max_bytes)
                yield Stream(response, url, limits, deadline, self.settings.chunk_bytes)
        except HTTPError as exc:
            outcome = request_outcome(exc)
            raise
        finally:
            self._release(entry)
            if registry is not None:
                labels = {"kind": registry, "host": self._metric_host(url), "outcome": outcome}
                metrics.REGISTRY_REQUESTS.labels(**labels).inc()

    def _metric_host(self, url: str) -> str:
        """``host[:port]`` of ``url`` for the metric's label, or ``other`` past the bound."""
        host = _netloc(*origin(url))
        with self._lock:
            if host in self._metric_hosts:
                return host
            if len(self._metric_hosts) < self.settings.max_metric_hosts:
                self._metric_hosts.add(host)
                return host
        return "other"

    # sessions -----------------------------------------------------------------------------

    def _acquire(self, url: str, identity: Identity, destinations: Destinations | None) -> _Session:
        scheme, host, port = origin(url)
        key = (scheme, host, port, identity.key, destinations)
        evicted: list[_Session] = []
        with self._lock:
            entry = self._sessions.get(key)
            if entry is None:
                session = _IdentitySession() if destinations is None else _GuardedSession(destinations)
                entry = self._sessions[key] = _Session(session, identity)
                while len(self._sessions) > self.settings.max_sessions:
                    _, old = self._sessions.popitem(last=False)
                    old.evicted = True
                    if old.users == 0:
                        evicted.append(old)
            self._sessions.move_to_end(key)
            entry.users += 1
        for old in evicted:
            old.session.close()
        return entry

    def _release(self, entry: _Session) -> None:
        with self._lock:
            entry.users -= 1
            close = entry.evicted and entry.users == 0
        if close:
            entry.session.close()

    def _observe(self, url: str, status: int, seconds: float) -> None:
        shown = redact_url(url)
        _log.debug("GET", url=shown, status=status, seconds=round(seconds, 3))
        if self._on_exchange is not None:
            self._on_exchange(Exchange("GET", shown, status, seconds))


def _check_status(response: requests.Response, url: str) -> None:
    code = response.status_code
    if 200 <= code < 300 or code == 304:
        return
    raise HTTPStatusError(
        url,
        code,
        retry_after=_retry_after(response.headers.get("Retry-After"), time.time()),
        challenge=response.headers.get("WWW-Authenticate") if code == 401 else None,
    )


def _check_length(response: requests.Response, url: str, max_bytes: int) -> None:
    length = response.headers.get("Content-Length", "")
    if length.isascii() and length.isdigit() and int(length) > max_bytes and response.status_code != 304:
        raise HTTPSizeLimitError(url, max_bytes)
