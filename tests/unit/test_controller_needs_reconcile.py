"""Which watch updates of a HelmRelease queue a reconcile: not the agent's own writes."""

from __future__ import annotations

from typing import Any

from gitops_helm.controller import needs_reconcile
from gitops_helm.release.identity import FINALIZER


def hr(generation: int = 1, finalizers: list[str] | None = None, **meta: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": "app", "namespace": "team", "generation": generation, **meta}
    if finalizers is not None:
        metadata["finalizers"] = finalizers
    return {"metadata": metadata, "spec": {}, "status": {"phase": "Succeeded"}}


def test_a_new_object_and_a_spec_change_are_reconciled() -> None:
    assert needs_reconcile(None, hr())
    assert needs_reconcile(hr(1), hr(2))


def test_a_status_change_alone_is_not() -> None:
    old, new = hr(), hr()
    new["status"] = {"phase": "Failed"}
    assert not needs_reconcile(old, new)


def test_the_agents_own_finalizer_added_is_not_reconciled_again() -> None:
    """The first reconcile adds it and installs in the same run; its event changes nothing."""
    assert not needs_reconcile(hr(), hr(finalizers=[FINALIZER]))
    assert not needs_reconcile(hr(finalizers=["other/x"]), hr(finalizers=["other/x", FINALIZER]))


def test_any_other_finalizer_change_is_reconciled() -> None:
    assert needs_reconcile(hr(finalizers=[FINALIZER]), hr(finalizers=[]))  # ours removed by hand
    assert needs_reconcile(hr(), hr(finalizers=["other/x"]))
    assert needs_reconcile(hr(finalizers=[FINALIZER]), hr(finalizers=[FINALIZER, "other/x"]))
    # ours added together with a spec change: the spec change counts
    assert needs_reconcile(hr(1), hr(2, finalizers=[FINALIZER]))


def test_labels_annotations_and_deletion_are_reconciled() -> None:
    assert needs_reconcile(hr(), hr(labels={"shard": "b"}))
    assert needs_reconcile(hr(), hr(annotations={"reconcile.fluxcd.io/requestedAt": "now"}))
    assert needs_reconcile(hr(), hr(deletionTimestamp="2026-12-01T00:00:00Z"))
