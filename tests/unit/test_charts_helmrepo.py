"""HelmRepoClient against an in-process transport (a requests adapter): validators, retries,
error classification and the credentials host rule. The real repositories are exercised in
tests/integration/test_helmrepo.py."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

from gitops_helm.charts.auth import RepositoryAuth
from gitops_helm.charts.errors import RepositoryAuthError, RepositoryError, RepositoryUnavailableError
from gitops_helm.charts.helmrepo import HelmRepoClient, HelmRepoSettings, _meta_from_response

REPO = "https://charts.example.com"
CHART = b"not really a tgz"
INDEX = f"""
apiVersion: v1
entries:
  app:
  - version: 1.0.0
    urls: [https://cdn.example.com/app-1.0.0.tgz]
    digest: {hashlib.sha256(CHART).hexdigest()}
  - version: 0.9.0
    urls: [app-0.9.0.tgz]
""".encode()

Reply = tuple[int, dict[str, str], bytes] | Exception


class FakeTransport(BaseAdapter):
    """Answers every request with `handler(request)`; records the requests."""

    def __init__(self, handler: Callable[[requests.PreparedRequest], Reply]) -> None:
        super().__init__()
        self.handler = handler
        self.sent: list[requests.PreparedRequest] = []

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        self.sent.append(request)
        reply = self.handler(request)
        if isinstance(reply, Exception):
            raise reply
        response = requests.Response()
        response.status_code, response.url, response.request = reply[0], str(request.url), request
        response.headers = CaseInsensitiveDict(reply[1])
        response.raw = io.BytesIO(reply[2])
        return response

    def close(self) -> None:
        pass


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _client(tmp_path: Path, transport: FakeTransport, clock: Clock | None = None) -> HelmRepoClient:
    session = requests.Session()
    session.mount("https://", transport)
    settings = HelmRepoSettings(tmp_path, retry_delays=(1.0, 3.0))
    return HelmRepoClient(settings, session=session, clock=clock or Clock(), sleep=lambda s: None)


def test_etag_makes_an_unchanged_index_cost_one_304_and_no_parse(tmp_path: Path) -> None:
    def handler(request: requests.PreparedRequest) -> Reply:
        if request.headers.get("If-None-Match") == '"v1"':
            return 304, {}, b""
        return 200, {"ETag": '"v1"'}, INDEX

    transport, clock = FakeTransport(handler), Clock()
    client = _client(tmp_path, transport, clock)
    first = client.index(REPO)
    assert client.resolve(REPO, "app", "<1").version == "0.9.0"
    assert len(transport.sent) == 1  # within min_refresh_interval: no request
    clock.now += 61
    assert client.index(REPO) is first  # one conditional request, answered 304: no re-parse
    assert [r.headers.get("If-None-Match") for r in transport.sent] == [None, '"v1"']

    restarted = _client(tmp_path, transport)  # a new process: validators and index from disk
    assert restarted.index(REPO) == first
    assert transport.sent[-1].headers.get("If-None-Match") == '"v1"'


@pytest.mark.parametrize(
    ("date", "kept"),
    [("Tue, 24 Nov 2026 12:00:00 GMT", False), ("Tue, 24 Nov 2026 12:00:01 GMT", True), (None, False)],
)
def test_last_modified_within_the_response_second_is_not_used(date: str | None, kept: bool) -> None:
    modified = "Tue, 24 Nov 2026 12:00:00 GMT"
    headers = {"Last-Modified": modified} | ({"Date": date} if date else {})
    meta = _meta_from_response(headers, "0" * 64)
    assert meta.conditional_headers() == ({"If-Modified-Since": modified} if kept else {})


def test_temporary_errors_are_retried_with_bounded_backoff(tmp_path: Path) -> None:
    replies: list[Reply] = [
        (503, {"Retry-After": "2"}, b""),
        requests.ConnectionError("refused"),
        (200, {}, INDEX),
    ]
    transport = FakeTransport(lambda r: replies.pop(0))
    session = requests.Session()
    session.mount("https://", transport)
    slept: list[float] = []
    client = HelmRepoClient(
        HelmRepoSettings(tmp_path, retry_delays=(1.0, 3.0)), session=session, sleep=slept.append
    )
    assert client.index(REPO).versions("app") == ("1.0.0", "0.9.0")
    assert slept == [2.0, 3.0]  # Retry-After when longer than the configured delay


@pytest.mark.parametrize(
    ("reply", "attempts"),
    [((503, {}, b""), 3), (requests.ConnectTimeout("slow"), 3), ((429, {}, b""), 3)],
)
def test_temporary_error_after_the_last_retry(tmp_path: Path, reply: Reply, attempts: int) -> None:
    transport = FakeTransport(lambda r: reply)
    with pytest.raises(RepositoryUnavailableError, match=f"index of Helm repository {REPO}") as exc:
        _client(tmp_path, transport).index(REPO)
    assert exc.value.temporary and len(transport.sent) == attempts
    assert not isinstance(exc.value, requests.RequestException)


@pytest.mark.parametrize(
    ("status", "auth", "error", "message"),
    [
        (404, None, RepositoryError, "not found"),
        (400, None, RepositoryError, "HTTP 400"),
        (401, None, RepositoryAuthError, "authentication required .* no credentials were given"),
        (403, RepositoryAuth(username="u", password="pw"), RepositoryAuthError, "credentials were refused"),
    ],
)
def test_permanent_errors_are_not_retried(
    tmp_path: Path, status: int, auth: RepositoryAuth | None, error: type[Exception], message: str
) -> None:
    transport = FakeTransport(lambda r: (status, {}, b""))
    with pytest.raises(error, match=message) as exc:
        _client(tmp_path, transport).index(REPO, auth)
    assert not getattr(exc.value, "temporary", True) and len(transport.sent) == 1
    assert "pw" not in str(exc.value)


def test_credentials_are_not_sent_to_another_host(tmp_path: Path) -> None:
    def handler(request: requests.PreparedRequest) -> Reply:
        return (200, {}, INDEX) if str(request.url).endswith("index.yaml") else (200, {}, CHART)

    transport = FakeTransport(handler)
    client = _client(tmp_path, transport)
    artifact = client.fetch(REPO, "app", "1.0.0", RepositoryAuth(username="u", password="pw"))
    assert artifact.path.read_bytes() == CHART
    assert [(r.url, "Authorization" in r.headers) for r in transport.sent] == [
        (f"{REPO}/index.yaml", True),
        ("https://cdn.example.com/app-1.0.0.tgz", False),
    ]
