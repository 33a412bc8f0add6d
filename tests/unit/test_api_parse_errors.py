"""parse_helmrelease on invalid input: every problem is reported, each with its field path."""

from __future__ import annotations

from typing import Any

import pytest

from gitops_helm.api import APIError, Problem, SpecError, parse_helmrelease
from tests.unit.test_api_examples import GIT_CHART, REPO_CHART, manifest


def problems(obj: Any) -> list[tuple[str, str]]:
    with pytest.raises(SpecError) as caught:
        parse_helmrelease(obj)
    return [(p.path, p.message) for p in caught.value.problems]


def assert_problem(obj: Any, path: str, fragment: str) -> None:
    found = problems(obj)
    assert any(p == path and fragment in m for p, m in found), found


CHART_CASES: list[tuple[dict[str, Any], str, str]] = [
    ({}, "spec.chart", "no chart source: set git and path"),
    ({"git": "https://example.com/c.git"}, "spec.chart.path", "required for a Git chart source"),
    ({"path": "charts/x"}, "spec.chart.git", "required for a Git chart source"),
    ({"repository": "https://c.example.com", "name": "x"}, "spec.chart.version", "required for a repository"),
    ({"name": "x", "version": "1.0.0"}, "spec.chart.repository", "required for a repository chart source"),
    ({**GIT_CHART, **REPO_CHART}, "spec.chart", "sets both a Git source"),
    ({**REPO_CHART, "repository": "charts.example.com"}, "spec.chart.repository", "must be a URL"),
    ({**REPO_CHART, "repository": "oci://"}, "spec.chart.repository", "must be a URL"),
    ({**REPO_CHART, "name": "stable/podinfo"}, "spec.chart.name", "without a repository prefix"),
    ({**REPO_CHART, "version": "--devel"}, "spec.chart.version", "chart version"),
    ({**REPO_CHART, "chartPullSecret": {}}, "spec.chart.chartPullSecret.name", "required"),
    ({**GIT_CHART, "git": "--upload-pack=evil"}, "spec.chart.git", "must not start with '-'"),
    ({**GIT_CHART, "path": "/etc"}, "spec.chart.path", "relative path"),
    ({**GIT_CHART, "path": "charts/../../etc"}, "spec.chart.path", "must not contain '..'"),
    ({**GIT_CHART, "ref": "main branch"}, "spec.chart.ref", "whitespace"),
    ({**GIT_CHART, "secretRef": {"namespace": "flux"}}, "spec.chart.secretRef.name", "required"),
    ({**GIT_CHART, "secretRef": {"name": "Creds"}}, "spec.chart.secretRef.name", "valid object name"),
    ({**GIT_CHART, "skipDepUpdate": "yes"}, "spec.chart.skipDepUpdate", "must be true or false, got string"),
    ({**GIT_CHART, "git": 42}, "spec.chart.git", "must be a string, got integer"),
]


@pytest.mark.parametrize(("chart", "path", "fragment"), CHART_CASES)
def test_chart_problems_name_their_path(chart: dict[str, Any], path: str, fragment: str) -> None:
    assert_problem(manifest(chart), path, fragment)


