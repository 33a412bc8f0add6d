"""What the cluster holds for one HelmRelease: its Helm storage, its dependencies, its drift.

Place in the flow: each step of the reconcile loop starts with :func:`observe`, which lists the
release's storage Secrets ONCE (their labels say revision, status, owner and digest: no helm
call) and decodes the latest record at most once, only when a question needs it (who owns a
release without our label, how helm 4 applied it, what its manifest holds for drift).

When the latest revision last changed (:func:`last_changed`) decides whether a ``pending-*`` or
``uninstalling`` revision may still be another helm's running operation. What helm 3 and helm 4
write: a revision they *create* (every pending-install/-upgrade/-rollback) gets ``createdAt`` = now,
and ``modifiedAt`` COPIED from the previous revision's labels (so it can be days old); a revision
they *update* (deployed, failed, superseded, uninstalling) gets ``modifiedAt`` = now and loses
``createdAt``. Both are epoch seconds; the later one is the last change. A revision with neither
label falls back to its Secret's ``creationTimestamp``, and one with no usable time at all to when
this process first saw it in that state (:class:`FirstSeen`), so it is never taken over at once.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gitops_helm import yamlio
from gitops_helm.adapters.kube import Kube, KubeError, KubeErrorKind, StoredRelease
from gitops_helm.api import (
    ConditionStatus,
    ConditionType,
    DriftDetectionSpec,
    ObjectRef,
    find_condition,
    parse_status,
)
from gitops_helm.release import plan as pl
from gitops_helm.release.drift import Drift, detect_drift
from gitops_helm.release.identity import (
    ANTECEDENT,
    DESCRIPTION_PREFIX,
    DIGEST_LABEL,
    OWNER_LABEL,
    ReleaseRef,
    owner_from_antecedent,
)

#: helm's description of the revision a ``helm rollback`` writes (helm 3 and 4)
ROLLBACK_DESCRIPTION = re.compile(r"\bRollback to (\d+)\b")

#: How many objects of a release's manifest are looked at for the Helm Operator's antecedent mark.
ANTECEDENT_PROBES = 5


@dataclass
class Observation:
    """One read of a release's storage: the planner's view and the raw revisions (oldest first)."""

    kube: Kube
    revisions: list[StoredRelease]
    release: pl.ObservedRelease | None = None
    _record: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def latest(self) -> StoredRelease | None:
        return self.revisions[-1] if self.revisions else None

    def latest_record(self) -> dict[str, Any]:
        """The decoded record of the latest revision (read once; raises KubeError)."""
        if self._record is None:
            latest = self.latest
            self._record = self.kube.read_release(latest) if latest is not None else {}
        return self._record

    def test_outcome_since(self, started: float) -> bool | None:
        """:func:`outcome_of_tests_since` of the latest revision's record."""
        return outcome_of_tests_since(self.latest_record(), started)

    def made_by_agent(self) -> bool:
        """The latest revision was written by the agent's own install or upgrade: its description
        is the agent's (helm keeps a description per revision; labels are copied to the next)."""
        try:
            info = self.latest_record().get("info") or {}
        except KubeError:
            return False
        return isinstance(info, dict) and str(info.get("description", "")).startswith(DESCRIPTION_PREFIX)

    def rolled_back_to(self) -> int | None:
        """The revision a ``helm rollback`` that wrote the latest revision restores: helm describes
        the revision "Rollback to N"; None for any other revision."""
        try:
            info = self.latest_record().get("info") or {}
        except KubeError:
            return None
        description = str(info.get("description", "")) if isinstance(info, dict) else ""
        found = ROLLBACK_DESCRIPTION.search(description)
        return int(found.group(1)) if found else None

    def apply_method(self) -> str:
        """How helm applied the latest revision (helm 4 records ``ssa`` or ``csa``; '' if unknown)."""
        try:
            return str(self.latest_record().get("apply_method", ""))
        except KubeError:
            return ""


#: helm's storage labels with a time (epoch seconds) of a revision's creation or last update.
TIME_LABELS = ("createdAt", "modifiedAt")


def outcome_of_tests_since(record: Mapping[str, Any], started: float) -> bool | None:
    """Whether a release's tests passed, as a ``helm test`` that started at or after ``started``
    (epoch seconds) wrote them into the tested revision's ``record`` when it ended; None while that
    is not known (no test hook ran since, or one still runs: helm writes the record only at the
    end)."""
    hooks = [h for h in record.get("hooks") or () if isinstance(h, Mapping)]
    runs = [h.get("last_run") or {} for h in hooks if "test" in (h.get("events") or ())]
    if not runs or any(not isinstance(r, Mapping) for r in runs):
        return None
    since = [r for r in runs if (_epoch_of(r.get("started_at")) or 0.0) >= started]
    if any(r.get("phase") == "Failed" for r in since):
        return False  # helm stops at the first failed test: later ones never ran
    if len(since) == len(runs) and all(r.get("phase") == "Succeeded" for r in since):
        return True
    return None


def _epoch_of(stamp: object) -> float | None:
    """Epoch seconds of helm's RFC 3339 time (Python reads any number of fraction digits, keeping
    microseconds); None for anything else, a time without a zone included."""
    if not isinstance(stamp, str):
        return None
    try:
        parsed = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.timestamp() if parsed.tzinfo is not None else None


