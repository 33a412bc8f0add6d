"""The agent's HTTP endpoint against slow and hostile clients, over real sockets: a client that
drips its request a byte at a time holds no thread and is cut off at the read deadline, many of
them cannot keep ``/healthz`` from answering, and oversized heads and bodies are refused."""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from gitops_helm.config import HTTPServerSettings
from gitops_helm.server import Hooks, Server

SECRET = "webhook-secret"
WAIT_S = 60.0  # generous: only ever reached when the behaviour is wrong


@pytest.fixture
def start() -> Iterator[Callable[[HTTPServerSettings], Server]]:
    servers: list[Server] = []
    triggered: list[int] = []

    def make(limits: HTTPServerSettings) -> Server:
        hooks = Hooks(
            ready=lambda: (True, "ready"),
            git_trigger=lambda: triggered.append(1),
            webhook_secret=SECRET,
        )
        server = Server("127.0.0.1", 0, hooks, limits)
        server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


def get(server: Server, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=WAIT_S)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


class SlowClient:
    """A real client that sends its request one byte at a time, in a thread of its own, until
    the server closes the connection (or the request is all sent)."""

    def __init__(self, port: int, request: bytes, interval: float, at_once: bytes = b"") -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT_S)
        self.sock.sendall(at_once)
        self.closed_by_server = threading.Event()
        self._thread = threading.Thread(target=self._drip, args=(request, interval), daemon=True)
        self._thread.start()

    def _drip(self, request: bytes, interval: float) -> None:
        for byte in request:
            try:
                self.sock.sendall(bytes([byte]))
            except OSError:
                break
            time.sleep(interval)
        try:
            self.sock.settimeout(WAIT_S)
            while self.sock.recv(4096):
                pass
        except OSError:
            pass
        self.closed_by_server.set()

    def close(self) -> None:
        self.sock.close()


def endless_head() -> bytes:
    return b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"a" * 10_000


def test_a_client_dripping_its_head_is_cut_off_at_the_read_deadline(
    start: Callable[[HTTPServerSettings], Server],
) -> None:
    server = start(HTTPServerSettings(read_timeout_s=1.0))
    client = SlowClient(server.port, endless_head(), interval=0.05)
    try:
        # the client would go on for 10 minutes; the server closes the connection long before
        assert client.closed_by_server.wait(WAIT_S)
    finally:
        client.close()


def test_a_client_dripping_a_webhook_body_is_cut_off_at_the_read_deadline(
    start: Callable[[HTTPServerSettings], Server],
) -> None:
    server = start(HTTPServerSettings(read_timeout_s=1.0))
    body = b"{" + b" " * 10_000 + b"}"
    head = (
        b"POST /hooks/git HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
    )
    client = SlowClient(server.port, head + body, interval=0.0005)
    try:
        assert client.closed_by_server.wait(WAIT_S)
    finally:
        client.close()


def test_many_slow_clients_hold_no_thread_and_healthz_answers(
    start: Callable[[HTTPServerSettings], Server],
) -> None:
    server = start(HTTPServerSettings(max_connections=16, max_active=4, read_timeout_s=600.0))
    threads_before = threading.active_count()
    clients = [SlowClient(server.port, endless_head(), interval=0.2) for _ in range(40)]
    try:
        # every slow client has a connection open and has sent part of its head
        time.sleep(1.0)
        assert get(server, "/healthz") == (200, b"ok\n")
        assert get(server, "/readyz") == (200, b"ready\n")
        # the dripping clients hold no thread of the server: beyond their own 40, at most the
        # threads of the two answered requests may still be finishing
        assert threading.active_count() <= threads_before + 40 + 2
        # beyond max_connections the oldest connections were closed to make room
        assert all(c.closed_by_server.wait(WAIT_S) for c in clients[: 40 - 16])
    finally:
        for c in clients:
            c.close()


def test_an_oversized_head_and_body_are_refused(start: Callable[[HTTPServerSettings], Server]) -> None:
    server = start(HTTPServerSettings(max_head_bytes=1024, max_body_bytes=100))
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=WAIT_S)
    try:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nX-Big: " + b"a" * 4096)
        assert sock.recv(4096).startswith(b"HTTP/1.0 431 ")
    finally:
        sock.close()
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=WAIT_S)
    try:
        conn.request("POST", "/hooks/git", body=b"x" * 101)
        assert conn.getresponse().status == 413
    finally:
        conn.close()
    assert get(server, "/healthz") == (200, b"ok\n")


