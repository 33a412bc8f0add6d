"""Drift detection: do the live objects of a release still match its manifest?

Place in the flow: the reconciler calls :func:`detect_drift` when the planner says the release is
in sync and ``spec.driftDetection.mode`` is ``warn`` or ``enabled``. For every object of the
manifest stored with the latest revision (decoded from Helm storage, no helm call) it asks the API
server for a server-side *dry-run* apply of the rendered object and compares the answer with the
live object: equal means the live object already holds every field the chart sets (server
defaults and normalisation such as ``1000m`` -> ``1`` cannot cause false alarms, because both
sides went through the server). A missing object is drift too. Differences under the rule's
JSON pointers (``driftDetection.ignore``) are not drift.

The comparison itself (:func:`differences`) is pure and unit-tested.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from gitops_helm import yamlio
from gitops_helm.api import DriftIgnoreRule

# Fields the server owns or that a dry run always changes: never drift.
_VOLATILE_METADATA = (
    "managedFields",
    "resourceVersion",
    "generation",
    "uid",
    "creationTimestamp",
    "selfLink",
)
FIELD_MANAGER = "gitops-helm-drift"
MAX_REPORTED = 10


class DriftKube(Protocol):
    """The slice of the Kubernetes adapter drift detection needs."""

    def get(self, api_version: str, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None: ...

    def apply(
        self, obj: Mapping[str, Any], field_manager: str, *, dry_run: bool = False, force: bool = True
    ) -> dict[str, Any]: ...

    def is_namespaced(self, api_version: str, kind: str) -> bool: ...


@dataclass(frozen=True)
class Drift:
    """One object that differs: ``where`` names it, ``paths`` are JSON pointers that differ."""

    where: str
    paths: tuple[str, ...]

    def __str__(self) -> str:
        shown = ", ".join(self.paths[:5]) + (" ..." if len(self.paths) > 5 else "")
        return f"{self.where}: {shown}" if shown else self.where


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def _walk(a: Any, b: Any, path: str) -> Iterator[str]:
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        for key in sorted(set(a) | set(b), key=str):
            sub = f"{path}/{_escape(str(key))}"
            if key not in a or key not in b:
                yield sub
            else:
                yield from _walk(a[key], b[key], sub)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            yield from _walk(x, y, f"{path}/{i}")
    elif a != b:
        yield path or "/"


def comparable(obj: Mapping[str, Any]) -> dict[str, Any]:
    """``obj`` without its status and the metadata the server owns (what a comparison reads)."""
    out = {k: v for k, v in obj.items() if k != "status"}
    meta = dict(out.get("metadata") or {})
    for key in _VOLATILE_METADATA:
        meta.pop(key, None)
    out["metadata"] = meta
    return out


def _ignored(path: str, pointers: Sequence[str]) -> bool:
    return any(path == p or path.startswith(p.rstrip("/") + "/") for p in pointers)


def differences(
    expected: Mapping[str, Any], live: Mapping[str, Any], ignore: Sequence[str] = ()
) -> tuple[str, ...]:
    """JSON pointers where ``expected`` (a dry-run result) and ``live`` differ, minus ``ignore``."""
    return tuple(p for p in _walk(comparable(expected), comparable(live), "") if not _ignored(p, ignore))


def _pointers_for(
    rules: Sequence[DriftIgnoreRule], api_version: str, kind: str, name: str, ns: str | None
) -> list[str]:
    out: list[str] = []
    for rule in rules:
        if rule.target is None or rule.target.matches(
            api_version=api_version, kind=kind, name=name, namespace=ns
        ):
            out += list(rule.paths)
    return out


def manifest_objects(manifest: str) -> list[dict[str, Any]]:
    """The objects of a release manifest (``List`` kinds flattened, empty documents skipped).

    Decoded by ``yamlio`` as helm decodes it (a key written twice: the last one wins); raises
    ``yamlio.YAMLError``.
    """
    out: list[dict[str, Any]] = []
    for document in yamlio.load_all(manifest or "", unique_keys=False):
        doc = document.data
        if not isinstance(doc, dict) or not doc.get("kind") or not doc.get("apiVersion"):
            continue
        if str(doc["kind"]).endswith("List") and isinstance(doc.get("items"), list):
            out += [item for item in doc["items"] if isinstance(item, dict)]
        else:
            out.append(doc)
    return out


def detect_drift(
    kube: DriftKube,
    manifest: str,
    release_namespace: str,
    rules: Sequence[DriftIgnoreRule] = (),
) -> list[Drift]:
    """Every object of ``manifest`` whose live state differs from what the chart sets."""
    found: list[Drift] = []
    for obj in manifest_objects(manifest):
        api_version, kind = str(obj["apiVersion"]), str(obj["kind"])
        meta = obj.setdefault("metadata", {})
        name = str(meta.get("name", ""))
        if kube.is_namespaced(api_version, kind):
            meta.setdefault("namespace", release_namespace)
        ns = meta.get("namespace")
        where = f"{kind}/{ns}/{name}" if ns else f"{kind}/{name}"
        live = kube.get(api_version, kind, ns, name)
        if live is None:
            found.append(Drift(where, ("(missing)",)))
            continue
        expected = kube.apply(obj, FIELD_MANAGER, dry_run=True, force=True)
        paths = differences(expected, live, _pointers_for(rules, api_version, kind, name, ns))
        if paths:
            found.append(Drift(where, paths))
        if len(found) >= MAX_REPORTED:
            break
    return found
