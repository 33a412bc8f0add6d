"""ClusterValuesReader.url (``externalSourceRef``) against a real local server: 404 is "not
found" (``optional`` may forgive it), any other failure is an error, within the agent's limits."""

from __future__ import annotations

from collections.abc import Iterator
from typing import cast

import pytest

from gitops_helm import values as values_mod
from gitops_helm.adapters.http import Destinations, HTTPClient, HTTPSizeLimitError, HTTPStatusError, Limits
from gitops_helm.adapters.kube import Kube
from gitops_helm.api.spec import ExternalValuesSource
from gitops_helm.release.values_reader import ClusterValuesReader
from tests.localhttp import LocalServer, Reply, Seen, drop

ROUTES: dict[str, Reply] = {
    "/values.yaml": (200, {}, b"a: 1\n"),
    "/moved.yaml": (302, {"Location": "/values.yaml"}, b""),
    "/broken.yaml": (500, {}, b""),
    "/empty.yaml": (204, {}, b""),
    "/big.yaml": (200, {}, b"x" * 65),
    "/drop.yaml": drop,
}


@pytest.fixture
def reader() -> Iterator[tuple[ClusterValuesReader, str]]:
    def handler(request: Seen) -> Reply:
        return ROUTES.get(request.path, (404, {}, b""))

    with LocalServer(handler) as server, HTTPClient() as http:
        # the server is on loopback: allowed here as by --allow-internal-urls (refusals are in
        # test_values_url_destinations.py)
        anywhere = Destinations(refuse_local=False)
        yield (
            ClusterValuesReader(cast(Kube, None), None, http, Limits(2.0, 2.0, 10.0, 64), anywhere),
            server.url,
        )


def test_url_values(reader: tuple[ClusterValuesReader, str]) -> None:
    r, base = reader
    assert r.url(f"{base}/values.yaml") == b"a: 1\n"
    assert r.url(f"{base}/moved.yaml") == b"a: 1\n"
    with pytest.raises(values_mod.SourceNotFound):
        r.url(f"{base}/missing.yaml")
    with pytest.raises(HTTPStatusError, match="HTTP 500") as exc:
        r.url(f"{base}/broken.yaml")
    assert exc.value.temporary
    with pytest.raises(OSError, match="HTTP 204"):
        r.url(f"{base}/empty.yaml")
    with pytest.raises(HTTPSizeLimitError):
        r.url(f"{base}/big.yaml")


def test_a_failing_url_fails_the_values_even_when_optional(reader: tuple[ClusterValuesReader, str]) -> None:
    r, base = reader
    spec = values_mod.ValuesSpec(
        namespace="ns",
        values_from=[ExternalValuesSource(url=f"{base}/drop.yaml", optional=True)],
    )
    with pytest.raises(values_mod.ValuesError, match=r"cannot fetch: HTTPConnectionError: GET .*/drop\.yaml"):
        values_mod.compose_values(spec, r)
    missing = values_mod.ValuesSpec(
        namespace="ns",
        values_from=[ExternalValuesSource(url=f"{base}/missing.yaml", optional=True)],
    )
    assert values_mod.compose_values(missing, r).skipped