def last_changed(stored: StoredRelease) -> float | None:
    """When a stored revision last changed (epoch seconds), or None when nothing says.

    The later of helm's ``createdAt`` and ``modifiedAt`` labels (a new pending revision carries
    its predecessor's, older ``modifiedAt``); without either, the Secret's creationTimestamp."""
    times = [float(v) for v in (stored.labels.get(k, "") for k in TIME_LABELS) if v.isdigit()]
    return max(times) if times else stored.created


class FirstSeen:
    """When this process first saw a release's latest revision in its current state (epoch seconds).

    The stand-in for a revision's time when its storage records none: a pending revision is then
    given its whole grace from the moment the agent first saw it (after a restart, again), never
    taken over at once. One instance per reconciler; safe for its worker threads."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._seen: dict[tuple[str, str], tuple[int, str, float]] = {}
        self._lock = threading.Lock()

    def since(self, stored: StoredRelease) -> float:
        key, state = (stored.namespace, stored.name), (stored.revision, stored.status)
        with self._lock:
            seen = self._seen.get(key)
            if seen is None or seen[:2] != state:
                seen = (*state, self._clock())
                self._seen[key] = seen
            return seen[2]

    def forget(self, stored: StoredRelease) -> None:
        self.forget_release(stored.namespace, stored.name)

    def forget_release(self, namespace: str, name: str) -> None:
        """Drop what is kept for a release (its HelmRelease is gone)."""
        with self._lock:
            self._seen.pop((namespace, name), None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._seen)


def observe(kube: Kube, ref: ReleaseRef, first_seen: FirstSeen | None = None) -> Observation:
    """Read the release's storage once and describe its latest revision for the planner.

    ``first_seen`` stands in for the time of a pending or uninstalling revision whose storage
    records none (without it, such a revision has no ``last_modified``)."""
    observation = Observation(kube, kube.release_revisions(ref.target_namespace, ref.release_name))
    latest = observation.latest
    if latest is None:
        return observation
    try:
        status = pl.ReleaseStatus(latest.status)
    except ValueError:
        status = pl.ReleaseStatus.UNKNOWN
    previous = [r.revision for r in observation.revisions[:-1] if r.status in ("deployed", "superseded")]
    owner = latest.labels.get(OWNER_LABEL) or _owner_from_resources(observation, ref)
    modified = last_changed(latest)
    if first_seen is not None:
        if status.pending or status is pl.ReleaseStatus.UNINSTALLING:
            if modified is None:
                modified = first_seen.since(latest)
        else:
            first_seen.forget(latest)
    observation.release = pl.ObservedRelease(
        revision=latest.revision,
        status=status,
        previous_deployed_revision=previous[-1] if previous else None,
        owner=owner,
        digest=latest.labels.get(DIGEST_LABEL),
        last_modified=modified,
    )
    return observation


def _owner_from_resources(observation: Observation, ref: ReleaseRef) -> str | None:
    """A release without our label: is it the Helm Operator's, for this or another HelmRelease?"""
    try:
        record = observation.latest_record()
    except KubeError:
        return None
    mine = ref.owner
    documents = yamlio.load_all(record.get("manifest", "") or "", unique_keys=False)
    for doc in (document.data for document in documents[:ANTECEDENT_PROBES]):
        if not isinstance(doc, dict) or not doc.get("kind") or not doc.get("apiVersion"):
            continue
        meta = doc.get("metadata") or {}
        try:
            live = observation.kube.get(
                str(doc["apiVersion"]),
                str(doc["kind"]),
                meta.get("namespace") or ref.target_namespace,
                str(meta.get("name")),
            )
        except KubeError:
            continue
        antecedent = ((live or {}).get("metadata", {}).get("annotations") or {}).get(ANTECEDENT)
        if antecedent:
            owner = owner_from_antecedent(antecedent)
            return mine if owner == mine else owner
    return None


def drift_of(observation: Observation, target_namespace: str, spec: DriftDetectionSpec) -> list[Drift]:
    """How the live objects differ from the latest revision's manifest (raises KubeError, YAMLError)."""
    manifest = str(observation.latest_record().get("manifest", ""))
    return detect_drift(observation.kube, manifest, target_namespace, spec.ignore)


def unready_dependencies(
    kube: Kube, depends_on: tuple[ObjectRef, ...], service_account: str | None = None
) -> list[str]:
    """The ``dependsOn`` HelmReleases that are missing or not Ready for their current generation.

    Read through ``kube``: the HelmRelease's identity, so that a tenant learns nothing of a
    HelmRelease its ServiceAccount (``service_account``, "namespace/name", for the message) may
    not read. A refused read names the dependency only: the API answers 403 whether it exists
    or not, and the answer's text is not repeated."""
    waiting = []
    for dep in depends_on:
        try:
            obj = kube.get_helmrelease(dep.namespace, dep.name)
        except KubeError as exc:
            if exc.kind is not KubeErrorKind.FORBIDDEN:
                raise
            who = f"ServiceAccount {service_account}" if service_account else "the agent"
            waiting.append(f"{dep.namespace}/{dep.name} (forbidden: {who} may not get it)")
            continue
        if obj is None:
            waiting.append(f"{dep.namespace}/{dep.name} (not found)")
            continue
        status = parse_status(obj.get("status"))
        ready = find_condition(status.conditions, ConditionType.READY)
        generation = obj.get("metadata", {}).get("generation")
        if not ready or ready.status is not ConditionStatus.TRUE or status.observed_generation != generation:
            waiting.append(f"{dep.namespace}/{dep.name}")
    return waiting
