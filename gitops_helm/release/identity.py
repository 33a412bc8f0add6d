"""Who a Helm release belongs to: the HelmRelease's identity and the marks that prove ownership.

Place in the flow: every other module of the release wing names a release through a
:class:`ReleaseRef`. Every revision the agent writes carries the release labels
``gitops-helm.io/owner`` (this HelmRelease, :func:`owner_id`) and ``gitops-helm.io/digest`` (the
desired state it applied). A release without them was installed by someone else; the Helm
Operator marked the resources of its releases with ``helm.fluxcd.io/antecedent`` instead
(:func:`antecedent_id`, :func:`owner_from_antecedent`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from gitops_helm.api import HelmRelease

FINALIZER = "helm.fluxcd.io/finalizer"
OWNER_LABEL = "gitops-helm.io/owner"
DIGEST_LABEL = "gitops-helm.io/digest"
ANTECEDENT = "helm.fluxcd.io/antecedent"
COMPONENT = "gitops-helm"  # the reporting component of the Events the agent emits
#: how the description (``helm --description``, kept per revision, never copied to the next one
#: as labels are) of every install and upgrade the agent runs begins
DESCRIPTION_PREFIX = "gitops-helm: "


def owner_id(namespace: str, name: str) -> str:
    """This HelmRelease's id as a label value (<= 63 characters)."""
    plain = f"{namespace}.{name}"
    if len(plain) <= 63:
        return plain
    return "hr-" + hashlib.sha256(plain.encode()).hexdigest()[:40]


def antecedent_id(namespace: str, name: str) -> str:
    """The Helm Operator's ownership annotation value."""
    return f"{namespace}:helmrelease/{name}"


def owner_from_antecedent(annotation: str) -> str:
    """The owner id of the HelmRelease that a Helm Operator antecedent annotation names."""
    namespace, _, name = annotation.partition(":helmrelease/")
    if name:
        return owner_id(namespace, name)
    return annotation.replace(":", ".").replace("/", ".")[:63]


@dataclass(frozen=True)
class ReleaseRef:
    """A HelmRelease and the Helm release it manages."""

    namespace: str  # the HelmRelease's
    name: str
    release_name: str
    target_namespace: str  # where the Helm release and its storage live

    @classmethod
    def of(cls, hr: HelmRelease) -> ReleaseRef:
        return cls(hr.namespace, hr.name, hr.release_name, hr.target_namespace)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def owner(self) -> str:
        return owner_id(self.namespace, self.name)