def test_a_connection_dropped_at_the_cap_while_it_is_readable_does_not_stop_the_server(
    start: Callable[[HTTPServerSettings], Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    """At the connection cap, a new client closes the oldest; when that oldest one has data in the
    same batch of events (a loaded machine gets to the loop late), the server once looked it up,
    found it gone, and its one serving thread died: no probe answered any more."""
    import selectors

    from gitops_helm import server as server_module

    class LateSelector(selectors.DefaultSelector):  # type: ignore[misc,valid-type]
        def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
            time.sleep(0.3)  # events pile up into one batch
            return super().select(0)

    monkeypatch.setattr(server_module.selectors, "DefaultSelector", LateSelector)
    server = start(HTTPServerSettings(max_connections=1))
    oldest = socket.create_connection(("127.0.0.1", server.port))
    time.sleep(0.8)  # accepted and pending
    newest = socket.create_connection(("127.0.0.1", server.port))  # the listener turns readable...
    oldest.send(b"GET /healthz HTTP/1.0\r\n")  # ...and so does the oldest, in the same batch
    time.sleep(1.0)
    newest.close()
    oldest.close()
    probe = socket.create_connection(("127.0.0.1", server.port), timeout=WAIT_S)
    probe.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
    assert probe.recv(100).startswith(b"HTTP/1.0 200"), "the server stopped serving"
    probe.close()


def webhook_head(length: int, content_type: str = "application/json") -> bytes:
    return (
        b"POST /hooks/git HTTP/1.1\r\nHost: x\r\nContent-Type: " + content_type.encode() + b"\r\n"
        b"X-GitHub-Event: push\r\nContent-Length: " + str(length).encode() + b"\r\n\r\n"
    )


def test_clients_dripping_webhook_bodies_hold_no_thread_and_healthz_answers(
    start: Callable[[HTTPServerSettings], Server],
) -> None:
    """A client that sends a complete head and then drips its body once held one of the
    ``max_active`` answering threads until the read deadline: a few of them and every probe got
    503. The body is read by the selector now; only a complete request gets a thread."""
    server = start(HTTPServerSettings(max_active=2, read_timeout_s=600.0))
    body = b"{" + b" " * 10_000 + b"}"
    clients = [SlowClient(server.port, body, interval=0.2, at_once=webhook_head(len(body))) for _ in range(6)]
    try:
        time.sleep(1.0)  # every client has sent its head and started on its body
        assert get(server, "/healthz") == (200, b"ok\n")
        assert get(server, "/readyz") == (200, b"ready\n")
        assert not any(c.closed_by_server.is_set() for c in clients)  # still being read, not refused
    finally:
        for c in clients:
            c.close()


def post(server: Server, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=WAIT_S)
    try:
        conn.request("POST", "/hooks/git", body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_a_webhook_body_of_another_content_type_or_chunked_is_refused_unread(
    start: Callable[[HTTPServerSettings], Server],
) -> None:
    server = start(HTTPServerSettings())
    signed = {"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=00"}
    for content_type in ("text/plain", "multipart/form-data; boundary=x", "application/xml", ""):
        headers = {**signed, "Content-Type": content_type} if content_type else signed
        status, text = post(server, b"{}", headers)
        assert status == 415, (content_type, status, text)
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=WAIT_S)
    try:
        sock.sendall(
            b"POST /hooks/git HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\nX-GitHub-Event: push\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
        )
        assert sock.recv(4096).startswith(b"HTTP/1.0 411 ")
    finally:
        sock.close()
    # a JSON body with a bad signature is still read and refused as such
    assert post(server, b"{}", {**signed, "Content-Type": "application/json"})[0] == 401


def test_announced_bodies_being_read_are_bounded_together_oldest_closed_first(
    start: Callable[[HTTPServerSettings], Server],
) -> None:
    """The reading thread buffers the body a head announces. Without a bound over all connections,
    ``max_connections`` (256) clients announcing ``max_body_bytes`` (5 MiB) each and sending it
    slowly made it hold 1.25 GiB, over the chart's 1 GiB memory limit, on any path and without a
    webhook secret. Beyond ``max_pending_body_bytes`` the oldest such connection is closed."""
    server = start(HTTPServerSettings(max_body_bytes=1000, max_pending_body_bytes=2500, read_timeout_s=600.0))
    body = b"{" + b" " * 998 + b"}"
    clients = []
    try:
        for _ in range(3):  # 2 x 1000 bytes fit; the third closes the first
            clients.append(SlowClient(server.port, body, interval=0.5, at_once=webhook_head(len(body))))
            time.sleep(0.3)  # in accept order
        assert clients[0].closed_by_server.wait(WAIT_S)
        assert not clients[1].closed_by_server.is_set()
        assert not clients[2].closed_by_server.is_set()
        assert get(server, "/healthz") == (200, b"ok\n")  # a request without a body is not counted
        assert server._reserved == 2000
    finally:
        for c in clients:
            c.close()
    # a body that arrives whole is counted only while it is read
    status, _ = post(server, b"{}", {"X-GitHub-Event": "push", "Content-Type": "application/json"})
    assert status == 401
