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
  with an ``items`` key) flattened. YAML timestamps stay strings and mapping keys become strings,
  as Kubernetes' own YAML decoder does. Documents of the ``kustomize.config.k8s.io`` group
  (``kustomization.yaml``) are not cluster objects and are skipped.
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
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from gitops_helm.api import API_VERSION, KIND
from gitops_helm.sync.model import (
    IGNORE_ANNOTATIONS,
    Discovery,
    DiscoveryError,
    IgnorePolicy,
    Manifest,
    ObjectKey,
    Origin,
    ignore_policy,
)

try:
    from yaml import CSafeLoader as _SafeLoader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeLoader as _SafeLoader  # type: ignore[assignment]

__all__ = [
    "IGNORE_ANNOTATIONS",
    "Discovery",
    "DiscoveryError",
    "IgnorePolicy",
    "Manifest",
    "ObjectKey",
    "Origin",
    "discover",
    "ignore_policy",
    "object_key",
]

_YAML_SUFFIXES = (".yaml", ".yml")
_CHART_FILE = "Chart.yaml"
_SKIPPED_GROUPS = frozenset({"kustomize.config.k8s.io"})
# Bounds on one document after alias expansion, so a "billion laughs" file cannot exhaust memory
# or the stack; real manifests (large CRDs included) stay far below both.
_MAX_NODES = 1_000_000
_MAX_DEPTH = 400


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
        documents = self.parse(rel, text)
        if documents is None:
            return
        for node, data in documents:
            self.read_document(rel, node, data)

    def parse(self, rel: str, text: str) -> list[tuple[Node, Any]] | None:
        """All non-empty documents of a file, or ``None`` (error recorded) if any is malformed."""
        loader = _ManifestLoader(text)
        documents: list[tuple[Node, Any]] = []
        try:
            while loader.check_node():
                node = loader.get_node()
                if node is None:  # pragma: no cover - check_node() said there is one
                    continue
                duplicate = _first_duplicate_key(node)
                if duplicate is not None:
                    self.fail(rel, duplicate[0], duplicate[1])
                    return None
                data = loader.construct_document(node)
                if data is not None:
                    documents.append((node, data))
        except yaml.MarkedYAMLError as exc:
            self.fail(rel, *_yaml_error(exc))
            return None
        except yaml.reader.ReaderError as exc:
            line = text[: exc.position].count("\n") + 1
            self.fail(rel, line, f"invalid YAML: {exc.reason} (character #x{exc.character:04x})")
            return None
        except yaml.YAMLError as exc:  # pragma: no cover - every loader error is one of the above
            self.fail(rel, None, f"invalid YAML: {exc}")
            return None
        finally:
            loader.dispose()
        return documents

    def read_document(self, rel: str, node: Node, data: Any) -> None:
        line = node.start_mark.line + 1
        try:
            objects = list(_flatten(_normalise(data, 0, [0]), node, line))
        except _Unsupported as exc:
            self.fail(rel, line, str(exc))
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


# --- YAML --------------------------------------------------------------------------------------


class _ManifestLoader(_SafeLoader):
    """Safe loader that keeps timestamps as strings, like the YAML decoder of Kubernetes."""


def _timestamp_as_string(loader: yaml.SafeLoader, node: yaml.Node) -> str:
    value = loader.construct_scalar(node)  # type: ignore[arg-type]
    assert isinstance(value, str)  # noqa: S101 - a timestamp node is always a scalar
    return value


_ManifestLoader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_as_string)


def _yaml_error(exc: yaml.MarkedYAMLError) -> tuple[int | None, str]:
    """``(line, message)`` for a loader error: the problem, and what the loader was reading."""
    mark = exc.problem_mark or exc.context_mark
    message = f"invalid YAML: {exc.problem or exc.context}"
    if exc.problem and exc.context and exc.context_mark is not None:
        message += f" ({exc.context} at line {exc.context_mark.line + 1})"
    return (mark.line + 1 if mark is not None else None), message


def _first_duplicate_key(root: Node) -> tuple[int, str] | None:
    """``(line, message)`` for the first mapping key written twice, which YAML loaders hide."""
    seen_nodes: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        if isinstance(node, MappingNode):
            first_line: dict[tuple[str, str], int] = {}
            for key_node, value_node in node.value:
                stack.append(value_node)
                if not isinstance(key_node, ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                line = key_node.start_mark.line + 1
                ident = (key_node.tag, key_node.value)
                if ident in first_line:
                    first = first_line[ident]
                    return line, f"duplicate mapping key '{key_node.value}' (first at line {first})"
                first_line[ident] = line
        elif isinstance(node, SequenceNode):
            stack.extend(node.value)
    return None


class _Unsupported(Exception):
    """A decoded document that cannot become a JSON object (message is user-facing)."""


def _key_string(key: object) -> str:
    # Kubernetes turns non-string keys into strings (``8080: tcp`` in ingress ConfigMaps).
    if isinstance(key, str):
        return key
    if isinstance(key, bool):
        return "true" if key else "false"
    if key is None:
        return "null"
    if isinstance(key, int | float) and math.isfinite(key):
        return str(key)
    raise _Unsupported(f"unsupported mapping key {key!r}")


def _normalise(value: Any, depth: int, budget: list[int]) -> Any:
    """A JSON-compatible copy of a decoded document, with bounded size and depth."""
    budget[0] += 1
    if budget[0] > _MAX_NODES:
        raise _Unsupported(f"document expands to more than {_MAX_NODES} values (YAML aliases?)")
    if depth > _MAX_DEPTH:
        raise _Unsupported(f"document is nested more than {_MAX_DEPTH} levels deep")
    if isinstance(value, dict):
        result: dict[str, Any] = {}
        for key, item in value.items():
            name = _key_string(key)
            if name in result:
                raise _Unsupported(f"duplicate mapping key '{name}' after conversion to string")
            result[name] = _normalise(item, depth + 1, budget)
        return result
    if isinstance(value, list | tuple):
        return [_normalise(item, depth + 1, budget) for item in value]
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, float) and not math.isfinite(value):
        raise _Unsupported(f"unsupported number {value!r}")
    if value is None or isinstance(value, str | int | float):
        return value
    raise _Unsupported(f"unsupported YAML value of type {type(value).__name__}")


def _is_list(data: dict[str, Any]) -> bool:
    kind = data.get("kind")
    return isinstance(kind, str) and (kind == "List" or (kind.endswith("List") and "items" in data))


def _item_nodes(node: Node) -> list[Node] | None:
    if isinstance(node, MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, ScalarNode) and key_node.value == "items":
                return list(value_node.value) if isinstance(value_node, SequenceNode) else None
    return None


def _flatten(data: Any, node: Node, line: int) -> Iterator[tuple[Any, int]]:
    """The objects of a document with their lines: itself, or the items of a (nested) List."""
    if not (isinstance(data, dict) and _is_list(data)):
        yield data, line
        return
    items = data.get("items")
    if items is None:
        return
    if not isinstance(items, list):
        raise _Unsupported(f"{data['kind']}: items must be a sequence")
    nodes = _item_nodes(node)
    if nodes is None or len(nodes) != len(items):  # items came through a merge key or an alias
        nodes = [node] * len(items)
    for item, item_node in zip(items, nodes, strict=True):
        yield from _flatten(item, item_node, item_node.start_mark.line + 1)


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
