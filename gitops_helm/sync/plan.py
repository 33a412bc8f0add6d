"""Pure planning of a Git-to-cluster sync: order, ownership marks, inventory, garbage collection.

Place in the data flow: ``sync.discover`` reads the checkout into a ``Discovery``; this
module decides, without any I/O, in which order to apply it, what labels and annotations each
applied object carries, which previously applied objects to delete, and what a ``diff`` preview
shows; ``sync`` performs the calls through the Kubernetes adapter and stores the inventory.

Ownership and garbage collection (safer than Flux v1's label sweep):

- Every applied object gets the label ``gitops-helm.io/source: <source id>`` (see
  :func:`source_id`) and the annotation ``gitops-helm.io/checksum: <sha256 hex>`` of the object
  as written in Git (:func:`checksum`).
- It also gets ``gitops-helm.io/commit: <sha>``, the commit its text was applied from
  (:func:`commit_to_record`): the sync's commit when the text changed, else the commit already
  recorded, so a new commit that leaves an object as it was does not rewrite it.
- After a sync the caller stores the *inventory*: the keys it applied (:func:`next_inventory`,
  serialised by :func:`dump_inventory`). Garbage-collection candidates are the keys of the previous
  inventory that Git no longer declares (:func:`plan_gc`); none when the discovery was incomplete
  or the stored inventory is missing or corrupt (:func:`load_inventory` returns ``None``).
- A candidate is deleted only if the live object still carries this source's label and is not
  annotated ``fluxcd.io/ignore: "true"`` or ``sync_only`` (:func:`may_delete`). So objects made
  by hand or by another source are never touched, and orphaning is the only failure mode.
- Keys are compared after putting an empty namespace into the applier's default namespace
  (``ObjectKey.effective``), so manifests without a namespace match the stored live keys.
- The inventory belongs to one source (:class:`SourceIdentity`: URL without credentials, branch,
  paths, only-HelmReleases mode), recorded beside it. :func:`decide_ownership` compares the
  recorded identity with the current one: a different URL, branch or path set is a *foreign*
  source, which applies but collects nothing and leaves the owner's inventory alone, unless it
  takes the inventory over on purpose. An inventory without a recorded identity (written before
  identities were recorded) is adopted once by the source that finds it. The mode is recorded but
  is not part of the comparison: objects of kinds the current mode does not sync are never
  candidates and stay in the inventory (:func:`in_mode`), so switching the mode back still
  collects them.
"""

from __future__ import annotations

import copy
import enum
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

from gitops_helm.api import COMMIT_ANNOTATION, GROUP, KIND
from gitops_helm.sync.model import Discovery, IgnorePolicy, Manifest, ObjectKey, ignore_policy

__all__ = [
    "CHECKSUM_ANNOTATION",
    "COMMIT_ANNOTATION",
    "SOURCE_LABEL",
    "ApplyPhase",
    "Ownership",
    "OwnershipDecision",
    "SourceIdentity",
    "SyncDiff",
    "apply_order",
    "apply_phase",
    "canonical_json",
    "checksum",
    "commit_to_record",
    "decide_ownership",
    "delete_order",
    "diff_plan",
    "dump_inventory",
    "ignored_in_cluster",
    "in_mode",
    "is_valid_label_value",
    "live_checksum",
    "live_commit",
    "load_identity",
    "load_inventory",
    "may_delete",
    "next_inventory",
    "owned_by_source",
    "plan_gc",
    "prepare_for_apply",
    "source_id",
]

