"""The verb each Kubernetes request is counted under in ``gitops_helm_kube_requests_total``."""

from __future__ import annotations

import pytest

from gitops_helm.adapters.kube import _request_verb

BASE = "https://127.0.0.1:6443/apis/helm.fluxcd.io/v1/namespaces/apps/helmreleases"


@pytest.mark.parametrize(
    ("method", "url", "verb"),
    [
        ("GET", BASE, "get"),
        ("GET", f"{BASE}/web", "get"),
        ("GET", f"{BASE}?labelSelector=a%3Db", "get"),
        ("GET", f"{BASE}?watch=true&resourceVersion=12", "watch"),
        ("GET", f"{BASE}?resourceVersion=12&watch=true", "watch"),
        ("GET", f"{BASE}?watch=false", "get"),
        ("GET", f"{BASE}?allowWatchBookmarks=true", "get"),
        ("POST", BASE, "create"),
        ("PUT", f"{BASE}/web", "update"),
        ("PATCH", f"{BASE}/web/status", "patch"),
        ("patch", f"{BASE}/web", "patch"),
        ("DELETE", f"{BASE}/web", "delete"),
        ("HEAD", BASE, "other"),
    ],
)
def test_each_request_is_counted_under_its_api_verb(method: str, url: str, verb: str) -> None:
    assert _request_verb(method, url) == verb
