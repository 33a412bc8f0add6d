"""parse_helmrelease on valid input: defaults of every field, release names, chart source kinds,
values sources and their merge order."""

from __future__ import annotations

from typing import Any

import pytest

from gitops_helm.api import (
    ChartFileValuesSource,
    ChartSourceKind,
    ConfigMapValuesSource,
    DriftDetectionSpec,
    DriftIgnoreRule,
    DriftIgnoreTarget,
    DriftMode,
    ExternalValuesSource,
    GitChartSource,
    HelmReleaseStatus,
    InstallRemediationSpec,
    InstallSpec,
    ObjectRef,
    OciChartSource,
    RemediationStrategy,
    RepoChartSource,
    RollbackSpec,
    SecretValuesSource,
    TestSpec,
    UpgradeRemediationSpec,
    UpgradeSpec,
    parse_helmrelease,
)
from tests.unit.test_api_examples import GIT_CHART, OCI_CHART, REPO_CHART, full_manifest, manifest


def test_every_spec_field_has_the_helm_operator_default() -> None:
    spec = parse_helmrelease(manifest()).spec
    assert spec.release_name is None
    assert spec.target_namespace is None
    assert spec.timeout == 300
    assert spec.max_history == 10
    assert spec.reset_values is None
    assert spec.force_upgrade is False
    assert spec.wait is None
    assert spec.skip_crds is False
    assert spec.disable_openapi_validation is False
    assert spec.values == {}
    assert spec.values_from == ()
    assert spec.value_file_secrets == ()
    assert spec.rollback == RollbackSpec(
        enable=False,
        retry=False,
        max_retries=5,
        force=False,
        recreate=False,
        disable_hooks=False,
        timeout=300,
    )
    assert spec.rollback.wait is False
    assert spec.test == TestSpec(enable=False, ignore_failures=False, timeout=300, cleanup=True)
    assert spec.helm_version is None


def test_new_fields_default_to_the_old_operator_behaviour() -> None:
    spec = parse_helmrelease(manifest()).spec
    assert spec.suspend is False
    assert spec.service_account_name is None
    assert spec.depends_on == ()
    assert spec.install == InstallSpec(
        create_namespace=False,
        remediation=InstallRemediationSpec(retries=0, remediate_last_failure=True, ignore_test_failures=None),
    )
    assert spec.upgrade == UpgradeSpec(remediation=None)
    assert spec.drift_detection == DriftDetectionSpec(mode=DriftMode.DISABLED, ignore=())


def test_empty_blocks_mean_the_same_as_absent_blocks() -> None:
    blocks: dict[str, Any] = {
        "rollback": {},
        "test": {},
        "install": {"remediation": {}},
        "driftDetection": {},
        "upgrade": {},
    }
    assert parse_helmrelease(manifest(**blocks)).spec == parse_helmrelease(manifest()).spec


def test_null_means_unset() -> None:
    nulls = {
        "timeout": None,
        "wait": None,
        "valuesFrom": None,
        "values": None,
        "rollback": None,
        "releaseName": None,
    }
    assert parse_helmrelease(manifest(**nulls)).spec == parse_helmrelease(manifest()).spec


def test_every_field_set_is_read() -> None:
    hr = parse_helmrelease(full_manifest())
    spec = hr.spec
    assert spec.chart == GitChartSource(
        git="ssh://git@github.com/example/charts.git",
        path="charts/podinfo",
        ref="main",
        secret_ref=ObjectRef("git-https", "flux"),
        skip_dep_update=True,
    )
    assert (spec.release_name, spec.target_namespace, spec.timeout, spec.max_history) == (
        "web-release",
        "prod",
        600,
        3,
    )
    assert (spec.reset_values, spec.force_upgrade, spec.wait, spec.skip_crds) == (False, True, False, True)
    assert spec.disable_openapi_validation is True
    assert spec.values == {"replicaCount": 2, "image": {"tag": "6.5.4"}, "list": [1, "a", None, True, 1.5]}
    assert spec.rollback == RollbackSpec(True, True, 2, True, True, True, 120, True)
    assert spec.test == TestSpec(enable=True, ignore_failures=True, timeout=90, cleanup=False)
    assert spec.helm_version == "v3"
    assert spec.suspend is True
    assert spec.service_account_name == "deployer"
    assert spec.depends_on == (ObjectRef("database", "data"), ObjectRef("cache", "apps"))
    assert spec.install == InstallSpec(True, InstallRemediationSpec(2, False, False))
    assert spec.upgrade == UpgradeSpec(
        UpgradeRemediationSpec(-1, RemediationStrategy.UNINSTALL, False, False)
    )
    assert spec.drift_detection == DriftDetectionSpec(
        DriftMode.ENABLED,
        (
            DriftIgnoreRule(
                ("/spec/replicas",), DriftIgnoreTarget(group="apps", version="v1", kind="Deployment")
            ),
            DriftIgnoreRule(("/metadata/annotations/a~1b",), DriftIgnoreTarget(name="web", namespace="prod")),
            DriftIgnoreRule(("/data",), None),
        ),
    )
    assert hr.metadata.generation == 7
    assert hr.metadata.labels == {"team": "web"}
    assert hr.status.failures == 2
    assert hr.status.last_applied_digest == "sha256:aaaa"


