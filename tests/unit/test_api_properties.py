"""Property tests: the parser never fails with anything but SpecError, valid specs round-trip and
satisfy the CRD, and condition/failure bookkeeping keeps its invariants over any sequence."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gitops_helm.api import (
    ConditionStatus,
    SpecError,
    format_time,
    parse_helmrelease,
    serialise_helmrelease,
    set_condition,
)
from gitops_helm.api.parse import MAX_TIMEOUT
from tests.unit.test_api_crd import schema, validate
from tests.unit.test_api_examples import GIT_CHART, REPO_CHART, full_manifest, manifest

PROPERTY_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def json_like(floats: st.SearchStrategy[float]) -> st.SearchStrategy[Any]:
    scalars = st.none() | st.booleans() | st.integers() | floats | st.text(max_size=12)
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
        max_leaves=20,
    )


json_values = json_like(st.floats())
valid_json_values = json_like(st.floats(allow_nan=False, allow_infinity=False))


def paths_of(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path (dict keys and list indexes) inside a JSON value."""
    result = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            result += paths_of(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            result += paths_of(child, (*prefix, index))
    return result


FULL = full_manifest()
FULL_PATHS = paths_of(FULL) + paths_of(manifest(REPO_CHART))


def replace_at(obj: Any, path: tuple[Any, ...], value: Any) -> Any:
    obj = copy.deepcopy(obj)
    node = obj
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    return obj


def parse_or_spec_error(obj: Any) -> Any:
    try:
        return parse_helmrelease(obj)
    except SpecError as error:
        assert error.problems, "a SpecError must list at least one problem"
        return None


@PROPERTY_SETTINGS
@given(json_values)
def test_arbitrary_json_raises_only_spec_error(obj: Any) -> None:
    parse_or_spec_error(obj)


@PROPERTY_SETTINGS
@given(st.dictionaries(st.sampled_from(list(FULL["spec"])), json_values, max_size=6))
def test_arbitrary_spec_fields_raise_only_spec_error(fields: dict[str, Any]) -> None:
    obj = manifest(GIT_CHART)
    obj["spec"].update(fields)
    parse_or_spec_error(obj)


@PROPERTY_SETTINGS
@given(st.lists(st.tuples(st.sampled_from(FULL_PATHS), json_values), min_size=1, max_size=4))
def test_corrupting_any_field_raises_only_spec_error_and_accepted_objects_fit_the_crd(
    edits: list[tuple[tuple[Any, ...], Any]],
) -> None:
    obj: Any = full_manifest()
    for path, value in edits:
        try:
            obj = replace_at(obj, path, value)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier edit removed the container
    hr = parse_or_spec_error(obj)
    if hr is not None:
        assert validate(serialise_helmrelease(hr), schema()) == []


# --- valid specs --------------------------------------------------------------------------------

names = st.from_regex(r"[a-z]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)
bools = st.booleans()
seconds = st.integers(min_value=1, max_value=MAX_TIMEOUT)  # a longer timeout is invalid
retries = st.integers(min_value=-1, max_value=20)
git_charts = st.fixed_dictionaries(
    {"git": st.just("https://example.com/charts.git"), "path": st.sampled_from(["charts/a", "b", "./c/d"])},
    optional={
        "ref": st.sampled_from(["main", "v1.0.0", "0a1b2c3"]),
        "secretRef": st.builds(dict, name=names),
    },
)
repo_charts: st.SearchStrategy[dict[str, Any]] = st.fixed_dictionaries(
    {
        "repository": st.sampled_from(["https://charts.example.com", "oci://registry.example.com/charts"]),
        "name": names,
        "version": st.sampled_from(["1.0.0", ">=1.0.0 <2.0.0", "~1.2"]),
    },
    optional={"chartPullSecret": st.builds(dict, name=names)},
)
values_entries = st.one_of(
    st.builds(lambda n, o: {"configMapKeyRef": {"name": n, "optional": o}}, names, bools),
    st.builds(lambda n, ns: {"secretKeyRef": {"name": n, "namespace": ns, "key": "v.yaml"}}, names, names),
    st.just({"externalSourceRef": {"url": "https://example.com/values.yaml"}}),
    st.just({"chartFileRef": {"path": "values-prod.yaml", "optional": True}}),
)
valid_specs = st.fixed_dictionaries(
    {"chart": git_charts | repo_charts},
    optional={
        "releaseName": names,
        "targetNamespace": names,
        "timeout": seconds,
        "maxHistory": st.integers(min_value=0, max_value=100),
        "resetValues": bools,
        "forceUpgrade": bools,
        "wait": bools,
        "skipCRDs": bools,
        "disableOpenAPIValidation": bools,
        "values": st.dictionaries(st.text(max_size=8), valid_json_values, max_size=4),
        "valuesFrom": st.lists(values_entries, max_size=4),
        "valueFileSecrets": st.lists(st.builds(dict, name=names), max_size=2),
        "rollback": st.fixed_dictionaries(
            {},
            optional={"enable": bools, "retry": bools, "maxRetries": st.integers(0, 10), "timeout": seconds},
        ),
        "test": st.fixed_dictionaries(
            {}, optional={"enable": bools, "ignoreFailures": bools, "timeout": seconds}
        ),
        "helmVersion": st.just("v3"),
        "suspend": bools,
        "dependsOn": st.lists(st.builds(dict, name=names.map(lambda n: "dep-" + n)), max_size=3),
        "install": st.fixed_dictionaries(
            {},
            optional={
                "createNamespace": bools,
                "remediation": st.fixed_dictionaries(
                    {}, optional={"retries": retries, "remediateLastFailure": bools}
                ),
            },
        ),
        "upgrade": st.fixed_dictionaries(
            {},
            optional={
                "remediation": st.fixed_dictionaries(
                    {},
                    optional={
                        "retries": retries,
                        "strategy": st.sampled_from(["rollback", "uninstall"]),
                        "remediateLastFailure": bools,
                        "ignoreTestFailures": bools,
                    },
                )
            },
        ),
        "driftDetection": st.fixed_dictionaries(
            {},
            optional={
                "mode": st.sampled_from(["disabled", "warn", "enabled"]),
                "ignore": st.lists(
                    st.just({"paths": ["/spec/replicas"], "target": {"kind": "Deployment"}}), max_size=2
                ),
            },
        ),
    },
)


@PROPERTY_SETTINGS
@given(valid_specs)
def test_valid_specs_parse_round_trip_and_fit_the_crd(spec: dict[str, Any]) -> None:
    obj = {
        "apiVersion": "helm.fluxcd.io/v1",
        "kind": "HelmRelease",
        "metadata": {"name": "w", "namespace": "ns"},
    }
    obj["spec"] = spec
    hr = parse_helmrelease(obj)
    serialised = serialise_helmrelease(hr)
    assert parse_helmrelease(serialised) == hr
    assert validate(serialised, schema()) == []
    assert validate(obj, schema()) == []  # what the parser accepts here, the API server accepts too


# --- status invariants --------------------------------------------------------------------------

T0 = datetime(2024, 1, 1, tzinfo=UTC)


@PROPERTY_SETTINGS
@given(st.lists(st.sampled_from(list(ConditionStatus)), min_size=1, max_size=12))
def test_transition_time_is_the_time_of_the_last_status_change(sequence: list[ConditionStatus]) -> None:
    conditions: tuple[Any, ...] = ()
    last_change = 0
    for minute, value in enumerate(sequence):
        if minute == 0 or value != sequence[minute - 1]:
            last_change = minute
        conditions = set_condition(
            conditions, "Released", value, reason="r", message="m", now=T0 + timedelta(minutes=minute)
        )
    (condition,) = conditions
    assert condition.last_transition_time == format_time(T0 + timedelta(minutes=last_change))
    assert condition.last_update_time == format_time(T0 + timedelta(minutes=len(sequence) - 1))
