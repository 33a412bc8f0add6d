"""The HTTP adapter against real servers on 127.0.0.1 (tests/localhttp.py), no mocks: status and
transport errors classified once, Retry-After, deadlines, size limits, TLS, sessions kept apart
per credential identity, and redaction."""

from __future__ import annotations

import gzip
import logging
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
import requests
import urllib3

from gitops_helm.adapters.http import (
    MAX_RETRY_AFTER_S,
    HTTPClient,
    HTTPConnectionError,
    HTTPDeadlineError,
    HTTPError,
    HTTPInvalidRequestError,
    HTTPSettings,
    HTTPSizeLimitError,
    HTTPStatusError,
    HTTPTimeoutError,
    HTTPTLSVerifyError,
    Identity,
    Limits,
    redact_url,
)
from gitops_helm.errors import GitopsHelmError
from tests.localhttp import LocalServer, Reply, Seen, cut_short, delayed, drip, drop, unframed

LIMITS = Limits(connect_s=2.0, read_s=2.0, total_s=10.0, max_bytes=1024)
ALICE = Identity(username="alice", password="alice-pw")
BOB = Identity(username="bob", password="bob-pw")


@pytest.fixture
def client() -> Iterator[HTTPClient]:
    with HTTPClient() as c:
        yield c


def test_get_returns_status_headers_body_and_links(
    client: HTTPClient, serve: Callable[..., LocalServer]
) -> None:
    server = serve(lambda r: (200, {"ETag": '"v1"', "Link": '</v2/x?last=a>; rel="next"'}, b"hello"))
    resp = client.get(f"{server.url}/a", limits=LIMITS)
    assert (resp.status, resp.body, resp.headers["etag"]) == (200, b"hello", '"v1"')
    assert resp.links == {"next": "/v2/x?last=a"}
    assert server.seen[0].headers["user-agent"] == "gitops-helm"


def test_not_modified_is_an_answer_not_an_error(
    client: HTTPClient, serve: Callable[..., LocalServer]
) -> None:
    server = serve(lambda r: (304, {"ETag": '"v1"'}, b""))
    resp = client.get(f"{server.url}/index.yaml", limits=LIMITS, headers={"If-None-Match": '"v1"'})
    assert (resp.status, resp.body) == (304, b"")
    assert server.seen[0].headers["if-none-match"] == '"v1"'


@pytest.mark.parametrize(
    ("status", "temporary"),
    [(400, False), (401, False), (403, False), (404, False), (410, False), (300, False),
     (408, True), (425, True), (429, True), (500, True), (502, True), (503, True)],
)  # fmt: skip
def test_status_errors_carry_the_code_and_whether_to_retry(
    client: HTTPClient, serve: Callable[..., LocalServer], status: int, temporary: bool
) -> None:
    server = serve(lambda r: (status, {"WWW-Authenticate": 'Bearer realm="x"'}, b"no"))
    with pytest.raises(HTTPStatusError) as exc:
        client.get(f"{server.url}/x", limits=LIMITS)
    assert (exc.value.status, exc.value.temporary) == (status, temporary)
    assert exc.value.challenge == ('Bearer realm="x"' if status == 401 else None)
    assert str(exc.value) == f"GET {server.url}/x: HTTP {status}"


def test_retry_after_in_seconds_or_as_a_date(client: HTTPClient, serve: Callable[..., LocalServer]) -> None:
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    in_ten_years = format_datetime(datetime.now(UTC) + timedelta(days=3650), usegmt=True)
    answers = iter(["7", later, "soon", "9" * 400, in_ten_years])
    server = serve(lambda r: (503, {"Retry-After": next(answers)}, b""))
    seen = []
    for _ in range(5):
        with pytest.raises(HTTPStatusError) as exc:
            client.get(server.url, limits=LIMITS)
        seen.append(exc.value.retry_after)
    assert seen[0] == 7.0
    assert seen[1] is not None and 100 < seen[1] <= 120
    assert seen[2] is None
    # a hostile server's endless wait is read as one day (float("9" * 400) would be infinite)
    assert seen[3] == seen[4] == MAX_RETRY_AFTER_S == 86_400.0


