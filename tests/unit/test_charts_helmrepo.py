"""HelmRepoClient against real local servers (tests/localhttp.py): validators, retries, how HTTP
failures become chart errors, and the credentials host rule. The real repositories of the test
environment are exercised in tests/integration/test_helmrepo.py."""

from __future__ import annotations

import hashlib
import re
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from gitops_helm.charts.auth import RepositoryAuth
from gitops_helm.charts.errors import (
    RepositoryAuthError,
    RepositoryError,
    RepositoryUnavailableError,
    SizeLimitError,
)
from gitops_helm.charts.helmrepo import HelmRepoClient, HelmRepoSettings, _meta_from_response
from tests.localhttp import LocalServer, Reply, Seen, delayed, drip, drop

CHART = b"not really a tgz"


def _index(chart_url: str = "https://cdn.example.com/app-1.0.0.tgz") -> bytes:
    return f"""
apiVersion: v1
entries:
  app:
  - version: 1.0.0
    urls: [{chart_url}]
    digest: {hashlib.sha256(CHART).hexdigest()}
  - version: 0.9.0
    urls: [app-0.9.0.tgz]
""".encode()


INDEX = _index()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _client(tmp_path: Path, clock: Clock | None = None, **settings: Any) -> HelmRepoClient:
    options: dict[str, Any] = {"retry_delays": (1.0, 3.0), **settings}
    return HelmRepoClient(HelmRepoSettings(tmp_path, **options), clock=clock or Clock(), sleep=lambda s: None)


def test_etag_makes_an_unchanged_index_cost_one_304_and_no_parse(
    tmp_path: Path, serve: Callable[..., LocalServer]
) -> None:
    def handler(request: Seen) -> Reply:
        if request.headers.get("if-none-match") == '"v1"':
            return 304, {}, b""
        return 200, {"ETag": '"v1"'}, INDEX

    server, clock = serve(handler), Clock()
    repo = server.url
    client = _client(tmp_path, clock)
    first = client.index(repo)
    assert client.resolve(repo, "app", "<1").version == "0.9.0"
    assert len(server.seen) == 1  # within min_refresh_interval: no request
    clock.now += 61
    assert client.index(repo) is first  # one conditional request, answered 304: no re-parse
    assert [r.headers.get("if-none-match") for r in server.seen] == [None, '"v1"']

    restarted = _client(tmp_path)  # a new process: validators and index from disk
    assert restarted.index(repo) == first
    assert server.seen[-1].headers.get("if-none-match") == '"v1"'


@pytest.mark.parametrize(
    ("date", "kept"),
    [("Tue, 24 Nov 2026 12:00:00 GMT", False), ("Tue, 24 Nov 2026 12:00:01 GMT", True), (None, False)],
)
def test_last_modified_within_the_response_second_is_not_used(date: str | None, kept: bool) -> None:
    modified = "Tue, 24 Nov 2026 12:00:00 GMT"
    headers = {"Last-Modified": modified} | ({"Date": date} if date else {})
    meta = _meta_from_response(headers, "0" * 64)
    assert meta.conditional_headers() == ({"If-Modified-Since": modified} if kept else {})


def test_temporary_errors_are_retried_with_bounded_backoff(
    tmp_path: Path, serve: Callable[..., LocalServer]
) -> None:
    replies: list[Reply] = [(503, {"Retry-After": "2"}, b""), drop, (200, {}, INDEX)]
    server = serve(lambda r: replies.pop(0))
    slept: list[float] = []
    client = HelmRepoClient(HelmRepoSettings(tmp_path, retry_delays=(1.0, 3.0)), sleep=slept.append)
    assert client.index(server.url).versions("app") == ("1.0.0", "0.9.0")
    assert slept == [2.0, 3.0]  # Retry-After when longer than the configured delay
    assert len(server.seen) == 3


@pytest.mark.parametrize(
    ("reply", "attempts"),
    [((503, {}, b""), 3), (delayed(1.0, (200, {}, INDEX)), 3), ((429, {}, b""), 3)],
    ids=["503", "read-timeout", "429"],
)
def test_temporary_error_after_the_last_retry(
    tmp_path: Path, serve: Callable[..., LocalServer], reply: Reply, attempts: int
) -> None:
    server = serve(lambda r: reply)
    client = _client(tmp_path, read_timeout=0.2)
    with pytest.raises(
        RepositoryUnavailableError, match=f"index of Helm repository {re.escape(server.url)}"
    ) as exc:
        client.index(server.url)
    assert exc.value.temporary and len(server.seen) == attempts
    assert not isinstance(exc.value, requests.RequestException)


