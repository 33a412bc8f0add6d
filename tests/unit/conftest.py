"""Fixtures of the unit tests: real local HTTP(S) servers and a throw-away PKI for the TLS tests."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from testenvlib.pki import make_pki

from tests.localhttp import LocalServer, Reply, Seen


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ca.crt, serving.{crt,key} (127.0.0.1, localhost) and admin.{crt,key} (a client cert)."""
    d = tmp_path_factory.mktemp("pki")
    make_pki(d)
    return d


@pytest.fixture
def server_tls(pki: Path) -> Callable[..., ssl.SSLContext]:
    """A server-side TLS context with the PKI's serving certificate; ``client_ca`` asks for
    (optional) client certificates issued by the PKI's CA."""

    def make(*, client_ca: bool = False) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(pki / "serving.crt", pki / "serving.key")
        if client_ca:
            ctx.load_verify_locations(pki / "ca.crt")
            ctx.verify_mode = ssl.CERT_OPTIONAL
        return ctx

    return make


@pytest.fixture
def serve() -> Iterator[Callable[..., LocalServer]]:
    """Factory of real HTTP(S) servers on 127.0.0.1 answering with ``handler``; closed after the test."""
    servers: list[LocalServer] = []

    def make(handler: Callable[[Seen], Reply], tls: ssl.SSLContext | None = None) -> LocalServer:
        servers.append(LocalServer(handler, tls))
        return servers[-1]

    yield make
    for server in servers:
        server.close()
