"""The chaos suite's TCP fault proxy: relays in ``forward``, a refused connect in ``refuse``, an
accepted but silent connection in ``blackhole``, switchable at run time, and no thread left once
it is closed."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from chaos.faultproxy import FaultProxy


@pytest.fixture
def echo_server() -> Iterator[tuple[str, int]]:
    """A loopback server answering every line with the line upper-cased."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        conn.settimeout(5)
        with conn:
            while data := conn.recv(1024):
                conn.sendall(data.upper())

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()
    stop.set()
    thread.join(5)
    listener.close()


def talk(address: tuple[str, int], text: bytes, timeout: float = 5.0) -> bytes:
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(text)
        return sock.recv(1024)


def test_forward_refuse_and_blackhole_switch_at_run_time(echo_server: tuple[str, int]) -> None:
    with FaultProxy(echo_server) as proxy:
        assert talk(proxy.address, b"hello") == b"HELLO"

        proxy.set_mode("refuse")
        with pytest.raises(ConnectionRefusedError):
            talk(proxy.address, b"hello")

        proxy.set_mode("blackhole")
        with socket.create_connection(proxy.address, timeout=5) as sock:  # the connect succeeds
            sock.sendall(b"anyone?")
            sock.settimeout(0.5)
            with pytest.raises(TimeoutError):
                sock.recv(1024)  # but nothing ever answers
            proxy.set_mode("forward")  # the server comes back: the held connection is closed
            sock.settimeout(5)
            assert sock.recv(1024) == b""

        assert talk(proxy.address, b"back") == b"BACK"  # same port as before the outage
    assert proxy.threads_alive() == 0


def test_an_open_relay_is_cut_by_an_outage(echo_server: tuple[str, int]) -> None:
    with FaultProxy(echo_server) as proxy, socket.create_connection(proxy.address, timeout=5) as sock:
        sock.sendall(b"one")
        assert sock.recv(1024) == b"ONE"
        proxy.set_mode("refuse")
        assert sock.recv(1024) == b"", "a connection from before the outage must not outlive it"


def test_connections_over_the_cap_are_closed(echo_server: tuple[str, int]) -> None:
    with FaultProxy(echo_server, mode="blackhole", max_connections=2) as proxy:
        held = [socket.create_connection(proxy.address, timeout=5) for _ in range(2)]
        with socket.create_connection(proxy.address, timeout=5) as extra:
            extra.settimeout(5)
            assert extra.recv(1024) == b""
        for sock in held:
            sock.close()


def test_only_loopback() -> None:
    with pytest.raises(ValueError, match="loopback"):
        FaultProxy(("192.0.2.1", 80))
    with pytest.raises(ValueError, match="unknown mode"):
        FaultProxy(("127.0.0.1", 80), mode="drop")  # type: ignore[arg-type]