SPEC_CASES: list[tuple[dict[str, Any], str, str]] = [
    ({"timeout": -1}, "spec.timeout", "must be at least 1 (seconds), got -1"),
    ({"timeout": 0}, "spec.timeout", "must be at least 1"),
    ({"timeout": "5m"}, "spec.timeout", "must be an integer (seconds), got string"),
    ({"timeout": 2**64}, "spec.timeout", "must be at most"),
    ({"timeout": True}, "spec.timeout", "got boolean"),
    ({"maxHistory": -1}, "spec.maxHistory", "must be at least 0"),
    ({"resetValues": "false"}, "spec.resetValues", "must be true or false"),
    ({"wait": 1}, "spec.wait", "must be true or false, got integer"),
    ({"forceUpgrade": None, "skipCRDs": "x"}, "spec.skipCRDs", "must be true or false"),
    ({"disableOpenAPIValidation": []}, "spec.disableOpenAPIValidation", "got array"),
    ({"releaseName": "Web_App"}, "spec.releaseName", "not a valid Helm release name"),
    ({"releaseName": "a" * 54}, "spec.releaseName", "Helm allows at most 53"),
    ({"targetNamespace": "x" * 50}, "spec.releaseName", "the default release name 'apps-xxxx"),
    ({"targetNamespace": "Prod"}, "spec.targetNamespace", "valid namespace name"),
    ({"helmVersion": "v2"}, "spec.helmVersion", "Helm 2 (Tiller) is end of life"),
    ({"helmVersion": "v4"}, "spec.helmVersion", "must be v3, got 'v4'"),
    ({"values": []}, "spec.values", "must be an object, got array"),
    ({"values": {"a": {"b": float("inf")}}}, "spec.values.a.b", "must be a finite number"),
    ({"values": {"a": [1, {2: "x"}]}}, "spec.values.a[1][2]", "keys must be strings, got integer"),
    ({"values": {"when": object()}}, "spec.values.when", "not a JSON value"),
    (
        {"values": {"app.kubernetes.io/name": {"x": float("nan")}}},
        'spec.values["app.kubernetes.io/name"].x',
        "must be a finite number",
    ),
    ({"valuesFrom": {}}, "spec.valuesFrom", "must be an array, got object"),
    ({"valuesFrom": ["x"]}, "spec.valuesFrom[0]", "must be an object"),
    ({"valuesFrom": [{}]}, "spec.valuesFrom[0]", "must set one of configMapKeyRef"),
    ({"valuesFrom": [{"typo": {}}]}, "spec.valuesFrom[0]", "must set one of"),
    ({"valuesFrom": [{"configMapKeyRef": {}}]}, "spec.valuesFrom[0].configMapKeyRef.name", "required"),
    (
        {"valuesFrom": [{"configMapKeyRef": {"name": ""}}]},
        "spec.valuesFrom[0].configMapKeyRef.name",
        "required",
    ),
    ({"valuesFrom": [{"configMapKeyRef": "cm"}]}, "spec.valuesFrom[0].configMapKeyRef", "must be an object"),
    (
        {"valuesFrom": [{"secretKeyRef": {"name": "s", "key": "a b"}}]},
        "spec.valuesFrom[0].secretKeyRef.key",
        "letters, digits",
    ),
    (
        {"valuesFrom": [{"secretKeyRef": {"name": "s", "namespace": "Bad_NS"}}]},
        "spec.valuesFrom[0].secretKeyRef.namespace",
        "valid namespace name",
    ),
    (
        {"valuesFrom": [{"secretKeyRef": {"name": "s", "optional": "yes"}}]},
        "spec.valuesFrom[0].secretKeyRef.optional",
        "must be true or false",
    ),
    ({"valuesFrom": [{"externalSourceRef": {}}]}, "spec.valuesFrom[0].externalSourceRef.url", "required"),
    (
        {"valuesFrom": [{"externalSourceRef": {"url": "file:///etc/passwd"}}]},
        "spec.valuesFrom[0].externalSourceRef.url",
        "http:// or https://",
    ),
    (
        {"valuesFrom": [{"externalSourceRef": {"url": "http://[::1"}}]},
        "spec.valuesFrom[0].externalSourceRef.url",
        "http:// or https://",
    ),
    (
        {"valuesFrom": [{"chartFileRef": {"path": "../../secrets.yaml"}}]},
        "spec.valuesFrom[0].chartFileRef.path",
        "must not contain '..'",
    ),
    ({"valueFileSecrets": [{}]}, "spec.valueFileSecrets[0].name", "required"),
    ({"valueFileSecrets": "s"}, "spec.valueFileSecrets", "must be an array"),
    ({"rollback": "yes"}, "spec.rollback", "must be an object, got string"),
    ({"rollback": {"maxRetries": -1}}, "spec.rollback.maxRetries", "must be at least 0"),
    ({"rollback": {"timeout": -5}}, "spec.rollback.timeout", "must be at least 1"),
    ({"rollback": {"enable": "true"}}, "spec.rollback.enable", "must be true or false"),
    ({"test": {"timeout": -1}}, "spec.test.timeout", "must be at least 1"),
    ({"test": {"ignoreFailures": 0}}, "spec.test.ignoreFailures", "must be true or false"),
    ({"suspend": "true"}, "spec.suspend", "must be true or false"),
    ({"dependsOn": [{}]}, "spec.dependsOn[0].name", "required"),
    ({"dependsOn": ["db"]}, "spec.dependsOn[0]", "must be an object"),
    ({"dependsOn": [{"name": "web"}]}, "spec.dependsOn[0]", "cannot depend on itself"),
    ({"install": {"createNamespace": 1}}, "spec.install.createNamespace", "must be true or false"),
    ({"install": {"remediation": {"retries": -2}}}, "spec.install.remediation.retries", "at least -1"),
    ({"install": {"remediation": []}}, "spec.install.remediation", "must be an object"),
    (
        {"upgrade": {"remediation": {"strategy": "retry"}}},
        "spec.upgrade.remediation.strategy",
        "rollback, uninstall",
    ),
    ({"upgrade": {"remediation": {"strategy": 3}}}, "spec.upgrade.remediation.strategy", "got integer"),
    (
        {"upgrade": {"remediation": {"retries": "3"}}},
        "spec.upgrade.remediation.retries",
        "must be an integer",
    ),
    (
        {"upgrade": {"remediation": {"remediateLastFailure": "no"}}},
        "spec.upgrade.remediation.remediateLastFailure",
        "must be true or false",
    ),
    (
        {"driftDetection": {"mode": "on"}},
        "spec.driftDetection.mode",
        "must be one of disabled, warn, enabled",
    ),
    ({"driftDetection": {"ignore": [{}]}}, "spec.driftDetection.ignore[0].paths", "required"),
    ({"driftDetection": {"ignore": [{"paths": []}]}}, "spec.driftDetection.ignore[0].paths", "at least one"),
    (
        {"driftDetection": {"ignore": [{"paths": ["spec"]}]}},
        "spec.driftDetection.ignore[0].paths[0]",
        "JSON pointer",
    ),
    (
        {"driftDetection": {"ignore": [{"paths": ["/a~2"]}]}},
        "spec.driftDetection.ignore[0].paths[0]",
        "JSON pointer",
    ),
    (
        {"driftDetection": {"ignore": [{"paths": [1]}]}},
        "spec.driftDetection.ignore[0].paths[0]",
        "must be a string",
    ),
    (
        {"driftDetection": {"ignore": [{"paths": ["/a"], "target": {"namespace": "A"}}]}},
        "spec.driftDetection.ignore[0].target.namespace",
        "valid namespace",
    ),
]


