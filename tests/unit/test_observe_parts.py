"""Pure parts of observability: the Event memory, Ready's failed-step reason, the OCI error
messages that name the next step."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from gitops_helm.adapters.http import HTTPNoTLSError, HTTPStatusError, HTTPTLSVerifyError
from gitops_helm.adapters.recent_events import RecentEvents, Written, event_key
from gitops_helm.api import ConditionType, HelmReleaseStatus, Phase, find_condition, record_phase
from gitops_helm.charts.errors import ChartNotFoundError, RepositoryAuthError
from gitops_helm.charts.oci import _chart_error

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@given(st.lists(st.integers(0, 20), max_size=200), st.integers(1, 8))
def test_recent_events_stay_bounded_and_keep_the_latest(keys: list[int], limit: int) -> None:
    memory = RecentEvents(limit)
    for k in keys:
        key = event_key("ns", "HelmRelease", f"r{k}", "uid", "Warning", "Failed", "m")
        memory.remember(key, Written("ns", f"e{k}", 1))
    assert len(memory) <= limit
    if keys:
        last = event_key("ns", "HelmRelease", f"r{keys[-1]}", "uid", "Warning", "Failed", "m")
        assert memory.seen(last) == Written("ns", f"e{keys[-1]}", 1)


def test_ready_reason_names_the_failed_step_and_released_keeps_the_phase() -> None:
    status = record_phase(
        HelmReleaseStatus(),
        Phase.DEPLOY_FAILED,
        release_name="r",
        namespace="n",
        now=NOW,
        detail="boom",
        ready_reason="UpgradeFailed",
    )
    ready = find_condition(status.conditions, ConditionType.READY)
    released = find_condition(status.conditions, ConditionType.RELEASED)
    assert ready is not None and ready.reason == "UpgradeFailed" and ready.status == "False"
    assert released is not None and released.reason == "DeployFailed"


def test_oci_errors_name_the_next_step() -> None:
    url = "https://r.example:5000/v2/charts/hello/tags/list"
    plain = _chart_error(HTTPNoTLSError(url, "the server does not speak TLS"), "chart x", "r.example:5000")
    assert "spec.chart.plainHTTP: true" in str(plain) and "--oci-plain-http r.example:5000" in str(plain)
    assert not plain.temporary
    tls = _chart_error(HTTPTLSVerifyError(url, "TLS certificate verification failed"), "chart x", "h")
    assert "CA" in str(tls)
    denied = _chart_error(HTTPStatusError(url, 401), "chart x", "h")
    assert isinstance(denied, RepositoryAuthError) and "chartPullSecret" in str(denied)
    missing = _chart_error(HTTPStatusError(url, 404), "chart x", "h")
    assert isinstance(missing, ChartNotFoundError) and "version" in str(missing)