SOURCE_LABEL = "gitops-helm.io/source"
CHECKSUM_ANNOTATION = "gitops-helm.io/checksum"
_INVENTORY_VERSION = 1
_LABEL_VALUE = re.compile(r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?")
_SLUG_MAX = 40


# --- source identity ---------------------------------------------------------------------------


def is_valid_label_value(value: str) -> bool:
    """Whether ``value`` is a valid Kubernetes label value (at most 63 characters)."""
    return len(value) <= 63 and _LABEL_VALUE.fullmatch(value) is not None


def source_id(sync_name: str) -> str:
    """A short, stable label value identifying a sync source, derived from its name.

    ``<slug>-<hash>``: the name lower-cased with every run of characters other than ``a-z0-9``
    replaced by ``-`` and cut to 40 characters, then the first 10 hex digits of the name's
    SHA-256 (so ``a/b`` and ``a-b`` differ). At most 51 characters; only the hash for a name
    without letters or digits. It depends on the name alone, not on the Git URL, branch or paths:
    moving the repository does not orphan what the source applied.
    """
    digest = hashlib.sha256(sync_name.encode("utf-8")).hexdigest()[:10]
    slug = re.sub(r"[^a-z0-9]+", "-", sync_name.lower()).strip("-")[:_SLUG_MAX].rstrip("-")
    return f"{slug}-{digest}" if slug else digest


# --- the source an inventory belongs to --------------------------------------------------------


def _normal_path(path: str) -> str:
    """``./a//b/`` -> ``a/b``; the repository root (``""``, ``.``, ``/``) -> ``.``."""
    parts: list[str] = []
    for part in path.strip().split("/"):
        if part in ("", "."):
            continue
        if part == ".." and parts and parts[-1] != "..":
            parts.pop()
        else:
            parts.append(part)
    return "/".join(parts) or "."


@dataclass(frozen=True)
class SourceIdentity:
    """What a sync reads: repository URL (never with credentials), branch, paths, mode.

    Build it with :meth:`of`, which normalises the paths into a sorted set (no paths means the
    repository root, ``.``). The caller strips credentials from the URL before.
    """

    url: str
    branch: str
    paths: tuple[str, ...]
    only_helmreleases: bool

    @classmethod
    def of(cls, url: str, branch: str, paths: Iterable[str], only_helmreleases: bool) -> SourceIdentity:
        normal = sorted({_normal_path(p) for p in paths}) or ["."]
        return cls(url.strip(), branch.strip(), tuple(normal), bool(only_helmreleases))

    def same_source(self, other: SourceIdentity) -> bool:
        """Same URL, branch and paths; the only-HelmReleases mode is not compared."""
        return (self.url, self.branch, self.paths) == (other.url, other.branch, other.paths)

    def describe(self) -> str:
        mode = ", only HelmReleases" if self.only_helmreleases else ""
        return f"{self.url} branch {self.branch} paths {','.join(self.paths)}{mode}"

    def dump(self) -> str:
        """Compact JSON with sorted keys, as stored in the sync state (``source``)."""
        body = {
            "url": self.url,
            "branch": self.branch,
            "paths": list(self.paths),
            "onlyHelmReleases": self.only_helmreleases,
        }
        return json.dumps(body, sort_keys=True, separators=(",", ":"))


def _json_object(text: str) -> dict[str, Any] | None:
    """A JSON object from the sync state, or None for anything else (corrupt state is unknown)."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def load_identity(text: str) -> SourceIdentity | None:
    """Parse :meth:`SourceIdentity.dump` output; ``None`` for anything else."""
    data = _json_object(text)
    if data is None:
        return None
    url, branch, paths, mode = (data.get(k) for k in ("url", "branch", "paths", "onlyHelmReleases"))
    if not (isinstance(url, str) and url and isinstance(branch, str) and branch and type(mode) is bool):
        return None
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        return None
    return SourceIdentity.of(url, branch, paths, mode)


class Ownership(enum.Enum):
    """How the current source relates to the stored inventory."""

    NEW = "new"  # no inventory stored yet
    OWNED = "owned"  # recorded for this source (the mode may differ)
    ADOPTED = "adopted"  # stored without an identity (an older version): adopted by this source
    TAKEN_OVER = "taken over"  # recorded for another source, taken over on purpose
    FOREIGN = "foreign"  # recorded for another source (or unreadable): not ours


@dataclass(frozen=True)
class OwnershipDecision:
    """The outcome of :func:`decide_ownership`.

    ``owns``: this sync may collect from the inventory and store its own next inventory;
    ``owner``: the identity to record with the stored inventory; ``error``: set for a foreign
    inventory (names both sources and how to proceed); ``recorded``: the identity found, if any.
    """

    ownership: Ownership
    owner: SourceIdentity
    recorded: SourceIdentity | None
    error: str = ""

    @property
    def owns(self) -> bool:
        return self.ownership is not Ownership.FOREIGN

    def recorded_description(self) -> str:
        """The recorded owner, for messages."""
        return self.recorded.describe() if self.recorded is not None else "no readable identity"


def decide_ownership(
    inventory_stored: bool,
    recorded_text: str | None,
    current: SourceIdentity,
    *,
    sync_name: str,
    take_over: bool,
) -> OwnershipDecision:
    """Whether the stored inventory belongs to ``current``.

    ``inventory_stored``: the sync state holds an inventory; ``recorded_text``: its stored
    identity. Upgrade rule: an inventory without an identity is adopted by the first source that
    finds it. A recorded identity of another URL, branch or path set (or one that cannot be
    read) is foreign unless ``take_over``.
    """
    if not recorded_text:
        ownership = Ownership.ADOPTED if inventory_stored else Ownership.NEW
        return OwnershipDecision(ownership, current, None)
    recorded = load_identity(recorded_text)
    if recorded is not None and recorded.same_source(current):
        return OwnershipDecision(Ownership.OWNED, current, recorded)
    if take_over:
        return OwnershipDecision(Ownership.TAKEN_OVER, current, recorded)
    owner = recorded.describe() if recorded is not None else f"unreadable identity {recorded_text[:200]!r}"
    error = (
        f"the inventory of sync {sync_name!r} belongs to another source ({owner}); this sync reads "
        f"{current.describe()}. Its objects were applied, garbage collection was skipped and the "
        f"inventory was left to its owner. Give this source its own --sync-name, or pass "
        f"--sync-take-over-inventory=true to make it the owner (it will then delete what the "
        f"previous source applied and it does not declare)"
    )
    return OwnershipDecision(Ownership.FOREIGN, recorded or current, recorded, error)


def in_mode(key: ObjectKey, only_helmreleases: bool) -> bool:
    """Whether a sync in this mode reads objects of ``key``'s kind (discover keeps only
    ``helm.fluxcd.io`` HelmReleases with ``only_helmreleases``). Keys outside the mode are never
    garbage candidates and stay in the inventory."""
    return not only_helmreleases or (key.group, key.kind) == (GROUP, KIND)


# --- checksums and marks -----------------------------------------------------------------------


def canonical_json(body: Mapping[str, Any]) -> bytes:
    """UTF-8 JSON with sorted keys and no spaces: equal objects give equal bytes."""
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text.encode("utf-8")


def checksum(body: Mapping[str, Any]) -> str:
    """SHA-256 hex digest of :func:`canonical_json` of an object as written in Git."""
    return hashlib.sha256(canonical_json(body)).hexdigest()


#: The largest request body the Kubernetes API server accepts (its ``MaxRequestBodyBytes``, 3 MiB).
#: A larger one is refused with 413, or the connection is closed before the answer can be read.
MAX_REQUEST_BYTES = 3 * 1024 * 1024


def size_problem(body: Mapping[str, Any]) -> str | None:
    """Why ``body`` cannot be sent to the API server at all, or None (checked before the request,
    so the error names the object and its size rather than a dropped connection)."""
    size = len(canonical_json(body))
    if size <= MAX_REQUEST_BYTES:
        return None
    limit = MAX_REQUEST_BYTES
    return f"the object is {size} bytes, larger than the {limit} bytes the Kubernetes API server accepts"


def prepare_for_apply(manifest: Manifest, source: str, commit: str | None = None) -> dict[str, Any]:
    """A copy of the manifest's body with this source's label and the checksum annotation, and
    the commit annotation when ``commit`` is given (see :func:`commit_to_record`).

    Values already present under those names are overwritten; ``manifest.body`` is not
    changed. Raises ``ValueError`` if ``source`` is not a valid label value.
    """
    if not is_valid_label_value(source):
        raise ValueError(f"source id {source!r} is not a valid label value")
    body = copy.deepcopy(manifest.body)
    metadata = body.setdefault("metadata", {})
    labels = metadata.get("labels") or {}
    annotations = metadata.get("annotations") or {}
    metadata["labels"] = {**labels, SOURCE_LABEL: source}
    metadata["annotations"] = {**annotations, CHECKSUM_ANNOTATION: checksum(manifest.body)}
    if commit:
        metadata["annotations"][COMMIT_ANNOTATION] = commit
    else:  # a commit annotation written in Git is not ours to pass on as the applied commit
        metadata["annotations"].pop(COMMIT_ANNOTATION, None)
    return body


def _string_map(metadata: object, field_name: str) -> Mapping[str, Any]:
    if isinstance(metadata, Mapping):
        value = metadata.get(field_name)
        if isinstance(value, Mapping):
            return value
    return {}


def owned_by_source(live_metadata: object, source: str) -> bool:
    """Whether a live object's ``metadata`` carries the label of ``source``."""
    return _string_map(live_metadata, "labels").get(SOURCE_LABEL) == source


