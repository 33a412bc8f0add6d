"""Positions of scalars in a YAML file: the node tree of every document, with byte spans.

Place in the data flow: ``images.find`` reads HelmRelease documents through :func:`compose`
and :func:`lookup`; ``images.edit`` re-locates the scalar to rewrite with the same functions and
replaces exactly its bytes. Pure: bytes in, nodes and offsets out.

Why ruamel.yaml's composer and not ``yamlio``: an edit needs each scalar's exact span, its quoting
style and the comment after it on its line (Flux v2 setter markers); the composer gives node
marks and styles without building (or re-emitting) any data. Plain scalars are resolved with
YAML 1.1 rules, as Kubernetes and ``yamlio`` read them (``1.10`` is a float, ``yes`` a bool), so
"this tag is not a string" means the same here as in the cluster. Aliases are not expanded (the
composer shares the anchored node), so no alias bomb can grow; the size limit is ``yamlio``'s.

Offsets: the composer counts characters of the decoded text (``\\r`` included, so CRLF files
are exact); :meth:`Located.byte_span` converts to byte offsets of the original UTF-8 bytes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError as RuamelError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from gitops_helm import yamlio
from gitops_helm.errors import GitopsHelmError

__all__ = [
    "STR",
    "LocateError",
    "Located",
    "YamlFile",
    "compose",
    "scalar_text",
    "tag_of",
]

_TAG = "tag:yaml.org,2002:"
STR = _TAG + "str"
_MERGE = _TAG + "merge"

Path = tuple[str | int, ...]


class LocateError(GitopsHelmError):
    """A file or a path that cannot be located; the message says where and why. Permanent."""

    temporary = False


def tag_of(node: Node) -> str:
    """The resolved tag of a node as a string (ruamel gives a ``Tag`` object or a string)."""
    tag = node.tag
    value = getattr(tag, "value", tag)
    return str(value)


def scalar_text(node: Node | None) -> str | None:
    """The value of a string scalar, None for anything else (a number, a mapping, null)."""
    if isinstance(node, ScalarNode) and tag_of(node) == STR:
        return str(node.value)
    return None


@dataclass(frozen=True)
class Located:
    """A node found at a path, and whether it may be edited in place.

    ``shared`` names why editing it would change more than this path (it is reached through an
    alias or a merge key), None when it is this path's own node.
    """

    node: Node
    shared: str | None


class YamlFile:
    """The decoded text of a file and the root node of each of its documents."""

    def __init__(self, data: bytes, text: str, documents: list[Node | None]) -> None:
        self.data = data
        self.text = text
        self.documents = documents
        self._counts: dict[int, dict[int, int]] = {}
        self._ascii = data.isascii()

    def line(self, node: Node) -> int:
        """The 1-based line where ``node`` starts."""
        return int(node.start_mark.line) + 1

    def byte_offset(self, index: int) -> int:
        """The byte offset of character ``index`` of the text."""
        if self._ascii:
            return index
        return len(self.text[:index].encode("utf-8", "surrogatepass"))

    def value_span(self, node: ScalarNode) -> tuple[int, int]:
        """Character offsets of the scalar's own text (quotes included), without its anchor or
        tag properties (``&a !!str "x"`` gives the span of ``"x"``)."""
        start, end = int(node.start_mark.index), int(node.end_mark.index)
        raw = self.text[start:end]
        properties = re.match(r"(?:[&!]\S*\s+)*", raw)
        skip = properties.end() if properties else 0
        return start + skip, end

    def comment_after(self, node: ScalarNode) -> str | None:
        """The comment text after ``node`` on the same line (``# ...`` without the ``#``)."""
        _, end = self.value_span(node)
        line_end = self.text.find("\n", end)
        tail = self.text[end : len(self.text) if line_end < 0 else line_end].rstrip("\r")
        match = re.match(r"[ \t]+#(.*)$", tail)
        return match.group(1).strip() if match else None

    def lookup(self, document: int, path: Path) -> Located | None:
        """The node at ``path`` (mapping keys as written, sequence indices) in a document.

        None when the path leads nowhere; :class:`LocateError` when a mapping on the way holds a
        key twice (the sync refuses such a manifest too).
        """
        node = self.documents[document]
        counts = self._shared_counts(document)
        shared: str | None = None
        walked: list[str | int] = []
        for step in path:
            if node is None:
                return None
            if counts.get(id(node), 0) > 1 and shared is None:
                shared = f"{_dotted(walked) or 'the document'} is shared through a YAML alias"
            child, via_merge = _child(node, step, _dotted([*walked, step]))
            if child is None:
                return None
            if via_merge and shared is None:
                shared = f"{_dotted([*walked, step])} comes from a merge key (<<)"
            walked.append(step)
            node = child
        if node is None:
            return None
        if counts.get(id(node), 0) > 1 and shared is None:
            shared = f"{_dotted(walked)} is shared through a YAML alias"
        return Located(node, shared)

    def _shared_counts(self, document: int) -> dict[int, int]:
        """How many places refer to each node of the document (more than one: an alias)."""
        if document not in self._counts:
            counts: dict[int, int] = {}
            root = self.documents[document]
            stack: list[Node] = [root] if root is not None else []
            while stack:
                node = stack.pop()
                counts[id(node)] = counts.get(id(node), 0) + 1
                if counts[id(node)] > 1:
                    continue  # an alias: its children were counted at the anchor
                stack.extend(_children(node))
            self._counts[document] = counts
        return self._counts[document]


def _children(node: Node) -> Iterator[Node]:
    if isinstance(node, MappingNode):
        for key, value in node.value:
            yield key
            yield value
    elif isinstance(node, SequenceNode):
        yield from node.value


def _dotted(path: list[str | int] | Path) -> str:
    return ".".join(str(p) if isinstance(p, str) else f"[{p}]" for p in path)


def _child(node: Node, step: str | int, where: str) -> tuple[Node | None, bool]:
    """The child of a mapping (by key) or sequence (by index), and whether it came from ``<<``."""
    if isinstance(node, SequenceNode) and isinstance(step, int):
        return (node.value[step] if 0 <= step < len(node.value) else None), False
    if not isinstance(node, MappingNode) or not isinstance(step, str):
        return None, False
    found: Node | None = None
    merges: list[Node] = []
    for key, value in node.value:
        if isinstance(key, ScalarNode) and tag_of(key) == _MERGE:
            merges.append(value)
        elif isinstance(key, ScalarNode) and key.value == step:
            if found is not None:
                line = int(key.start_mark.line) + 1
                raise LocateError(f"line {line}: key {where} is written twice in one mapping")
            found = value
    if found is not None:
        return found, False
    for source in reversed(merges):
        for mapping in source.value if isinstance(source, SequenceNode) else [source]:
            child, _ = _child(mapping, step, where)
            if child is not None:
                return child, True
    return None, False


def compose(data: bytes) -> YamlFile:
    """The documents of a YAML file (UTF-8), composed but not constructed.

    Raises :class:`LocateError` naming the line for bytes that are not UTF-8 or not YAML, and for
    a file over ``yamlio``'s byte limit.
    """
    if len(data) > yamlio.LIMITS.max_bytes:
        raise LocateError(f"file is larger than the limit of {yamlio.LIMITS.max_bytes} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise LocateError(f"line {line}: not UTF-8 text") from None
    reader = YAML(typ="rt", pure=True)
    reader.version = (1, 1)  # plain scalars resolved as Kubernetes reads them: 1.10 is a float
    try:
        documents: list[Node | None] = list(reader.compose_all(text))
    except RuamelError as exc:
        raise LocateError(_describe(exc)) from None
    except RecursionError:
        raise LocateError("nested too deeply") from None
    return YamlFile(data, text, documents)


def _describe(exc: Any) -> str:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or getattr(exc, "context", None) or "invalid YAML"
    if mark is None:
        return f"invalid YAML: {problem}"
    return f"line {mark.line + 1}, column {mark.column + 1}: invalid YAML: {problem}"


def setter_marker(comment: str | None) -> str | None:
    """The ``$imagepolicy`` value of a Flux v2 setter comment (``{"$imagepolicy": "ns:name"}``)."""
    if comment is None or "$imagepolicy" not in comment:
        return None
    start, end = comment.find("{"), comment.rfind("}")
    if start < 0 or end < start:
        return None
    try:
        marker = json.loads(comment[start : end + 1])
    except ValueError:
        return None
    value = marker.get("$imagepolicy") if isinstance(marker, dict) else None
    return value if isinstance(value, str) else None
