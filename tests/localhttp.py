"""A real HTTP(S) server on 127.0.0.1 in a thread, for tests of the HTTP adapter and its callers.

Each request is answered by ``handler(request)``: a ``(status, headers, body)`` tuple, or a
callable that gets the raw ``BaseHTTPRequestHandler`` to misbehave with (drop the connection, drip
a body, cut it short). Every request is recorded in ``server.seen``. HTTP/1.1 with keep-alive, so
tests can tell connections apart by the client's port.
"""

from __future__ import annotations

import contextlib
import http.server
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Raw = Callable[[http.server.BaseHTTPRequestHandler], None]
Reply = tuple[int, dict[str, str], bytes] | Raw


@dataclass
class Seen:
    """One request as the server saw it."""

    path: str
    headers: dict[str, str]  # lower-case names
    client_port: int
    peer_cert: dict[str, Any] | None = None

    @property
    def authorization(self) -> str | None:
        return self.headers.get("authorization")


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that give up (deadlines, size limits) are what the tests are about


@dataclass
class LocalServer:
    handler: Callable[[Seen], Reply]
    tls: ssl.SSLContext | None = None
    seen: list[Seen] = field(default_factory=list)
    host: str = "127.0.0.1"  # another address of this machine: see outward_address()

    def __post_init__(self) -> None:
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                cert = self.connection.getpeercert() if isinstance(self.connection, ssl.SSLSocket) else None
                seen = Seen(
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    self.client_address[1],
                    cert or None,
                )
                owner.seen.append(seen)
                reply = owner.handler(seen)
                if callable(reply):
                    reply(self)
                    return
                status, headers, body = reply
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                if "Content-Length" not in headers and status != 304:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if status != 304:
                    self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = _Server((self.host, 0), Handler)
        if self.tls is not None:
            self._server.socket = self.tls.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://{self.host}:{self._server.server_address[1]}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> LocalServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def outward_address() -> str | None:
    """An IPv4 address of this machine other than loopback (the one its default route leaves
    from; no packet is sent), or None on a machine with loopback only."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("198.51.100.1", 9))  # any non-local address selects the outgoing interface
        address = str(probe.getsockname()[0])
    except OSError:
        return None
    finally:
        probe.close()
    return None if address.startswith("127.") else address


def drop(h: http.server.BaseHTTPRequestHandler) -> None:
    """Close the connection without answering."""
    h.close_connection = True


def drip(size: int, interval: float, *, length: int | None = None) -> Raw:
    """A 200 whose body of ``size`` bytes comes one byte every ``interval`` seconds."""

    def reply(h: http.server.BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", str(size if length is None else length))
        h.end_headers()
        h.close_connection = True
        try:
            for _ in range(size):
                h.wfile.write(b"x")
                h.wfile.flush()
                time.sleep(interval)
        except OSError:
            pass  # the client gave up

    return reply


def cut_short(declared: int, sent: bytes) -> Raw:
    """A 200 that announces ``declared`` bytes and closes after ``sent``."""

    def reply(h: http.server.BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", str(declared))
        h.end_headers()
        h.wfile.write(sent)
        h.close_connection = True

    return reply


def delayed(seconds: float, reply: tuple[int, dict[str, str], bytes]) -> Raw:
    """``reply``, after ``seconds`` of silence."""

    def send(h: http.server.BaseHTTPRequestHandler) -> None:
        time.sleep(seconds)
        status, headers, body = reply
        try:
            h.send_response(status)
            for name, value in headers.items():
                h.send_header(name, value)
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)
        except OSError:
            pass
        h.close_connection = True

    return send


def unframed(body: bytes, headers: dict[str, str] | None = None) -> Raw:
    """A 200 without Content-Length: the body ends when the connection closes."""

    def send(h: http.server.BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        for name, value in (headers or {}).items():
            h.send_header(name, value)
        h.send_header("Connection", "close")
        h.end_headers()
        with contextlib.suppress(OSError):
            h.wfile.write(body)
        h.close_connection = True

    return send
