"""A loopback HTTP reverse proxy with switchable faults, put in front of a chart repository or an
OCI registry by the source experiments.

Modes (:attr:`FaultyHTTP.mode`, switched at any time):

- ``forward``: every request goes to the upstream and its answer back, unchanged;
- ``error500``: every request is answered ``500 Internal Server Error``;
- ``slow``: the answer is held for ``slow_s`` (longer than the agent's timeout), then the
  connection is closed without one;
- ``corrupt``: a chart archive (``.tgz`` or an OCI blob) truncated to half, everything else
  forwarded unchanged (the index stays valid, so the archive is what breaks);
- ``corrupt-index``: an ``index.yaml`` answered with garbage that is not YAML (a new body
  with a new ETag, also to a conditional request);
- ``down``: the listener is closed (connections are refused); switching to any other mode
  listens again on the same port.

Bounded: every upstream request and client socket has a timeout, a request body is read only up
to ``max_body`` bytes, the connection handlers are daemon threads ended by :meth:`close`, and at
most ``max_clients`` are served at once (beyond that a connection is closed at once). Only
loopback upstreams are accepted.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
import time
from typing import Literal
from urllib.parse import urlsplit

Mode = Literal["forward", "error500", "slow", "corrupt", "corrupt-index", "down"]
MODES: tuple[Mode, ...] = ("forward", "error500", "slow", "corrupt", "corrupt-index", "down")
_HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "content-length"}
GARBAGE_INDEX = b"apiVersion: v1\nentries: [this is: {not, yaml\n\x00\x01 garbage\n"


class FaultyHTTP:
    """``FaultyHTTP(upstream)``: listen on 127.0.0.1 at :attr:`url`; ``close()`` ends it."""

    def __init__(
        self,
        upstream: str,
        *,
        slow_s: float = 30.0,
        timeout_s: float = 30.0,
        max_body: int = 64 * 1024 * 1024,
        max_clients: int = 32,
    ) -> None:
        parts = urlsplit(upstream if "://" in upstream else f"http://{upstream}")
        if parts.scheme != "http" or parts.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(f"faulty proxy: upstream {upstream!r} is not plain HTTP on loopback")
        self.upstream_host = parts.hostname
        self.upstream_port = parts.port or 80
        self.slow_s = slow_s
        self.timeout_s = timeout_s
        self.max_body = max_body
        self._slots = threading.BoundedSemaphore(max_clients)
        self._lock = threading.Lock()
        self._mode: Mode = "forward"
        self._closed = threading.Event()
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self.requests: list[tuple[str, str, int]] = []  # (mode, path, status) of each answered request
        self.port = 0
        self._listen()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def mode(self) -> Mode:
        return self._mode

    @mode.setter
    def mode(self, mode: Mode) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}")
        with self._lock:
            previous, self._mode = self._mode, mode
        if mode == "down" and previous != "down":
            self._stop_listening()
        elif mode != "down" and previous == "down":
            self._listen()

    def close(self) -> None:
        self._closed.set()
        self._stop_listening()

    def __enter__(self) -> FaultyHTTP:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # listening ---------------------------------------------------------------------------

    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(0.2)  # the accept loop looks at the stop flag this often
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._thread = threading.Thread(target=self._accept_loop, args=(listener,), daemon=True)
        self._thread.start()

    def _stop_listening(self) -> None:
        listener, thread = self._listener, self._thread
        self._listener = self._thread = None
        if listener is not None:
            listener.close()
        if thread is not None:
            thread.join(5)

    def _accept_loop(self, listener: socket.socket) -> None:
        while self._listener is listener and not self._closed.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if not self._slots.acquire(blocking=False):
                client.close()
                continue
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    # one connection, one request ---------------------------------------------------------

    def _serve(self, client: socket.socket) -> None:
        try:
            client.settimeout(self.timeout_s)
            request = _read_request(client, self.max_body)
            if request is None:
                return
            method, path, headers, body = request
            mode = self._mode
            if mode == "error500":
                self._record(mode, path, 500)
                _send(client, 500, {"Content-Type": "text/plain"}, b"injected fault: internal server error\n")
            elif mode == "corrupt-index" and path.split("?", 1)[0].endswith("index.yaml"):
                # a new body, whatever the client has cached (a conditional request gets it too)
                self._record(mode, path, 200)
                _send(client, 200, {"Content-Type": "text/yaml", "ETag": '"corrupt"'}, GARBAGE_INDEX)
            elif mode == "slow":
                self._record(mode, path, 0)
                self._closed.wait(self.slow_s)  # longer than the client waits; then no answer at all
            else:
                status, answer_headers, answer = self._forward(method, path, headers, body)
                if mode in ("corrupt", "corrupt-index") and status == 200:
                    answer = corrupt(mode, path, answer)
                self._record(mode, path, status)
                length = int(answer_headers.get("Content-Length", "0")) if method == "HEAD" else len(answer)
                _send(client, status, answer_headers, answer, length)
        except OSError:
            pass
        finally:
            client.close()
            self._slots.release()

    def _record(self, mode: str, path: str, status: int) -> None:
        with self._lock:
            self.requests.append((mode, path, status))
            del self.requests[:-1000]

    def _forward(
        self, method: str, path: str, headers: list[tuple[str, str]], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=self.timeout_s)
        try:
            sent = {k: v for k, v in headers if k.lower() not in _HOP_HEADERS and k.lower() != "host"}
            sent["Host"] = f"{self.upstream_host}:{self.upstream_port}"
            conn.request(method, path, body=body or None, headers=sent)
            response = conn.getresponse()
            data = response.read(self.max_body) if method != "HEAD" else b""
            kept = {k: v for k, v in response.getheaders() if k.lower() not in _HOP_HEADERS}
            if method == "HEAD" and response.getheader("Content-Length"):
                kept["Content-Length"] = response.getheader("Content-Length") or "0"
            return response.status, kept, data
        finally:
            conn.close()


def corrupt(mode: str, path: str, body: bytes) -> bytes:
    """What ``corrupt`` (a truncated archive) or ``corrupt-index`` (a garbage index) serves."""
    plain = path.split("?", 1)[0]
    if mode == "corrupt-index" and plain.endswith("index.yaml"):
        return GARBAGE_INDEX
    if mode == "corrupt" and (plain.endswith(".tgz") or "/blobs/" in plain):
        return body[: len(body) // 2]
    return body  # manifests, tag lists, tokens pass unchanged


def _read_request(
    client: socket.socket, max_body: int
) -> tuple[str, str, list[tuple[str, str]], bytes] | None:
    data = b""
    deadline = time.monotonic() + 30.0
    while b"\r\n\r\n" not in data:
        if len(data) > 64 * 1024 or time.monotonic() > deadline:
            return None
        chunk = client.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    try:
        method, path, _ = lines[0].split(" ", 2)
    except ValueError:
        return None
    headers = [(k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in lines[1:]) if k]
    length = next((int(v) for k, v in headers if k.lower() == "content-length" and v.isdigit()), 0)
    if length > max_body:
        return None
    while len(rest) < length:
        if time.monotonic() > deadline:
            return None
        chunk = client.recv(min(65536, length - len(rest)))
        if not chunk:
            return None
        rest += chunk
    return method, path, headers, rest[:length]


def _send(
    client: socket.socket, status: int, headers: dict[str, str], body: bytes, length: int | None = None
) -> None:
    reason = http.client.responses.get(status, "Unknown")
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines += [f"{k}: {v}" for k, v in headers.items() if k.lower() != "content-length"]
    lines += [f"Content-Length: {len(body) if length is None else length}", "Connection: close"]
    with contextlib.suppress(OSError):
        client.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