def test_unknown_fields_are_tolerated() -> None:
    obj = manifest(futureField={"x": 1}, rollback={"enable": True, "newKnob": "y"})
    obj["spec"]["chart"]["futureChartField"] = 3
    obj["unknownTopLevel"] = True
    assert parse_helmrelease(obj).spec.rollback.enable is True


def test_metadata_and_status_defaults() -> None:
    hr = parse_helmrelease(manifest())
    assert (hr.name, hr.namespace, hr.key, hr.metadata.generation) == ("web", "apps", "apps/web", 0)
    assert hr.status == HelmReleaseStatus()


def test_missing_namespace_uses_the_default_namespace() -> None:
    obj = manifest()
    del obj["metadata"]["namespace"]
    assert parse_helmrelease(obj).namespace == "default"
    assert parse_helmrelease(obj, default_namespace="team-a").release_name == "team-a-web"


def test_api_version_and_kind_may_be_omitted() -> None:
    obj = manifest()
    del obj["apiVersion"], obj["kind"]
    assert parse_helmrelease(obj).name == "web"


# --- release name and target namespace ----------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "release_name", "target_namespace"),
    [
        ({}, "apps-web", "apps"),
        ({"targetNamespace": "apps"}, "apps-web", "apps"),
        ({"targetNamespace": "prod"}, "apps-prod-web", "prod"),
        ({"targetNamespace": ""}, "apps-web", "apps"),
        ({"releaseName": "custom"}, "custom", "apps"),
        ({"releaseName": "custom", "targetNamespace": "prod"}, "custom", "prod"),
        ({"releaseName": ""}, "apps-web", "apps"),
    ],
)
def test_release_name_and_target_namespace(
    spec: dict[str, Any], release_name: str, target_namespace: str
) -> None:
    hr = parse_helmrelease(manifest(**spec))
    assert (hr.release_name, hr.target_namespace) == (release_name, target_namespace)
    assert (hr.policy.release_name, hr.policy.target_namespace) == (release_name, target_namespace)


def test_valuesfrom_namespaces_default_to_the_helmrelease_namespace_not_the_target() -> None:
    hr = parse_helmrelease(manifest(targetNamespace="prod", valuesFrom=[{"configMapKeyRef": {"name": "cm"}}]))
    assert hr.spec.values_from == (ConfigMapValuesSource("cm", "apps", "values.yaml", False),)


# --- chart sources ------------------------------------------------------------------------------


def test_git_source_needs_git_and_path_and_defaults() -> None:
    chart = parse_helmrelease(manifest({"git": "https://example.com/charts.git", "path": "web"})).spec.chart
    assert chart == GitChartSource(git="https://example.com/charts.git", path="web")
    assert (chart.kind, chart.ref, chart.secret_ref, chart.skip_dep_update) == (
        ChartSourceKind.GIT,
        None,
        None,
        False,
    )


def test_git_secret_ref_namespace_defaults_to_the_helmrelease_namespace() -> None:
    chart = parse_helmrelease(manifest({**GIT_CHART, "secretRef": {"name": "creds"}})).spec.chart
    assert isinstance(chart, GitChartSource)
    assert chart.secret_ref == ObjectRef("creds", "apps")


def test_repository_source() -> None:
    chart = parse_helmrelease(manifest(REPO_CHART)).spec.chart
    assert chart == RepoChartSource(
        "https://stefanprodan.github.io/podinfo", "podinfo", "6.5.4", "repo-creds"
    )
    assert chart.kind is ChartSourceKind.REPO


