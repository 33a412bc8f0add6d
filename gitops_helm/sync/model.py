"""What a checkout declares, as data: object keys, origins, manifests and the discovery result.

Place in the flow: produced by ``sync.discover`` (which reads files), consumed by the pure
``sync.plan`` and by ``sync.apply``. No I/O here, so the planner that uses these types stays pure.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gitops_helm.api import API_VERSION, KIND

__all__ = [
    "IGNORE_ANNOTATIONS",
    "Discovery",
    "DiscoveryError",
    "IgnorePolicy",
    "Manifest",
    "ObjectKey",
    "Origin",
    "ignore_policy",
]

# The Flux v1 annotation and its legacy spelling; the first one found wins.
IGNORE_ANNOTATIONS = ("fluxcd.io/ignore", "flux.weave.works/ignore")


@dataclass(frozen=True, order=True)
class ObjectKey:
    """Identity of a Kubernetes object: API group (``""`` for core), kind, namespace, name.

    ``namespace`` is ``""`` when the manifest does not set one (cluster-scoped kinds, or namespaced
    kinds the applier puts in its default namespace). The version is not part of the identity.
    """

    group: str
    kind: str
    namespace: str
    name: str

    def effective(self, default_namespace: str) -> ObjectKey:
        """The key with an empty namespace replaced by ``default_namespace``.

        Safe for comparisons whatever the kind's scope: a kind is either namespaced or not, so
        two different objects never map to the same effective key.
        """
        if self.namespace or not default_namespace:
            return self
        return ObjectKey(self.group, self.kind, default_namespace, self.name)

    def __str__(self) -> str:
        kind = f"{self.kind}.{self.group}" if self.group else self.kind
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{kind} {where}"


@dataclass(frozen=True)
class Origin:
    """Where a document comes from: path relative to the checkout root, 1-based line."""

    path: str
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


class IgnorePolicy(enum.Enum):
    """Value of the ``fluxcd.io/ignore`` annotation, as Flux v1 understood it."""

    NONE = "none"
    IGNORE = "true"  # never applied, never garbage-collected
    SYNC_ONLY = "sync_only"  # applied, never garbage-collected


def ignore_policy(metadata: object) -> IgnorePolicy:
    """The ignore policy of an object's ``metadata`` (from Git or from the cluster).

    Tolerates anything: a missing or malformed ``annotations`` means no policy. An unquoted YAML
    ``true`` counts as ``"true"``: the author plainly meant to opt out.
    """
    if not isinstance(metadata, Mapping):
        return IgnorePolicy.NONE
    annotations = metadata.get("annotations")
    if not isinstance(annotations, Mapping):
        return IgnorePolicy.NONE
    for name in IGNORE_ANNOTATIONS:
        value = annotations.get(name)
        if value is True or value == "true":
            return IgnorePolicy.IGNORE
        if value == "sync_only":
            return IgnorePolicy.SYNC_ONLY
    return IgnorePolicy.NONE


@dataclass(frozen=True)
class Manifest:
    """One object declared in Git.

    ``body`` is the object as written (after YAML decoding); treat it as read-only, and use
    ``sync.plan.prepare_for_apply`` to get the copy that is sent to the cluster.
    """

    key: ObjectKey
    api_version: str
    body: dict[str, Any] = field(hash=False, repr=False)
    origin: Origin
    ignore: IgnorePolicy = IgnorePolicy.NONE

    @property
    def is_helmrelease(self) -> bool:
        return self.api_version == API_VERSION and self.key.kind == KIND


@dataclass(frozen=True)
class DiscoveryError:
    """A problem found while reading manifests; ``str()`` gives ``path:line: message``.

    ``line`` is ``None`` for problems about a whole path or file. ``key`` is set when the
    problem concerns an object whose identity is known (that key is then protected).
    """

    path: str
    line: int | None
    message: str
    key: ObjectKey | None = None

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        return f"{where}: {self.message}"


@dataclass(frozen=True)
class Discovery:
    """Result of :func:`discover`.

    - ``objects``: to apply, sorted by origin; never two with the same key.
    - ``ignored``: annotated ``fluxcd.io/ignore: "true"``; not applied.
    - ``protected``: keys declared in Git but not applied (ignored, duplicated, invalid):
      garbage collection must leave them alone.
    - ``errors``: sorted by path and line.
    - ``complete``: false when some path, file or document could not be read into an object of
      known identity; garbage collection must then be skipped.
    - ``files``: the files read, relative to the root, in order.
    """

    objects: tuple[Manifest, ...]
    ignored: tuple[Manifest, ...]
    protected: frozenset[ObjectKey]
    errors: tuple[DiscoveryError, ...]
    complete: bool
    files: tuple[str, ...]

    @property
    def declared_keys(self) -> frozenset[ObjectKey]:
        """Every key Git declares: what garbage collection must never delete."""
        return frozenset(m.key for m in self.objects) | self.protected
