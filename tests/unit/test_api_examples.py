"""Example HelmRelease manifests shared by the API tests, and tests that real-world examples parse.

The builders return fresh dicts so tests can mutate them.
"""

from __future__ import annotations

import copy
from typing import Any

from gitops_helm.api import ChartSourceKind, GitChartSource, parse_helmrelease

GIT_CHART: dict[str, Any] = {
    "git": "ssh://git@github.com/example/charts.git",
    "ref": "main",
    "path": "charts/podinfo",
    "secretRef": {"name": "git-https", "namespace": "flux"},
    "skipDepUpdate": True,
}
REPO_CHART: dict[str, Any] = {
    "repository": "https://stefanprodan.github.io/podinfo",
    "name": "podinfo",
    "version": "6.5.4",
    "chartPullSecret": {"name": "repo-creds"},
}
OCI_CHART: dict[str, Any] = {
    "repository": "oci://ghcr.io/stefanprodan/charts",
    "name": "podinfo",
    "version": "6.5.4",
}


def manifest(chart: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    """A minimal valid HelmRelease `apps/web` (repository chart unless `chart` is given)."""
    return {
        "apiVersion": "helm.fluxcd.io/v1",
        "kind": "HelmRelease",
        "metadata": {"name": "web", "namespace": "apps"},
        "spec": {"chart": copy.deepcopy(chart if chart is not None else REPO_CHART), **spec},
    }


def full_spec_fields() -> dict[str, Any]:
    """Every spec field except `chart`, each set to a non-default value."""
    return {
        "helmVersion": "v3",
        "releaseName": "web-release",
        "targetNamespace": "prod",
        "timeout": 600,
        "maxHistory": 3,
        "resetValues": False,
        "forceUpgrade": True,
        "wait": False,
        "skipCRDs": True,
        "disableOpenAPIValidation": True,
        "values": {"replicaCount": 2, "image": {"tag": "6.5.4"}, "list": [1, "a", None, True, 1.5]},
        "valuesFrom": [
            {"configMapKeyRef": {"name": "cm", "namespace": "shared", "key": "prod.yaml", "optional": True}},
            {"secretKeyRef": {"name": "sec", "namespace": "shared", "key": "secret.yaml", "optional": True}},
            {"externalSourceRef": {"url": "https://example.com/values.yaml", "optional": True}},
            {"chartFileRef": {"path": "ci/prod-values.yaml", "optional": True}},
        ],
        "valueFileSecrets": [{"name": "legacy-values"}],
        "rollback": {
            "enable": True,
            "retry": True,
            "maxRetries": 2,
            "force": True,
            "recreate": True,
            "disableHooks": True,
            "timeout": 120,
            "wait": True,
        },
        "test": {"enable": True, "ignoreFailures": True, "timeout": 90, "cleanup": False},
        "suspend": True,
        "serviceAccountName": "deployer",
        "dependsOn": [{"name": "database", "namespace": "data"}, {"name": "cache"}],
        "install": {
            "createNamespace": True,
            "remediation": {"retries": 2, "remediateLastFailure": False, "ignoreTestFailures": False},
        },
        "upgrade": {
            "remediation": {
                "retries": -1,
                "strategy": "uninstall",
                "remediateLastFailure": False,
                "ignoreTestFailures": False,
            }
        },
        "driftDetection": {
            "mode": "enabled",
            "ignore": [
                {
                    "paths": ["/spec/replicas"],
                    "target": {"group": "apps", "version": "v1", "kind": "Deployment"},
                },
                {"paths": ["/metadata/annotations/a~1b"], "target": {"name": "web", "namespace": "prod"}},
                {"paths": ["/data"]},
            ],
        },
    }


def full_manifest(chart: dict[str, Any] | None = None) -> dict[str, Any]:
    """A valid HelmRelease with every spec field set, plus metadata and status."""
    obj = manifest(chart if chart is not None else GIT_CHART, **full_spec_fields())
    obj["metadata"].update(
        {
            "uid": "0b7c7c5e-1f0e-4c55-9a59-2d5a6f1d9f11",
            "generation": 7,
            "resourceVersion": "12345",
            "labels": {"team": "web"},
            "annotations": {"example.com/owner": "web-team"},
            "finalizers": ["helm.fluxcd.io/finalizer"],
            "deletionTimestamp": "2024-05-01T12:00:00Z",
        }
    )
    obj["status"] = {
        "observedGeneration": 6,
        "phase": "Succeeded",
        "releaseName": "web-release",
        "releaseStatus": "deployed",
        "revision": "6.5.4",
        "lastAttemptedRevision": "6.5.4",
        "rollbackCount": 1,
        "lastAppliedDigest": "sha256:aaaa",
        "lastReleaseRevision": 4,
        "failures": 2,
        "lastFailedDigest": "sha256:bbbb",
        "lastReleaseAction": "upgrade",
        "testState": "passed",
        "lastFailedGeneration": 5,
        "lastFailedAction": "upgrade",
        "lastFailureTime": "2024-05-01T11:30:00Z",
        "lastRemediatedRevision": 3,
        "interruptions": 1,
        "lastInterruptedDigest": "sha256:bbbb",
        "lastHandledReconcileAt": "2024-05-01T11:59:00.123456Z",
        "testStartedAt": "2024-05-01T11:58:00Z",
        "conditions": [
            {
                "type": "Released",
                "status": "True",
                "reason": "Succeeded",
                "message": "Release was successful for Helm release 'web-release' in 'prod'.",
                "lastUpdateTime": "2024-05-01T12:00:00Z",
                "lastTransitionTime": "2024-05-01T11:00:00Z",
            }
        ],
        "history": [
            {
                "action": "rollback",
                "outcome": "succeeded",
                "helmRevision": 4,
                "gitCommit": "0123456789abcdef0123456789abcdef01234567",
                "chartName": "web",
                "chartVersion": "6.5.4",
                "chartDigest": "sha256:cccc",
                "valuesDigest": "h1-dddd",
                "rolledBackTo": 2,
                "startedAt": "2024-05-01T11:40:00Z",
                "finishedAt": "2024-05-01T11:40:05Z",
            },
            {
                "action": "upgrade",
                "outcome": "failed",
                "helmRevision": 3,
                "gitCommit": "89abcdef0123456789abcdef0123456789abcdef",
                "chartName": "web",
                "chartVersion": "6.6.0",
                "chartDigest": "sha256:eeee",
                "valuesDigest": "h1-ffff",
                "testResult": "failed",
                "startedAt": "2024-05-01T11:30:00Z",
                "finishedAt": "2024-05-01T11:35:00Z",
            },
        ],
    }
    return obj


# Manifests as published in the Helm Operator's documentation and users' repositories.
OPERATOR_DOC_EXAMPLES: list[dict[str, Any]] = [
    {
        "apiVersion": "helm.fluxcd.io/v1",
        "kind": "HelmRelease",
        "metadata": {"name": "podinfo", "namespace": "default"},
        "spec": {
            "chart": {
                "repository": "https://stefanprodan.github.io/podinfo",
                "name": "podinfo",
                "version": "3.2.0",
            },
            "values": {"replicaCount": 1},
        },
    },
    {
        "apiVersion": "helm.fluxcd.io/v1",
        "kind": "HelmRelease",
        "metadata": {"name": "podinfo", "namespace": "demo"},
        "spec": {
            "releaseName": "podinfo-git",
            "chart": {
                "git": "git@github.com:fluxcd/flux-get-started",
                "ref": "master",
                "path": "charts/ghost",
            },
            "valuesFrom": [
                {"configMapKeyRef": {"name": "default-values", "key": "values.yaml", "optional": False}},
                {"secretKeyRef": {"name": "secret-values", "namespace": "kube-system"}},
                {"externalSourceRef": {"url": "https://raw.githubusercontent.com/x/y/master/values.yaml"}},
                {"chartFileRef": {"path": "overrides/environment-values.yaml", "optional": True}},
            ],
            "rollback": {"enable": True, "retry": True, "maxRetries": 5, "disableHooks": False},
            "test": {"enable": True, "ignoreFailures": False, "timeout": 300},
            "helmVersion": "v3",
        },
    },
]


def test_the_full_manifest_parses_without_warnings_except_the_deprecated_field() -> None:
    hr = parse_helmrelease(full_manifest())
    assert [w.path for w in hr.warnings] == ["spec.valueFileSecrets", "spec.rollback"]
    assert isinstance(hr.spec.chart, GitChartSource)


def test_helm_operator_documentation_examples_parse() -> None:
    kinds = [parse_helmrelease(example).spec.chart.kind for example in OPERATOR_DOC_EXAMPLES]
    assert kinds == [ChartSourceKind.REPO, ChartSourceKind.GIT]
