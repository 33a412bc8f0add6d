"""OciClient against a small registry on 127.0.0.1 (tests/localhttp.py): the Bearer token flow,
tokens and digests kept per credentials, and how HTTP failures become chart errors. The real
registry of the test environment is exercised in tests/integration/test_reconcile_sources.py."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gitops_helm.adapters.http import HTTPClient
from gitops_helm.charts.cache import ChartCache
from gitops_helm.charts.errors import (
    ChartError,
    ChartNotFoundError,
    RepositoryAuthError,
    RepositoryError,
    RepositoryUnavailableError,
    SizeLimitError,
)
from gitops_helm.charts.oci import CHART_LAYER, OciClient, OciCredentials, OciSettings
from tests.localhttp import LocalServer, Reply, Seen

CHART = b"a chart archive"
LAYER = f"sha256:{hashlib.sha256(CHART).hexdigest()}"
MANIFEST = json.dumps({"layers": [{"mediaType": CHART_LAYER, "digest": LAYER, "size": len(CHART)}]}).encode()
ALICE = OciCredentials("alice", "alice-pw")


class Registry:
    """``charts/private`` is readable with alice's token only; ``/token`` hands out tokens."""

    def __init__(self) -> None:
        self.server = LocalServer(self.handle)
        self.manifest: Reply = (200, {"Content-Type": "application/json"}, MANIFEST)
        self.tags: Reply = (200, {}, json.dumps({"tags": ["1.0.0"]}).encode())
        self.token: bytes | None = None  # the token response's body, when not the usual one

    def handle(self, request: Seen) -> Reply:
        if request.path.startswith("/token"):
            basic = "Basic " + base64.b64encode(b"alice:alice-pw").decode()
            token = "tok-alice" if request.authorization == basic else "tok-anonymous"
            return 200, {}, self.token or json.dumps({"token": token}).encode()
        if request.authorization != "Bearer tok-alice":
            challenge = f'Bearer realm="{self.server.url}/token",service="test"'
            return 401, {"WWW-Authenticate": challenge}, b""
        if request.path == "/v2/charts/private/manifests/1.0.0":
            return self.manifest
        if request.path.startswith("/v2/charts/private/tags/list"):
            return self.tags
        if request.path == f"/v2/charts/private/blobs/{LAYER}":
            return 200, {}, CHART
        return 404, {}, b""

    @property
    def host(self) -> str:
        return self.server.url.removeprefix("http://")


@pytest.fixture
def registry() -> Iterator[Registry]:
    r = Registry()
    yield r
    r.server.close()


@pytest.fixture
def make_client(tmp_path: Path, registry: Registry) -> Iterator[Callable[..., OciClient]]:
    http = HTTPClient()

    def make(**settings: int) -> OciClient:
        return OciClient(
            OciSettings(plain_http_hosts=(registry.host,), **settings), ChartCache(tmp_path), http
        )

    yield make
    http.close()


def test_token_flow_then_the_chart(registry: Registry, make_client: Callable[..., OciClient]) -> None:
    client = make_client()
    chart = client.fetch(f"oci://{registry.host}/charts", "private", "1.0.0", ALICE)
    assert (chart.version, chart.digest, chart.path.read_bytes()) == ("1.0.0", LAYER, CHART)
    assert [r.path.split("?")[0] for r in registry.server.seen] == [
        "/v2/charts/private/manifests/1.0.0",
        "/token",
        "/v2/charts/private/manifests/1.0.0",
        f"/v2/charts/private/blobs/{LAYER}",
    ]
    assert "scope=repository%3Acharts%2Fprivate%3Apull" in registry.server.seen[1].path


def test_a_token_or_digest_obtained_with_credentials_serves_no_one_else(
    registry: Registry, make_client: Callable[..., OciClient]
) -> None:
    client = make_client()
    client.fetch(f"oci://{registry.host}/charts", "private", "1.0.0", ALICE)
    before = len(registry.server.seen)
    with pytest.raises(RepositoryAuthError, match="HTTP 401 unauthorized"):
        client.fetch(f"oci://{registry.host}/charts", "private", "1.0.0")  # anonymous
    anonymous = registry.server.seen[before:]
    assert anonymous and all(r.authorization != "Bearer tok-alice" for r in anonymous)
    assert client.fetch(f"oci://{registry.host}/charts", "private", "1.0.0", ALICE).path.is_file()


