"""Byte-exact edits: rewrite one scalar of a YAML file and leave every other byte as it was.

Place in the data flow: ``images.find`` located the scalars when it scanned; the commit engine
reads the file again (maybe on a newer commit), calls :func:`apply_edits` with the
:class:`~gitops_helm.images.model.ScalarEdit` records of the decisions, and writes the bytes it
gets back. Pure: bytes in, bytes out.

Rules:

- The HelmRelease document is found again by namespace (as written) and name, the scalar by its
  path; it must still be a single-line string scalar of its own (not a block scalar, not reached
  through an alias or merge key) that reads ``old``. Otherwise that edit fails with the reason
  (the file changed shape since the scan) and is not made; the other edits still are.
- Only the scalar's own bytes change. Its quoting style is kept: plain stays plain, ``'...'``
  and ``"..."`` stay quoted; a plain scalar whose new text YAML would read as something else than
  that string (``1.10``, ``true``) is written double-quoted instead. Anchors, tags, comments, key
  order, indentation, other documents, CRLF line endings, a BOM and a missing final newline are
  untouched.
- The result is read back before it is returned: each edited path must read its new value. A
  mismatch (which would be a bug) fails every edit of the file and returns the original bytes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from ruamel.yaml.nodes import MappingNode, ScalarNode

from gitops_helm.api import KIND
from gitops_helm.images.locate import LocateError, YamlFile, compose, scalar_text
from gitops_helm.images.model import ReleaseId, ScalarEdit

__all__ = ["EditFailure", "EditResult", "apply_edits", "render_scalar"]

# Characters a plain scalar may hold anywhere (block and flow context) in an image reference,
# tag or version; anything else is quoted.
_SAFE_PLAIN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_./:@+-]*$")


@dataclass(frozen=True)
class EditFailure:
    """An edit that was not made, and why (naming the release, path and what the file holds)."""

    edit: ScalarEdit
    reason: str

    def __str__(self) -> str:
        return f"HelmRelease {self.edit.release} {_dotted(self.edit.path)}: {self.reason}"


@dataclass(frozen=True)
class EditResult:
    """The new bytes (the input when nothing applied), the edits made and those that failed."""

    data: bytes
    applied: tuple[ScalarEdit, ...]
    failed: tuple[EditFailure, ...]


def _dotted(path: tuple[str | int, ...]) -> str:
    return ".".join(str(p) if isinstance(p, str) else f"[{p}]" for p in path)


def _plain_reads_as_string(text: str) -> bool:
    if not _SAFE_PLAIN.match(text):
        return False
    try:
        probe = compose(f"k: {text}\n".encode())
    except LocateError:
        return False
    located = probe.lookup(0, ("k",))
    return located is not None and scalar_text(located.node) == text


def render_scalar(new: str, style: str | None) -> str:
    """``new`` written in the quoting ``style`` of the scalar it replaces (None: plain)."""
    if style == "'":
        return "'" + new.replace("'", "''") + "'"
    if style == '"' or not _plain_reads_as_string(new):
        return json.dumps(new, ensure_ascii=False)
    return new


def _find_document(yaml_file: YamlFile, release: ReleaseId) -> int:
    matches = []
    for index, root in enumerate(yaml_file.documents):
        if not isinstance(root, MappingNode):
            continue
        kind = yaml_file.lookup(index, ("kind",))
        name = yaml_file.lookup(index, ("metadata", "name"))
        namespace = yaml_file.lookup(index, ("metadata", "namespace"))
        if (
            kind is not None
            and scalar_text(kind.node) == KIND
            and name is not None
            and scalar_text(name.node) == release.name
            and (scalar_text(namespace.node) if namespace is not None else None) == release.namespace
        ):
            matches.append(index)
    if not matches:
        raise LocateError(f"no HelmRelease {release} in the file any more")
    if len(matches) > 1:
        raise LocateError(f"HelmRelease {release} is written {len(matches)} times in the file")
    return matches[0]


def _span(yaml_file: YamlFile, edit: ScalarEdit) -> tuple[int, int, bytes]:
    """Byte span of the scalar to replace and its new bytes; LocateError says why not."""
    document = _find_document(yaml_file, edit.release)
    located = yaml_file.lookup(document, edit.path)
    if located is None:
        raise LocateError("not in the file any more (the file changed since the scan)")
    node = located.node
    if not isinstance(node, ScalarNode) or scalar_text(node) is None:
        raise LocateError("is no longer a string value (the file changed since the scan)")
    if scalar_text(node) != edit.old:
        raise LocateError(f"now reads {node.value!r}, not {edit.old!r} (the file changed since the scan)")
    if located.shared is not None:
        raise LocateError(f"{located.shared}; not edited")
    if node.style in ("|", ">"):
        raise LocateError("is a block scalar; not edited")
    start, end = yaml_file.value_span(node)
    if "\n" in yaml_file.text[start:end]:
        raise LocateError("spans several lines; not edited")
    text = render_scalar(edit.new, node.style)
    return yaml_file.byte_offset(start), yaml_file.byte_offset(end), text.encode("utf-8")


def apply_edits(data: bytes, edits: Sequence[ScalarEdit]) -> EditResult:
    """Apply every edit that still fits the file; see the module rules."""
    try:
        yaml_file = compose(data)
    except LocateError as exc:
        return EditResult(data, (), tuple(EditFailure(e, f"cannot read the file: {exc}") for e in edits))
    spans: list[tuple[int, int, bytes, ScalarEdit]] = []
    failed: list[EditFailure] = []
    for edit in edits:
        try:
            start, end, new = _span(yaml_file, edit)
        except LocateError as exc:
            failed.append(EditFailure(edit, str(exc)))
            continue
        if any(start < e and s < end for s, e, _, _ in spans):
            failed.append(EditFailure(edit, "another edit of this run rewrites the same value"))
            continue
        spans.append((start, end, new, edit))
    if not spans:
        return EditResult(data, (), tuple(failed))
    out = bytearray(data)
    for start, end, new, _ in sorted(spans, key=lambda s: s[0], reverse=True):
        out[start:end] = new
    result = bytes(out)
    applied = tuple(edit for _, _, _, edit in spans)
    problem = _verify(result, applied)
    if problem is not None:
        failures = tuple(
            EditFailure(e, f"the edited file did not read back as intended ({problem})") for e in edits
        )
        return EditResult(data, (), failures)
    return EditResult(result, applied, tuple(failed))


def _verify(data: bytes, applied: Sequence[ScalarEdit]) -> str | None:
    try:
        yaml_file = compose(data)
        for edit in applied:
            located = yaml_file.lookup(_find_document(yaml_file, edit.release), edit.path)
            value = scalar_text(located.node) if located is not None else None
            if value != edit.new:
                return f"{_dotted(edit.path)} reads {value!r}"
    except LocateError as exc:
        return str(exc)
    return None
