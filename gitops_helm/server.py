"""The agent's HTTP endpoint: ``/healthz``, ``/readyz``, ``/metrics`` and the Git webhook.

Place in the flow: beside the controller and the Git source. ``POST /hooks/git`` accepts GitHub,
GitLab, Gitea/Forgejo and a generic format; a delivery is acted on only when its signature (or
token) verifies against the configured secret, and only when it concerns the synced repository
and branch; anything else gets 401 (bad or missing signature) or 202 with no action. Without a
configured secret the webhook answers 404: an unauthenticated trigger is never offered. A body
that is neither JSON nor a form gets 415, a chunked one 411; a verified replay triggers nothing
(409 for a delivery id already received, 202 for a commit already synced or being fetched; the
rule is in ``source.replay``).

Transport. Slow or idle clients must not be able to starve ``/healthz`` (a liveness probe that
fails restarts the agent) or exhaust threads. So no thread waits for a client: one thread
accepts connections and reads their request heads, and the bodies their ``Content-Length``
announces, without blocking (a selector); only a complete request gets a thread, so a thread
answers at once and is never held by a client that drips its head or its body. Bounds, from
:class:`~gitops_helm.config.HTTPServerSettings`:

- ``max_connections`` connections being read at once; a new one beyond that closes the oldest
  (a slow client is always older than a probe that sends its few bytes at once);
- ``read_timeout_s`` for the whole request, head and body, counted from the accept (408 then);
- ``max_head_bytes`` of request line and headers (431 beyond), ``max_body_bytes`` of a webhook
  body (413 beyond);
- ``max_pending_body_bytes`` of announced bodies being read at once, all connections together; a
  new one beyond that closes the oldest connections still receiving a body (a probe sends none);
- ``max_active`` requests answered at once; beyond that a request gets 503 at once.

One request per connection (HTTP/1.0), so a connection is never kept open between requests.
"""

from __future__ import annotations

import contextlib
import io
import selectors
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gitops_helm import log as logging
from gitops_helm.config import HTTPServerSettings
from gitops_helm.metrics import REGISTRY
from gitops_helm.source.replay import DeliveryMemory, ReplayKind, delivery_id
from gitops_helm.source.webhook import verify_webhook

log = logging.get(__name__)

_HEAD_END = b"\r\n\r\n"
# what a webhook body may be: JSON (every provider) or GitHub's form encoding (payload=<JSON>)
_WEBHOOK_MEDIA_TYPES = ("application/json", "application/x-www-form-urlencoded")


def announced_body(head: bytes, max_body_bytes: int) -> int:
    """The body length a request head announces, when the server should read it before answering:
    0 without a valid ``Content-Length`` or beyond ``max_body_bytes`` (the handler refuses those
    without reading)."""
    for line in head.split(b"\r\n")[1:]:
        name, sep, value = line.partition(b":")
        if sep and name.strip().lower() == b"content-length":
            text = value.strip()
            if not text.isdigit() or len(text) > 12:
                return 0
            length = int(text)
            return length if length <= max_body_bytes else 0
    return 0


@dataclass
class Hooks:
    """What the server asks of the rest of the agent."""

    ready: Callable[[], tuple[bool, str]]
    git_trigger: Callable[[], None] | None = None
    git_url: str = ""
    git_branch: Callable[[], str] | None = None
    webhook_secret: str | None = None
    before_metrics: Callable[[], None] | None = None
    alive: Callable[[], tuple[bool, str]] | None = None  # /healthz: every loop making progress
    git_head: Callable[[], str | None] | None = None  # the commit the Git source has checked out


class _RequestReader(io.RawIOBase):
    """The request as the handler reads it: the head already received, then the socket, until
    the request's deadline (a client that drips its body is cut off then)."""

    def __init__(self, head: bytes, sock: socket.socket, deadline: float) -> None:
        self._head = memoryview(head)
        self._sock = sock
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("request read deadline passed")
        self._sock.settimeout(left)
        return self._sock.recv_into(buffer)


class _Writer(io.BufferedIOBase):
    def __init__(self, sock: socket.socket, timeout_s: float) -> None:
        self._sock = sock
        self._timeout_s = timeout_s

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._sock.settimeout(self._timeout_s)  # a client that does not read is dropped after this
        self._sock.sendall(data)
        return len(data)


