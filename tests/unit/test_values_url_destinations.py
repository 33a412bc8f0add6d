"""Where a values URL (``valuesFrom.externalSourceRef``) may lead, against real local servers:
http(s) only, loopback and link-local refused by default, private addresses too in lockdown
mode, ``--allow-internal-urls`` lifting both, redirects checked hop by hop and kept to their
scheme, a size cap, and URLs shown without credentials or query strings."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gitops_helm import values as values_mod
from gitops_helm.adapters.http import (
    Destinations,
    HTTPAddressRefusedError,
    HTTPClient,
    HTTPInvalidRequestError,
    HTTPSizeLimitError,
    Identity,
    Limits,
)
from gitops_helm.adapters.kube import Kube
from gitops_helm.api.spec import ExternalValuesSource
from gitops_helm.config import Settings
from gitops_helm.release.values_reader import ClusterValuesReader, url_destinations
from tests.localhttp import LocalServer, Reply, outward_address, unframed

LIMITS = Limits(2.0, 2.0, 10.0, 1024)
VALUES: Reply = (200, {}, b"a: 1\n")

DEFAULT = url_destinations(Settings())
LOCKDOWN = url_destinations(Settings(allow_cross_namespace_refs=False))
ALLOW_INTERNAL = url_destinations(Settings(allow_internal_urls=True))


@pytest.fixture
def http() -> Iterator[HTTPClient]:
    with HTTPClient() as client:
        yield client


def reader(http: HTTPClient, destinations: Destinations, limits: Limits = LIMITS) -> ClusterValuesReader:
    return ClusterValuesReader(cast(Kube, None), None, http, limits, destinations)


@pytest.fixture
def outward() -> str:
    address = outward_address()
    if address is None:
        pytest.skip("this machine has no address but loopback")
    return address


def test_settings_choose_the_destinations() -> None:
    assert Destinations(refuse_local=True, refuse_internal=False) == DEFAULT
    assert Destinations(refuse_local=True, refuse_internal=True) == LOCKDOWN
    assert url_destinations(Settings(default_service_account="runner")) == LOCKDOWN
    # the issue: --allow-internal-urls lifts both, loopback/link-local and private, in lockdown too
    assert Destinations(refuse_local=False, refuse_internal=False) == ALLOW_INTERNAL
    lifted = url_destinations(Settings(allow_internal_urls=True, allow_cross_namespace_refs=False))
    assert lifted == ALLOW_INTERNAL


def test_loopback_is_refused_by_default_before_any_request(
    http: HTTPClient, serve: Callable[..., LocalServer]
) -> None:
    server = serve(lambda _: VALUES)
    port = server.url.rsplit(":", 1)[1]
    for url in (
        f"{server.url}/values.yaml",
        f"http://localhost:{port}/values.yaml",  # a name is checked by what it resolves to
        f"http://[::ffff:127.0.0.1]:{port}/values.yaml",  # IPv4 written as IPv6
        f"http://0.0.0.0:{port}/values.yaml",  # reaches the host itself
    ):
        with pytest.raises(HTTPAddressRefusedError, match="loopback") as exc:
            reader(http, DEFAULT).url(url)
        assert not exc.value.temporary
    assert server.seen == []  # refused before connecting, not after asking
    assert reader(http, ALLOW_INTERNAL).url(f"{server.url}/values.yaml") == b"a: 1\n"


def test_cloud_metadata_and_link_local_are_refused_by_default(http: HTTPClient) -> None:
    for url in (
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://[fe80::1]/values.yaml",
        "http://[fd00:ec2::254]/latest/meta-data/",  # AWS's metadata endpoint over IPv6
    ):
        with pytest.raises(HTTPAddressRefusedError, match="link-local"):
            reader(http, DEFAULT).url(url)
        with pytest.raises(HTTPAddressRefusedError, match="link-local"):
            reader(http, LOCKDOWN).url(url)
    assert ALLOW_INTERNAL.refusal("169.254.169.254") is None
    # the same addresses written inside IPv6: mapped, NAT64, 6to4
    for address in ("::ffff:169.254.169.254", "64:ff9b::a9fe:a9fe", "2002:a9fe:a9fe::1"):
        assert DEFAULT.refusal(address) == "link-local (cloud metadata)", address
    assert DEFAULT.refusal("64:ff9b::7f00:1") == "loopback"


def test_private_addresses_are_allowed_by_default_and_refused_in_lockdown(
    http: HTTPClient, serve: Callable[..., LocalServer], outward: str
) -> None:
    server = LocalServer(lambda _: VALUES, host=outward)
    try:
        assert reader(http, DEFAULT).url(f"{server.url}/values.yaml") == b"a: 1\n"
        with pytest.raises(HTTPAddressRefusedError, match="private or cluster-internal"):
            reader(http, LOCKDOWN).url(f"{server.url}/values.yaml")
        assert len(server.seen) == 1
        assert reader(http, ALLOW_INTERNAL).url(f"{server.url}/values.yaml") == b"a: 1\n"
    finally:
        server.close()
    for address in ("10.96.0.1", "192.168.1.10", "172.16.0.5", "100.64.0.1", "fd12::1", "::ffff:10.0.0.1"):
        assert DEFAULT.refusal(address) is None, address
        assert LOCKDOWN.refusal(address) == "private or cluster-internal", address
    assert LOCKDOWN.refusal("93.184.215.14") is None


def test_a_redirect_to_loopback_is_refused(
    http: HTTPClient, serve: Callable[..., LocalServer], outward: str
) -> None:
    inside = serve(lambda _: VALUES)
    allowed = LocalServer(lambda _: (302, {"Location": f"{inside.url}/values.yaml"}, b""), host=outward)
    try:
        with pytest.raises(HTTPAddressRefusedError, match="loopback"):
            reader(http, DEFAULT).url(f"{allowed.url}/moved.yaml")
        assert [s.path for s in allowed.seen] == ["/moved.yaml"]
        assert inside.seen == []
    finally:
        allowed.close()


def test_a_redirect_may_not_change_the_scheme(
    http: HTTPClient, serve: Callable[..., LocalServer], server_tls: Callable[..., object], pki: Path
) -> None:
    plain = serve(lambda _: VALUES)
    secure = serve(lambda _: (302, {"Location": f"{plain.url}/values.yaml"}, b""), server_tls())
    trusted = Identity(ca_file=str(pki / "ca.crt"))
    with pytest.raises(HTTPInvalidRequestError, match="redirect from https to http refused"):
        http.get(f"{secure.url}/moved.yaml", limits=LIMITS, identity=trusted, destinations=ALLOW_INTERNAL)
    assert plain.seen == []
    # a redirect within the scheme is followed
    same = serve(lambda s: VALUES if s.path == "/values.yaml" else (301, {"Location": "/values.yaml"}, b""))
    assert reader(http, ALLOW_INTERNAL).url(f"{same.url}/old.yaml") == b"a: 1\n"


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/values.yaml", "gopher://x/"])
def test_only_http_and_https(http: HTTPClient, url: str) -> None:
    for destinations in (DEFAULT, ALLOW_INTERNAL):
        with pytest.raises(HTTPInvalidRequestError, match="only http and https URLs are allowed"):
            reader(http, destinations).url(url)


def test_an_oversized_body_is_refused(http: HTTPClient, serve: Callable[..., LocalServer]) -> None:
    big = b"a: " + b"x" * 4096 + b"\n"
    server = serve(lambda s: (200, {}, big) if s.path == "/framed" else unframed(big))
    with pytest.raises(HTTPSizeLimitError):
        reader(http, ALLOW_INTERNAL).url(f"{server.url}/framed")
    with pytest.raises(HTTPSizeLimitError):  # no Content-Length: counted while it streams
        reader(http, ALLOW_INTERNAL).url(f"{server.url}/unframed")


def test_a_refusal_names_the_source_without_credentials_or_query(http: HTTPClient) -> None:
    url = "http://user:hunter2@169.254.169.254/creds?token=s3cret"
    spec = values_mod.ValuesSpec(namespace="ns", values_from=[ExternalValuesSource(url=url, optional=True)])
    with pytest.raises(values_mod.ValuesError) as exc:
        values_mod.compose_values(spec, reader(http, DEFAULT))
    message = str(exc.value)
    assert message.startswith(
        "valuesFrom[0] externalSourceRef http://169.254.169.254/creds?...: cannot fetch"
    )
    assert "link-local" in message
    assert "hunter2" not in message and "s3cret" not in message and "user" not in message


def test_a_proxy_from_the_environment_is_not_used_for_checked_urls(
    http: HTTPClient, serve: Callable[..., LocalServer], outward: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a proxy would resolve the name itself, where the address check cannot see it
    proxy = serve(lambda _: (200, {}, b"from: proxy\n"))
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("http_proxy", proxy.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    server = LocalServer(lambda _: VALUES, host=outward)
    try:
        assert reader(http, DEFAULT).url(f"{server.url}/values.yaml") == b"a: 1\n"
    finally:
        server.close()
    assert proxy.seen == []
    assert len(server.seen) == 1


def test_with_internal_urls_allowed_the_environments_proxy_is_used(
    http: HTTPClient, serve: Callable[..., LocalServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    # nothing to check, so nothing to bypass: a cluster that reaches the internet only through a
    # proxy keeps getting its values
    proxy = serve(lambda _: (200, {}, b"from: proxy\n"))
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("http_proxy", proxy.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert reader(http, ALLOW_INTERNAL).url("http://values.example.invalid/values.yaml") == b"from: proxy\n"
    assert [seen.path for seen in proxy.seen] == ["http://values.example.invalid/values.yaml"]


@settings(max_examples=500, deadline=None)
@given(st.ip_addresses())
def test_lockdown_refuses_everything_the_default_refuses_and_allow_internal_nothing(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    text = str(address)
    if DEFAULT.refusal(text) is not None:
        assert LOCKDOWN.refusal(text) == DEFAULT.refusal(text)
    assert ALLOW_INTERNAL.refusal(text) is None
    if address.is_loopback or address.is_link_local:
        assert DEFAULT.refusal(text) is not None
    if not address.is_global and not isinstance(address, ipaddress.IPv6Address):
        assert LOCKDOWN.refusal(text) is not None
