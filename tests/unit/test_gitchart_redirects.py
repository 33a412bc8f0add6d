"""An http(s) ``chart.git`` under a destinations policy: git follows no redirect, because only the
URL's own host is address-checked before git runs (git's default ``http.followRedirects=initial``
would let a hostile server send the agent's git to any address, cloud metadata included)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gitops_helm.adapters.http import Destinations
from gitops_helm.api import GitChartSource
from gitops_helm.charts.errors import ChartError
from gitops_helm.charts.gitchart import GitCharts, GitChartSettings
from tests.localhttp import LocalServer


def _charts(tmp_path: Path, destinations: Destinations | None) -> GitCharts:
    settings = GitChartSettings(work_dir=tmp_path, destinations=destinations)
    helm: Any = object()  # never reached: the fetch fails first
    return GitCharts(settings, kube=None, helm=helm)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("destinations", "followed"),
    [
        # as agent.chart_destinations outside lockdown: loopback allowed, link-local refused
        (Destinations(refuse_local=False, refuse_link_local=True, via_proxy=True, https_upgrade=True), False),
        (None, True),  # no policy (the operator's own sources): git's default is kept
    ],
)
def test_a_redirect_of_a_checked_chart_git_is_not_followed(
    tmp_path: Path, serve: Callable[..., LocalServer], destinations: Destinations | None, followed: bool
) -> None:
    target = serve(lambda r: (404, {}, b"no"))
    hostile = serve(lambda r: (302, {"Location": f"{target.url}{r.path}"}, b""))
    with pytest.raises(ChartError) as exc:
        _charts(tmp_path, destinations).fetch("ns/hr", GitChartSource(git=f"{hostile.url}/r.git", path="c"))
    assert hostile.seen, f"the first request was made ({exc.value})"
    assert bool(target.seen) is followed