@pytest.mark.parametrize("value", ["\u00b2", "1\u00b9", "\u00b3600"])
def test_a_retry_after_of_non_ascii_digits_is_ignored_not_raised(
    client: HTTPClient, serve: Callable[..., LocalServer], value: str
) -> None:
    # a header byte 0xB2 arrives as "\u00b2" (latin-1): str.isdigit() says yes, float() raises
    server = serve(lambda r: (503, {"Retry-After": value}, b""))
    with pytest.raises(HTTPStatusError) as exc:
        client.get(server.url, limits=LIMITS)
    assert exc.value.retry_after is None


def test_a_content_length_of_non_ascii_digits_is_not_an_exception(
    client: HTTPClient, serve: Callable[..., LocalServer]
) -> None:
    # "\u00b2" passes str.isdigit() but not int(): the answer is read within its limits instead
    server = serve(lambda r: (200, {"Content-Length": "\u00b2", "Connection": "close"}, b"ok"))
    assert client.get(server.url, limits=LIMITS).body == b"ok"


def test_connection_refused_is_temporary(client: HTTPClient) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(HTTPConnectionError, match="connection refused") as exc:
        client.get(f"http://127.0.0.1:{port}/", limits=LIMITS)
    assert exc.value.temporary


def test_a_dropped_connection_is_temporary(client: HTTPClient, serve: Callable[..., LocalServer]) -> None:
    server = serve(lambda r: drop)
    with pytest.raises(HTTPConnectionError) as exc:
        client.get(server.url, limits=LIMITS)
    assert exc.value.temporary


def test_a_server_that_does_not_answer_hits_the_read_timeout(
    client: HTTPClient, serve: Callable[..., LocalServer]
) -> None:
    server = serve(lambda r: delayed(2.0, (200, {}, b"late")))
    with pytest.raises(HTTPTimeoutError, match="read timed out") as exc:
        client.get(server.url, limits=Limits(1.0, 0.3, 10.0, 1024))
    # the answer comes after 2 s: only the 0.3 s read timeout explains this error
    assert exc.value.temporary and not isinstance(exc.value, HTTPDeadlineError)


def test_a_slow_drip_body_hits_the_total_deadline(
    client: HTTPClient, serve: Callable[..., LocalServer]
) -> None:
    # every byte arrives well within the read timeout; only the total deadline can stop it
    server = serve(lambda r: drip(200, 0.05))
    limits = Limits(connect_s=1.0, read_s=1.0, total_s=0.5, max_bytes=1024)
    started = time.monotonic()
    with pytest.raises(HTTPDeadlineError, match=r"took longer than 0.5s") as exc:
        client.get(server.url, limits=limits)
    # the body takes 10 s (200 bytes, one every 50 ms): only the total deadline explains the error;
    # it cannot fire early, and how late it fires is for a benchmark, not a test on a busy machine
    assert exc.value.temporary
    assert time.monotonic() - started >= limits.total_s


def test_a_body_cut_short_is_temporary(client: HTTPClient, serve: Callable[..., LocalServer]) -> None:
    server = serve(lambda r: cut_short(100, b"only ten b"))
    with pytest.raises(HTTPConnectionError) as exc:
        client.get(server.url, limits=LIMITS)
    assert exc.value.temporary


@pytest.mark.parametrize(
    "reply",
    [
        (200, {}, b"x" * 1025),  # Content-Length over the limit: refused before reading
        unframed(b"x" * 5000),  # no length: stopped while streaming
        unframed(gzip.compress(b"x" * 100_000), {"Content-Encoding": "gzip"}),  # decoded size counts
    ],
    ids=["content-length", "streamed", "gzip"],
)
def test_an_oversized_body_is_refused(
    client: HTTPClient, serve: Callable[..., LocalServer], reply: Reply
) -> None:
    server = serve(lambda r: reply)
    with pytest.raises(HTTPSizeLimitError, match="larger than the limit of 1024 bytes") as exc:
        client.get(server.url, limits=LIMITS)
    assert not exc.value.temporary and exc.value.limit == 1024


def test_a_body_at_the_limit_is_read(client: HTTPClient, serve: Callable[..., LocalServer]) -> None:
    server = serve(lambda r: unframed(gzip.compress(b"x" * 1024), {"Content-Encoding": "gzip"}))
    assert client.get(server.url, limits=LIMITS).body == b"x" * 1024


