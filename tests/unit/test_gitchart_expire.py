"""``GitCharts.expire`` (the agent's Git sync saw a new commit of the repository a Git chart
lives in): the next fetch or poll fetches the mirror, an outage then still serves the last
fetched state, and a fetch already under way when the commit was seen does not count as fresh."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from gitops_helm.adapters.git import GitError, Mirror
from gitops_helm.api import GitChartSource
from gitops_helm.charts.gitchart import GitCharts, GitChartSettings


def _repo(tmp_path: Path) -> str:
    work = tmp_path / "origin"
    chart = work / "charts" / "app"
    chart.mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: app\nversion: 0.1.0\n")
    run = ["git", "-C", str(work), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True)
    subprocess.run([*run, "add", "."], check=True)
    subprocess.run([*run, "commit", "-q", "-m", "one"], check=True)
    return str(work)


def _charts(tmp_path: Path) -> GitCharts:
    settings = GitChartSettings(work_dir=tmp_path / "gc", refresh_s=3600.0, update_deps=False)
    helm: Any = object()  # no dependency update
    return GitCharts(settings, kube=None, helm=helm)  # type: ignore[arg-type]


def test_an_outage_after_expire_still_serves_the_last_fetched_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = _repo(tmp_path)
    source = GitChartSource(git=url, ref="main", path="charts/app")
    charts = _charts(tmp_path)
    first = charts.fetch("ns/a", source)
    assert charts.expire(url) == 1

    def down(self: Mirror) -> None:
        raise GitError("fetch", url, "connection refused")

    monkeypatch.setattr(Mirror, "ensure_mirror", down)
    assert charts.fetch("ns/a", source).digest == first.digest


def test_a_fetch_under_way_when_the_mirror_expired_leaves_it_due(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = _repo(tmp_path)
    source = GitChartSource(git=url, ref="main", path="charts/app")
    charts = _charts(tmp_path)
    charts.fetch("ns/a", source)
    real = Mirror.ensure_mirror
    fetches: list[int] = []

    def racing(self: Mirror) -> None:
        real(self)
        fetches.append(1)
        if len(fetches) == 1:
            charts.expire(url)  # the sync saw a commit this fetch may have missed

    monkeypatch.setattr(Mirror, "ensure_mirror", racing)
    charts.expire(url)
    charts.fetch("ns/a", source)  # fetches (expired); the sync expires it again meanwhile
    charts.fetch("ns/a", source)  # so this one fetches too
    charts.fetch("ns/a", source)  # and this one finds it fresh
    assert len(fetches) == 2
