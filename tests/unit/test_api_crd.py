"""The packaged CRD: identical to deploy/, the basics kubectl users see, and agreement with the model."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from gitops_helm.api import (
    ConditionType,
    DriftMode,
    HelmReleaseStatus,
    Phase,
    RemediationStrategy,
    parse_helmrelease,
    parse_status,
    record_phase,
    serialise_helmrelease,
    serialise_status,
    set_reconciling,
)
from gitops_helm.api.crd import load_crd
from gitops_helm.release import plan as pl
from gitops_helm.release.memory import memory_from_status, status_with_memory
from tests.unit.test_api_examples import (
    GIT_CHART,
    OCI_CHART,
    OPERATOR_DOC_EXAMPLES,
    REPO_CHART,
    full_manifest,
)

ROOT = Path(__file__).resolve().parents[2]


@cache
def schema() -> dict[str, Any]:
    """The openAPIV3Schema (parsed once; callers must not modify it)."""
    result: dict[str, Any] = load_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return result


def validate(value: Any, node: dict[str, Any], path: str = "") -> list[str]:
    """A small structural-schema validator: the keywords this CRD uses. Unknown fields are errors
    (the API server would silently prune them)."""
    errors: list[str] = []
    kind = node.get("type")
    python_types = {"object": dict, "array": list, "string": str, "boolean": bool, "integer": int}
    if kind is not None:
        ok = isinstance(value, python_types[kind]) and not (kind == "integer" and isinstance(value, bool))
        if not ok:
            return [f"{path}: expected {kind}, got {value!r}"]
    if "enum" in node and value not in node["enum"]:
        errors.append(f"{path}: {value!r} not in {node['enum']}")
    if "minimum" in node and value < node["minimum"]:
        errors.append(f"{path}: {value} < {node['minimum']}")
    if "minLength" in node and len(value) < node["minLength"]:
        errors.append(f"{path}: shorter than {node['minLength']}")
    if "maxLength" in node and len(value) > node["maxLength"]:
        errors.append(f"{path}: longer than {node['maxLength']}")
    if "minItems" in node and len(value) < node["minItems"]:
        errors.append(f"{path}: fewer than {node['minItems']} items")
    free_form = node.get("x-kubernetes-preserve-unknown-fields") or path == ".metadata"  # never pruned
    if kind == "object" and not free_form:
        properties = node.get("properties", {})
        errors += [f"{path}.{key}: required" for key in node.get("required", []) if key not in value]
        for key, child in value.items():
            if key not in properties:
                errors.append(f"{path}.{key}: not in the schema")
            else:
                errors += validate(child, properties[key], f"{path}.{key}")
    if kind == "array":
        for index, item in enumerate(value):
            errors += validate(item, node["items"], f"{path}[{index}]")
    return errors


def property_paths(node: dict[str, Any], path: str = "") -> set[str]:
    """Every field path the schema declares (array items as `[]`), not descending into free-form values."""
    paths: set[str] = set()
    if node.get("x-kubernetes-preserve-unknown-fields"):
        return paths
    for key, child in node.get("properties", {}).items():
        paths.add(f"{path}.{key}")
        paths |= property_paths(child, f"{path}.{key}")
    if "items" in node:
        paths |= property_paths(node["items"], f"{path}[]")
    return paths


def value_paths(value: Any, path: str = "", stop: frozenset[str] = frozenset({".spec.values"})) -> set[str]:
    paths: set[str] = set()
    if path in stop:
        return paths
    if isinstance(value, dict):
        for key, child in value.items():
            paths.add(f"{path}.{key}")
            paths |= value_paths(child, f"{path}.{key}", stop)
    elif isinstance(value, list):
        for item in value:
            paths |= value_paths(item, f"{path}[]", stop)
    return paths


def full_objects() -> list[dict[str, Any]]:
    return [
        serialise_helmrelease(parse_helmrelease(full_manifest(c)))
        for c in (GIT_CHART, REPO_CHART, {**OCI_CHART, "plainHTTP": True})
    ]


def test_the_deploy_copy_is_identical() -> None:
    packaged = (ROOT / "gitops_helm" / "api" / "crd.yaml").read_bytes()
    assert (ROOT / "deploy" / "crds" / "helmrelease.yaml").read_bytes() == packaged


def test_crd_basics() -> None:
    crd = load_crd()
    assert (crd["apiVersion"], crd["kind"]) == ("apiextensions.k8s.io/v1", "CustomResourceDefinition")
    assert crd["metadata"]["name"] == "helmreleases.helm.fluxcd.io"
    spec = crd["spec"]
    assert (spec["group"], spec["scope"]) == ("helm.fluxcd.io", "Namespaced")
    names = spec["names"]
    assert (names["kind"], names["plural"], names["singular"], names["shortNames"]) == (
        "HelmRelease",
        "helmreleases",
        "helmrelease",
        ["hr", "hrs"],
    )
    (version,) = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1", True, True)
    assert version["subresources"] == {"status": {}}
    assert schema()["required"] == ["metadata", "spec"]
    assert schema()["properties"]["spec"]["required"] == ["chart"]


def test_printer_columns() -> None:
    columns = load_crd()["spec"]["versions"][0]["additionalPrinterColumns"]
    assert [(c["name"], c["type"], c["jsonPath"]) for c in columns] == [
        ("Release", "string", ".status.releaseName"),
        ("Phase", "string", ".status.phase"),
        ("ReleaseStatus", "string", ".status.releaseStatus"),
        ("Message", "string", '.status.conditions[?(@.type=="Released")].message'),
        ("Age", "date", ".metadata.creationTimestamp"),
    ]


def test_load_crd_returns_a_fresh_dict() -> None:
    load_crd()["spec"]["group"] = "changed"
    assert load_crd()["spec"]["group"] == "helm.fluxcd.io"


def test_schema_is_structural() -> None:
    def walk(node: dict[str, Any], path: str) -> list[str]:
        missing = [] if "type" in node else [path]
        if node.get("x-kubernetes-preserve-unknown-fields"):
            return missing
        for key, child in node.get("properties", {}).items():
            missing += walk(child, f"{path}.{key}")
        if "items" in node:
            missing += walk(node["items"], f"{path}[]")
        return missing

    assert walk(schema(), "") == []


def test_schema_has_free_form_values() -> None:
    values = schema()["properties"]["spec"]["properties"]["values"]
    assert values == {
        "type": "object",
        "description": "Inline values; highest precedence, merged over valueFileSecrets and valuesFrom.",
        "x-kubernetes-preserve-unknown-fields": True,
    }


@pytest.mark.parametrize("index", [0, 1, 2], ids=["git", "repo", "oci"])
def test_every_field_the_model_writes_is_in_the_schema_with_a_matching_type(index: int) -> None:
    assert validate(full_objects()[index], schema()) == []


def test_every_schema_field_is_known_to_the_model() -> None:
    written: set[str] = set().union(*(value_paths(obj) for obj in full_objects()))
    declared = property_paths(schema())
    # `apiVersion`/`kind`/`metadata` are always written; metadata is not described in the schema
    assert declared - written == set()


def test_full_examples_round_trip_so_the_parser_reads_every_field() -> None:
    for obj in full_objects():
        assert serialise_helmrelease(parse_helmrelease(obj)) == obj


def test_enums_agree_with_the_model() -> None:
    spec = schema()["properties"]["spec"]["properties"]
    status = schema()["properties"]["status"]["properties"]
    assert spec["helmVersion"]["enum"] == ["v2", "v3"]
    assert spec["upgrade"]["properties"]["remediation"]["properties"]["strategy"]["enum"] == [
        s.value for s in RemediationStrategy
    ]
    assert spec["driftDetection"]["properties"]["mode"]["enum"] == [m.value for m in DriftMode]
    assert status["phase"]["enum"] == [p.value for p in Phase]
    assert status["conditions"]["items"]["properties"]["type"]["enum"] == [t.value for t in ConditionType]


def test_old_operator_manifests_validate() -> None:
    for example in OPERATOR_DOC_EXAMPLES:
        assert validate(example, schema()) == []
    # helmVersion v2 passes the schema (so old manifests apply) and is rejected by the agent instead
    old = {**OPERATOR_DOC_EXAMPLES[0], "spec": {**OPERATOR_DOC_EXAMPLES[0]["spec"], "helmVersion": "v2"}}
    assert validate(old, schema()) == []


def test_status_written_by_the_agent_validates() -> None:
    now = datetime(2024, 5, 1, tzinfo=UTC)
    status = HelmReleaseStatus(observed_generation=2, release_name="r", release_status="failed")
    for p in Phase:
        status = record_phase(status, p, release_name="r", namespace="n", now=now, revision="1.0.0")
    # the planner's memory after a failed upgrade, written the way the reconciler writes it
    desired = pl.Desired(digest="sha256:d", generation=2, owner="n.r")
    memory = pl.record_failure(
        pl.Memory(), desired, action=pl.ReleaseAction.UPGRADE, revision=3, now=now.timestamp()
    )
    status = status_with_memory(set_reconciling(status, reason="Progressing", message="m", now=now), memory)
    obj = {"metadata": {}, "spec": {"chart": {}}, "status": serialise_status(status)}
    assert validate(obj, schema()) == []


def test_a_started_test_is_written_valid_and_read_back() -> None:
    started = datetime(2024, 5, 1, 12, 0, 7, tzinfo=UTC).timestamp()
    memory = pl.record_test_started(pl.Memory(last_release_revision=2), now=started + 0.6)
    status = status_with_memory(HelmReleaseStatus(release_name="r"), memory)
    body = serialise_status(status)
    assert body["testStartedAt"] == "2024-05-01T12:00:07Z"
    assert validate({"metadata": {}, "spec": {"chart": {}}, "status": body}, schema()) == []
    assert memory_from_status(parse_status(body)).test_started == started