def test_oci_repository_is_its_own_kind() -> None:
    chart = parse_helmrelease(manifest(OCI_CHART)).spec.chart
    assert isinstance(chart, OciChartSource)
    assert chart.kind is ChartSourceKind.OCI
    assert chart.reference == "oci://ghcr.io/stefanprodan/charts/podinfo"
    assert chart.version == "6.5.4"


def test_plugin_repository_schemes_are_repository_sources() -> None:
    chart = parse_helmrelease(manifest({"repository": "s3://bucket/charts", "name": "x", "version": "1.0.0"}))
    assert chart.spec.chart.kind is ChartSourceKind.REPO


def test_semver_range_versions_are_accepted() -> None:
    chart = parse_helmrelease(manifest({**REPO_CHART, "version": ">=1.0.0 <2.0.0"})).spec.chart
    assert isinstance(chart, RepoChartSource)
    assert chart.version == ">=1.0.0 <2.0.0"


def test_fields_of_the_other_kind_are_ignored_with_a_warning() -> None:
    hr = parse_helmrelease(manifest({**GIT_CHART, "version": "1.0.0"}))
    assert hr.spec.chart.kind is ChartSourceKind.GIT
    assert [(w.path, w.message) for w in hr.warnings] == [
        ("spec.chart.version", "ignored for a Git chart source")
    ]
    hr = parse_helmrelease(manifest({**REPO_CHART, "ref": "main"}))
    assert hr.spec.chart.kind is ChartSourceKind.REPO
    assert [w.path for w in hr.warnings] == ["spec.chart.ref"]


# --- values -------------------------------------------------------------------------------------


def test_values_sources_of_every_kind_with_defaults() -> None:
    entries = [
        {"configMapKeyRef": {"name": "cm"}},
        {"secretKeyRef": {"name": "sec", "key": "other.yaml"}},
        {"externalSourceRef": {"url": "https://example.com/v.yaml"}},
        {"chartFileRef": {"path": "values-prod.yaml"}},
    ]
    assert parse_helmrelease(manifest(valuesFrom=entries)).spec.values_from == (
        ConfigMapValuesSource("cm", "apps", "values.yaml", False),
        SecretValuesSource("sec", "apps", "other.yaml", False),
        ExternalValuesSource("https://example.com/v.yaml", False),
        ChartFileValuesSource("values-prod.yaml", False),
    )


def test_first_set_source_in_an_entry_wins() -> None:
    entry = {
        "chartFileRef": {"path": "x.yaml"},
        "externalSourceRef": {"url": "https://example.com/v.yaml"},
        "secretKeyRef": {"name": "sec"},
    }
    hr = parse_helmrelease(manifest(valuesFrom=[entry]))
    assert hr.spec.values_from == (SecretValuesSource("sec", "apps"),)
    assert {w.path for w in hr.warnings} == {
        "spec.valuesFrom[0].externalSourceRef",
        "spec.valuesFrom[0].chartFileRef",
    }


def test_value_file_secrets_are_prepended_before_values_from() -> None:
    hr = parse_helmrelease(
        manifest(
            valuesFrom=[{"configMapKeyRef": {"name": "cm"}}],
            valueFileSecrets=[{"name": "first"}, {"name": "second"}],
        )
    )
    assert hr.values_sources == (
        SecretValuesSource("first", "apps", "values.yaml", False),
        SecretValuesSource("second", "apps", "values.yaml", False),
        ConfigMapValuesSource("cm", "apps", "values.yaml", False),
    )
    assert ("spec.valueFileSecrets", "deprecated: use valuesFrom with secretKeyRef instead") in [
        (w.path, w.message) for w in hr.warnings
    ]


def test_inline_values_are_a_private_copy() -> None:
    obj = manifest(values={"image": {"tag": "1"}, "list": [{"a": 1}]})
    hr = parse_helmrelease(obj)
    obj["spec"]["values"]["image"]["tag"] = "2"
    obj["spec"]["values"]["list"][0]["a"] = 2
    assert hr.spec.values == {"image": {"tag": "1"}, "list": [{"a": 1}]}


def test_integral_floats_are_accepted_for_integers() -> None:
    assert parse_helmrelease(manifest(timeout=600.0)).spec.timeout == 600


def test_helm_version_v3_is_accepted() -> None:
    assert parse_helmrelease(manifest(helmVersion="v3")).spec.helm_version == "v3"
