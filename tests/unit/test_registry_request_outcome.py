"""The outcome label of ``gitops_helm_registry_requests_total``: a small closed set, by class."""

from __future__ import annotations

import socket

import pytest

from gitops_helm.adapters.http import (
    HTTPConnectionRefusedError,
    HTTPError,
    HTTPNameResolutionError,
    HTTPNoTLSError,
    HTTPSizeLimitError,
    HTTPStatusError,
    HTTPTimeoutError,
    HTTPTLSVerifyError,
    classify,
    request_outcome,
)

URL = "https://registry.example/v2/x/tags/list"


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (HTTPStatusError(URL, 401), "unauthorized"),
        (HTTPStatusError(URL, 403), "unauthorized"),
        (HTTPStatusError(URL, 404), "not-found"),
        (HTTPStatusError(URL, 429), "rate-limited"),
        (HTTPStatusError(URL, 503), "error"),
        (HTTPTLSVerifyError(URL, "x"), "tls"),
        (HTTPNoTLSError(URL, "x"), "tls"),
        (HTTPNameResolutionError(URL, "x"), "unreachable"),
        (HTTPConnectionRefusedError(URL, "x"), "unreachable"),
        (HTTPTimeoutError(URL, "x"), "unreachable"),
        (HTTPSizeLimitError(URL, 10), "error"),
    ],
)
def test_each_failure_has_one_bounded_outcome(error: HTTPError, outcome: str) -> None:
    assert request_outcome(error) == outcome


def test_dns_and_refused_connections_are_their_own_classes() -> None:
    assert isinstance(
        classify(OSError(socket.gaierror(-2, "Name or service not known")), URL), HTTPNameResolutionError
    )
    assert isinstance(
        classify(OSError(ConnectionRefusedError(111, "refused")), URL), HTTPConnectionRefusedError
    )


def test_the_host_label_is_bounded_so_a_registry_cannot_add_series_at_will() -> None:
    from gitops_helm.adapters.http import HTTPClient, HTTPSettings

    client = HTTPClient(HTTPSettings(max_metric_hosts=2))
    assert client._metric_host("https://a.example/token") == "a.example"
    assert client._metric_host("https://b.example:5000/v2/") == "b.example:5000"
    assert client._metric_host("https://realm-1.hostile.example/token") == "other"
    assert client._metric_host("https://a.example/other/path") == "a.example"  # a known host keeps its name
