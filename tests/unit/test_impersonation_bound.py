"""Impersonating Kubernetes clients are kept in a bounded LRU and closed when evicted; chart
sources' address policy refuses link-local always, loopback and private only in lockdown."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitops_helm.adapters.http import Destinations, HTTPAddressRefusedError, check_destination
from gitops_helm.adapters.kube import Kube, KubeSettings
from gitops_helm.agent import chart_destinations
from gitops_helm.config import Settings

KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
"""


def _kube(tmp_path: Path, bound: int) -> Kube:
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG)
    return Kube(KubeSettings(kubeconfig=str(path), max_identities=bound))


def test_impersonating_clients_are_bounded_and_the_least_recently_used_is_closed(tmp_path: Path) -> None:
    kube = _kube(tmp_path, bound=2)
    a = kube.impersonating("system:serviceaccount:a:deployer")
    b = kube.impersonating("system:serviceaccount:b:deployer")
    assert kube.impersonating("system:serviceaccount:a:deployer") is a  # a is now the most recent
    closed: list[str] = []
    for client in (a, b):
        client.api.rest_client.pool_manager.clear = (  # type: ignore[method-assign]
            lambda user=client.user: closed.append(str(user))
        )
    c = kube.impersonating("system:serviceaccount:c:deployer")
    assert closed == ["system:serviceaccount:b:deployer"]
    assert kube.impersonating("system:serviceaccount:a:deployer") is a
    assert kube.impersonating("system:serviceaccount:c:deployer") is c
    # an evicted user gets a new client, with its own identity header
    again = kube.impersonating("system:serviceaccount:b:deployer")
    assert again is not b
    assert again.api.default_headers["Impersonate-User"] == "system:serviceaccount:b:deployer"
    assert closed == ["system:serviceaccount:b:deployer", "system:serviceaccount:a:deployer"]


@pytest.mark.parametrize(
    ("address", "lockdown_only"),
    [("127.0.0.1", True), ("10.1.2.3", True), ("169.254.169.254", False), ("::ffff:169.254.169.254", False)],
)
def test_chart_sources_refuse_link_local_always_and_internal_in_lockdown(
    address: str, lockdown_only: bool
) -> None:
    url = f"http://{address if ':' not in address else f'[{address}]'}/index.yaml"
    plain = chart_destinations(Settings())
    locked = chart_destinations(Settings(default_service_account="deployer"))
    with pytest.raises(HTTPAddressRefusedError):
        check_destination(url, locked)
    if lockdown_only:
        check_destination(url, plain)
    else:
        with pytest.raises(HTTPAddressRefusedError, match="link-local"):
            check_destination(url, plain)
    lifted = chart_destinations(Settings(default_service_account="deployer", allow_internal_urls=True))
    check_destination(url, lifted)


def test_values_url_policy_is_unchanged_by_the_link_local_only_mode() -> None:
    assert Destinations(refuse_local=True).refusal("127.0.0.1") == "loopback"
    assert Destinations(refuse_local=False, refuse_link_local=True).refusal("127.0.0.1") is None
    assert (
        Destinations(refuse_local=False, refuse_link_local=True).refusal("fd00:ec2::254")
        == "link-local (cloud metadata)"
    )
    assert not Destinations(refuse_local=False).checks_addresses