def make_handler(hooks: Hooks, limits: HTTPServerSettings) -> type[BaseHTTPRequestHandler]:
    deliveries = DeliveryMemory(limits.remembered_deliveries)

    class Handler(BaseHTTPRequestHandler):
        server_version = "gitops-helm"

        def setup(self) -> None:
            sock, head, deadline = self.request
            self.connection = sock
            self.rfile = io.BufferedReader(_RequestReader(head, sock, deadline))
            self.wfile = _Writer(sock, limits.read_timeout_s)

        def log_message(self, format: str, *args: object) -> None:
            log.debug("http", request=format % args)

        def _reply(self, code: int, body: bytes, ctype: str = "text/plain; charset=utf-8") -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                ok, why = hooks.alive() if hooks.alive else (True, "ok")
                self._reply(200 if ok else 503, (why + "\n").encode())
            elif path == "/readyz":
                ok, why = hooks.ready()
                self._reply(200 if ok else 503, (why + "\n").encode())
            elif path == "/metrics":
                if hooks.before_metrics:
                    hooks.before_metrics()
                self._reply(200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST)
            else:
                self._reply(404, b"not found\n")

        def do_POST(self) -> None:
            path = self.path.split("?", 1)[0]
            if path != "/hooks/git" or not hooks.webhook_secret or hooks.git_trigger is None:
                self._reply(404, b"not found\n")
                return
            if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                self._reply(411, b"a webhook body needs a Content-Length\n")
                return
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if length < 0 or length > limits.max_body_bytes:
                self._reply(413, b"body too large\n")
                return
            media_type = (self.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
            if length and media_type not in _WEBHOOK_MEDIA_TYPES:
                log.warning("webhook refused: unsupported content type", peer=self.client_address[0])
                self._reply(415, b"webhook body must be application/json or a form\n")
                return
            try:
                body = self.rfile.read(length)
            except OSError:  # the read deadline passed, or the client went away
                log.info("webhook: request body not received in time", peer=self.client_address[0])
                self.close_connection = True
                return
            headers = {k: v for k, v in self.headers.items()}
            verdict = verify_webhook(headers, body, hooks.webhook_secret)
            if not verdict.verified:
                log.warning("webhook refused", reason=verdict.reason, peer=self.client_address[0])
                self._reply(401, b"signature verification failed\n")
                return
            branch = hooks.git_branch() if hooks.git_branch else ""
            if verdict.ping:
                self._reply(200, b"pong\n")
                return
            if not verdict.concerns(hooks.git_url, branch):
                log.info("webhook ignored: not for this repository/branch", event=verdict.event)
                self._reply(202, b"ignored\n")
                return
            commit = verdict.push.after if verdict.push else None
            head = hooks.git_head() if hooks.git_head else None
            replay = deliveries.replay(delivery_id(headers), commit, head)
            if replay is not None:
                log.info("webhook: no fetch", reason=replay.reason, event=verdict.event)
                if replay.kind is ReplayKind.DUPLICATE:
                    self._reply(409, f"{replay.kind}: no fetch\n".encode())
                else:
                    self._reply(202, f"{replay.kind}: no fetch\n".encode())
                return
            log.info("webhook: fetching now", provider=str(verdict.provider), event=verdict.event)
            hooks.git_trigger()
            self._reply(202, b"sync triggered\n")

    return Handler


@dataclass
class _Pending:
    sock: socket.socket
    peer: Any
    deadline: float
    head: bytearray
    reserved: int = 0  # the announced body length counted in Server._reserved


class Server:
    """The endpoint: :meth:`start` serves in threads of its own, :meth:`stop` ends them."""

    def __init__(self, host: str, port: int, hooks: Hooks, limits: HTTPServerSettings | None = None) -> None:
        self.limits = limits or HTTPServerSettings()
        self._handler = make_handler(hooks, self.limits)
        self._listener = socket.create_server((host, port), backlog=128)
        self._listener.setblocking(False)
        self._active = threading.BoundedSemaphore(self.limits.max_active)
        self._stopping = threading.Event()
        self._wake_r, self._wake_w = socket.socketpair()
        self._reserved = 0  # announced body bytes of the pending connections (the reading thread's)
        self._thread = threading.Thread(target=self._serve, name="http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._stopping.is_set():
            return
        self._stopping.set()
        self._wake_w.send(b"x")
        if self._thread.is_alive():
            self._thread.join()
        self._listener.close()
        self._wake_r.close()
        self._wake_w.close()

    # the reading thread ---------------------------------------------------------------------

    def _serve(self) -> None:
        pending: dict[socket.socket, _Pending] = {}  # in accept order: the first is the oldest
        with selectors.DefaultSelector() as selector:
            selector.register(self._listener, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while not self._stopping.is_set():
                now = time.monotonic()
                wait = min((p.deadline for p in pending.values()), default=now + 1.0) - now
                try:
                    self._turn(selector, pending, wait)
                except Exception as exc:  # this one thread serves every probe: it must not die
                    log.error("http: serving loop error", error=f"{type(exc).__name__}: {exc}")
            for p in list(pending.values()):
                self._drop(selector, pending, p)

    def _turn(
        self, selector: selectors.BaseSelector, pending: dict[socket.socket, _Pending], wait: float
    ) -> None:
        for key, _ in selector.select(timeout=max(0.0, min(wait, 1.0))):
            if key.fileobj is self._listener:
                self._accept(selector, pending)
            elif key.fileobj is not self._wake_r:
                # a connection this same batch already closed (dropped as the oldest, at the
                # connection cap) is no longer pending
                entry = pending.get(key.fileobj)  # type: ignore[call-overload]
                if entry is not None:
                    self._receive(selector, pending, entry)
        now = time.monotonic()
        for late in [p for p in pending.values() if p.deadline <= now]:
            self._refuse(selector, pending, late, b"408 Request Timeout")

    def _accept(self, selector: selectors.BaseSelector, pending: dict[socket.socket, _Pending]) -> None:
        try:
            sock, peer = self._listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:  # e.g. out of file descriptors: the backlog waits for the next turn
            log.warning("http: accept failed", error=str(exc))
            return
        sock.setblocking(False)
        if len(pending) >= self.limits.max_connections:
            self._drop(selector, pending, next(iter(pending.values())))
        entry = _Pending(sock, peer, time.monotonic() + self.limits.read_timeout_s, bytearray())
        pending[sock] = entry
        selector.register(sock, selectors.EVENT_READ)

    def _receive(
        self, selector: selectors.BaseSelector, pending: dict[socket.socket, _Pending], entry: _Pending
    ) -> None:
        try:
            data = entry.sock.recv(64 * 1024)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(selector, pending, entry)
            return
        entry.head += data
        end = entry.head.find(_HEAD_END)
        if end < 0:
            if len(entry.head) > self.limits.max_head_bytes:
                self._refuse(selector, pending, entry, b"431 Request Header Fields Too Large")
            return
        if end > self.limits.max_head_bytes:
            self._refuse(selector, pending, entry, b"431 Request Header Fields Too Large")
            return
        # the body too is read here, so a client that drips it holds no thread (the deadline ends it)
        body = announced_body(bytes(entry.head[:end]), self.limits.max_body_bytes)
        if body and not entry.reserved:
            self._reserve(selector, pending, entry, body)
        if len(entry.head) < end + len(_HEAD_END) + body:
            return
        if not self._active.acquire(blocking=False):
            self._refuse(selector, pending, entry, b"503 Service Unavailable")
            return
        selector.unregister(entry.sock)
        del pending[entry.sock]
        self._reserved -= entry.reserved  # its thread (one of max_active) holds the body now
        entry.reserved = 0
        thread = threading.Thread(target=self._answer, args=(entry,), name="http-request", daemon=True)
        thread.start()

    def _answer(self, entry: _Pending) -> None:
        try:
            entry.sock.setblocking(True)
            self._handler((entry.sock, bytes(entry.head), entry.deadline), entry.peer, self)  # type: ignore[arg-type]
        except Exception as exc:  # a client that went away mid-answer; nothing to tell it
            log.debug("http: request failed", peer=entry.peer[0], error=type(exc).__name__)
        finally:
            self._active.release()
            entry.sock.close()

    def _refuse(
        self,
        selector: selectors.BaseSelector,
        pending: dict[socket.socket, _Pending],
        entry: _Pending,
        status: bytes,
    ) -> None:
        with contextlib.suppress(OSError):  # a few bytes into a fresh socket's buffer: no blocking
            entry.sock.send(b"HTTP/1.0 " + status + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        self._drop(selector, pending, entry)

    def _reserve(
        self,
        selector: selectors.BaseSelector,
        pending: dict[socket.socket, _Pending],
        entry: _Pending,
        body: int,
    ) -> None:
        """Count ``entry``'s announced body, closing the oldest other connections receiving a
        body until every announced body fits ``max_pending_body_bytes``."""
        budget = max(self.limits.max_pending_body_bytes, self.limits.max_body_bytes)
        for other in list(pending.values()):  # oldest first
            if self._reserved + body <= budget:
                break
            if other is not entry and other.reserved:
                self._drop(selector, pending, other)
        entry.reserved = body
        self._reserved += body

    def _drop(
        self, selector: selectors.BaseSelector, pending: dict[socket.socket, _Pending], entry: _Pending
    ) -> None:
        self._reserved -= entry.reserved
        entry.reserved = 0
        selector.unregister(entry.sock)
        del pending[entry.sock]
        entry.sock.close()
