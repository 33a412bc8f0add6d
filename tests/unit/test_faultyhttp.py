"""The chaos suite's faulty HTTP proxy over real sockets: it forwards, and each fault mode does
what the source experiments rely on (500, no answer within the client's timeout, a garbage index
and a truncated archive, a refused connection), and comes back on the same port."""

from __future__ import annotations

import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from chaos.faultyhttp import GARBAGE_INDEX, FaultyHTTP

INDEX = b"apiVersion: v1\nentries: {}\n"
ARCHIVE = bytes(range(256)) * 8


class Upstream(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = INDEX if self.path == "/index.yaml" else ARCHIVE
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", '"v1"')
        self.end_headers()
        self.wfile.write(body)

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(ARCHIVE)))
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def proxy() -> Iterator[FaultyHTTP]:
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    faulty = FaultyHTTP(f"http://127.0.0.1:{upstream.server_address[1]}", slow_s=5.0, timeout_s=10.0)
    try:
        yield faulty
    finally:
        faulty.close()
        upstream.shutdown()
        upstream.server_close()


def get(url: str, method: str = "GET", timeout: float = 10.0) -> tuple[int, bytes, dict[str, str]]:
    request = urllib.request.Request(url, method=method)  # noqa: S310 - loopback
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - loopback
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as err:
        return err.code, err.read(), dict(err.headers)


def test_forward_passes_answers_unchanged(proxy: FaultyHTTP) -> None:
    assert get(f"{proxy.url}/index.yaml")[:2] == (200, INDEX)
    status, body, headers = get(f"{proxy.url}/charts/hello-0.1.0.tgz")
    assert (status, body, headers["ETag"]) == (200, ARCHIVE, '"v1"')
    status, body, headers = get(f"{proxy.url}/v2/charts/hello/blobs/sha256:x", method="HEAD")
    assert (status, body, headers["Content-Length"]) == (200, b"", str(len(ARCHIVE)))


def test_each_fault_mode(proxy: FaultyHTTP) -> None:
    proxy.mode = "error500"
    assert get(f"{proxy.url}/index.yaml")[0] == 500
    proxy.mode = "corrupt-index"
    assert get(f"{proxy.url}/index.yaml")[1] == GARBAGE_INDEX
    assert get(f"{proxy.url}/hello-0.1.0.tgz")[1] == ARCHIVE
    proxy.mode = "corrupt"
    assert get(f"{proxy.url}/index.yaml")[1] == INDEX
    assert get(f"{proxy.url}/hello-0.1.0.tgz")[1] == ARCHIVE[: len(ARCHIVE) // 2]
    assert get(f"{proxy.url}/v2/charts/hello/blobs/sha256:x")[1] == ARCHIVE[: len(ARCHIVE) // 2]
    proxy.mode = "slow"
    with pytest.raises((TimeoutError, urllib.error.URLError)):
        get(f"{proxy.url}/index.yaml", timeout=1.0)
    port = proxy.port
    proxy.mode = "down"
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=5):
        pass
    proxy.mode = "forward"
    assert proxy.port == port
    assert get(f"{proxy.url}/index.yaml")[:2] == (200, INDEX)
    modes = [mode for mode, _, _ in proxy.requests]
    assert modes[:3] == ["error500", "corrupt-index", "corrupt-index"] and modes[-1] == "forward"


def test_only_a_loopback_upstream_is_accepted() -> None:
    with pytest.raises(ValueError, match="loopback"):
        FaultyHTTP("http://example.com")
