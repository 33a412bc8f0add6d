"""Find and parse the Kubernetes manifests of a Git checkout.

Place in the data flow: ``source`` hands over a checkout directory and the ``--git-path`` list;
:func:`discover` turns them into a :class:`Discovery` (objects with their file:line origin, the
errors found, and whether the reading was complete); ``sync.plan`` orders, labels and
garbage-collects those objects; ``sync`` applies them to the cluster.

Pure apart from reading files: no Kubernetes client, no git, nothing raised for bad content.

Rules (also in ``docs/``):

- Every ``*.yaml``/``*.yml`` file under the paths, in sorted path order; a path naming a file is
  read whatever its extension. Entries whose name starts with ``.`` (``.git``, ``.github``,
  ``.flux.yaml``) and Helm chart directories (holding a ``Chart.yaml``; their templates are not
  YAML) are skipped while walking. A file or directory reached twice (overlapping paths, symbolic
  links inside the checkout) is read once.
- A path, or a symbolic link met while walking, that resolves outside the checkout is an error and
  is never followed.
- Documents: multi-document files, empty documents skipped, ``kind: List`` (and ``*List`` kinds
  with an ``items`` key) flattened. Decoding is ``yamlio``'s (its limits, timestamps as strings,
  mapping keys as strings by Kubernetes' rule, a key written twice is an error), and a
  ``!!binary`` value is sent base64-encoded, as Kubernetes encodes ``[]byte`` fields. Documents of
  the ``kustomize.config.k8s.io`` group (``kustomization.yaml``) are not cluster objects and are
  skipped.
- Opt-out, per object only (no file-level switch): ``fluxcd.io/ignore: "true"`` (or the legacy
  ``flux.weave.works/ignore``) means "do not apply"; the object is reported in
  :attr:`Discovery.ignored` and its key still protects the live object from garbage collection.
  ``fluxcd.io/ignore: sync_only`` means "apply, but never garbage-collect": the annotation travels
  to the live object, where ``sync.plan.may_delete`` honours it.
- Errors are collected, never raised. An error about a document whose identity is known
  (duplicates, bad labels) puts the key in :attr:`Discovery.protected`: it is not applied and it
  is not garbage-collected. Any other error (unreadable path or file, malformed YAML, a document
  without a usable identity) makes :attr:`Discovery.complete` false, and the caller then skips
  garbage collection altogether: a broken file never deletes what it used to declare.
- Duplicates (same group, kind, namespace and name, as written) are all reported, each naming
  the other locations, and none of them is applied.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from gitops_helm import yamlio
from gitops_helm.api import API_VERSION, KIND
from gitops_helm.sync.model import (
    Discovery,
    DiscoveryError,
    IgnorePolicy,
    Manifest,
    ObjectKey,
    Origin,
    ignore_policy,
)

__all__ = ["discover", "object_key"]

_YAML_SUFFIXES = (".yaml", ".yml")
_CHART_FILE = "Chart.yaml"
_SKIPPED_GROUPS = frozenset({"kustomize.config.k8s.io"})


def object_key(obj: Mapping[str, Any]) -> ObjectKey:
    """The identity key of an object given as a dict (from Git or from the cluster).

    Raises ``ValueError`` naming what is missing or malformed.
    """
    key, problems = _identity(obj)
    if key is None:
        raise ValueError("; ".join(problems))
    return key


def discover(
    root: str | os.PathLike[str],
    paths: Sequence[str] = (),
    *,
    only_helmreleases: bool = False,
) -> Discovery:
    """Read every manifest under ``paths`` (relative to ``root``; empty means the whole checkout).

    With ``only_helmreleases``, only ``helm.fluxcd.io/v1`` HelmReleases are kept; other
    documents with a valid ``apiVersion`` and ``kind`` are skipped without further checks.
    """
    collector = _Collector(os.path.realpath(root), only_helmreleases)
    collector.run(list(paths) or ["."])
    return collector.result()


# --- walking the checkout ----------------------------------------------------------------------


def _path_sort_key(path: str) -> tuple[str, ...]:
    return tuple(path.split("/"))


def _is_within(root: str, real: str) -> bool:
    return real == root or os.path.commonpath([root, real]) == root


def _join(rel: str, name: str) -> str:
    return name if rel == "." else f"{rel}/{name}"


class _Collector:
    """Mutable state of one :func:`discover` call."""

    def __init__(self, root: str, only_helmreleases: bool) -> None:
        self.root = root
        self.only_helmreleases = only_helmreleases
        self.errors: list[DiscoveryError] = []
        self.complete = True
        self.files: dict[str, str] = {}  # real path -> smallest relative path
        self.visited_dirs: set[str] = set()
        self.candidates: list[Manifest] = []
        self.protected: set[ObjectKey] = set()

    def fail(self, path: str, line: int | None, message: str, key: ObjectKey | None = None) -> None:
        self.errors.append(DiscoveryError(path, line, message, key))
        if key is None:
            self.complete = False
        else:
            self.protected.add(key)

    def run(self, paths: list[str]) -> None:
        if not os.path.isdir(self.root):
            self.fail(".", None, "checkout root is not a directory")
            return
        for path in paths:
            self.start(path)
        for real, rel in sorted(self.files.items(), key=lambda item: _path_sort_key(item[1])):
            self.read_file(rel, real)

    def start(self, given: str) -> None:
        if os.path.isabs(given):
            self.fail(given, None, "path must be relative to the checkout")
            return
        rel = os.path.normpath(given).replace(os.sep, "/")
        if rel == ".." or rel.startswith("../"):
            self.fail(given, None, "path escapes the checkout")
            return
        full = os.path.join(self.root, rel)
        if not os.path.lexists(full):
            self.fail(rel, None, "path does not exist")
            return
        real = os.path.realpath(full)
        if not _is_within(self.root, real):
            self.fail(rel, None, "symbolic link points outside the checkout")
        elif not os.path.exists(real):
            self.fail(rel, None, "broken symbolic link")
        elif os.path.isdir(real):
            self.walk(rel, real)
        else:
            self.add_file(rel, real)

    def add_file(self, rel: str, real: str) -> None:
        known = self.files.get(real)
        if known is None or _path_sort_key(rel) < _path_sort_key(known):
            self.files[real] = rel

    def walk(self, rel: str, real: str) -> None:
        if real in self.visited_dirs or os.path.isfile(os.path.join(real, _CHART_FILE)):
            return
        self.visited_dirs.add(real)
        try:
            with os.scandir(real) as it:
                entries = sorted(it, key=lambda entry: entry.name)
        except OSError as exc:
            self.fail(rel, None, f"cannot read directory: {exc.strerror or exc}")
            return
        for entry in entries:
            if entry.name.startswith("."):
                continue
            child_rel = _join(rel, entry.name)
            is_yaml = entry.name.endswith(_YAML_SUFFIXES)
            child_real = os.path.join(real, entry.name)
            if entry.is_symlink():
                child_real = os.path.realpath(child_real)
                if not _is_within(self.root, child_real):
                    self.fail(child_rel, None, "symbolic link points outside the checkout")
                    continue
                if not os.path.exists(child_real):
                    if is_yaml:
                        self.fail(child_rel, None, "broken symbolic link")
                    continue
            if os.path.isdir(child_real):
                self.walk(child_rel, child_real)
            elif is_yaml:
                self.add_file(child_rel, child_real)

    # --- reading files ---------------------------------------------------------------------------

    def read_file(self, rel: str, real: str) -> None:
        try:
            with open(real, "rb") as handle:
                raw = handle.read()
        except OSError as exc:
            self.fail(rel, None, f"cannot read file: {exc.strerror or exc}")
            return
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            self.fail(rel, raw[: exc.start].count(b"\n") + 1, "file is not valid UTF-8")
            return
        try:
            documents = yamlio.load_all(text)
        except yamlio.YAMLError as exc:
            self.fail(rel, exc.line, f"invalid YAML: {exc.problem}" if exc.syntax else exc.problem)
            return
        for document in documents:
            self.read_document(rel, document)

    def read_document(self, rel: str, document: yamlio.Document) -> None:
        try:
            objects = list(_flatten(_binary_as_base64(document.data), document, (), document.line))
        except _Unsupported as exc:
            self.fail(rel, document.line, str(exc))
            return
        for item, item_line in objects:
            self.read_object(rel, item_line, item)

    def read_object(self, rel: str, line: int, data: Any) -> None:
        if not isinstance(data, dict):
            self.fail(rel, line, f"document is not a mapping (found {_describe(data)})")
            return
        api_version, kind = data.get("apiVersion"), data.get("kind")
        if isinstance(api_version, str) and isinstance(kind, str):
            if _group_of(api_version) in _SKIPPED_GROUPS:
                return
            if self.only_helmreleases and (api_version, kind) != (API_VERSION, KIND):
                return
        key, problems = _identity(data)
        if key is None:
            self.fail(rel, line, "; ".join(problems))
            return
        problems = _metadata_problems(data["metadata"])
        if problems:
            self.fail(rel, line, "; ".join(problems), key)
            return
        origin = Origin(rel, line)
        self.candidates.append(
            Manifest(key, data["apiVersion"], data, origin, ignore_policy(data["metadata"]))
        )

    def result(self) -> Discovery:
        by_key: dict[ObjectKey, list[Manifest]] = {}
        for manifest in self.candidates:
            by_key.setdefault(manifest.key, []).append(manifest)
        objects: list[Manifest] = []
        ignored: list[Manifest] = []
        for key, group in by_key.items():
            if len(group) > 1:
                for manifest in group:
                    others = ", ".join(str(m.origin) for m in group if m is not manifest)
                    message = f"duplicate object {key} (also defined at {others})"
                    self.fail(manifest.origin.path, manifest.origin.line, message, key)
            elif group[0].ignore is IgnorePolicy.IGNORE:
                ignored.append(group[0])
                self.protected.add(key)
            else:
                objects.append(group[0])

        def by_origin(m: Manifest) -> tuple[tuple[str, ...], int]:
            return _path_sort_key(m.origin.path), m.origin.line

        def error_order(e: DiscoveryError) -> tuple[tuple[str, ...], int, str]:
            return _path_sort_key(e.path), e.line or 0, e.message

        return Discovery(
            objects=tuple(sorted(objects, key=by_origin)),
            ignored=tuple(sorted(ignored, key=by_origin)),
            protected=frozenset(self.protected),
            errors=tuple(sorted(self.errors, key=error_order)),
            complete=self.complete,
            files=tuple(sorted(self.files.values(), key=_path_sort_key)),
        )


# --- decoded documents -------------------------------------------------------------------------


class _Unsupported(Exception):
    """A decoded document that cannot become a list of objects (message is user-facing)."""


def _binary_as_base64(value: Any) -> Any:
    """``value`` with every ``bytes`` (a ``!!binary`` scalar) replaced by its base64 text, in place."""
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, dict | list | bytes):
                value[key] = _binary_as_base64(item)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, dict | list | bytes):
                value[index] = _binary_as_base64(item)
    elif isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return value


def _is_list(data: dict[str, Any]) -> bool:
    kind = data.get("kind")
    return isinstance(kind, str) and (kind == "List" or (kind.endswith("List") and "items" in data))


def _flatten(
    data: Any, document: yamlio.Document, path: tuple[str | int, ...], line: int
) -> Iterator[tuple[Any, int]]:
    """The objects of a document with their lines: itself, or the items of a (nested) List."""
    if not (isinstance(data, dict) and _is_list(data)):
        yield data, line
        return
    items = data.get("items")
    if items is None:
        return
    if not isinstance(items, list):
        raise _Unsupported(f"{data['kind']}: items must be a sequence")
    for index, item in enumerate(items):
        item_path = (*path, "items", index)
        yield from _flatten(item, document, item_path, document.line_of(item_path) or line)


def _describe(value: object) -> str:
    if isinstance(value, list):
        return "a sequence"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "a string"


# --- identity ----------------------------------------------------------------------------------


def _group_of(api_version: str) -> str:
    return api_version.rpartition("/")[0]


def _identity(data: Mapping[str, Any]) -> tuple[ObjectKey | None, list[str]]:
    problems: list[str] = []
    api_version = data.get("apiVersion")
    if api_version is None or api_version == "":
        problems.append("missing apiVersion")
    elif not isinstance(api_version, str) or api_version.count("/") > 1 or api_version.startswith("/"):
        problems.append(f"invalid apiVersion {api_version!r}")
    kind = data.get("kind")
    if kind is None or kind == "":
        problems.append("missing kind")
    elif not isinstance(kind, str):
        problems.append(f"invalid kind {kind!r}")
    metadata = data.get("metadata")
    name: object = None
    namespace: object = None
    if metadata is None:
        problems.append("missing metadata")
    elif not isinstance(metadata, Mapping):
        problems.append("metadata must be a mapping")
    else:
        name = metadata.get("name")
        namespace = metadata.get("namespace")
        if namespace is None:
            namespace = ""
        if name is None or name == "":
            problems.append("missing metadata.name")
        elif not isinstance(name, str):
            problems.append(f"invalid metadata.name {name!r}")
        if not isinstance(namespace, str):
            problems.append(f"invalid metadata.namespace {namespace!r}")
    if problems:
        return None, problems
    assert isinstance(api_version, str) and isinstance(kind, str)  # noqa: S101 - checked above
    assert isinstance(name, str) and isinstance(namespace, str)  # noqa: S101 - checked above
    return ObjectKey(_group_of(api_version), kind, namespace, name), []


def _metadata_problems(metadata: Mapping[str, Any]) -> list[str]:
    problems = []
    for field_name in ("labels", "annotations"):
        value = metadata.get(field_name)
        if value is not None and not isinstance(value, Mapping):
            problems.append(f"metadata.{field_name} must be a mapping")
    return problems
