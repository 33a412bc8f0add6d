"""The whole HelmRelease object: metadata, spec, status, parse warnings, and its policy.

Place in the data flow: the product of `gitops_helm.api.parse.parse_helmrelease`; the input of
the planner and the reconciler. `HelmRelease.policy` is the resolved `ReleasePolicy`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

from gitops_helm.api.errors import Problem
from gitops_helm.api.policy import ReleasePolicy, derive_policy
from gitops_helm.api.spec import HelmReleaseSpec, ValuesSource
from gitops_helm.api.status import HelmReleaseStatus

__all__ = ["API_VERSION", "GROUP", "KIND", "PLURAL", "VERSION", "HelmRelease", "ObjectMeta"]

GROUP = "helm.fluxcd.io"
VERSION = "v1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "HelmRelease"
PLURAL = "helmreleases"


@dataclass(frozen=True)
class ObjectMeta:
    """The metadata the agent uses. `generation` is 0 for an object not yet stored (a manifest)."""

    name: str
    namespace: str
    uid: str | None = None
    generation: int = 0
    resource_version: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)
    annotations: Mapping[str, str] = field(default_factory=dict, hash=False)
    finalizers: tuple[str, ...] = ()
    deletion_timestamp: str | None = None


@dataclass(frozen=True)
class HelmRelease:
    """A parsed, valid HelmRelease.

    `warnings` are non-fatal findings (deprecated or ignored fields), each naming its field path;
    the reconciler may publish them as events. They do not take part in equality.
    """

    metadata: ObjectMeta
    spec: HelmReleaseSpec
    status: HelmReleaseStatus = field(default_factory=HelmReleaseStatus)
    warnings: tuple[Problem, ...] = field(default=(), compare=False)

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def namespace(self) -> str:
        return self.metadata.namespace

    @property
    def key(self) -> str:
        """`namespace/name`, the work-queue key and the prefix of log lines."""
        return f"{self.metadata.namespace}/{self.metadata.name}"

    @cached_property
    def policy(self) -> ReleasePolicy:
        return derive_policy(self.spec, namespace=self.metadata.namespace, name=self.metadata.name)

    @property
    def release_name(self) -> str:
        return self.policy.release_name

    @property
    def target_namespace(self) -> str:
        return self.policy.target_namespace

    @property
    def values_sources(self) -> tuple[ValuesSource, ...]:
        return self.spec.values_sources