def live_checksum(live_metadata: object) -> str | None:
    """The checksum annotation of a live object, if it has one."""
    value = _string_map(live_metadata, "annotations").get(CHECKSUM_ANNOTATION)
    return value if isinstance(value, str) else None


def live_commit(live_metadata: object) -> str | None:
    """The commit annotation of a live object, if it has one."""
    value = _string_map(live_metadata, "annotations").get(COMMIT_ANNOTATION)
    return value if isinstance(value, str) and value else None


def commit_to_record(manifest: Manifest, live_metadata: object, revision: str) -> str | None:
    """The commit to record on the object a sync of ``revision`` applies for ``manifest``.

    When the live object holds the same Git text (its checksum annotation equals this text's),
    the commit it already records is kept (``None`` when it records none: applied by a version
    that did not record commits), so a commit that does not change an object costs no write and
    the annotation keeps naming the commit that last changed it. Otherwise ``revision``; ``None``
    for an empty revision.
    """
    if live_checksum(live_metadata) == checksum(manifest.body):
        return live_commit(live_metadata)
    return revision or None


def ignored_in_cluster(live_metadata: object) -> bool:
    """Whether the live object is annotated ``fluxcd.io/ignore: "true"``: do not apply over it."""
    return ignore_policy(live_metadata) is IgnorePolicy.IGNORE


