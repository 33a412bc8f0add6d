"""`parse_helmrelease`: a HelmRelease object (JSON-like mapping) => the typed, validated model.

Place in the data flow: the entry of the API layer. The controller parses every object it reads
from the cluster, and the manifest loader every HelmRelease it finds in Git, before anything
else looks at it. Bad input never raises anything but `SpecError`, which lists every problem
with its field path. Unknown fields are ignored (forward compatibility); the status is read
leniently (see `gitops_helm.api.status.parse_status`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gitops_helm.api.checks import (
    check_dns_label,
    check_dns_subdomain,
    check_json_pointer,
    check_release_name,
)
from gitops_helm.api.errors import Problem, SpecError
from gitops_helm.api.fields import Reader, join, json_type
from gitops_helm.api.model import API_VERSION, KIND, HelmRelease, ObjectMeta
from gitops_helm.api.parse_sources import (
    checked,
    parse_chart,
    parse_ref_mapping,
    parse_value_file_secrets,
    parse_values_from,
)
from gitops_helm.api.policy import default_release_name
from gitops_helm.api.spec import (
    DEFAULT_MAX_HISTORY,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    DriftDetectionSpec,
    DriftIgnoreRule,
    DriftIgnoreTarget,
    DriftMode,
    HelmReleaseSpec,
    InstallRemediationSpec,
    InstallSpec,
    ObjectRef,
    RemediationStrategy,
    RollbackSpec,
    TestSpec,
    UpgradeRemediationSpec,
    UpgradeSpec,
)
from gitops_helm.api.status import parse_status

__all__ = ["parse_helmrelease"]

_SECONDS = " (seconds)"
# A helm operation may take 3 x its --timeout (pre-hooks, wait, post-hooks) before the agent
# kills it, and the operating system cannot wait much longer than 24 days at once; a week is far
# beyond any real install, and a bigger value is a mistake that must show on the HelmRelease.
MAX_TIMEOUT = 7 * 24 * 3600
_MIGRATE_ANNOTATION = "helm.fluxcd.io/migrate"
_HELM2_EOL = (
    "Helm 2 (Tiller) is end of life and not supported; set helmVersion to v3 or remove it "
    "(migrate existing Helm 2 releases with the helm-2to3 plugin first)"
)


def parse_helmrelease(obj: Mapping[str, Any], *, default_namespace: str = "default") -> HelmRelease:
    """Validate a HelmRelease object and return the model, or raise `SpecError`.

    `default_namespace` is used when `metadata.namespace` is absent (a manifest in Git).
    `apiVersion`/`kind` are checked when present (list items may omit them).
    """
    if not isinstance(obj, Mapping):
        raise SpecError("<unknown>", [Problem("(object)", f"must be an object, got {json_type(obj)}")])
    r = Reader()
    for key, expected in (("apiVersion", API_VERSION), ("kind", KIND)):
        if obj.get(key) is not None and obj.get(key) != expected:
            r.error(key, f"must be {expected}")
    metadata = _parse_metadata(r, obj, default_namespace)
    spec = _parse_spec(r, obj, metadata.namespace, metadata.name)
    if r.errors or spec is None:
        raise SpecError(f"{metadata.namespace}/{metadata.name or '<unnamed>'}", r.errors)
    return HelmRelease(metadata, spec, parse_status(obj.get("status")), tuple(r.warnings))


def _parse_metadata(r: Reader, obj: Mapping[str, Any], default_namespace: str) -> ObjectMeta:
    raw = r.mapping(obj, "metadata", "", required=True) or {}
    at = "metadata"
    name = r.string(raw, "name", at) or ""
    namespace = checked(r, r.optional_string(raw, "namespace", at), join(at, "namespace"), check_dns_label)
    finalizers = tuple(item for item in r.array(raw, "finalizers", at) if isinstance(item, str) and item)
    annotations = r.string_map(raw, "annotations", at)
    if _MIGRATE_ANNOTATION in annotations:
        r.warn(f'{at}.annotations["{_MIGRATE_ANNOTATION}"]', "ignored: Helm 2 releases are not migrated")
    return ObjectMeta(
        name=name,
        namespace=namespace or default_namespace,
        uid=r.optional_string(raw, "uid", at),
        generation=r.integer(raw, "generation", at, default=0, minimum=0),
        resource_version=r.optional_string(raw, "resourceVersion", at),
        labels=r.string_map(raw, "labels", at),
        annotations=annotations,
        finalizers=finalizers,
        deletion_timestamp=r.optional_string(raw, "deletionTimestamp", at),
    )


def _parse_spec(r: Reader, obj: Mapping[str, Any], namespace: str, name: str) -> HelmReleaseSpec | None:
    spec = r.mapping(obj, "spec", "", required=True)
    if spec is None:
        return None
    at = "spec"
    chart = parse_chart(r, spec, namespace)
    target_namespace = checked(
        r, r.optional_string(spec, "targetNamespace", at), "spec.targetNamespace", check_dns_label
    )
    release_name = _parse_release_name(r, spec, namespace, name, target_namespace)
    helm_version = r.optional_string(spec, "helmVersion", at)
    if helm_version == "v2":
        r.error("spec.helmVersion", _HELM2_EOL)
    elif helm_version not in (None, "v3"):
        r.error("spec.helmVersion", f"must be v3, got {helm_version!r}")
    timeout = r.integer(
        spec, "timeout", at, default=DEFAULT_TIMEOUT, minimum=1, maximum=MAX_TIMEOUT, what=_SECONDS
    )
    max_history = r.integer(spec, "maxHistory", at, default=DEFAULT_MAX_HISTORY, minimum=0)
    reset_values = r.optional_boolean(spec, "resetValues", at)
    force_upgrade = r.boolean(spec, "forceUpgrade", at, False)
    wait = r.optional_boolean(spec, "wait", at)
    skip_crds = r.boolean(spec, "skipCRDs", at, False)
    disable_openapi_validation = r.boolean(spec, "disableOpenAPIValidation", at, False)
    values = r.json_object(spec, "values", at)
    values_from = parse_values_from(r, spec, namespace)
    value_file_secrets = parse_value_file_secrets(r, spec, namespace)
    rollback = _parse_rollback(r, spec)
    test = _parse_test(r, spec)
    suspend = r.boolean(spec, "suspend", at, False)
    depends_on = _parse_depends_on(r, spec, namespace, name)
    install = _parse_install(r, spec)
    upgrade = _parse_upgrade(r, spec)
    drift_detection = _parse_drift(r, spec)
    service_account_name = checked(
        r, r.optional_string(spec, "serviceAccountName", at), "spec.serviceAccountName", check_dns_subdomain
    )
    if chart is None:
        return None
    return HelmReleaseSpec(
        chart=chart,
        release_name=release_name,
        target_namespace=target_namespace,
        timeout=timeout,
        max_history=max_history,
        reset_values=reset_values,
        force_upgrade=force_upgrade,
        wait=wait,
        skip_crds=skip_crds,
        disable_openapi_validation=disable_openapi_validation,
        values=values,
        values_from=values_from,
        value_file_secrets=value_file_secrets,
        rollback=rollback,
        test=test,
        helm_version=helm_version if helm_version == "v3" else None,
        suspend=suspend,
        depends_on=depends_on,
        install=install,
        upgrade=upgrade,
        drift_detection=drift_detection,
        service_account_name=service_account_name,
    )


def _parse_release_name(
    r: Reader, spec: Mapping[str, Any], namespace: str, name: str, target_namespace: str | None
) -> str | None:
    explicit = r.optional_string(spec, "releaseName", "spec")
    if explicit is not None:
        return checked(r, explicit, "spec.releaseName", check_release_name)
    if name:
        message = check_release_name(default_release_name(namespace, name, target_namespace))
        if message is not None:
            r.error("spec.releaseName", f"the default release name {message}; set spec.releaseName")
    return None


def _parse_rollback(r: Reader, spec: Mapping[str, Any]) -> RollbackSpec:
    at = "spec.rollback"
    raw = r.mapping(spec, "rollback", "spec") or {}
    if _has_any(raw, ("enable", "retry", "maxRetries")) and _has_any(spec.get("upgrade"), ("remediation",)):
        r.warn(at, "enable, retry and maxRetries are ignored because spec.upgrade.remediation is set")
    return RollbackSpec(
        enable=r.boolean(raw, "enable", at, False),
        retry=r.boolean(raw, "retry", at, False),
        max_retries=r.integer(raw, "maxRetries", at, default=DEFAULT_MAX_RETRIES, minimum=0),
        force=r.boolean(raw, "force", at, False),
        recreate=r.boolean(raw, "recreate", at, False),
        disable_hooks=r.boolean(raw, "disableHooks", at, False),
        timeout=r.integer(
            raw, "timeout", at, default=DEFAULT_TIMEOUT, minimum=1, maximum=MAX_TIMEOUT, what=_SECONDS
        ),
        wait=r.boolean(raw, "wait", at, False),
    )


def _has_any(raw: object, keys: tuple[str, ...]) -> bool:
    return isinstance(raw, Mapping) and any(raw.get(k) is not None for k in keys)


def _parse_test(r: Reader, spec: Mapping[str, Any]) -> TestSpec:
    at = "spec.test"
    raw = r.mapping(spec, "test", "spec") or {}
    return TestSpec(
        enable=r.boolean(raw, "enable", at, False),
        ignore_failures=r.boolean(raw, "ignoreFailures", at, False),
        timeout=r.integer(
            raw, "timeout", at, default=DEFAULT_TIMEOUT, minimum=1, maximum=MAX_TIMEOUT, what=_SECONDS
        ),
        cleanup=r.boolean(raw, "cleanup", at, True),
    )


def _parse_depends_on(r: Reader, spec: Mapping[str, Any], namespace: str, name: str) -> tuple[ObjectRef, ...]:
    result: list[ObjectRef] = []
    for index, item in enumerate(r.array(spec, "dependsOn", "spec")):
        at = f"spec.dependsOn[{index}]"
        if not isinstance(item, Mapping):
            r.error(at, f"must be an object, got {json_type(item)}")
            continue
        ref = parse_ref_mapping(r, item, at, namespace)
        if ref is not None and ref == ObjectRef(name, namespace):
            r.error(at, "a HelmRelease cannot depend on itself")
        elif ref is not None:
            result.append(ref)
    return tuple(result)


def _parse_install(r: Reader, spec: Mapping[str, Any]) -> InstallSpec:
    at = "spec.install"
    raw = r.mapping(spec, "install", "spec") or {}
    rem = r.mapping(raw, "remediation", at) or {}
    rem_at = join(at, "remediation")
    return InstallSpec(
        create_namespace=r.boolean(raw, "createNamespace", at, False),
        remediation=InstallRemediationSpec(
            retries=r.integer(rem, "retries", rem_at, default=0, minimum=-1),
            remediate_last_failure=r.boolean(rem, "remediateLastFailure", rem_at, True),
            ignore_test_failures=r.optional_boolean(rem, "ignoreTestFailures", rem_at),
        ),
    )


def _parse_upgrade(r: Reader, spec: Mapping[str, Any]) -> UpgradeSpec:
    at = "spec.upgrade"
    raw = r.mapping(spec, "upgrade", "spec") or {}
    rem = r.mapping(raw, "remediation", at)
    if rem is None:
        return UpgradeSpec()
    rem_at = join(at, "remediation")
    return UpgradeSpec(
        UpgradeRemediationSpec(
            retries=r.integer(rem, "retries", rem_at, default=0, minimum=-1),
            strategy=r.enum(rem, "strategy", rem_at, RemediationStrategy, RemediationStrategy.ROLLBACK),
            remediate_last_failure=r.optional_boolean(rem, "remediateLastFailure", rem_at),
            ignore_test_failures=r.optional_boolean(rem, "ignoreTestFailures", rem_at),
        )
    )


def _parse_drift(r: Reader, spec: Mapping[str, Any]) -> DriftDetectionSpec:
    at = "spec.driftDetection"
    raw = r.mapping(spec, "driftDetection", "spec") or {}
    mode = r.enum(raw, "mode", at, DriftMode, DriftMode.DISABLED)
    rules: list[DriftIgnoreRule] = []
    for index, item in enumerate(r.array(raw, "ignore", at)):
        rule_at = f"{at}.ignore[{index}]"
        if not isinstance(item, Mapping):
            r.error(rule_at, f"must be an object, got {json_type(item)}")
            continue
        paths: list[str] = []
        raw_paths = r.array(item, "paths", rule_at)
        if item.get("paths") is None:
            r.error(join(rule_at, "paths"), "required")
        elif isinstance(item.get("paths"), list) and not raw_paths:
            r.error(join(rule_at, "paths"), "must list at least one JSON pointer")
        for p_index, pointer in enumerate(raw_paths):
            p_at = f"{rule_at}.paths[{p_index}]"
            if not isinstance(pointer, str):
                r.error(p_at, f"must be a string, got {json_type(pointer)}")
            elif checked(r, pointer, p_at, check_json_pointer) is not None:
                paths.append(pointer)
        rules.append(DriftIgnoreRule(tuple(paths), _parse_drift_target(r, item, rule_at)))
    return DriftDetectionSpec(mode, tuple(rules))


def _parse_drift_target(r: Reader, rule: Mapping[str, Any], at: str) -> DriftIgnoreTarget | None:
    raw = r.mapping(rule, "target", at)
    if raw is None:
        return None
    target_at = join(at, "target")
    name = checked(r, r.optional_string(raw, "name", target_at), join(target_at, "name"), check_dns_subdomain)
    ns = r.optional_string(raw, "namespace", target_at)
    return DriftIgnoreTarget(
        group=r.optional_string(raw, "group", target_at),
        version=r.optional_string(raw, "version", target_at),
        kind=r.optional_string(raw, "kind", target_at),
        name=name,
        namespace=checked(r, ns, join(target_at, "namespace"), check_dns_label),
    )
