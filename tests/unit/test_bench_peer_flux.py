"""The pure parts of the Flux peer benchmark: reading /proc and client-go's request counter, judging
Ready, the manifests it creates. The measurement itself runs against the real environment
(`python -m bench.peer_flux`)."""

from __future__ import annotations

import json
import os
import time

from hypothesis import given
from hypothesis import strategies as st

from bench import build_flux
from bench.peer_flux import _is_ready, _manifests, cpu_seconds, parse_requests, peak_rss_mib

METRICS_PAGE = """\
# HELP rest_client_requests_total Number of HTTP requests, partitioned by status code, method, and host.
# TYPE rest_client_requests_total counter
rest_client_requests_total{code="200",host="127.0.0.1:6443",method="GET"} 41
rest_client_requests_total{code="200",host="127.0.0.1:6443",method="PATCH"} 7
rest_client_requests_total{code="201",host="127.0.0.1:6443",method="POST"} 3
rest_client_requests_total{code="404",host="127.0.0.1:6443",method="GET"} 2
rest_client_request_duration_seconds_count{host="127.0.0.1:6443",verb="GET"} 99
controller_runtime_reconcile_total{controller="helmrelease",result="success"} 5
"""


def test_requests_are_summed_by_method_across_codes_and_other_series_ignored() -> None:
    assert parse_requests(METRICS_PAGE) == {"GET": 43.0, "PATCH": 7.0, "POST": 3.0}


def test_a_page_without_the_counter_gives_no_requests() -> None:
    assert parse_requests("# nothing here\ngo_goroutines 12\n") == {}


@given(st.dictionaries(st.sampled_from(["GET", "PUT", "PATCH", "POST", "DELETE"]), st.integers(0, 10**9)))
def test_any_counter_page_round_trips(counts: dict[str, int]) -> None:
    page = "".join(
        f'rest_client_requests_total{{code="200",host="h",method="{m}"}} {v}\n' for m, v in counts.items()
    )
    assert parse_requests(page) == {m: float(v) for m, v in counts.items()}


def test_cpu_seconds_of_this_process_grow_with_work_it_does() -> None:
    before = cpu_seconds(os.getpid())
    deadline = time.process_time() + 0.2
    while time.process_time() < deadline:
        pass
    assert cpu_seconds(os.getpid()) > before


def test_peak_rss_of_this_process_is_a_plausible_figure() -> None:
    rss = peak_rss_mib(os.getpid())
    assert 5.0 < rss < 64 * 1024


def _hr(generation: int, observed: int | None, ready: str | None) -> dict[str, object]:
    status: dict[str, object] = {}
    if observed is not None:
        status["observedGeneration"] = observed
    if ready is not None:
        status["conditions"] = [{"type": "Released", "status": "True"}, {"type": "Ready", "status": ready}]
    return {"metadata": {"name": "r", "generation": generation}, "status": status}


def test_ready_needs_the_current_generation_observed_and_ready_true() -> None:
    assert _is_ready(_hr(2, 2, "True"))
    assert not _is_ready(_hr(2, 1, "True"))  # Ready about an older spec
    assert not _is_ready(_hr(2, 2, "False"))
    assert not _is_ready(_hr(2, 2, "Unknown"))
    assert not _is_ready(_hr(1, None, None))  # not yet looked at


def test_manifests_are_one_repository_and_n_releases_of_the_same_chart() -> None:
    doc = json.loads(_manifests("bench-flux-x", 3, "hello", "0.1.0", "http://127.0.0.1:1234"))
    kinds = [item["kind"] for item in doc["items"]]
    assert kinds == ["HelmRepository", "HelmRelease", "HelmRelease", "HelmRelease"]
    assert doc["items"][0]["spec"]["url"] == "http://127.0.0.1:1234"
    names = {item["metadata"]["name"] for item in doc["items"][1:]}
    assert len(names) == 3
    for hr in doc["items"][1:]:
        assert hr["apiVersion"] == "helm.toolkit.fluxcd.io/v2"
        assert hr["metadata"]["namespace"] == "bench-flux-x"
        chart = hr["spec"]["chart"]["spec"]
        assert (chart["chart"], chart["version"]) == ("hello", "0.1.0")
        assert chart["sourceRef"] == {"kind": "HelmRepository", "name": doc["items"][0]["metadata"]["name"]}


def test_the_build_cache_is_outside_the_repository_and_keyed_by_both_versions() -> None:
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    bin_dir = str(build_flux.bin_dir())
    assert not bin_dir.startswith(repo + os.sep)
    assert build_flux.HELM_CONTROLLER_VERSION.lstrip("v") in bin_dir
    assert build_flux.SOURCE_CONTROLLER_VERSION.lstrip("v") in bin_dir
