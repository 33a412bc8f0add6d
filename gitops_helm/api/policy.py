"""The effective release policy: every default of a HelmRelease resolved in one place.

Place in the data flow: `HelmRelease.policy` (see `gitops_helm.api.model`) calls `derive_policy`
on the parsed spec; the planner and reconciler read behaviour only from the resulting
`ReleasePolicy`, never from raw spec fields, so no default is derived twice.

Legacy `rollback.*` => upgrade remediation (used only when `spec.upgrade.remediation` is absent;
when it is present, `rollback.enable/retry/maxRetries` are ignored):

| rollback.enable | rollback.retry | upgrade retries                 | remediateLastFailure |
|-----------------|----------------|---------------------------------|----------------------|
| false           | any            | 0                               | false                |
| true            | false          | 0                               | true                 |
| true            | true           | maxRetries (0 => -1, unlimited) | true                 |

So `enable: false` means no remediation (the failed release stays, as with the operator) and
`enable: true` without `retry` means one attempt, then a rollback.
Strategy is always `rollback`. This keeps the Helm Operator's documented counting: the retry is
allowed while `rollbackCount <= maxRetries`, so `maxRetries: N` allows N+1 failed upgrades, each
rolled back (`maxRetries: 1` ends with 2 failed upgrades and `rollbackCount` 2). The release
planner (`gitops_helm.release.plan`), the one home of the retry model, stops when
`failures > retries`, so the numbers are identical. Unlike the Helm Operator, the count restarts
when the desired state changes.

`wait` unset => true when tests are enabled or upgrade remediation is active (retries != 0 or
remediateLastFailure); with the legacy mapping that is exactly the Helm Operator's
`rollback.enable || test.enable`.

Helm Operator quirks not copied: `disableOpenAPIValidation` also applies to upgrades,
`maxHistory` also applies to installs, and `rollback.force` is honoured with Helm 3/4.
"""

from __future__ import annotations

from dataclasses import dataclass

from gitops_helm.api.spec import (
    DriftDetectionSpec,
    HelmReleaseSpec,
    ObjectRef,
    RemediationStrategy,
    RollbackSpec,
    UpgradeRemediationSpec,
)

__all__ = [
    "UNLIMITED",
    "ReleasePolicy",
    "Remediation",
    "TestPolicy",
    "default_release_name",
    "derive_policy",
]

UNLIMITED = -1
"""`retries` value meaning "retry forever"."""


@dataclass(frozen=True)
class Remediation:
    """What to do after a failed install or upgrade attempt, defaults resolved.

    `retries` is how many failed attempts of one desired state are retried (`UNLIMITED`: no
    limit). How failures are counted and when a remediation runs is decided by the release
    planner (`gitops_helm.release.plan`), not here.
    """

    strategy: RemediationStrategy
    retries: int
    remediate_last_failure: bool
    ignore_test_failures: bool

    @property
    def active(self) -> bool:
        """Whether a failure is ever remediated or retried."""
        return self.retries != 0 or self.remediate_last_failure


@dataclass(frozen=True)
class TestPolicy:
    """`helm test` after install/upgrade; whether failures count is per action (`Remediation`)."""

    __test__ = False  # not a pytest test class

    enable: bool
    timeout: int


@dataclass(frozen=True)
class ReleasePolicy:
    """Everything the reconciler needs to decide and run Helm actions, defaults resolved.

    - `timeout`: seconds for install, upgrade and uninstall (also the `--wait` deadline).
    - `max_history`: revisions kept; 0 = unlimited.
    - `reuse_values`: True only for an explicit `resetValues: false`; otherwise values are reset.
    - `install.strategy` is always `uninstall`.
    - `rollback`: the options of the rollback action (its `enable/retry/maxRetries` are already
      folded into `upgrade`).
    - `legacy_remediation`: True when `upgrade` was derived from `spec.rollback`.
    """

    release_name: str
    target_namespace: str
    suspend: bool
    depends_on: tuple[ObjectRef, ...]
    timeout: int
    max_history: int
    reuse_values: bool
    force_upgrade: bool
    wait: bool
    skip_crds: bool
    disable_openapi_validation: bool
    create_namespace: bool
    install: Remediation
    upgrade: Remediation
    legacy_remediation: bool
    rollback: RollbackSpec
    test: TestPolicy
    drift_detection: DriftDetectionSpec


def default_release_name(namespace: str, name: str, target_namespace: str | None) -> str:
    """`<ns>-<name>`, or `<ns>-<targetNamespace>-<name>` when the target namespace differs."""
    if target_namespace and target_namespace != namespace:
        return f"{namespace}-{target_namespace}-{name}"
    return f"{namespace}-{name}"


def _upgrade_from_legacy(rollback: RollbackSpec, ignore_test_failures: bool) -> Remediation:
    retries = 0
    if rollback.enable and rollback.retry:
        retries = rollback.max_retries or UNLIMITED
    return Remediation(
        strategy=RemediationStrategy.ROLLBACK,
        retries=retries,
        remediate_last_failure=rollback.enable,
        ignore_test_failures=ignore_test_failures,
    )


def _upgrade_from_spec(spec: UpgradeRemediationSpec, ignore_test_failures: bool) -> Remediation:
    last = spec.remediate_last_failure
    ignore = spec.ignore_test_failures
    return Remediation(
        strategy=spec.strategy,
        retries=spec.retries,
        remediate_last_failure=spec.retries != 0 if last is None else last,
        ignore_test_failures=ignore_test_failures if ignore is None else ignore,
    )


def derive_policy(spec: HelmReleaseSpec, *, namespace: str, name: str) -> ReleasePolicy:
    """Resolve every default of `spec` for the HelmRelease `namespace/name`."""
    target_namespace = spec.target_namespace or namespace
    release_name = spec.release_name or default_release_name(namespace, name, spec.target_namespace)
    ignore_tests = spec.test.ignore_failures

    install_spec = spec.install.remediation
    install = Remediation(
        strategy=RemediationStrategy.UNINSTALL,
        retries=install_spec.retries,
        remediate_last_failure=install_spec.remediate_last_failure,
        ignore_test_failures=(
            ignore_tests if install_spec.ignore_test_failures is None else install_spec.ignore_test_failures
        ),
    )
    upgrade_spec = spec.upgrade.remediation
    if upgrade_spec is None:
        upgrade = _upgrade_from_legacy(spec.rollback, ignore_tests)
    else:
        upgrade = _upgrade_from_spec(upgrade_spec, ignore_tests)

    wait = spec.wait if spec.wait is not None else (spec.test.enable or upgrade.active)
    return ReleasePolicy(
        release_name=release_name,
        target_namespace=target_namespace,
        suspend=spec.suspend,
        depends_on=spec.depends_on,
        timeout=spec.timeout,
        max_history=spec.max_history,
        reuse_values=spec.reset_values is False,
        force_upgrade=spec.force_upgrade,
        wait=wait,
        skip_crds=spec.skip_crds,
        disable_openapi_validation=spec.disable_openapi_validation,
        create_namespace=spec.install.create_namespace,
        install=install,
        upgrade=upgrade,
        legacy_remediation=upgrade_spec is None,
        rollback=spec.rollback,
        test=TestPolicy(enable=spec.test.enable, timeout=spec.test.timeout),
        drift_detection=spec.drift_detection,
    )
