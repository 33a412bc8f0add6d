"""Requests a person (or a tool) makes of the agent through a HelmRelease's annotations.

Place in the flow: ``gitops-helm reconcile`` writes :data:`RECONCILE_REQUEST_ANNOTATION`; the
controller reconciles at once on any annotation change, and the reconciler records the request it
handled in ``status.lastHandledReconcileAt`` (:func:`reconcile_request` picks it), which is what
the CLI waits for. Flux's ``reconcile.fluxcd.io/requestedAt`` is honoured the same way, so
``flux``-habit tooling and ``kubectl annotate`` recipes keep working.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["FLUX_RECONCILE_REQUEST_ANNOTATION", "RECONCILE_REQUEST_ANNOTATION", "reconcile_request"]

RECONCILE_REQUEST_ANNOTATION = "gitops-helm.io/reconcile-requested-at"
FLUX_RECONCILE_REQUEST_ANNOTATION = "reconcile.fluxcd.io/requestedAt"


def reconcile_request(annotations: Mapping[str, object] | None) -> str | None:
    """The reconcile request an object carries: ours when set, else Flux's, else None.

    One fixed precedence (not "the newer one": the values are opaque strings) keeps the recorded
    value stable from run to run, so a resync writes no status."""
    for key in (RECONCILE_REQUEST_ANNOTATION, FLUX_RECONCILE_REQUEST_ANNOTATION):
        value = (annotations or {}).get(key)
        if isinstance(value, str) and value:
            return value
    return None