def test_an_untrusted_certificate_is_a_permanent_tls_error(
    client: HTTPClient, serve: Callable[..., LocalServer], server_tls: Callable[..., ssl.SSLContext]
) -> None:
    server = serve(lambda r: (200, {}, b"secret"), tls=server_tls())
    with pytest.raises(HTTPTLSVerifyError, match="TLS certificate verification failed") as exc:
        client.get(server.url, limits=LIMITS)
    assert not exc.value.temporary
    assert server.seen == []


def test_a_ca_bundle_and_a_client_certificate(
    client: HTTPClient,
    serve: Callable[..., LocalServer],
    server_tls: Callable[..., ssl.SSLContext],
    pki: Path,
) -> None:
    server = serve(lambda r: (200, {}, b"ok"), tls=server_tls(client_ca=True))
    trusted = Identity(ca_file=str(pki / "ca.crt"))
    assert client.get(server.url, limits=LIMITS, identity=trusted).body == b"ok"
    assert server.seen[-1].peer_cert is None

    with_cert = Identity(
        ca_file=str(pki / "ca.crt"), client_cert=(str(pki / "admin.crt"), str(pki / "admin.key"))
    )
    assert client.get(server.url, limits=LIMITS, identity=with_cert).body == b"ok"
    cert = server.seen[-1].peer_cert
    assert cert is not None and (("commonName", "testenv-admin"),) in cert["subject"]


def test_verification_can_be_switched_off(
    client: HTTPClient, serve: Callable[..., LocalServer], server_tls: Callable[..., ssl.SSLContext]
) -> None:
    server = serve(lambda r: (200, {}, b"ok"), tls=server_tls())
    with pytest.warns(urllib3.exceptions.InsecureRequestWarning):
        assert client.get(server.url, limits=LIMITS, identity=Identity(verify=False)).body == b"ok"


def test_invalid_urls_and_redirect_loops_are_permanent(
    client: HTTPClient, serve: Callable[..., LocalServer]
) -> None:
    server = serve(lambda r: (302, {"Location": r.path}, b""))
    with pytest.raises(HTTPInvalidRequestError, match="too many redirects") as exc:
        client.get(f"{server.url}/loop", limits=LIMITS)
    assert not exc.value.temporary
    for url in ("ftp://127.0.0.1/x", "http://", "not a url"):
        with pytest.raises(HTTPInvalidRequestError, match="invalid URL"):
            client.get(url, limits=LIMITS)


def test_a_chain_of_slow_redirects_hits_the_total_deadline(
    client: HTTPClient, serve: Callable[..., LocalServer]
) -> None:
    # each hop answers within the read timeout; 30 hops of 0.2 s take 6 s, so only the total
    # deadline of 1 s (checked on every hop) can end the chain before "too many redirects"
    server = serve(
        lambda r: delayed(0.2, (302, {"Location": f"/hop{len(r.path)}", "Connection": "close"}, b""))
    )
    limits = Limits(connect_s=2.0, read_s=2.0, total_s=1.0, max_bytes=1024)
    with pytest.raises(HTTPDeadlineError, match=r"took longer than 1s"):
        client.get(f"{server.url}/start", limits=limits)
    assert len(server.seen) < 30


def test_redirects_are_followed(client: HTTPClient, serve: Callable[..., LocalServer]) -> None:
    server = serve(lambda r: (301, {"Location": "/b"}, b"") if r.path == "/a" else (200, {}, b"at b"))
    resp = client.get(f"{server.url}/a", limits=LIMITS)
    assert (resp.body, resp.url) == (b"at b", f"{server.url}/b")


def test_each_credential_identity_has_its_own_session(
    client: HTTPClient, serve: Callable[..., LocalServer]
) -> None:
    """Same host, two users: separate cookies and separate connections."""
    counter = iter(range(100))

    def handler(r: Seen) -> Reply:
        return 200, {"Set-Cookie": f"session={next(counter)}; Path=/"}, b"ok"

    server = serve(handler)
    for identity in (ALICE, BOB, ALICE, BOB):
        client.get(server.url, limits=LIMITS, identity=identity)
    a1, b1, a2, b2 = server.seen
    assert "cookie" not in a1.headers and "cookie" not in b1.headers  # B does not get A's cookie
    assert (a2.headers["cookie"], b2.headers["cookie"]) == ("session=0", "session=1")
    assert a1.client_port == a2.client_port != b1.client_port == b2.client_port