def may_delete(live_metadata: object, source: str) -> bool:
    """Whether garbage collection may delete this live object on behalf of ``source``.

    True only if it carries the source's label and no ``fluxcd.io/ignore`` (``"true"`` or
    ``sync_only``) annotation.
    """
    return owned_by_source(live_metadata, source) and ignore_policy(live_metadata) is IgnorePolicy.NONE


# --- order -------------------------------------------------------------------------------------


class ApplyPhase(enum.IntEnum):
    """Apply order by kind; deletes run in the reverse order."""

    CRDS = 0
    NAMESPACES = 1
    CLUSTER_CONFIG = 2  # quotas, limits, priority and storage classes
    CONFIG = 3  # service accounts, secrets, config maps, volumes
    RBAC_ROLES = 4
    RBAC_BINDINGS = 5
    OTHER = 6
    WEBHOOKS = 7  # after the services they call, so they do not block the objects above
    HELMRELEASES = 8


_PHASES: dict[tuple[str, str], ApplyPhase] = {
    ("apiextensions.k8s.io", "CustomResourceDefinition"): ApplyPhase.CRDS,
    ("", "Namespace"): ApplyPhase.NAMESPACES,
    ("", "ResourceQuota"): ApplyPhase.CLUSTER_CONFIG,
    ("", "LimitRange"): ApplyPhase.CLUSTER_CONFIG,
    ("scheduling.k8s.io", "PriorityClass"): ApplyPhase.CLUSTER_CONFIG,
    ("storage.k8s.io", "StorageClass"): ApplyPhase.CLUSTER_CONFIG,
    ("", "ServiceAccount"): ApplyPhase.CONFIG,
    ("", "Secret"): ApplyPhase.CONFIG,
    ("", "ConfigMap"): ApplyPhase.CONFIG,
    ("", "PersistentVolume"): ApplyPhase.CONFIG,
    ("", "PersistentVolumeClaim"): ApplyPhase.CONFIG,
    ("rbac.authorization.k8s.io", "ClusterRole"): ApplyPhase.RBAC_ROLES,
    ("rbac.authorization.k8s.io", "Role"): ApplyPhase.RBAC_ROLES,
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): ApplyPhase.RBAC_BINDINGS,
    ("rbac.authorization.k8s.io", "RoleBinding"): ApplyPhase.RBAC_BINDINGS,
    ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"): ApplyPhase.WEBHOOKS,
    ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"): ApplyPhase.WEBHOOKS,
    (GROUP, KIND): ApplyPhase.HELMRELEASES,
    ("helm.toolkit.fluxcd.io", "HelmRelease"): ApplyPhase.HELMRELEASES,
}


