"""The model back to a HelmRelease JSON object: the inverse of `parse_helmrelease`.

Place in the data flow: used where the agent writes or compares objects (tests, `gitops-helm`
tooling that prints normalised manifests) and to prove the parser loses nothing:
`parse_helmrelease(serialise_helmrelease(hr)) == hr` for every valid `hr`. Defaults that the
parser filled in are written explicitly; fields that are unset in the model are omitted.
"""

from __future__ import annotations

import copy
from typing import Any

from gitops_helm.api.model import API_VERSION, KIND, HelmRelease, ObjectMeta
from gitops_helm.api.spec import (
    ChartFileValuesSource,
    ChartSource,
    ConfigMapValuesSource,
    DriftDetectionSpec,
    ExternalValuesSource,
    GitChartSource,
    HelmReleaseSpec,
    ObjectRef,
    OciChartSource,
    SecretValuesSource,
    ValuesSource,
)
from gitops_helm.api.status import serialise_status

__all__ = ["serialise_helmrelease", "serialise_spec"]


def serialise_helmrelease(hr: HelmRelease) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": _metadata(hr.metadata),
        "spec": serialise_spec(hr.spec),
        "status": serialise_status(hr.status),
    }


def _metadata(meta: ObjectMeta) -> dict[str, Any]:
    result: dict[str, Any] = {"name": meta.name, "namespace": meta.namespace, "generation": meta.generation}
    optional = {
        "uid": meta.uid,
        "resourceVersion": meta.resource_version,
        "deletionTimestamp": meta.deletion_timestamp,
        "labels": dict(meta.labels) or None,
        "annotations": dict(meta.annotations) or None,
        "finalizers": list(meta.finalizers) or None,
    }
    result.update({k: v for k, v in optional.items() if v is not None})
    return result


def serialise_spec(spec: HelmReleaseSpec) -> dict[str, Any]:
    result: dict[str, Any] = {
        "chart": _chart(spec.chart),
        "timeout": spec.timeout,
        "maxHistory": spec.max_history,
        "forceUpgrade": spec.force_upgrade,
        "skipCRDs": spec.skip_crds,
        "disableOpenAPIValidation": spec.disable_openapi_validation,
        "values": copy.deepcopy(dict(spec.values)),
        "valuesFrom": [_values_source(s) for s in spec.values_from],
        "valueFileSecrets": [{"name": s.name} for s in spec.value_file_secrets],
        "rollback": {
            "enable": spec.rollback.enable,
            "retry": spec.rollback.retry,
            "maxRetries": spec.rollback.max_retries,
            "force": spec.rollback.force,
            "recreate": spec.rollback.recreate,
            "disableHooks": spec.rollback.disable_hooks,
            "timeout": spec.rollback.timeout,
            "wait": spec.rollback.wait,
        },
        "test": {
            "enable": spec.test.enable,
            "ignoreFailures": spec.test.ignore_failures,
            "timeout": spec.test.timeout,
            "cleanup": spec.test.cleanup,
        },
        "suspend": spec.suspend,
        "dependsOn": [_ref(ref) for ref in spec.depends_on],
        "install": {
            "createNamespace": spec.install.create_namespace,
            "remediation": _drop_none(
                {
                    "retries": spec.install.remediation.retries,
                    "remediateLastFailure": spec.install.remediation.remediate_last_failure,
                    "ignoreTestFailures": spec.install.remediation.ignore_test_failures,
                }
            ),
        },
        "upgrade": {},
        "driftDetection": _drift(spec.drift_detection),
    }
    remediation = spec.upgrade.remediation
    if remediation is not None:
        result["upgrade"]["remediation"] = _drop_none(
            {
                "retries": remediation.retries,
                "strategy": str(remediation.strategy),
                "remediateLastFailure": remediation.remediate_last_failure,
                "ignoreTestFailures": remediation.ignore_test_failures,
            }
        )
    optional = {
        "releaseName": spec.release_name,
        "targetNamespace": spec.target_namespace,
        "resetValues": spec.reset_values,
        "wait": spec.wait,
        "helmVersion": spec.helm_version,
        "serviceAccountName": spec.service_account_name,
    }
    result.update(_drop_none(optional))
    return result


def _drop_none(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _ref(ref: ObjectRef) -> dict[str, Any]:
    return {"name": ref.name, "namespace": ref.namespace}


def _chart(chart: ChartSource) -> dict[str, Any]:
    if isinstance(chart, GitChartSource):
        return _drop_none(
            {
                "git": chart.git,
                "path": chart.path,
                "ref": chart.ref,
                "secretRef": _ref(chart.secret_ref) if chart.secret_ref else None,
                "skipDepUpdate": chart.skip_dep_update,
            }
        )
    pull_secret = {"name": chart.chart_pull_secret} if chart.chart_pull_secret else None
    return _drop_none(
        {
            "repository": chart.repository,
            "name": chart.name,
            "version": chart.version,
            "chartPullSecret": pull_secret,
            "plainHTTP": True if isinstance(chart, OciChartSource) and chart.plain_http else None,
        }
    )


def _values_source(source: ValuesSource) -> dict[str, Any]:
    if isinstance(source, ConfigMapValuesSource | SecretValuesSource):
        key = "configMapKeyRef" if isinstance(source, ConfigMapValuesSource) else "secretKeyRef"
        body = {
            "name": source.name,
            "namespace": source.namespace,
            "key": source.key,
            "optional": source.optional,
        }
        return {key: body}
    if isinstance(source, ExternalValuesSource):
        return {"externalSourceRef": {"url": source.url, "optional": source.optional}}
    if isinstance(source, ChartFileValuesSource):
        return {"chartFileRef": {"path": source.path, "optional": source.optional}}
    raise TypeError(f"unknown values source {source!r}")  # pragma: no cover - exhaustive union


def _drift(drift: DriftDetectionSpec) -> dict[str, Any]:
    rules: list[dict[str, Any]] = []
    for rule in drift.ignore:
        entry: dict[str, Any] = {"paths": list(rule.paths)}
        if rule.target is not None:
            target = rule.target
            entry["target"] = _drop_none(
                {
                    "group": target.group,
                    "version": target.version,
                    "kind": target.kind,
                    "name": target.name,
                    "namespace": target.namespace,
                }
            )
        rules.append(entry)
    return {"mode": str(drift.mode), "ignore": rules}