def test_a_request_carries_only_its_own_identitys_credentials(
    client: HTTPClient, serve: Callable[..., LocalServer]
) -> None:
    server = serve(lambda r: (200, {}, b"ok"))
    token = Identity(token="t0ken")
    order = [ALICE, Identity(), BOB, token, ALICE, Identity(), token, BOB]
    for identity in order:
        client.get(server.url, limits=LIMITS, identity=identity)
    expected = {
        ALICE.key: requests.auth._basic_auth_str("alice", "alice-pw"),
        BOB.key: requests.auth._basic_auth_str("bob", "bob-pw"),
        token.key: "Bearer t0ken",
        Identity().key: None,
    }
    assert [s.authorization for s in server.seen] == [expected[i.key] for i in order]


def test_credentials_are_never_a_header_of_the_caller(client: HTTPClient) -> None:
    with pytest.raises(ValueError, match="Identity"):
        client.get("http://127.0.0.1:1/", limits=LIMITS, headers={"authorization": "Basic eDp5"})


def test_an_evicted_session_is_replaced(serve: Callable[..., LocalServer]) -> None:
    server = serve(lambda r: (200, {}, b"ok"))
    with HTTPClient(HTTPSettings(max_sessions=1)) as client:
        for identity in (ALICE, BOB, ALICE):
            assert client.get(server.url, limits=LIMITS, identity=identity).body == b"ok"
    a1, b1, a2 = server.seen
    assert a1.authorization == a2.authorization != b1.authorization
    assert len({a1.client_port, b1.client_port, a2.client_port}) == 3


def test_identity_keys_and_repr_hold_no_secret() -> None:
    assert ALICE.key == Identity(username="alice", password="alice-pw").key != BOB.key
    assert Identity(ca_file="/ca.pem").key != Identity().key != Identity(verify=False).key
    assert "alice-pw" not in repr(ALICE) and "t0ken" not in repr(Identity(token="t0ken"))
    with pytest.raises(ValueError, match="together"):
        Identity(username="alice")
    with pytest.raises(ValueError, match="exclude"):
        Identity(username="a", password="b", token="c")


def test_urls_are_redacted_and_credentials_never_logged(
    client: HTTPClient, serve: Callable[..., LocalServer], caplog: pytest.LogCaptureFixture
) -> None:
    server = serve(lambda r: (500, {}, b""))
    port = server.url.rsplit(":", 1)[1]
    url = f"http://user:url-pw@127.0.0.1:{port}/values.yaml?token=query-secret"
    caplog.set_level(logging.DEBUG, logger="gitops_helm")
    with pytest.raises(HTTPStatusError) as exc:
        client.get(url, limits=LIMITS, identity=Identity(token="bearer-secret"))
    assert str(exc.value) == f"GET http://127.0.0.1:{port}/values.yaml?...: HTTP 500"
    logged = " ".join(f"{r.getMessage()} {getattr(r, 'fields', '')}" for r in caplog.records)
    assert "values.yaml" in logged
    for secret in ("url-pw", "query-secret", "bearer-secret"):
        assert secret not in logged and secret not in str(exc.value)
    assert redact_url("https://u:p@Host:443/a?b=c#d") == "https://host/a?..."


def test_no_library_exception_leaks() -> None:
    for kind in (HTTPError, HTTPConnectionError, HTTPTimeoutError, HTTPStatusError, HTTPSizeLimitError):
        assert issubclass(kind, GitopsHelmError)
        assert not issubclass(kind, requests.RequestException | urllib3.exceptions.HTTPError | OSError)


def test_the_agents_netrc_is_never_sent_for_an_identity(
    client: HTTPClient, serve: Callable[..., LocalServer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``requests`` adds ``$NETRC``/``~/.netrc`` credentials to a request without its own and to
    every redirect hop; an anonymous tenant's request must not carry the operator's login."""
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login operator password operator-pw\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    server = serve(lambda r: (302, {"Location": "/final"}, b"") if r.path == "/" else (200, {}, b"ok"))
    assert client.get(server.url + "/", limits=LIMITS).body == b"ok"
    assert client.get(server.url + "/", limits=LIMITS, identity=BOB).body == b"ok"
    anonymous, anonymous_hop, bob, bob_hop = server.seen
    assert (anonymous.path, anonymous_hop.path) == ("/", "/final")
    assert anonymous.authorization is None and anonymous_hop.authorization is None
    assert bob.authorization == bob_hop.authorization == requests.auth._basic_auth_str("bob", "bob-pw")