def apply_phase(key: ObjectKey) -> ApplyPhase:
    return _PHASES.get((key.group, key.kind), ApplyPhase.OTHER)


def _order(key: ObjectKey) -> tuple[ApplyPhase, ObjectKey]:
    return apply_phase(key), key


def apply_order(manifests: Iterable[Manifest]) -> list[Manifest]:
    """Manifests by :class:`ApplyPhase`, then group, kind, namespace, name."""
    return sorted(manifests, key=lambda m: _order(m.key))


def delete_order(keys: Iterable[ObjectKey]) -> list[ObjectKey]:
    """Keys in the exact reverse of the apply order (HelmReleases first, CRDs last)."""
    return sorted(keys, key=_order, reverse=True)


# --- inventory and garbage collection ---------------------------------------------------------


def dump_inventory(keys: Iterable[ObjectKey]) -> str:
    """Compact JSON ``{"version":1,"objects":[[group,kind,namespace,name],...]}``, sorted."""
    objects = [[k.group, k.kind, k.namespace, k.name] for k in sorted(set(keys))]
    return json.dumps({"version": _INVENTORY_VERSION, "objects": objects}, separators=(",", ":"))


def _entry_key(entry: object) -> ObjectKey | None:
    if not isinstance(entry, list) or len(entry) != 4 or not all(isinstance(p, str) for p in entry):
        return None
    group, kind, namespace, name = entry
    return ObjectKey(group, kind, namespace, name) if kind and name else None


def load_inventory(text: str | None) -> frozenset[ObjectKey] | None:
    """Parse :func:`dump_inventory` output; ``None`` ("unknown") for missing or corrupt text.

    An unknown inventory makes :func:`plan_gc` collect nothing.
    """
    data = _json_object(text) if text else None
    if data is None:
        return None
    version, entries = data.get("version"), data.get("objects")
    if type(version) is not int or version != _INVENTORY_VERSION or not isinstance(entries, list):
        return None
    keys = [_entry_key(entry) for entry in entries]
    if any(key is None for key in keys):
        return None
    return frozenset(key for key in keys if key is not None)


def next_inventory(
    previous: AbstractSet[ObjectKey] | None,
    applied: Iterable[ObjectKey],
    *,
    discovery_complete: bool,
    retain: Iterable[ObjectKey] = (),
    only_helmreleases: bool = False,
) -> frozenset[ObjectKey]:
    """The inventory to store after a sync.

    ``applied``: the keys of every object the sync tried to apply (failed applies included).
    ``retain``: garbage-collection candidates the caller could not delete (to retry next time).
    After an incomplete discovery the previous keys are kept as well, since nothing was
    collected. Previous keys of kinds outside the current mode (see :func:`in_mode`) are always
    kept: this sync did not look at them. Keys declared but not applied
    (``Discovery.protected``) leave the inventory: the source lets go of them and will never
    delete them.
    """
    current = frozenset(applied) | frozenset(retain)
    if previous is None:
        return current
    if not discovery_complete:
        return current | previous
    return current | {key for key in previous if not in_mode(key, only_helmreleases)}


