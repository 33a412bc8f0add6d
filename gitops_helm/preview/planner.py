"""Compute a plan: what a commit's HelmReleases and manifests would do to the live cluster.

Place in the flow: ``cli`` → :func:`plan` → the report (``report``). Everything is done by the
agent's own code, so that what is planned is what the agent will do:

* the plain manifests: ``sync.apply.Syncer.diff_entries`` (what ``gitops-helm diff`` shows);
* each HelmRelease: the chart from the agent's chart sources and cache, values composed by the
  agent's pipeline over the ConfigMaps and Secrets the commit declares, else the cluster's
  (``render.ReleaseRenderer`` with :class:`CommitObjects` as the object reader), ``helm
  template`` with the cluster's version (hooks left out: they are not part of a release);
* the desired digest with ``release.desired.desired_digest`` under the installation's digest key
  (read, never created: a plan changes nothing), the one the reconciler records as
  ``status.lastAppliedDigest``;
* each object: the live object and a server-side dry-run apply of the rendered one (admission,
  defaults and drift show), compared as drift detection compares (``release.drift``).

Every input read is listed with a fingerprint (ConfigMaps and URLs: SHA-256 of the content;
Secrets: HMAC under the digest key), so a later ``lastAppliedDigest`` that differs from the
planned one is explained by the input that changed (``--since``). Secret-derived strings and
Secrets' data are redacted in every output.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from gitops_helm import values as values_mod
from gitops_helm import yamlio
from gitops_helm.adapters.helm import HelmError
from gitops_helm.adapters.http import redact_url
from gitops_helm.adapters.kube import Kube, KubeError, KubeErrorKind
from gitops_helm.api import (
    GROUP,
    KIND,
    GitChartSource,
    HelmRelease,
    OciChartSource,
    SpecError,
    parse_helmrelease,
    parse_status,
)
from gitops_helm.charts.artifact import FetchedChart
from gitops_helm.charts.errors import ChartError
from gitops_helm.charts.resolver import ChartResolver
from gitops_helm.config import Settings
from gitops_helm.errors import GitopsHelmError
from gitops_helm.preview import report as rp
from gitops_helm.preview.objects import Redactor, object_identity, object_name, secret_strings, unified_diff
from gitops_helm.release.desired import desired_digest
from gitops_helm.release.digest_key import KEY_SECRET, read_existing
from gitops_helm.release.drift import differences, manifest_objects
from gitops_helm.release.identity import DIGEST_LABEL, ReleaseRef
from gitops_helm.release.manifest_objects import DeclaredObject, ManifestObjects
from gitops_helm.release.values_reader import values_spec
from gitops_helm.render import ReleaseRenderer, RenderOptions
from gitops_helm.sync.apply import DiffEntry, Syncer
from gitops_helm.sync.discover import discover
from gitops_helm.sync.model import Manifest
from gitops_helm.sync.plan import SourceIdentity

#: the field manager of the dry runs (never persisted: a dry run writes nothing)
FIELD_MANAGER = "gitops-helm-plan"
HOOK_ANNOTATION = "helm.sh/hook"


@dataclass(frozen=True)
class PlanOptions:
    root: Path  # the checkout (or directory) planned
    paths: tuple[str, ...]  # --git-path
    source: str  # what the report calls it: the directory, or URL at ref
    revision: str | None
    include_unchanged: bool = False  # --all


def _fingerprint(data: Mapping[str, Any] | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(dict(data), sort_keys=True).encode()
    return "sha256:" + hashlib.sha256(raw).hexdigest()[:16]


class RecordingReader:
    """``values.ValuesSourceReader`` that lists what it read (the plan's inputs) and collects
    the strings of Secret values for redaction; reads through the agent's own reader."""

    def __init__(self, inner: values_mod.ValuesSourceReader, key: bytes | None, redactor: Redactor) -> None:
        self.inner = inner
        self.key = key
        self.redactor = redactor
        self.inputs: list[rp.Input] = []

    def configmap(self, namespace: str, name: str) -> Mapping[str, str] | None:
        data = self.inner.configmap(namespace, name)
        self.inputs.append(
            rp.Input("ConfigMap", f"{namespace}/{name}", _fingerprint(data) if data is not None else "absent")
        )
        return data

    def secret(self, namespace: str, name: str) -> Mapping[str, bytes] | None:
        data = self.inner.secret(namespace, name)
        if data is None:
            self.inputs.append(rp.Input("Secret", f"{namespace}/{name}", "absent"))
            return None
        self.redactor.add(secret_strings(data))
        canonical = json.dumps({k: v.hex() for k, v in data.items()}, sort_keys=True).encode()
        # keyed: a fingerprint of a Secret must not allow guessing it offline
        fingerprint = (
            "h1-" + hmac.new(self.key, canonical, hashlib.sha256).hexdigest()[:16]
            if self.key
            else "read (no digest key to fingerprint it with)"
        )
        self.inputs.append(rp.Input("Secret", f"{namespace}/{name}", fingerprint))
        return data

    def url(self, url: str) -> bytes:
        body = self.inner.url(url)
        self.inputs.append(rp.Input("URL", redact_url(url), _fingerprint(body)))
        return body

    def chart_file(self, path: str) -> bytes:
        body = self.inner.chart_file(path)
        self.inputs.append(rp.Input("chart file", path, _fingerprint(body)))
        return body


def _chart_input(hr: HelmRelease, chart: FetchedChart) -> rp.Input:
    source = hr.spec.chart
    if isinstance(source, GitChartSource):
        where = f"git {redact_url(source.git)} ref {source.ref or '(default)'} path {source.path}"
    elif isinstance(source, OciChartSource):
        where = f"{redact_url(source.repository)}/{source.name}"
    else:
        where = f"{redact_url(source.repository)} {source.name}"
    return rp.Input("chart", where, f"{chart.name} {chart.version} revision {chart.revision} {chart.digest}")


class CommitObjects:
    """ConfigMaps and Secrets as the sync of the commit leaves them: those the commit declares
    (the sync applies them before the agent reconciles), else the cluster's."""

    def __init__(self, declared: ManifestObjects, kube: Kube) -> None:
        self.declared = declared
        self.kube = kube

    def get_configmap_data(self, namespace: str, name: str) -> Mapping[str, str] | None:
        found = self.declared.get_configmap_data(namespace, name)
        return found if found is not None else self.kube.get_configmap_data(namespace, name)

    def get_secret_data(self, namespace: str, name: str) -> Mapping[str, bytes] | None:
        found = self.declared.get_secret_data(namespace, name)
        return found if found is not None else self.kube.get_secret_data(namespace, name)


@dataclass
class _Live:
    """What the cluster holds for one Helm release."""

    digest: str | None = None
    version: str | None = None
    chart: str = ""
    manifest: str = ""
    exists: bool = False
    revision: int | None = None  # the latest revision in Helm storage
    label_digest: str | None = None  # the digest label on it (None: not written by the agent)
    recorded_revision: int | None = None  # the revision the HelmRelease's status says it produced


class Planner:
    def __init__(
        self,
        settings: Settings,
        kube: Kube,
        renderer: ReleaseRenderer,
        resolver: ChartResolver,
        key: bytes | None,
    ) -> None:
        self.settings = settings
        self.kube = kube
        self.renderer = renderer
        self.resolver = resolver
        self.key = key

    # -- the live side ---------------------------------------------------------------------------

    def live(self, ref: ReleaseRef, live_hr: Mapping[str, Any] | None) -> _Live:
        out = _Live()
        if live_hr is not None:
            status = parse_status(live_hr.get("status"))
            out.digest, out.recorded_revision = status.last_applied_digest, status.last_release_revision
        revisions = self.kube.release_revisions(ref.target_namespace, ref.release_name)
        latest = revisions[-1] if revisions else None
        if latest is None or latest.status == "uninstalled":
            return out
        out.exists = True
        out.revision, out.label_digest = latest.revision, latest.labels.get(DIGEST_LABEL)
        out.digest = out.digest or out.label_digest
        record = self.kube.read_release(latest)
        meta = (record.get("chart") or {}).get("metadata") or {}
        out.version, out.chart = meta.get("version"), str(meta.get("name") or "")
        out.manifest = str(record.get("manifest") or "")
        return out

    def hide_live_secrets(self, live_hr: Mapping[str, Any] | None, redactor: Redactor) -> None:
        """Add to ``redactor`` the cluster's Secrets that the live HelmRelease's values read: the
        live objects (the ``-`` side of a diff, a release to uninstall) were rendered from them,
        and the commit may read other Secrets, or other contents of these, or none."""
        if live_hr is None:
            return
        try:
            hr = parse_helmrelease(live_hr)
        except SpecError:
            return  # the agent cannot compose it either; its objects' strings are unknown
        spec = values_spec(hr.namespace, hr.spec)
        allow = self.settings.allow_cross_namespace_refs
        for ref in values_mod.referenced_objects(spec, allow_cross_namespace=allow):
            if ref.kind == "Secret":
                data = self.kube.get_secret_data(ref.namespace, ref.name)
                redactor.add(secret_strings(data or {}))

    def _objects(self, manifest: str, namespace: str) -> dict[tuple[str, str, str, str], dict[str, Any]]:
        out: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        for obj in manifest_objects(manifest):
            meta = obj.setdefault("metadata", {})
            if HOOK_ANNOTATION in (meta.get("annotations") or {}):
                continue  # a hook is run by helm, not kept in the release (its manifest has none)
            try:
                namespaced = self.kube.is_namespaced(str(obj["apiVersion"]), str(obj["kind"]))
            except KubeError as exc:
                if exc.kind is not KubeErrorKind.NO_KIND:
                    raise
                namespaced = True  # not served yet (a CRD the chart brings): as helm places it
            if namespaced:
                meta.setdefault("namespace", namespace)
            out[object_identity(obj)] = obj
        return out

    def _live_object(self, obj: Mapping[str, Any]) -> dict[str, Any] | None:
        """The live object, None when absent or of a kind the cluster does not serve yet."""
        meta = obj["metadata"]
        try:
            return self.kube.get(
                str(obj["apiVersion"]), str(obj["kind"]), meta.get("namespace"), meta["name"]
            )
        except KubeError as exc:
            if exc.kind is KubeErrorKind.NO_KIND:
                return None
            raise

    def object_changes(
        self, live_manifest: str, planned_manifest: str, namespace: str, redactor: Redactor, notes: list[str]
    ) -> list[rp.ObjectChange]:
        """Each object the release would create, change or delete, with its diff."""
        old = self._objects(live_manifest, namespace)
        new = self._objects(planned_manifest, namespace)
        changes: list[rp.ObjectChange] = []
        for obj in new.values():
            name = object_name(obj)
            live = self._live_object(obj)
            try:
                expected = self.kube.apply(obj, FIELD_MANAGER, dry_run=True, force=True)
            except KubeError as exc:
                notes.append(f"{name}: server-side dry run refused ({exc.message}): shown as rendered")
                expected = obj
            if live is None:
                changes.append(rp.ObjectChange(name, rp.CREATE, unified_diff(name, None, expected, redactor)))
            elif differences(expected, live):
                changes.append(rp.ObjectChange(name, rp.CHANGE, unified_diff(name, live, expected, redactor)))
        for identity, obj in old.items():
            if identity in new:
                continue
            name = object_name(obj)
            live = self._live_object(obj)
            if live is not None:
                changes.append(rp.ObjectChange(name, rp.DELETE, unified_diff(name, live, None, redactor)))
        return changes

    # -- one HelmRelease of the commit -------------------------------------------------------------

    def release(self, hr: HelmRelease, manifest_change: str) -> rp.ReleasePlan:
        ref = ReleaseRef.of(hr)
        base = rp.ReleasePlan(
            hr.key, f"{ref.target_namespace}/{ref.release_name}", rp.ERROR, manifest_change=manifest_change
        )
        redactor = Redactor()
        inputs: list[rp.Input] = []
        notes: list[str] = []
        try:
            chart = self.renderer.chart(self.resolver, hr, None)
            inputs.append(_chart_input(hr, chart))
            reader = RecordingReader(self.renderer.values_reader(chart), self.key, redactor)
            try:
                composed = self.renderer.values(hr, chart, reader)
            finally:
                inputs += reader.inputs
            notes += [f"optional {skipped}: left out" for skipped in composed.skipped]
            rendered = self.renderer.template(hr, chart, notes.append, composed)
            live_hr = self.kube.get_helmrelease(hr.namespace, hr.name)
            self.hide_live_secrets(live_hr, redactor)
            live = self.live(ref, live_hr)
            planned = desired_digest(hr.policy, chart.digest, composed.digest, self.key) if self.key else None
            objects = self.object_changes(
                live.manifest if live.exists else "", rendered, ref.target_namespace, redactor, notes
            )
        except (ChartError, values_mod.ValuesError, HelmError, GitopsHelmError) as exc:
            return replace(
                base,
                error=redactor.text(str(exc)),
                inputs=tuple(inputs),
                notes=tuple(redactor.text(n) for n in notes),
            )
        if self.key is None:
            notes.append(
                f"no digest key yet (Secret {self.settings.sync.state_namespace}/{KEY_SECRET}): the agent "
                "creates it when it starts; the digest it will record cannot be known before"
            )
        if not live.exists:
            action = rp.INSTALL
        elif planned is not None and live.revision != live.recorded_revision:
            # the reconciler's rule: a revision it did not produce (helm upgrade or rollback by
            # hand, or no record at all) is upgraded to the desired state, whatever its digest
            action = rp.UPGRADE
            notes.append(
                f"revision {live.revision} was not made by the agent (its status records "
                f"{live.recorded_revision or 'none'}): the agent upgrades it to the desired state"
            )
        elif planned is not None:
            # in sync only when both the storage label and the status carry the planned digest
            same = planned == live.digest and planned == live.label_digest
            action = rp.NO_CHANGE if same else rp.UPGRADE
        else:
            action = rp.UPGRADE if objects or live.version != chart.version else rp.NO_CHANGE
        if action == rp.NO_CHANGE and objects:
            notes.append(
                "the live objects differ from the chart (drift): no upgrade unless driftDetection corrects it"
            )
        return rp.ReleasePlan(
            hr.key,
            base.release,
            action,
            chart=chart.name,
            version_from=live.version,
            version_to=chart.version,
            planned_digest=planned,
            live_digest=live.digest,
            objects=tuple(objects),
            inputs=tuple(inputs),
            notes=tuple(redactor.text(n) for n in notes),
            manifest_change=manifest_change,
        )

    # -- one HelmRelease the commit removes ------------------------------------------------------

    def removed(self, namespace: str, name: str) -> rp.ReleasePlan:
        key = f"{namespace}/{name}"
        try:
            live_hr = self.kube.get_helmrelease(namespace, name)
            if live_hr is None:
                # nothing left to delete: not a change (``ReleasePlan.changes``)
                return rp.ReleasePlan(key, key, rp.NO_CHANGE, notes=("removed from Git; already gone",))
            hr = parse_helmrelease(live_hr)
            ref = ReleaseRef.of(hr)
            redactor = Redactor()
            self.hide_live_secrets(live_hr, redactor)
            live = self.live(ref, live_hr)
            objects = self.object_changes(live.manifest, "", ref.target_namespace, redactor, [])
        except (SpecError, KubeError, yamlio.YAMLError) as exc:
            return rp.ReleasePlan(key, key, rp.ERROR, manifest_change="delete", error=str(exc))
        return rp.ReleasePlan(
            key,
            f"{ref.target_namespace}/{ref.release_name}",
            rp.UNINSTALL if live.exists else rp.NO_CHANGE,
            chart=live.chart,
            version_from=live.version,
            live_digest=live.digest,
            objects=tuple(objects),
            manifest_change="delete",
        )


def _kube_version(kube: Kube) -> str | None:
    try:
        return kube.server_version().lstrip("v").split("+")[0] or None
    except KubeError:
        return None


def _is_helmrelease(entry: DiffEntry) -> bool:
    return entry.key.group == GROUP and entry.key.kind == KIND


def plan(
    settings: Settings,
    kube: Kube,
    identity: SourceIdentity,
    options: PlanOptions,
    note: Callable[[str], None],
) -> rp.PlanReport:
    """The plan of ``options.root`` against the cluster of ``kube`` (see the module docstring)."""
    report = rp.PlanReport(options.source, options.revision)
    default_ns = settings.sync.default_namespace
    syncer = Syncer(kube, settings.sync, identity)
    found = discover(options.root, list(options.paths), only_helmreleases=settings.sync.only_helmreleases)
    entries, errors = syncer.diff_entries(found)
    report.errors += errors
    report.manifests = [
        rp.ManifestChange(e.change, str(e.key), e.origin) for e in entries if not _is_helmrelease(e)
    ]
    hr_changes = {
        (e.key.effective(default_ns).namespace, e.key.name): e.change for e in entries if _is_helmrelease(e)
    }
    releases: list[tuple[Manifest, HelmRelease]] = []
    for manifest in found.objects:
        if not manifest.is_helmrelease:
            continue
        try:
            releases.append((manifest, parse_helmrelease(manifest.body, default_namespace=default_ns)))
        except SpecError as exc:
            report.errors.append(f"{manifest.origin}: HelmRelease {exc}")
    key = read_existing(kube, settings.sync.state_namespace)
    render_options = RenderOptions(path=options.root, kube_version=_kube_version(kube))
    declared = ManifestObjects(
        (DeclaredObject(m.body, str(m.origin)) for m in found.objects if not m.is_helmrelease), default_ns
    )
    renderer = ReleaseRenderer(settings, render_options, CommitObjects(declared, kube))
    try:
        planner = Planner(settings, kube, renderer, renderer.build_resolver(releases), key)
        for _manifest, hr in releases:
            if settings.namespace and hr.namespace != settings.namespace:
                continue  # the agent of --namespace does not reconcile it either
            note(f"planning {hr.key}")
            change = hr_changes.get((hr.namespace, hr.name), "")
            planned = planner.release(hr, change)
            if (
                options.include_unchanged
                or planned.changes
                or change in ("create", "update")
                or planned.error
            ):
                report.releases.append(planned)
        for (namespace, name), change in sorted(hr_changes.items()):
            if change == "delete":
                note(f"planning {namespace}/{name} (removed)")
                report.releases.append(planner.removed(namespace, name))
    finally:
        renderer.close()
    return report
