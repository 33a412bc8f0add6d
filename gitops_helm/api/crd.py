"""The HelmRelease CustomResourceDefinition shipped inside the package.

Place in the data flow: the agent installs `load_crd()` at start (server-side apply through the
kube adapter); `deploy/crds/helmrelease.yaml` is an exact copy for users who install CRDs
themselves. The schema is a superset of the Helm Operator's: old manifests keep validating.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from typing import Any

from gitops_helm import yamlio

__all__ = ["CRD_NAME", "crd_text", "load_crd"]

CRD_NAME = "helmreleases.helm.fluxcd.io"


@cache
def crd_text() -> str:
    """The packaged CRD YAML, as shipped."""
    return files("gitops_helm.api").joinpath("crd.yaml").read_text(encoding="utf-8")


def load_crd() -> dict[str, Any]:
    """The CRD as a fresh dict (callers may modify it)."""
    document = yamlio.load(crd_text())
    if not isinstance(document, dict):  # pragma: no cover - guarded by the unit tests
        raise TypeError("the packaged crd.yaml is not a YAML mapping")
    return document