def plan_gc(
    previous: AbstractSet[ObjectKey] | None,
    declared: Iterable[ObjectKey],
    discovery_complete: bool,
    *,
    default_namespace: str,
    only_helmreleases: bool = False,
) -> list[ObjectKey]:
    """Keys of the previous inventory that Git no longer declares, in delete order.

    ``declared`` must be ``Discovery.declared_keys`` (applied *and* protected keys). Empty when
    the discovery was incomplete or the previous inventory is unknown. Keys of kinds the current
    mode does not sync (:func:`in_mode`) are never candidates. The caller deletes a candidate
    only if :func:`may_delete` holds for its live object.
    """
    if previous is None or not discovery_complete:
        return []
    keep = {key.effective(default_namespace) for key in declared}
    return delete_order(
        key
        for key in previous
        if in_mode(key, only_helmreleases) and key.effective(default_namespace) not in keep
    )


@dataclass(frozen=True)
class SyncDiff:
    """What a sync would do, for ``gitops-helm diff``.

    - ``create``: not in the cluster; ``update``: live checksum differs (or is absent);
      ``unchanged``: same checksum (the Git text is the one last applied; live drift is not
      detected); ``skipped``: live object annotated ``fluxcd.io/ignore: "true"``. These four are
      in apply order and partition ``Discovery.objects``.
    - ``delete``: live objects garbage collection would delete, in delete order.
    - ``garbage_collection``: false when collection is off for this sync (incomplete discovery
      or unknown inventory, or an inventory of another source), so ``delete`` is empty for that
      reason.
    """

    create: tuple[Manifest, ...]
    update: tuple[Manifest, ...]
    unchanged: tuple[Manifest, ...]
    skipped: tuple[Manifest, ...]
    delete: tuple[ObjectKey, ...]
    garbage_collection: bool


def diff_plan(
    discovery: Discovery,
    live_by_key: Mapping[ObjectKey, Mapping[str, Any]],
    *,
    source: str,
    previous_inventory: AbstractSet[ObjectKey] | None,
    default_namespace: str,
    only_helmreleases: bool = False,
) -> SyncDiff:
    """Classify desired and live objects. ``live_by_key``: the live objects (dicts) found for
    the desired keys and the previous inventory's keys; absent keys are not in the cluster."""
    live = {key.effective(default_namespace): obj for key, obj in live_by_key.items()}
    buckets: dict[str, list[Manifest]] = {"create": [], "update": [], "unchanged": [], "skipped": []}
    for manifest in apply_order(discovery.objects):
        obj = live.get(manifest.key.effective(default_namespace))
        if obj is None:
            bucket = "create"
        else:
            metadata = obj.get("metadata")
            if ignored_in_cluster(metadata):
                bucket = "skipped"
            elif live_checksum(metadata) == checksum(manifest.body):
                bucket = "unchanged"
            else:
                bucket = "update"
        buckets[bucket].append(manifest)
    candidates = plan_gc(
        previous_inventory,
        discovery.declared_keys,
        discovery.complete,
        default_namespace=default_namespace,
        only_helmreleases=only_helmreleases,
    )
    delete = []
    for key in candidates:
        obj = live.get(key.effective(default_namespace))
        if obj is not None and may_delete(obj.get("metadata"), source):
            delete.append(key)
    return SyncDiff(
        create=tuple(buckets["create"]),
        update=tuple(buckets["update"]),
        unchanged=tuple(buckets["unchanged"]),
        skipped=tuple(buckets["skipped"]),
        delete=tuple(delete),
        garbage_collection=previous_inventory is not None and discovery.complete,
    )
