"""Apply a Git checkout to the cluster: server-side apply in order, garbage collection, sync state.

Place in the flow: after ``source`` has a checkout of the branch head and ``sync.discover`` has
found its objects, :meth:`Syncer.sync` applies them (CRDs, Namespaces, config objects, the rest,
HelmReleases last) with server-side apply under one field manager, each labelled with its source and
annotated with its checksum and the commit its text was applied from. One broken object does not
stop the others. HelmReleases are validated with the API parser first, so a malformed one is
reported with its file and line and never reaches the cluster. Garbage collection (opt-in) deletes
only objects this source applied (inventory + source label) that left Git, and is skipped entirely
when discovery was incomplete, so a broken file never deletes what it declared. The outcome is kept
in a ConfigMap ``gitops-helm-sync-<name>`` (last commit, time, errors, inventory and the identity of
the source that owns it) that ``gitops-helm status`` reads. A sync that finds the inventory of
another source (URL, branch or paths; see ``plan.decide_ownership``) applies, deletes nothing,
leaves that inventory to its owner and reports an error naming both.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gitops_helm import log as logging
from gitops_helm.adapters.kube import Kube, KubeError, KubeErrorKind
from gitops_helm.api import API_VERSION, KIND, SpecError, parse_helmrelease
from gitops_helm.config import SyncSettings
from gitops_helm.sync.discover import discover
from gitops_helm.sync.model import Discovery, Manifest, ObjectKey
from gitops_helm.sync.plan import (
    Ownership,
    OwnershipDecision,
    SourceIdentity,
    apply_order,
    commit_to_record,
    decide_ownership,
    diff_plan,
    dump_inventory,
    ignored_in_cluster,
    live_checksum,
    load_inventory,
    may_delete,
    next_inventory,
    plan_gc,
    prepare_for_apply,
    size_problem,
    source_id,
)

log = logging.get(__name__)

FIELD_MANAGER = "gitops-helm"
SYNC_REQUESTED_ANNOTATION = "gitops-helm.io/sync-requested"
# the word of a Syncer.diff line for an object a sync would leave as it is (every other line is a
# difference: create, update, delete)
UNCHANGED = "unchanged"

# on every sync-state ConfigMap, so the CLI finds them in whatever namespace the agent writes them
SYNC_STATE_LABEL = "gitops-helm.io/sync-state"
_STATE_LABELS = {SYNC_STATE_LABEL: "true"}


@dataclass
class SyncResult:
    revision: str
    applied: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    would_delete: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    gc_skipped: str = ""

    @property
    def ok(self) -> bool:
        return not self.errors


def state_configmap_name(sync_name: str) -> str:
    return f"gitops-helm-sync-{source_id(sync_name)}"[:253]


class _Fenced(Exception):
    """This replica lost the Lease during a sync: nothing more may be written."""


@dataclass(frozen=True)
class DiffEntry:
    """One object of a sync preview: ``create``, ``update``, ``unchanged`` or ``delete``."""

    change: str
    key: ObjectKey
    origin: str | None  # the file and line declaring it; None for a deletion


class Syncer:
    def __init__(
        self,
        kube: Kube,
        settings: SyncSettings,
        identity: SourceIdentity,
        *,
        may_act: Callable[[], bool] = lambda: True,
    ) -> None:
        """``identity``: what this sync reads (URL without credentials, branch, paths, mode);
        recorded with the inventory, which only a sync of the same source collects from.
        ``may_act``: whether this replica may still write (leader election's fence); asked before
        every apply, every deletion and the state write, so a leader that lost the Lease mid-sync
        (frozen, then resumed) stops where it is instead of finishing an old plan."""
        self.kube = kube
        self.settings = settings
        self.identity = identity
        self.may_act = may_act
        self.source = source_id(settings.name)
        self._scope: dict[tuple[str, str], bool] = {}
        # object -> (checksum, resourceVersion) as this process's last apply of it left it: the
        # same text applied to an object nobody has written since changes nothing, so the next
        # sync skips that write request (any other writer changes the resourceVersion)
        self._applied: dict[str, tuple[str, str]] = {}

    # -- helpers -------------------------------------------------------------------------------

    def _namespaced(self, api_version: str, kind: str) -> bool:
        key = (api_version, kind)
        if key not in self._scope:
            self._scope[key] = self.kube.is_namespaced(api_version, kind)
        return self._scope[key]

    def _body(self, m: Manifest, commit: str | None = None) -> dict[str, Any]:
        body = prepare_for_apply(m, self.source, commit)
        meta = body["metadata"]
        if self._namespaced(m.api_version, m.key.kind):
            meta.setdefault("namespace", self.settings.default_namespace)
        else:
            meta.pop("namespace", None)
        return body

    def _validate(self, m: Manifest) -> str | None:
        too_large = size_problem(m.body)
        if too_large:
            return f"{m.origin}: {m.key}: {too_large}"
        if m.api_version == API_VERSION and m.key.kind == KIND:
            try:
                parse_helmrelease(m.body, default_namespace=self.settings.default_namespace)
            except SpecError as exc:
                return f"{m.origin}: {exc}"
        return None

    def _state(self) -> dict[str, str]:
        return (
            self.kube.get_configmap_data(
                self.settings.state_namespace, state_configmap_name(self.settings.name)
            )
            or {}
        )

    def _ownership(self, state: dict[str, str], *, preview: bool = False) -> OwnershipDecision:
        """Whose inventory the stored one is (see ``plan.decide_ownership``); logs the outcome
        (as what a sync would do, for a ``preview``)."""
        decision = decide_ownership(
            bool(state.get("inventory")),
            state.get("source"),
            self.identity,
            sync_name=self.settings.name,
            take_over=self.settings.take_over_inventory,
        )
        if decision.ownership is Ownership.FOREIGN:
            log.error(
                "inventory of another source: garbage collection skipped",
                sync=self.settings.name,
                owner=decision.recorded_description(),
                source=self.identity.describe(),
            )
        elif decision.ownership is Ownership.ADOPTED:
            what = "would adopt" if preview else "adopted"
            log.info(f"{what} an inventory without a recorded source", source=self.identity.describe())
        elif decision.ownership is Ownership.TAKEN_OVER:
            log.warning(
                "would take the inventory over" if preview else "took the inventory over",
                previous=decision.recorded_description(),
                source=self.identity.describe(),
            )
        return decision

    def _api_version_for(self, key: ObjectKey, discovery: Discovery) -> str | None:
        for m in discovery.objects:
            if m.key.group == key.group and m.key.kind == key.kind:
                return m.api_version
        return self.kube.preferred_api_version(key.group, key.kind)

    # -- one sync ---------------------------------------------------------------------------

    def sync(self, root: Path, paths: tuple[str, ...], revision: str) -> SyncResult:
        result = SyncResult(revision=revision)
        try:
            return self._sync(root, paths, result)
        except _Fenced:
            result.errors.append("stopped: this replica no longer leads (nothing more written)")
            log.error("sync stopped: leadership lost", revision=revision)
            return result

    def _fence(self) -> None:
        if not self.may_act():
            raise _Fenced

    def _sync(self, root: Path, paths: tuple[str, ...], result: SyncResult) -> SyncResult:
        disc = discover(root, list(paths), only_helmreleases=self.settings.only_helmreleases)
        result.errors += [str(e) for e in disc.errors]
        state = self._state()
        previous = load_inventory(state.get("inventory"))
        default_ns = self.settings.default_namespace
        only_hr = self.settings.only_helmreleases
        ownership = self._ownership(state)
        if not ownership.owns:
            result.errors.append(ownership.error)

        applied_keys: list[ObjectKey] = []
        applied_now: dict[str, tuple[str, str]] = {}
        for m in apply_order(disc.objects):
            problem = self._validate(m)
            effective = m.key.effective(default_ns)
            applied_keys.append(effective)
            if problem:
                result.errors.append(problem)
                continue
            try:
                body = self._body(m)
                meta = body["metadata"]
                live = self.kube.get(m.api_version, m.key.kind, meta.get("namespace"), meta["name"])
                if live is not None and ignored_in_cluster(live.get("metadata")):
                    continue
                live_meta = (live or {}).get("metadata") or {}
                # the commit this text was applied from: kept as recorded while the text is the
                # same, so a commit that does not change the object does not rewrite it
                body = self._body(m, commit_to_record(m, live_meta, result.revision))
                desired = body["metadata"]["annotations"]
                checksum = str(desired.get("gitops-helm.io/checksum", ""))
                same_text = (
                    live is not None
                    and live_checksum(live_meta) == checksum
                    and (live_meta.get("labels") or {}).get("gitops-helm.io/source") == self.source
                )
                remembered = (checksum, str(live_meta.get("resourceVersion", "")))
                if same_text and self._applied.get(str(effective)) == remembered:
                    applied_now[str(effective)] = remembered
                    result.unchanged.append(str(m.key))
                    continue
                # Applied even when the Git text is the one last applied, to undo hand edits
                # (drift); a server-side apply that changes nothing does not write.
                self._fence()
                out = self.kube.apply(body, FIELD_MANAGER)
                version = str(out.get("metadata", {}).get("resourceVersion", ""))
                if version:
                    applied_now[str(effective)] = (checksum, version)
                if same_text and out.get("metadata", {}).get("resourceVersion") == live_meta.get(
                    "resourceVersion"
                ):
                    result.unchanged.append(str(m.key))
                    continue
                result.applied.append(str(m.key))
                if same_text:
                    log.info("corrected drift", object=str(m.key), origin=str(m.origin))
                else:
                    log.info("applied", object=str(m.key), origin=str(m.origin))
            except KubeError as exc:
                result.errors.append(f"{m.origin}: {m.key}: {exc.message}")
                log.warning("apply failed", object=str(m.key), origin=str(m.origin), error=exc.message)

        self._applied = applied_now  # only what this sync declares: the memory stays bounded
        retain: list[ObjectKey] = []
        if not self.settings.garbage_collection:
            result.gc_skipped = "garbage collection is off"
        elif not ownership.owns:
            owner = ownership.recorded_description()
            result.gc_skipped = f"the inventory belongs to another source ({owner})"
        elif not disc.complete:
            result.gc_skipped = "discovery had errors: nothing is deleted until they are fixed"
        elif previous is None and state.get("inventory"):
            result.gc_skipped = "stored inventory unreadable"
        else:
            candidates = plan_gc(
                previous,
                disc.declared_keys,
                disc.complete,
                default_namespace=default_ns,
                only_helmreleases=only_hr,
            )
            for key in candidates:
                if not self._collect(key, disc, result):
                    retain.append(key)
        if result.gc_skipped and self.settings.garbage_collection:
            log.warning("garbage collection skipped", reason=result.gc_skipped)

        if ownership.owns:
            inventory = next_inventory(
                previous,
                applied_keys,
                discovery_complete=disc.complete,
                retain=retain,
                only_helmreleases=only_hr,
            )
            self._write_state(result, dump_inventory(inventory), self.identity.dump())
        else:  # the owner's inventory and identity, exactly as found
            self._write_state(result, state.get("inventory", ""), state.get("source", ""))
        return result

    def _collect(self, key: ObjectKey, disc: Discovery, result: SyncResult) -> bool:
        """Delete one garbage candidate if the live object is ours; False to retry later."""
        api_version = self._api_version_for(key, disc)
        if api_version is None:
            return True  # the kind is gone from the cluster: nothing left to delete
        try:
            namespaced = self._namespaced(api_version, key.kind)
            ns = key.namespace if namespaced else None
            live = self.kube.get(api_version, key.kind, ns, key.name)
            if live is None:
                return True
            if not may_delete(live.get("metadata"), self.source):
                log.info("not collected: not owned by this source or ignored", object=str(key))
                return True
            if self.settings.gc_dry_run:
                result.would_delete.append(str(key))
                log.info("garbage collection dry run: would delete", object=str(key))
                return False
            self._fence()
            self.kube.delete(api_version, key.kind, ns, key.name)
            result.deleted.append(str(key))
            log.info("garbage collected", object=str(key))
            return True
        except KubeError as exc:
            if exc.kind is KubeErrorKind.NO_KIND:
                return True
            result.errors.append(f"delete {key}: {exc.message}")
            return False

    def _write_state(self, result: SyncResult, inventory: str, source: str) -> None:
        self._fence()
        data = {
            "revision": result.revision,
            "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "result": "ok" if result.ok else "error",
            "errors": json.dumps(result.errors[:200], indent=1),
            "applied": str(len(result.applied)),
            "unchanged": str(len(result.unchanged)),
            "deleted": json.dumps(result.deleted),
            "wouldDelete": json.dumps(result.would_delete),
            "gcSkipped": result.gc_skipped,
            "inventory": inventory,
            "source": source,
        }
        try:
            self.kube.apply_configmap(
                self.settings.state_namespace,
                state_configmap_name(self.settings.name),
                data,
                FIELD_MANAGER,
                _STATE_LABELS,
            )
        except KubeError as exc:
            log.warning("cannot write sync state", error=exc.message)

    def note_poll(self, next_poll: float, error: str | None) -> None:
        """Record the source's health (next poll, last fetch error) beside the sync state."""
        data = {
            "nextPoll": datetime.fromtimestamp(next_poll, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "fetchError": error or "",
        }
        try:
            self.kube.apply_configmap(
                self.settings.state_namespace,
                state_configmap_name(self.settings.name),
                data,
                FIELD_MANAGER + "-source",
                _STATE_LABELS,
            )
        except KubeError as exc:
            log.debug("cannot write source state", error=exc.message)

    # -- a sync asked of a standby --------------------------------------------------------------

    def request_sync(self, now: float) -> None:
        """Ask the leader for a fetch and sync (a standby received the webhook): an annotation on
        the sync-state ConfigMap, which the leader's sync loop looks at (raises KubeError)."""
        stamp = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        self.kube.annotate(
            "v1",
            "ConfigMap",
            self.settings.state_namespace,
            state_configmap_name(self.settings.name),
            {SYNC_REQUESTED_ANNOTATION: stamp},
            FIELD_MANAGER + "-webhook",
        )

    def sync_requested(self) -> str | None:
        """The time of the last sync a standby asked for, if any (raises KubeError)."""
        live = self.kube.get(
            "v1", "ConfigMap", self.settings.state_namespace, state_configmap_name(self.settings.name)
        )
        annotations = ((live or {}).get("metadata") or {}).get("annotations") or {}
        value = annotations.get(SYNC_REQUESTED_ANNOTATION)
        return str(value) if value else None

    # -- preview -----------------------------------------------------------------------------

    def diff(self, root: Path, paths: tuple[str, ...]) -> tuple[list[str], list[str]]:
        """Lines describing what a sync would do, and errors. Changes nothing in the cluster."""
        disc = discover(root, list(paths), only_helmreleases=self.settings.only_helmreleases)
        entries, errors = self.diff_entries(disc)
        lines: list[str] = []
        for entry in entries:
            if entry.change == "unchanged":
                lines.append(f"{UNCHANGED} {entry.key}")
            elif entry.change == "delete":
                lines.append(f"delete    {entry.key}")
            else:
                lines.append(f"{entry.change:9} {entry.key}  ({entry.origin})")
        return lines, errors

    def diff_entries(self, disc: Discovery) -> tuple[list[DiffEntry], list[str]]:
        """What a sync of ``disc`` (a checkout's discovery) would do to each object (create,
        update, unchanged, delete), and errors; ``diff`` prints them, ``preview`` reports them
        (and reads the same discovery for its releases). Changes nothing in the cluster."""
        errors = [str(e) for e in disc.errors]
        state = self._state()
        ownership = self._ownership(state, preview=True)
        previous = load_inventory(state.get("inventory")) if ownership.owns else None
        if not ownership.owns:
            errors.append(ownership.error)
        live: dict[ObjectKey, dict[str, Any]] = {}
        for m in disc.objects:
            try:
                body = self._body(m)
                obj = self.kube.get(m.api_version, m.key.kind, body["metadata"].get("namespace"), m.key.name)
            except KubeError as exc:
                errors.append(f"{m.origin}: {m.key}: {exc.message}")
                continue
            if obj is not None:
                live[m.key] = obj
        for key in previous or ():
            api_version = self._api_version_for(key, disc)
            if api_version and key not in live:
                try:
                    ns = key.namespace if self._namespaced(api_version, key.kind) else None
                    obj = self.kube.get(api_version, key.kind, ns, key.name)
                except KubeError:
                    continue
                if obj is not None and may_delete(obj.get("metadata"), self.source):
                    live[key] = obj
        plan = diff_plan(
            disc,
            live,
            source=self.source,
            previous_inventory=previous,
            default_namespace=self.settings.default_namespace,
            only_helmreleases=self.settings.only_helmreleases,
        )
        entries: list[DiffEntry] = []
        for verb, items in (("create", plan.create), ("update", plan.update)):
            for m in items:
                problem = self._validate(m)
                if problem:
                    errors.append(problem)
                    continue
                try:
                    self.kube.apply(self._body(m), FIELD_MANAGER, dry_run=True)
                except KubeError as exc:
                    errors.append(f"{m.origin}: {m.key}: server-side dry run: {exc.message}")
                    continue
                entries.append(DiffEntry(verb, m.key, str(m.origin)))
        entries += [DiffEntry("unchanged", m.key, str(m.origin)) for m in plan.unchanged]
        if self.settings.garbage_collection and plan.garbage_collection:
            entries += [DiffEntry("delete", key, None) for key in plan.delete]
        return entries, errors