@pytest.mark.parametrize(("spec", "path", "fragment"), SPEC_CASES)
def test_spec_problems_name_their_path(spec: dict[str, Any], path: str, fragment: str) -> None:
    assert_problem(manifest(**spec), path, fragment)


@pytest.mark.parametrize(
    ("mutate", "path", "fragment"),
    [
        (lambda o: o.pop("spec"), "spec", "required"),
        (lambda o: o.update(spec=[]), "spec", "must be an object, got array"),
        (lambda o: o["spec"].pop("chart"), "spec.chart", "required"),
        (lambda o: o.pop("metadata"), "metadata", "required"),
        (lambda o: o["metadata"].pop("name"), "metadata.name", "required"),
        (lambda o: o["metadata"].update(namespace="Apps"), "metadata.namespace", "valid namespace"),
        (lambda o: o["metadata"].update(generation=-1), "metadata.generation", "at least 0"),
        (lambda o: o["metadata"].update(labels={"a": 1}), "metadata.labels.a", "string to a string"),
        (
            lambda o: o.update(apiVersion="helm.toolkit.fluxcd.io/v2"),
            "apiVersion",
            "must be helm.fluxcd.io/v1",
        ),
        (lambda o: o.update(kind="Kustomization"), "kind", "must be HelmRelease"),
    ],
)
def test_object_level_problems(mutate: Any, path: str, fragment: str) -> None:
    obj = manifest()
    mutate(obj)
    assert_problem(obj, path, fragment)


def test_every_problem_is_listed_at_once_and_names_the_object() -> None:
    obj = manifest(
        {"git": "https://example.com/x.git"},
        timeout=-1,
        helmVersion="v2",
        valuesFrom=[{"configMapKeyRef": {"name": "ok"}}, {}, {"secretKeyRef": {}}],
    )
    with pytest.raises(SpecError) as caught:
        parse_helmrelease(obj)
    error = caught.value
    assert error.object_ref == "apps/web"
    assert {p.path for p in error.problems} == {
        "spec.chart.path",
        "spec.timeout",
        "spec.helmVersion",
        "spec.valuesFrom[1]",
        "spec.valuesFrom[2].secretKeyRef.name",
    }
    text = str(error)
    assert text.startswith("HelmRelease apps/web is invalid (5 problems):")
    assert "  - spec.valuesFrom[2].secretKeyRef.name: required" in text.splitlines()


def test_spec_error_is_a_value_error_of_the_package() -> None:
    assert issubclass(SpecError, APIError)
    assert issubclass(SpecError, ValueError)


def test_an_object_without_a_name_is_still_reported() -> None:
    obj = manifest()
    del obj["metadata"]["name"]
    with pytest.raises(SpecError, match=r"HelmRelease apps/<unnamed> is invalid"):
        parse_helmrelease(obj)


@pytest.mark.parametrize(
    ("obj", "type_name"), [(None, "null"), ([], "array"), ("HelmRelease", "string"), (3, "integer")]
)
def test_non_objects_raise_spec_error(obj: Any, type_name: str) -> None:
    assert problems(obj) == [("(object)", f"must be an object, got {type_name}")]


def test_deeply_nested_values_are_rejected_without_recursion_error() -> None:
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(5000):
        node["a"] = {}
        node = node["a"]
    found = problems(manifest(values=deep))
    assert len(found) == 1
    assert found[0][1] == "nested deeper than 100 levels"
    assert found[0][0].startswith("spec.values.a.a.")


def test_problem_renders_path_and_message() -> None:
    assert str(Problem("spec.timeout", "must be at least 1")) == "spec.timeout: must be at least 1"