@pytest.mark.parametrize(
    ("status", "auth", "error", "message"),
    [
        (404, None, RepositoryError, "not found"),
        (400, None, RepositoryError, "HTTP 400"),
        (
            401,
            None,
            RepositoryAuthError,
            "HTTP 401; no credentials were given: set spec.chart.chartPullSecret",
        ),
        (403, RepositoryAuth(username="u", password="pw"), RepositoryAuthError, "credentials were refused"),
    ],
)
def test_permanent_errors_are_not_retried(
    tmp_path: Path,
    serve: Callable[..., LocalServer],
    status: int,
    auth: RepositoryAuth | None,
    error: type[Exception],
    message: str,
) -> None:
    server = serve(lambda r: (status, {}, b""))
    with pytest.raises(error, match=message) as exc:
        _client(tmp_path).index(server.url, auth)
    assert not getattr(exc.value, "temporary", True) and len(server.seen) == 1
    assert "pw" not in str(exc.value)


def test_credentials_are_not_sent_to_another_host(tmp_path: Path, serve: Callable[..., LocalServer]) -> None:
    cdn = serve(lambda r: (200, {}, CHART))
    repo = serve(lambda r: (200, {}, _index(f"{cdn.url}/app-1.0.0.tgz")))
    client = _client(tmp_path)
    artifact = client.fetch(repo.url, "app", "1.0.0", RepositoryAuth(username="u", password="pw"))
    assert artifact.path.read_bytes() == CHART
    assert [(r.path, r.authorization is not None) for r in (*repo.seen, *cdn.seen)] == [
        ("/index.yaml", True),
        ("/app-1.0.0.tgz", False),
    ]


def test_an_untrusted_certificate_is_permanent_and_names_the_ca_bundle(
    tmp_path: Path, serve: Callable[..., LocalServer], server_tls: Callable[..., ssl.SSLContext]
) -> None:
    server = serve(lambda r: (200, {}, INDEX), tls=server_tls())
    slept: list[float] = []
    client = HelmRepoClient(HelmRepoSettings(tmp_path), sleep=slept.append)
    with pytest.raises(
        RepositoryError,
        match=r"TLS certificate of .* could not be verified; .*ca\.crt in spec\.chart\.chartPullSecret",
    ) as exc:
        client.index(server.url)
    assert not exc.value.temporary and slept == []


def test_a_ca_bundle_from_the_pull_secret_verifies_the_server(
    tmp_path: Path, serve: Callable[..., LocalServer], server_tls: Callable[..., ssl.SSLContext], pki: Path
) -> None:
    server = serve(lambda r: (200, {}, INDEX), tls=server_tls())
    auth = RepositoryAuth(ca=(pki / "ca.crt").read_bytes())
    assert _client(tmp_path).index(server.url, auth).versions("app") == ("1.0.0", "0.9.0")


def test_size_limits_come_from_the_settings(tmp_path: Path, serve: Callable[..., LocalServer]) -> None:
    chart_server = serve(lambda r: (200, {}, CHART))
    index = _index(f"{chart_server.url}/app-1.0.0.tgz")
    server = serve(lambda r: (200, {}, index))
    with pytest.raises(SizeLimitError, match=f"larger than the limit of {len(index) - 1} bytes") as exc:
        _client(tmp_path, max_index_bytes=len(index) - 1).index(server.url)
    assert not exc.value.temporary
    with pytest.raises(
        SizeLimitError, match=r'chart "app" version "1\.0\.0" .* larger than the limit of 8 bytes'
    ):
        _client(tmp_path / "2", max_chart_bytes=8).fetch(server.url, "app", "1.0.0")


def test_a_download_past_its_deadline_is_not_retried(
    tmp_path: Path, serve: Callable[..., LocalServer]
) -> None:
    server = serve(lambda r: drip(100, 0.05))
    with pytest.raises(RepositoryUnavailableError, match=r"download took longer than 0\.3s") as exc:
        _client(tmp_path, download_timeout=0.3).index(server.url)
    assert exc.value.temporary and len(server.seen) == 1
