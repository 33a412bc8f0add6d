"""RegistryClient against a small registry on 127.0.0.1 (tests/localhttp.py), for what the test
environment's docker-registry 2.8 cannot show: a Bearer token server, tag lists paged with
``Link`` (2.8 ignores ``n=`` on tag lists), an ``ETag`` on tag lists, and 429 with
``Retry-After``. The real registries are exercised in tests/integration/test_images_registry.py."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest

from gitops_helm.adapters.http import Destinations, HTTPClient
from gitops_helm.config import ImageScanSettings
from gitops_helm.images.credentials import RegistryCredentials, RegistryLogin
from gitops_helm.images.ratelimit import HostRateLimiter, RateLimitSettings
from gitops_helm.images.registry import (
    ImageNotFoundError,
    ImageRepository,
    RegistryAddressRefusedError,
    RegistryAnswerError,
    RegistryClient,
    RegistryError,
    RegistryRateLimitedError,
    RegistryUnauthorizedError,
    RegistryUnreachableError,
)
from tests.localhttp import LocalServer, Reply, Seen

TAGS = [f"1.{i}.0" for i in range(7)]
ALICE = RegistryLogin("alice", "alice-pw")


class TokenRegistry:
    """``team/app`` is readable with a token only: alice's for ``team/private``, anyone's for
    ``team/app``. Tag lists come in pages of ``n`` with a ``Link`` to the next one."""

    def __init__(self) -> None:
        self.server = LocalServer(self.handle)
        self.etag: str | None = None
        self.throttle: list[Reply] = []  # answers given before the real one (429s)
        self.realm: str | None = None  # the token service's URL, when not this server's /token

    def handle(self, request: Seen) -> Reply:
        url = urlsplit(request.path)
        query = parse_qs(url.query)
        if url.path == "/token":
            basic = "Basic " + base64.b64encode(b"alice:alice-pw").decode()
            who = "alice" if request.authorization == basic else "anonymous"
            scope = query.get("scope", [""])[0]
            return 200, {}, json.dumps({"token": f"tok-{who}-{scope}", "expires_in": 300}).encode()
        repo = url.path.removeprefix("/v2/").split("/tags/list")[0].split("/manifests/")[0]
        allowed = {f"Bearer tok-alice-repository:{repo}:pull"}
        if repo == "team/app":
            allowed.add(f"Bearer tok-anonymous-repository:{repo}:pull")
        if request.authorization not in allowed:
            realm = self.realm or f"{self.server.url}/token"
            challenge = f'Bearer realm="{realm}",service="test",scope="repository:{repo}:pull"'
            return 401, {"WWW-Authenticate": challenge}, b""
        if self.throttle:
            return self.throttle.pop(0)
        if not url.path.endswith("/tags/list"):
            return 404, {}, b""
        if self.etag and request.headers.get("if-none-match") == self.etag:
            return 304, {"ETag": self.etag}, b""
        n = int(query.get("n", ["100"])[0])
        last = query.get("last", [""])[0]
        start = TAGS.index(last) + 1 if last else 0
        page = TAGS[start : start + n]
        headers = {"ETag": self.etag} if self.etag else {}
        if start + n < len(TAGS):
            headers["Link"] = f'</v2/{repo}/tags/list?n={n}&last={page[-1]}>; rel="next"'
        return 200, headers, json.dumps({"name": repo, "tags": page}).encode()

    @property
    def host(self) -> str:
        return self.server.url.removeprefix("http://")

    def repo(self, path: str) -> ImageRepository:
        return ImageRepository(self.host, path)

    def paths(self, since: int = 0) -> list[str]:
        return [urlsplit(r.path).path for r in self.server.seen[since:]]


@pytest.fixture
def registry() -> Iterator[TokenRegistry]:
    r = TokenRegistry()
    yield r
    r.server.close()


@pytest.fixture
def http() -> Iterator[HTTPClient]:
    client = HTTPClient()
    yield client
    client.close()


class _NoSleep:
    def __init__(self) -> None:
        self.slept: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.slept.append(seconds)


def client_for(
    registry: TokenRegistry,
    http: HTTPClient,
    credentials: RegistryCredentials | None = None,
    sleep: _NoSleep | None = None,
    **settings: object,
) -> RegistryClient:
    scan = ImageScanSettings(**settings)  # type: ignore[arg-type]
    limiter = HostRateLimiter(
        RateLimitSettings(rate_per_s=1000.0, burst=1000, max_pause_s=scan.max_retry_after_s),
        sleep=sleep or _NoSleep(),
    )
    return RegistryClient(scan, http, credentials, plain_http_hosts=[registry.host], limiter=limiter)


def test_tags_are_read_page_by_page_with_one_token(registry: TokenRegistry, http: HTTPClient) -> None:
    client = client_for(registry, http, tag_page_size=3)
    listing = client.list_tags(registry.repo("team/app"))
    assert listing.tags == tuple(TAGS)
    assert registry.paths() == ["/v2/team/app/tags/list", "/token"] + ["/v2/team/app/tags/list"] * 3


def test_the_page_and_tag_caps_are_errors_not_silent_truncation(
    registry: TokenRegistry, http: HTTPClient
) -> None:
    with pytest.raises(RegistryAnswerError, match=r"team/app: the tag list has more than 2 pages"):
        client_for(registry, http, tag_page_size=3, max_tag_pages=2).list_tags(registry.repo("team/app"))
    with pytest.raises(RegistryAnswerError, match=r"more than 5 tags \(--image-max-tags\)"):
        client_for(registry, http, tag_page_size=3, max_tags=5).list_tags(registry.repo("team/app"))


def test_an_etag_makes_an_unchanged_tag_list_one_conditional_request(
    registry: TokenRegistry, http: HTTPClient
) -> None:
    registry.etag = '"v1"'
    client = client_for(registry, http)
    repo = registry.repo("team/app")
    first = client.list_tags(repo)
    assert not first.unchanged
    before = len(registry.server.seen)
    second = client.list_tags(repo)
    assert (second.tags, second.unchanged) == (first.tags, True)
    assert len(registry.server.seen) == before + 1
    assert registry.server.seen[-1].headers.get("if-none-match") == '"v1"'


def test_a_token_obtained_with_credentials_serves_no_other_identity(
    registry: TokenRegistry, http: HTTPClient
) -> None:
    alice = client_for(registry, http, RegistryCredentials({registry.host: ALICE}))
    assert alice.list_tags(registry.repo("team/private")).tags == tuple(TAGS)
    token_request = registry.server.seen[1]
    assert token_request.path.startswith("/token") and token_request.authorization.startswith("Basic ")
    assert "scope=repository%3Ateam%2Fprivate%3Apull" in token_request.path
    # the same HTTP client (sessions) with no login: alice's token is never sent
    anonymous = client_for(registry, http)
    before = len(registry.server.seen)
    with pytest.raises(RegistryUnauthorizedError) as info:
        anonymous.list_tags(registry.repo("team/private"))
    assert str(info.value) == (
        f"registry {registry.host}, repository team/private: tag list: HTTP 401 unauthorized; "
        "no credentials for this registry (--image-docker-config, --image-pull-secrets)"
    )
    assert all("tok-alice" not in (r.authorization or "") for r in registry.server.seen[before:])
    # and alice's cached token keeps serving alice without a new token request
    before = len(registry.server.seen)
    alice.list_tags(registry.repo("team/private"))
    assert registry.paths(before) == ["/v2/team/private/tags/list"]


def test_a_429_is_waited_out_for_its_retry_after_then_retried(
    registry: TokenRegistry, http: HTTPClient
) -> None:
    sleep = _NoSleep()
    client = client_for(registry, http, sleep=sleep)
    client.list_tags(registry.repo("team/app"))  # token in hand
    registry.throttle = [(429, {"Retry-After": "7"}, b"")]
    assert client.list_tags(registry.repo("team/app")).tags == tuple(TAGS)
    assert sleep.slept and max(sleep.slept) == pytest.approx(7.0, abs=0.5)


def test_rate_limiting_beyond_the_retries_or_the_cap_is_a_rate_limit_error(
    registry: TokenRegistry, http: HTTPClient
) -> None:
    client = client_for(registry, http, rate_limit_retries=1)
    client.list_tags(registry.repo("team/app"))
    registry.throttle = [(429, {}, b""), (429, {}, b"")]
    with pytest.raises(
        RegistryRateLimitedError, match=r"repository team/app: tag list: HTTP 429 rate limited"
    ):
        client.list_tags(registry.repo("team/app"))
    registry.throttle = [(429, {"Retry-After": "86400"}, b"")]
    with pytest.raises(
        RegistryRateLimitedError, match="asks to wait 86400s, longer than --image-retry-after-max"
    ):
        client.list_tags(registry.repo("team/app"))


@pytest.mark.parametrize(
    ("reply", "error", "message"),
    [
        ((503, {}, b""), RegistryUnreachableError, "HTTP 503"),
        ((403, {}, b""), RegistryUnauthorizedError, "HTTP 403 forbidden"),
        ((200, {}, b"{not json"), RegistryAnswerError, "tag list: the answer is not JSON"),
        ((200, {}, b'{"tags": "1.0"}'), RegistryAnswerError, "'tags' is not a list of strings"),
        (
            (200, {"Link": '<http://elsewhere.example/v2/x>; rel="next"'}, b'{"tags": []}'),
            RegistryAnswerError,
            "on another host",
        ),
        ((200, {}, b"x" * 5000), RegistryAnswerError, "larger than the limit of 1000 bytes"),
    ],
)
def test_failures_are_classified_naming_registry_and_repository(
    registry: TokenRegistry, http: HTTPClient, reply: Reply, error: type[RegistryError], message: str
) -> None:
    client = client_for(registry, http, max_document_bytes=1000)
    client.list_tags(registry.repo("team/app"))
    registry.throttle = [reply]
    with pytest.raises(error, match=f"^registry {registry.host}, repository team/app: ") as info:
        client.list_tags(registry.repo("team/app"))
    assert message in str(info.value)


def test_an_unreachable_registry_and_a_missing_tag(registry: TokenRegistry, http: HTTPClient) -> None:
    closed = LocalServer(lambda _: (200, {}, b""))
    host = closed.url.removeprefix("http://")
    closed.close()
    client = RegistryClient(ImageScanSettings(timeout_s=5), http, plain_http_hosts=[host])
    with pytest.raises(
        RegistryUnreachableError, match=f"registry {host}, repository a/b: tag list: unreachable"
    ):
        client.list_tags(ImageRepository(host, "a/b"))
    with pytest.raises(ImageNotFoundError, match=r"tag 9\.9\.9: HTTP 404 not found"):
        client_for(registry, http).image(registry.repo("team/app"), "9.9.9")


def test_a_scan_reports_each_repositorys_failure_and_scans_the_rest(
    registry: TokenRegistry, http: HTTPClient
) -> None:
    client = client_for(registry, http)
    app, private = registry.repo("team/app"), registry.repo("team/private")
    results = client.scan([app, private, app])
    assert set(results) == {app, private}
    assert results[app].tags is not None and results[app].tags.tags == tuple(TAGS)
    assert isinstance(results[private].error, RegistryUnauthorizedError)
    assert registry.paths().count("/v2/team/app/tags/list") == 2  # challenged once, then listed once


def test_credentials_never_go_in_clear_to_a_token_service_not_declared_plain_http(
    registry: TokenRegistry, http: HTTPClient
) -> None:
    registry.realm = registry.server.url.replace("127.0.0.1", "localhost") + "/token"
    alice = client_for(registry, http, RegistryCredentials({registry.host: ALICE}))
    with pytest.raises(RegistryUnauthorizedError, match=r"the token service localhost:\d+ is plain HTTP"):
        alice.list_tags(registry.repo("team/private"))
    assert "/token" not in registry.paths()
    # anonymous, there is nothing to protect: the token is asked for
    assert client_for(registry, http).list_tags(registry.repo("team/app")).tags == tuple(TAGS)
    assert "/token" in registry.paths()


def test_a_registry_or_token_service_at_a_refused_address_is_never_contacted(
    registry: TokenRegistry, http: HTTPClient
) -> None:
    # lockdown: a registry on loopback (a tenant pointing the agent at an internal service)
    lockdown = Destinations(refuse_local=True, refuse_internal=True)
    client = RegistryClient(
        ImageScanSettings(), http, plain_http_hosts=[registry.host], destinations=lockdown
    )
    with pytest.raises(RegistryAddressRefusedError, match=r"loopback.*--allow-internal-urls"):
        client.list_tags(registry.repo("team/app"))
    assert registry.paths() == []
    # outside lockdown loopback is fine, but a token service on the metadata address is not: the
    # registry names the realm, so a hostile registry could aim the agent at it
    registry.realm = "http://169.254.169.254/token"
    open_rule = Destinations(refuse_local=False, refuse_link_local=True)
    client = RegistryClient(
        ImageScanSettings(), http, plain_http_hosts=[registry.host], destinations=open_rule
    )
    with pytest.raises(RegistryAddressRefusedError, match="link-local"):
        client.list_tags(registry.repo("team/app"))


def test_the_scan_reports_progress_before_each_repository_and_image(
    registry: TokenRegistry, http: HTTPClient
) -> None:
    client = client_for(registry, http)
    beats: list[int] = []
    client.on_progress = lambda: beats.append(1)
    client.scan([registry.repo("team/app"), registry.repo("team/private"), registry.repo("team/app")])
    assert len(beats) == 2  # the image loop's heartbeat moves with the pass
    client.images(registry.repo("team/app"), ["1.0.0", "1.1.0"])
    assert len(beats) == 4
