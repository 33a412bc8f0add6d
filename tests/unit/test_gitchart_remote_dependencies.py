"""Which addresses helm reaches for a Git chart's dependencies (checked against the chart
sources' address policy before ``helm dependency update`` runs)."""

from __future__ import annotations

from gitops_helm.charts.gitchart import remote_dependency_urls


def test_repository_urls_and_oci_registries_are_named_local_and_named_repositories_are_not() -> None:
    meta = b"""
apiVersion: v2
name: app
version: 1.0.0
dependencies:
- {name: a, version: 1.0.0, repository: "https://charts.example/stable"}
- {name: b, version: 1.0.0, repository: "HTTP://10.0.0.1:8080/"}
- {name: c, version: 1.0.0, repository: "oci://registry.example/charts"}
- {name: d, version: 1.0.0, repository: "file://../d"}
- {name: e, version: 1.0.0, repository: "@stable"}
- {name: f, version: 1.0.0, repository: "alias:stable"}
- {name: g, version: 1.0.0}
- {name: h, version: 1.0.0, repository: 42}
- just-a-string
"""
    assert remote_dependency_urls(meta) == [
        "https://charts.example/stable",
        "HTTP://10.0.0.1:8080/",
        "https://registry.example/charts",
    ]


def test_no_dependencies_or_odd_shapes_name_nothing() -> None:
    assert remote_dependency_urls(b"apiVersion: v2\nname: app\nversion: 1.0.0\n") == []
    assert remote_dependency_urls(b"dependencies: {a: 1}\n") == []
    assert remote_dependency_urls(b"- a list\n") == []
    assert remote_dependency_urls(b"") == []
