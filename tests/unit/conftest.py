"""Fixtures of the unit tests: a throw-away PKI for the TLS tests of the HTTP adapter."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from pathlib import Path

import pytest
from testenvlib.pki import make_pki


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
