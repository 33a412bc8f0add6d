"""Which addresses helm reaches for a Git chart's dependencies (checked against the chart
sources' address policy before ``helm dependency update`` runs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitops_helm.adapters.http import Destinations
from gitops_helm.charts.errors import ChartNotFoundError
from gitops_helm.charts.gitchart import GitCharts, GitChartSettings, remote_dependency_urls


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


@pytest.mark.parametrize("repository", ["https://[::1/charts", "https://" + "a" * 64 + ".example/charts"])
def test_a_dependency_repository_that_is_no_url_is_a_chart_error_not_a_crash(
    tmp_path: Path, repository: str
) -> None:
    # a ValueError from URL parsing or IDNA encoding escaped the reconcile as "reconcile crashed"
    (tmp_path / "Chart.yaml").write_text(
        "apiVersion: v2\nname: app\nversion: 1.0.0\ndependencies:\n"
        f'- {{name: a, version: 1.0.0, repository: "{repository}"}}\n'
    )
    settings = GitChartSettings(work_dir=tmp_path, destinations=Destinations())
    charts = GitCharts(settings, kube=None, helm=object())  # type: ignore[arg-type]
    with pytest.raises(ChartNotFoundError, match=r"Chart\.yaml: a dependency repository is not a valid URL"):
        charts._check_dependency_repositories(tmp_path, "app")


def test_in_lockdown_a_dependency_from_a_chart_repository_is_refused_before_helm_runs(tmp_path: Path) -> None:
    # helm downloads the archives the repository's index lists from any address, where no check
    # reaches: in lockdown a tenant's chart could make the agent fetch from inside the cluster
    from gitops_helm.charts.errors import AddressRefusedError

    (tmp_path / "Chart.yaml").write_text(
        "apiVersion: v2\nname: app\nversion: 1.0.0\ndependencies:\n"
        '- {name: a, version: 1.0.0, repository: "https://user:pw@charts.example/stable"}\n'
        '- {name: d, version: 1.0.0, repository: "file://../d"}\n'
    )
    lockdown = Destinations(refuse_local=True, refuse_internal=True, refuse_link_local=True)
    charts = GitCharts(GitChartSettings(work_dir=tmp_path, destinations=lockdown), kube=None, helm=object())  # type: ignore[arg-type]
    with pytest.raises(AddressRefusedError, match="refused in lockdown mode") as refused:
        charts._check_dependency_repositories(tmp_path, "app")
    assert "Chart.yaml" in str(refused.value) and "pw" not in str(refused.value)
    # a file:// sibling alone needs no repository and is not refused
    (tmp_path / "Chart.yaml").write_text(
        "apiVersion: v2\nname: app\nversion: 1.0.0\ndependencies:\n"
        '- {name: d, version: 1.0.0, repository: "file://../d"}\n'
    )
    charts._check_dependency_repositories(tmp_path, "app")
