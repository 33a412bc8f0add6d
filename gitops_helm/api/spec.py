"""Typed model of `HelmRelease.spec` (helm.fluxcd.io/v1), as written by the user.

Place in the data flow: `gitops_helm.api.parse` builds these frozen dataclasses from a manifest or
a live object; `gitops_helm.api.policy` resolves the context-dependent defaults (release name,
wait, remediation) into one `ReleasePolicy`; the reconciler reads chart and values inputs from
here and behaviour from the policy.

Static defaults (the Helm Operator's) are filled in here: `timeout` 300, `maxHistory` 10, key
`values.yaml`, reference namespaces = the HelmRelease's namespace. Fields whose default depends
on other fields stay `None` here ("not set") and are resolved only by the policy.
Every Helm Operator v1 field is present; the new optional fields are `suspend`, `dependsOn`,
`install`, `upgrade`, `driftDetection` and `serviceAccountName` (Flux v2 naming).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = [
    "DEFAULT_MAX_HISTORY",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_TIMEOUT",
    "DEFAULT_VALUES_KEY",
    "ChartFileValuesSource",
    "ChartSource",
    "ChartSourceKind",
    "ConfigMapValuesSource",
    "DriftDetectionSpec",
    "DriftIgnoreRule",
    "DriftIgnoreTarget",
    "DriftMode",
    "ExternalValuesSource",
    "GitChartSource",
    "HelmReleaseSpec",
    "InstallRemediationSpec",
    "InstallSpec",
    "ObjectRef",
    "OciChartSource",
    "RemediationStrategy",
    "RepoChartSource",
    "RollbackSpec",
    "SecretValuesSource",
    "TestSpec",
    "UpgradeRemediationSpec",
    "UpgradeSpec",
    "ValuesSource",
]

DEFAULT_TIMEOUT = 300
DEFAULT_MAX_HISTORY = 10
DEFAULT_MAX_RETRIES = 5
DEFAULT_VALUES_KEY = "values.yaml"


@dataclass(frozen=True)
class ObjectRef:
    """A reference to a namespaced object; `namespace` is already resolved (never empty)."""

    name: str
    namespace: str


# --- chart sources ------------------------------------------------------------------------------


class ChartSourceKind(StrEnum):
    GIT = "git"
    REPO = "repo"
    OCI = "oci"


@dataclass(frozen=True)
class GitChartSource:
    """`chart.git` + `chart.path` (+ `ref`, `secretRef`, `skipDepUpdate`).

    `ref` None means the agent's default ref. `secret_ref` holds HTTPS basic-auth credentials
    (keys `username`, `password`), used only for https URLs.
    """

    git: str
    path: str
    ref: str | None = None
    secret_ref: ObjectRef | None = None
    skip_dep_update: bool = False

    @property
    def kind(self) -> ChartSourceKind:
        return ChartSourceKind.GIT


@dataclass(frozen=True)
class RepoChartSource:
    """`chart.repository` + `name` + `version` from a Helm (HTTP or plugin-scheme) repository.

    `version` may be a semver range. `chart_pull_secret` names a Secret in the HelmRelease's
    namespace with repository credentials (ignored by the Helm Operator; honoured here).
    """

    repository: str
    name: str
    version: str
    chart_pull_secret: str | None = None

    @property
    def kind(self) -> ChartSourceKind:
        return ChartSourceKind.REPO


@dataclass(frozen=True)
class OciChartSource:
    """A chart in an OCI registry: `repository: oci://host/path`, `name`, `version`.

    The chart reference given to Helm is `reference` (`oci://host/path/name`) with `version`.
    """

    repository: str
    name: str
    version: str
    chart_pull_secret: str | None = None
    # speak plain HTTP to this registry (``spec.chart.plainHTTP``); the agent-wide equivalent is
    # ``--oci-plain-http HOST``. Credentials are sent in clear only to hosts the agent lists.
    plain_http: bool = False

    @property
    def kind(self) -> ChartSourceKind:
        return ChartSourceKind.OCI

    @property
    def reference(self) -> str:
        return f"{self.repository.rstrip('/')}/{self.name}"


ChartSource = GitChartSource | RepoChartSource | OciChartSource


# --- values sources -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ConfigMapValuesSource:
    """`valuesFrom[].configMapKeyRef`; `optional` forgives a missing object, key or bad YAML."""

    name: str
    namespace: str
    key: str = DEFAULT_VALUES_KEY
    optional: bool = False


@dataclass(frozen=True)
class SecretValuesSource:
    """`valuesFrom[].secretKeyRef` (and each deprecated `valueFileSecrets` entry)."""

    name: str
    namespace: str
    key: str = DEFAULT_VALUES_KEY
    optional: bool = False


@dataclass(frozen=True)
class ExternalValuesSource:
    """`valuesFrom[].externalSourceRef`: an http(s) URL of a YAML document."""

    url: str
    optional: bool = False


@dataclass(frozen=True)
class ChartFileValuesSource:
    """`valuesFrom[].chartFileRef`: a file relative to the chart directory (Git charts only)."""

    path: str
    optional: bool = False


ValuesSource = ConfigMapValuesSource | SecretValuesSource | ExternalValuesSource | ChartFileValuesSource


# --- legacy behaviour blocks --------------------------------------------------------------------


@dataclass(frozen=True)
class RollbackSpec:
    """`spec.rollback`.

    `enable`, `retry` and `max_retries` are the legacy upgrade-remediation switches; they are
    mapped onto `ReleasePolicy.upgrade` when `spec.upgrade.remediation` is absent (see
    `gitops_helm.api.policy`). The other fields are options of the rollback action itself and
    always apply. `max_retries` 0 means unlimited.
    """

    enable: bool = False
    retry: bool = False
    max_retries: int = DEFAULT_MAX_RETRIES
    force: bool = False
    recreate: bool = False
    disable_hooks: bool = False
    timeout: int = DEFAULT_TIMEOUT
    wait: bool = False


@dataclass(frozen=True)
class TestSpec:
    """`spec.test`: run `helm test` after every successful install or upgrade.

    `cleanup` only mattered for Helm 2; kept for compatibility, unused with Helm 3/4.
    """

    __test__ = False  # not a pytest test class

    enable: bool = False
    ignore_failures: bool = False
    timeout: int = DEFAULT_TIMEOUT
    cleanup: bool = True


# --- new blocks (Flux v2 naming) ----------------------------------------------------------------


class RemediationStrategy(StrEnum):
    ROLLBACK = "rollback"
    UNINSTALL = "uninstall"


@dataclass(frozen=True)
class InstallRemediationSpec:
    """`spec.install.remediation`.

    - `retries`: install attempts allowed after the first failed one, for the same desired
      state; 0 (default) = none; -1 = unlimited.
    - `remediate_last_failure`: uninstall (purge) the release when the last allowed attempt
      failed. Default true, which is the Helm Operator's "a failed install is purged". Set false
      to keep the failed release for inspection. Earlier failed attempts are always uninstalled
      before the next try.
    - `ignore_test_failures`: None = `spec.test.ignoreFailures`.
    """

    retries: int = 0
    remediate_last_failure: bool = True
    ignore_test_failures: bool | None = None


@dataclass(frozen=True)
class InstallSpec:
    """`spec.install`: `createNamespace` (default false, as the Helm Operator) and remediation."""

    create_namespace: bool = False
    remediation: InstallRemediationSpec = InstallRemediationSpec()


@dataclass(frozen=True)
class UpgradeRemediationSpec:
    """`spec.upgrade.remediation`; when present it replaces the legacy `rollback.*` switches.

    - `retries`: upgrade attempts allowed after the first failed one, for the same desired
      state; 0 (default) = none; -1 = unlimited.
    - `strategy`: how a failed upgrade is remediated: `rollback` (default) or `uninstall`.
    - `remediate_last_failure`: remediate after the last allowed attempt too; None = `retries != 0`.
    - `ignore_test_failures`: None = `spec.test.ignoreFailures`.
    """

    retries: int = 0
    strategy: RemediationStrategy = RemediationStrategy.ROLLBACK
    remediate_last_failure: bool | None = None
    ignore_test_failures: bool | None = None


@dataclass(frozen=True)
class UpgradeSpec:
    """`spec.upgrade`; `remediation` None means "absent: derive it from `spec.rollback`"."""

    remediation: UpgradeRemediationSpec | None = None


class DriftMode(StrEnum):
    DISABLED = "disabled"
    WARN = "warn"
    ENABLED = "enabled"


@dataclass(frozen=True)
class DriftIgnoreTarget:
    """Which rendered objects an ignore rule applies to; unset fields match anything.

    Matching is by exact string (not regular expressions, unlike Flux v2).
    """

    group: str | None = None
    version: str | None = None
    kind: str | None = None
    name: str | None = None
    namespace: str | None = None

    def matches(self, *, api_version: str, kind: str, name: str, namespace: str | None) -> bool:
        """True when the object `apiVersion`/`kind`/`name`/`namespace` is targeted."""
        group, _, version = api_version.rpartition("/")
        wanted = (self.group, self.version, self.kind, self.name, self.namespace)
        actual = (group, version, kind, name, namespace)
        return all(w is None or w == a for w, a in zip(wanted, actual, strict=True))


@dataclass(frozen=True)
class DriftIgnoreRule:
    """JSON pointers (RFC 6901) whose differences are not drift, for `target` (None = all)."""

    paths: tuple[str, ...]
    target: DriftIgnoreTarget | None = None


@dataclass(frozen=True)
class DriftDetectionSpec:
    """`spec.driftDetection`: compare live objects with the release manifest.

    `disabled` (default): no comparison. `warn`: report drift (condition/event) only.
    `enabled`: report and correct it.
    """

    mode: DriftMode = DriftMode.DISABLED
    ignore: tuple[DriftIgnoreRule, ...] = ()


# --- the spec -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class HelmReleaseSpec:
    """`HelmRelease.spec`. `release_name`/`target_namespace` are as written (None = unset).

    `values` is a private deep copy of the inline values (JSON-compatible). `value_file_secrets`
    holds the deprecated `valueFileSecrets`, already converted to secret references (key
    `values.yaml`, the HelmRelease's namespace, not optional); `values_sources` puts them
    before `values_from`, the merge order the Helm Operator used.
    `helm_version` is "v3" or None; "v2" is rejected by the parser.
    """

    chart: ChartSource
    release_name: str | None = None
    target_namespace: str | None = None
    timeout: int = DEFAULT_TIMEOUT
    max_history: int = DEFAULT_MAX_HISTORY
    reset_values: bool | None = None
    force_upgrade: bool = False
    wait: bool | None = None
    skip_crds: bool = False
    disable_openapi_validation: bool = False
    values: Mapping[str, Any] = field(default_factory=dict, hash=False)
    values_from: tuple[ValuesSource, ...] = ()
    value_file_secrets: tuple[SecretValuesSource, ...] = ()
    rollback: RollbackSpec = RollbackSpec()
    test: TestSpec = TestSpec()
    helm_version: str | None = None
    suspend: bool = False
    depends_on: tuple[ObjectRef, ...] = ()
    install: InstallSpec = InstallSpec()
    upgrade: UpgradeSpec = UpgradeSpec()
    drift_detection: DriftDetectionSpec = DriftDetectionSpec()
    # the ServiceAccount (of the HelmRelease's namespace) every helm action and Kubernetes read
    # for this release runs as; None: the agent's --default-service-account, else the agent
    service_account_name: str | None = None

    @property
    def values_sources(self) -> tuple[ValuesSource, ...]:
        """All external values sources in merge order (lowest precedence first)."""
        return self.value_file_secrets + self.values_from
