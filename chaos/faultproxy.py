"""A TCP fault proxy on loopback: forwards to one target, or plays a server that is down.

Put it between a client (the agent) and a real server (the Git server of the test environment),
then switch its mode while the client runs:

- ``forward``: connections are relayed to the target, both ways;
- ``refuse``: the listening socket is closed, so a connect fails at once (connection refused), as
  with a stopped server;
- ``blackhole``: connections are accepted and then never answered, as with a frozen server or a
  dropped route; the client sees only its own timeouts.

Every change of mode closes the connections of the mode before (a server that stops or comes back
takes its open connections with it), so nothing relayed before an outage leaks through it. Every
thread is bounded: the accept loop and each relay wake at least every ``TICK_S`` to look at the
stop flag, a relay ends after ``idle_timeout_s`` without traffic, and at most ``max_connections``
are open at once (more are closed as soon as they are accepted).
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
from typing import Literal

Mode = Literal["forward", "refuse", "blackhole"]
MODES: tuple[Mode, ...] = ("forward", "refuse", "blackhole")
TICK_S = 0.2  # the longest a thread goes without looking at the stop flag
CONNECT_TIMEOUT_S = 5.0
LOOPBACK = ("127.0.0.1", "::1", "localhost")


class FaultProxy:
    """Listen on ``listen_host:port`` (0: a free port) and relay to ``target`` as ``mode`` says."""

    def __init__(
        self,
        target: tuple[str, int],
        *,
        listen_host: str = "127.0.0.1",
        port: int = 0,
        mode: Mode = "forward",
        idle_timeout_s: float = 300.0,
        max_connections: int = 64,
    ) -> None:
        if listen_host not in LOOPBACK or target[0] not in LOOPBACK:
            raise ValueError("the fault proxy listens on and forwards to loopback only")
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}: one of {', '.join(MODES)}")
        self.target = target
        self.listen_host = listen_host
        self.idle_timeout_s = idle_timeout_s
        self.max_connections = max_connections
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._mode: Mode = mode
        self._generation = 0  # bumped on every mode change: relays of an older one end
        self._listener: socket.socket | None = None
        self._held: list[socket.socket] = []  # blackholed connections, never read
        self._relays: set[threading.Thread] = set()
        self.accepted = 0  # connections accepted, all modes (what a test can check)
        self._listener = self._listen(port)
        self.port = int(self._listener.getsockname()[1])
        if mode == "refuse":
            self._close_listener()
        self._acceptor = threading.Thread(
            target=self._accept_loop, name=f"faultproxy-{self.port}", daemon=True
        )
        self._acceptor.start()

    # -- the face

    @property
    def mode(self) -> Mode:
        return self._mode

    @property
    def address(self) -> tuple[str, int]:
        return self.listen_host, self.port

    def set_mode(self, mode: Mode) -> None:
        """Switch to ``mode`` now; the open connections of the previous mode are closed."""
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}: one of {', '.join(MODES)}")
        with self._lock:
            if self._stop.is_set():
                raise RuntimeError("the fault proxy is closed")
            self._mode = mode
            self._generation += 1
            held, self._held = self._held, []
            if mode == "refuse":
                self._close_listener()
            elif self._listener is None:
                self._listener = self._listen(self.port)
        for sock in held:
            _close(sock)

    def close(self) -> None:
        """Stop accepting, close every connection and wait for every thread (bounded)."""
        with self._lock:
            self._stop.set()
            self._generation += 1
            held, self._held = self._held, []
            self._close_listener()
        for sock in held:
            _close(sock)
        self._acceptor.join(timeout=5 * TICK_S + 1)
        for relay in list(self._relays):
            relay.join(timeout=5 * TICK_S + 1)

    def threads_alive(self) -> int:
        """Threads of this proxy still running (0 after :meth:`close`)."""
        with self._lock:
            relays = [t for t in self._relays if t.is_alive()]
        return len(relays) + int(self._acceptor.is_alive())

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- inside

    def _listen(self, port: int) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.listen_host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.listen_host, port))
            sock.listen(32)
        except OSError:
            sock.close()
            raise
        sock.settimeout(TICK_S)
        return sock

    def _close_listener(self) -> None:
        if self._listener is not None:
            _close(self._listener)
            self._listener = None

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                listener = self._listener
            if listener is None:  # refusing: nothing listens
                self._stop.wait(TICK_S)
                continue
            try:
                conn, _ = listener.accept()
            except (TimeoutError, OSError):  # a tick, or the listener closed under us
                continue
            self._admit(conn)

    def _admit(self, conn: socket.socket) -> None:
        with self._lock:
            self.accepted += 1
            self._relays = {t for t in self._relays if t.is_alive()}
            full = len(self._relays) + len(self._held) >= self.max_connections
            mode, generation = self._mode, self._generation
            if not full and mode == "blackhole":
                self._held.append(conn)
                return
        if full or mode != "forward":
            _close(conn)
            return
        relay = threading.Thread(
            target=self._relay, args=(conn, generation), name="faultproxy-relay", daemon=True
        )
        with self._lock:
            self._relays.add(relay)
        relay.start()

    def _current(self, generation: int) -> bool:
        """Whether a relay started in ``generation`` may go on (no close, no mode change since)."""
        return not self._stop.is_set() and self._generation == generation

    def _relay(self, client: socket.socket, generation: int) -> None:
        try:
            upstream = socket.create_connection(self.target, timeout=CONNECT_TIMEOUT_S)
        except OSError:
            _close(client)
            return
        idle = 0.0
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(client, selectors.EVENT_READ, upstream)
                selector.register(upstream, selectors.EVENT_READ, client)
                while self._current(generation) and idle < self.idle_timeout_s:
                    ready = selector.select(TICK_S)
                    if not ready:
                        idle += TICK_S
                        continue
                    idle = 0.0
                    for key, _ in ready:
                        source: socket.socket = key.fileobj  # type: ignore[assignment]
                        sink: socket.socket = key.data
                        data = source.recv(65536)
                        if not data:
                            return
                        sink.settimeout(CONNECT_TIMEOUT_S)
                        sink.sendall(data)
        except OSError:
            return
        finally:
            _close(client)
            _close(upstream)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