@pytest.mark.parametrize(
    ("reply", "error", "temporary", "message"),
    [
        ((404, {}, b""), ChartNotFoundError, False, "HTTP 404 not found"),
        ((503, {}, b""), RepositoryUnavailableError, True, "HTTP 503"),
        ((403, {}, b""), RepositoryAuthError, False, "HTTP 403 forbidden"),
        ((200, {}, b"{not json"), RepositoryError, False, "not JSON"),
        ((200, {}, b"x" * 2000), SizeLimitError, False, "larger than the limit of 1000 bytes"),
    ],
)
def test_http_failures_become_chart_errors(
    registry: Registry,
    make_client: Callable[..., OciClient],
    reply: Reply,
    error: type[ChartError],
    temporary: bool,
    message: str,
) -> None:
    registry.manifest = reply
    with pytest.raises(error, match=message) as exc:
        make_client(max_document_bytes=1000).fetch(f"oci://{registry.host}/charts", "private", "1.0.0", ALICE)
    assert exc.value.temporary is temporary
    assert "alice-pw" not in str(exc.value)


def test_an_unreachable_registry_is_temporary(make_client: Callable[..., OciClient]) -> None:
    client = make_client()
    client.settings = OciSettings(plain_http_hosts=("127.0.0.1:1",))
    with pytest.raises(RepositoryUnavailableError, match="connection refused"):
        client.fetch("oci://127.0.0.1:1/charts", "private", "1.0.0")


def _manifest(*layers: object, **extra: object) -> Reply:
    return 200, {"Content-Type": "application/json"}, json.dumps({"layers": list(layers), **extra}).encode()


_LAYER = {"mediaType": CHART_LAYER, "digest": LAYER, "size": len(CHART)}


@pytest.mark.parametrize(
    ("manifest", "error", "message"),
    [
        (_manifest(), RepositoryError, "is not a Helm chart \\(no chart layer\\)"),
        ((200, {}, json.dumps({"layers": 5}).encode()), RepositoryError, "layers is not a list of objects"),
        (
            (200, {}, json.dumps({"layers": "abc"}).encode()),
            RepositoryError,
            "layers is not a list of objects",
        ),
        (_manifest("a layer"), RepositoryError, "layers is not a list of objects"),
        (_manifest({**_LAYER, "size": "big"}), RepositoryError, "malformed manifest \\(layer size 'big'\\)"),
        (_manifest({**_LAYER, "size": {"a": 1}}), RepositoryError, "malformed manifest \\(layer size"),
        (_manifest({**_LAYER, "size": -1}), RepositoryError, "malformed manifest \\(layer size '-1'\\)"),
        (_manifest({**_LAYER, "size": 10**30}), SizeLimitError, "larger than the limit of"),
        (_manifest({**_LAYER, "digest": ["sha256:x"]}), RepositoryError, "unsupported layer digest"),
        (_manifest({**_LAYER, "digest": "md5:abc"}), RepositoryError, "unsupported layer digest 'md5:abc'"),
        ((200, {}, b"[" * 1_000_000), RepositoryError, "the registry's answer is not JSON"),
        ((200, {}, b"[1, 2]"), RepositoryError, "not a JSON object"),
    ],
)
def test_a_malformed_manifest_is_a_chart_error_naming_the_reference(
    registry: Registry,
    make_client: Callable[..., OciClient],
    manifest: Reply,
    error: type[ChartError],
    message: str,
) -> None:
    registry.manifest = manifest
    reference = f"oci://{registry.host}/charts/private:1.0.0"
    with pytest.raises(error, match=f"^chart {reference}.*{message}") as exc:
        make_client().fetch(f"oci://{registry.host}/charts", "private", "1.0.0", ALICE)
    assert not exc.value.temporary


@pytest.mark.parametrize(
    "tags",
    [{"tags": "1.0.0"}, {"tags": [1, 2]}, {"tags": {"a": "1.0.0"}}, {"tags": [["1.0.0"]]}],
)
def test_a_malformed_tag_list_is_a_chart_error_naming_the_reference(
    registry: Registry, make_client: Callable[..., OciClient], tags: object
) -> None:
    registry.tags = (200, {}, json.dumps(tags).encode())
    with pytest.raises(
        RepositoryError, match=f"oci://{registry.host}/charts/private tag list: .*no list of tags"
    ):
        make_client().fetch(f"oci://{registry.host}/charts", "private", ">=1.0.0", ALICE)


@pytest.mark.parametrize(
    "body", [b'{"token": {"a": 1}}', b'{"token": "tok\\r\\nX-Evil: 1"}', b'{"token": 5}']
)
def test_an_unusable_token_reports_the_registrys_401(
    registry: Registry, make_client: Callable[..., OciClient], body: bytes
) -> None:
    registry.token = body
    with pytest.raises(
        RepositoryAuthError, match=f"chart oci://{registry.host}/charts/private:1.0.0: HTTP 401"
    ):
        make_client().fetch(f"oci://{registry.host}/charts", "private", "1.0.0", ALICE)
