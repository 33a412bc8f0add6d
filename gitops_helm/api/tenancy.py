"""What a HelmRelease may reach when the agent serves many teams: its identity and its references.

Place in the data flow: the reconciler asks here, before it reads anything for a HelmRelease, which
ServiceAccount the release acts as (:func:`service_account_user`, from ``spec.serviceAccountName``
or the agent's ``--default-service-account``) and, under ``--no-cross-namespace-refs``, which
references leave the HelmRelease's namespace (:func:`cross_namespace_references`; each named by its
field path, so the refusal tells the author exactly what to change).

Pure: no I/O.
"""

from __future__ import annotations

from gitops_helm.api.model import HelmRelease
from gitops_helm.api.spec import ConfigMapValuesSource, GitChartSource, SecretValuesSource

__all__ = ["cross_namespace_references", "service_account_of", "service_account_user"]


def service_account_of(hr: HelmRelease, default: str | None) -> str | None:
    """The ServiceAccount name the release acts as (in the HelmRelease's namespace), or None."""
    return hr.spec.service_account_name or default or None


def service_account_user(namespace: str, name: str) -> str:
    """The user name Kubernetes gives a ServiceAccount's token (what impersonation names)."""
    return f"system:serviceaccount:{namespace}:{name}"


def cross_namespace_references(hr: HelmRelease) -> tuple[str, ...]:
    """Every reference of ``hr`` to an object outside its own namespace, as ``field path: namespace``.

    ``chartPullSecret`` and ``valueFileSecrets`` name Secrets of the HelmRelease's own namespace
    by construction (they have no namespace field), so they never appear here.
    """
    own = hr.namespace
    found: list[str] = []
    chart = hr.spec.chart
    if isinstance(chart, GitChartSource) and chart.secret_ref and chart.secret_ref.namespace != own:
        found.append(f"spec.chart.secretRef.namespace: {chart.secret_ref.namespace!r}")
    for index, source in enumerate(hr.spec.values_from):
        if isinstance(source, ConfigMapValuesSource) and source.namespace != own:
            found.append(f"spec.valuesFrom[{index}].configMapKeyRef.namespace: {source.namespace!r}")
        elif isinstance(source, SecretValuesSource) and source.namespace != own:
            found.append(f"spec.valuesFrom[{index}].secretKeyRef.namespace: {source.namespace!r}")
    for index, dep in enumerate(hr.spec.depends_on):
        if dep.namespace != own:
            found.append(f"spec.dependsOn[{index}].namespace: {dep.namespace!r}")
    return tuple(found)
