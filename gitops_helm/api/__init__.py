"""HelmRelease API (`helm.fluxcd.io/v1`): model, defaults, validation, status and CRD.

Place in the data flow: the first stage after an object is read (from the cluster or from a
manifest in Git) and the last before status is written. Pure Python: no Kubernetes client, no
I/O except reading the packaged CRD file.

    object (dict) --parse_helmrelease--> HelmRelease(metadata, spec, status, warnings)
    HelmRelease.policy -------------------> ReleasePolicy (all defaults resolved)
    HelmReleaseStatus --record_phase/set_*--> HelmReleaseStatus --serialise_status--> status patch

Modules: `spec` (spec dataclasses), `policy` (effective policy), `model` (the object),
`parse`/`parse_sources`/`fields`/`checks` (validation), `status`/`conditions` (status),
`serialise` (model to JSON), `tenancy` (identity, cross-namespace references), `errors`; `crd`
(the packaged CRD, imported on its own because it reads YAML).
"""

from gitops_helm.api.conditions import (
    Condition,
    ConditionStatus,
    ConditionType,
    find_condition,
    format_time,
    remove_condition,
    set_condition,
)
from gitops_helm.api.errors import APIError, Problem, SpecError
from gitops_helm.api.history import (
    COMMIT_ANNOTATION,
    DEFAULT_HISTORY,
    MAX_HISTORY,
    AttemptOutcome,
    HistoryAction,
    HistoryEntry,
    add_entry,
    entry_for_revision,
    record_test,
)
from gitops_helm.api.model import API_VERSION, GROUP, KIND, PLURAL, VERSION, HelmRelease, ObjectMeta
from gitops_helm.api.parse import parse_helmrelease
from gitops_helm.api.policy import UNLIMITED, ReleasePolicy, Remediation, TestPolicy, default_release_name
from gitops_helm.api.requests import (
    FLUX_RECONCILE_REQUEST_ANNOTATION,
    RECONCILE_REQUEST_ANNOTATION,
    reconcile_request,
)
from gitops_helm.api.serialise import serialise_helmrelease, serialise_spec
from gitops_helm.api.spec import (
    ChartFileValuesSource,
    ChartSource,
    ChartSourceKind,
    ConfigMapValuesSource,
    DriftDetectionSpec,
    DriftIgnoreRule,
    DriftIgnoreTarget,
    DriftMode,
    ExternalValuesSource,
    GitChartSource,
    HelmReleaseSpec,
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
    ValuesSource,
)
from gitops_helm.api.status import (
    HelmReleaseStatus,
    Phase,
    condition_pairs,
    parse_status,
    phase_message,
    record_phase,
    serialise_status,
    set_reconciling,
    set_stalled,
    settle,
)
from gitops_helm.api.tenancy import cross_namespace_references, service_account_of, service_account_user

__all__ = [
    "API_VERSION",
    "COMMIT_ANNOTATION",
    "DEFAULT_HISTORY",
    "FLUX_RECONCILE_REQUEST_ANNOTATION",
    "GROUP",
    "KIND",
    "MAX_HISTORY",
    "PLURAL",
    "RECONCILE_REQUEST_ANNOTATION",
    "UNLIMITED",
    "VERSION",
    "APIError",
    "AttemptOutcome",
    "ChartFileValuesSource",
    "ChartSource",
    "ChartSourceKind",
    "Condition",
    "ConditionStatus",
    "ConditionType",
    "ConfigMapValuesSource",
    "DriftDetectionSpec",
    "DriftIgnoreRule",
    "DriftIgnoreTarget",
    "DriftMode",
    "ExternalValuesSource",
    "GitChartSource",
    "HelmRelease",
    "HelmReleaseSpec",
    "HelmReleaseStatus",
    "HistoryAction",
    "HistoryEntry",
    "InstallRemediationSpec",
    "InstallSpec",
    "ObjectMeta",
    "ObjectRef",
    "OciChartSource",
    "Phase",
    "Problem",
    "ReleasePolicy",
    "Remediation",
    "RemediationStrategy",
    "RepoChartSource",
    "RollbackSpec",
    "SecretValuesSource",
    "SpecError",
    "TestPolicy",
    "TestSpec",
    "UpgradeRemediationSpec",
    "UpgradeSpec",
    "ValuesSource",
    "add_entry",
    "condition_pairs",
    "cross_namespace_references",
    "default_release_name",
    "entry_for_revision",
    "find_condition",
    "format_time",
    "parse_helmrelease",
    "parse_status",
    "phase_message",
    "reconcile_request",
    "record_phase",
    "record_test",
    "remove_condition",
    "serialise_helmrelease",
    "serialise_spec",
    "serialise_status",
    "service_account_of",
    "service_account_user",
    "set_condition",
    "set_reconciling",
    "set_stalled",
    "settle",
]
