"""Numbers too big to use (a version part with thousands of digits, a timeout of years) are the
project's validation errors naming the field or the version, never another exception; a hostile
index entry served by a real local server is skipped."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gitops_helm.api import SpecError, parse_helmrelease
from gitops_helm.api.parse import MAX_TIMEOUT
from gitops_helm.charts.errors import VersionConstraintError
from gitops_helm.charts.helmrepo import HelmRepoClient, HelmRepoSettings
from gitops_helm.charts.semver import (
    MAX_PART,
    ConstraintError,
    VersionError,
    parse_constraint,
    parse_version,
    select_version,
)
from tests.localhttp import LocalServer
from tests.unit.test_api_examples import REPO_CHART, manifest

PROPERTY_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

HUGE = "9" * 5000  # more digits than int() converts (4300)
digits = st.integers(min_value=0, max_value=6000).map(lambda n: "1" + "0" * n)
version_like = st.builds(
    lambda parts, pre, v: ("v" if v else "") + ".".join(parts) + (f"-{pre}" if pre else ""),
    st.lists(digits | st.sampled_from(["0", "x", "*", "X"]), min_size=1, max_size=3),
    st.none() | digits | st.text(alphabet="0123456789abc.-", max_size=20),
    st.booleans(),
)
ops = st.sampled_from(["", "=", "!=", ">", ">=", "<", "<=", "~", "^", "~>"])
constraint_like = st.builds(lambda op, v: op + v, ops, version_like) | st.text(max_size=40)


@pytest.mark.parametrize(
    "text", [f"1.{HUGE}.0", f"{HUGE}", f"1.0.0-{HUGE}", f"1.0.0-rc.{HUGE}", f"{MAX_PART + 1}.0.0"]
)
def test_a_version_part_too_large_is_a_version_error(text: str) -> None:
    with pytest.raises(VersionError, match=f"larger than {MAX_PART}"):
        parse_version(text)
    with pytest.raises(ConstraintError, match=f"larger than {MAX_PART}"):
        parse_constraint(f">={text}")
    with pytest.raises(ConstraintError):
        select_version(f"^{text}", ["1.0.0"])
    # an index entry with such a version is skipped, as Helm skips it
    assert select_version(">=1.0.0", [text, "1.2.3"]) == "1.2.3"


def test_the_largest_part_helm_accepts_is_accepted() -> None:
    assert parse_version(f"{MAX_PART}.0.0").major == MAX_PART
    assert select_version(f"<={MAX_PART}.0.0", ["1.0.0"]) == "1.0.0"


@PROPERTY_SETTINGS
@given(st.text() | version_like)
def test_parse_version_raises_only_version_error(text: str) -> None:
    with contextlib.suppress(VersionError):
        parse_version(text)


@PROPERTY_SETTINGS
@given(constraint_like, st.lists(st.text(max_size=20) | version_like, max_size=4))
def test_constraints_raise_only_constraint_error(constraint: str, versions: list[str]) -> None:
    with contextlib.suppress(ConstraintError):
        select_version(constraint, versions)


def with_spec(**fields: Any) -> dict[str, Any]:
    obj = copy.deepcopy(manifest(REPO_CHART))
    obj["spec"].update(fields)
    return obj


huge_numbers = (
    st.integers(min_value=MAX_TIMEOUT + 1)
    | st.integers(min_value=0, max_value=6000).map(lambda n: 10**n)
    | st.integers(min_value=0, max_value=6000).map(lambda n: -(10**n))
    | st.floats(min_value=MAX_TIMEOUT + 1, allow_infinity=True)
)


@pytest.mark.parametrize("path", ["timeout", "rollback.timeout", "test.timeout"])
def test_a_timeout_of_years_is_a_spec_error_naming_the_field(path: str) -> None:
    years = 5 * 365 * 24 * 3600
    head, _, leaf = path.rpartition(".")
    spec: dict[str, Any] = {leaf: years} if not head else {head: {"enable": True, leaf: years}}
    with pytest.raises(SpecError) as exc:
        parse_helmrelease(with_spec(**spec))
    assert f"spec.{path}: must be at most {MAX_TIMEOUT} (seconds), got {years}" in str(exc.value)
    ok = {leaf: MAX_TIMEOUT} if not head else {head: {"enable": True, leaf: MAX_TIMEOUT}}
    parse_helmrelease(with_spec(**ok))


@PROPERTY_SETTINGS
@given(st.sampled_from(["timeout", "maxHistory"]), huge_numbers)
def test_huge_numbers_in_the_spec_raise_only_spec_error(field: str, value: int | float) -> None:
    try:
        parse_helmrelease(with_spec(**{field: value}))
    except SpecError as exc:
        assert f"spec.{field}" in str(exc)


@PROPERTY_SETTINGS
@given(st.sampled_from([(), ("1",), ("1", "2")]), digits)
def test_huge_chart_versions_parse_and_fail_only_as_constraint_errors(
    prefix: tuple[str, ...], part: str
) -> None:
    text = ".".join((*prefix, part))
    obj = with_spec(chart={**REPO_CHART, "version": text})
    hr = parse_helmrelease(obj)  # the version is a constraint, resolved when the chart is fetched
    with contextlib.suppress(ConstraintError):
        select_version(hr.spec.chart.version, ["1.0.0"])  # type: ignore[union-attr]


def test_an_index_entry_with_thousands_of_digits_is_skipped(
    tmp_path: Path, serve: Callable[..., LocalServer]
) -> None:
    # one hostile entry in a shared repository index must not break every release of the chart
    index = f"""
apiVersion: v1
entries:
  app:
  - version: 1.{HUGE}.0
    urls: [app-huge.tgz]
  - version: 1.2.0
    urls: [app-1.2.0.tgz]
  - version: 0.9.0
    urls: [app-0.9.0.tgz]
""".encode()
    server = serve(lambda _: (200, {}, index))
    client = HelmRepoClient(HelmRepoSettings(tmp_path), sleep=lambda s: None)
    assert client.resolve(server.url, "app", ">=1.0.0").version == "1.2.0"
    assert client.resolve(server.url, "app", "").version == "1.2.0"
    with pytest.raises(VersionConstraintError, match=f"larger than {MAX_PART}"):
        client.resolve(server.url, "app", f"~1.{HUGE}")
