"""How ``gitops-helm explain values`` shows a :class:`values.ValuesExplanation` (pure: no I/O).

The text view is a tree of the final values, each leaf followed by the number of the source that
set it and the numbers of the sources it overrode; the sources are listed first, lowest precedence
first, so the numbers read as the merge order. With a KEY.PATH only the leaves at, under or above
that path are shown, each with its whole chain (every source's value, the last one in effect).
``-o json`` gives the same as one document. A Secret's values are shown as ``<redacted>``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from gitops_helm.values import REDACTED, ExplainedLeaf, Setting, ValuesExplanation

__all__ = ["ExplainHeader", "narrow", "parse_key_path", "to_json", "to_text"]

_MAX_SHOWN = 80  # a long value (a list, a certificate) is cut in the text view; json has it whole


class KeyPathError(ValueError):
    """A KEY.PATH that names no key."""


def parse_key_path(text: str) -> tuple[str, ...]:
    """``image.tag`` → ``("image", "tag")``; a key holding a dot is written ``a\\.b``."""
    parts: list[str] = []
    current = ""
    escaped = False
    for char in text:
        if escaped:
            current += char
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ".":
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current + ("\\" if escaped else ""))
    if any(not part for part in parts):
        raise KeyPathError(f"KEY.PATH {text!r}: an empty key (write a.b.c; a dot inside a key as \\.)")
    return tuple(parts)


def dotted(path: Sequence[str]) -> str:
    return ".".join(key.replace(".", "\\.") for key in path) or "."


def narrow(explained: ValuesExplanation, path: tuple[str, ...]) -> list[ExplainedLeaf]:
    """The leaves at or under ``path``, or the leaf above it that holds it (a scalar or list)."""
    return [
        leaf
        for leaf in explained.leaves
        if leaf.path[: len(path)] == path or path[: len(leaf.path)] == leaf.path
    ]


class ExplainHeader:
    """What the output says about the release before its values."""

    def __init__(self, release: str, chart: str, origin: str) -> None:
        self.release = release
        self.chart = chart
        self.origin = origin  # "cluster" or the directory read offline


def _shown(value: Any, sensitive: bool = False) -> str:
    if sensitive:
        return REDACTED  # unquoted: not a string the source holds
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 1] + "…"


def _numbers(settings: Sequence[Setting]) -> str:
    seen = dict.fromkeys(s.layer + 1 for s in settings)
    return ", ".join(f"[{n}]" for n in seen)


def _annotation(leaf: ExplainedLeaf) -> str:
    note = f"[{leaf.winner.layer + 1}]"
    if leaf.overridden:
        note += f" overrides {_numbers(leaf.overridden)}"
    if leaf.removed:
        note += " (null: helm removes the chart default)"
    return note


def to_text(header: ExplainHeader, explained: ValuesExplanation, path: tuple[str, ...] | None) -> str:
    lines = [f"HelmRelease {header.release}  chart {header.chart}  (read from {header.origin})", ""]
    lines.append("Sources, lowest precedence first:")
    for number, layer in enumerate(explained.sources, start=1):
        secret = "  (Secret: values redacted)" if layer.sensitive else ""
        lines.append(f"  [{number}] {layer.label}{secret}")
    for skipped in explained.skipped:
        lines.append(f"  skipped (optional): {skipped}")
    lines.append("")
    if path is not None:
        return "\n".join(lines + _chains(narrow(explained, path))) + "\n"
    if not explained.leaves:
        lines.append("(no values)")
        return "\n".join(lines) + "\n"
    lines.append("Values:")
    rows: list[tuple[str, str]] = []
    printed: tuple[str, ...] = ()
    for leaf in explained.leaves:
        common = 0
        while common < min(len(printed), len(leaf.path) - 1) and printed[common] == leaf.path[common]:
            common += 1
        for depth in range(common, len(leaf.path) - 1):  # the maps above this leaf not yet shown
            rows.append(("  " * (depth + 1) + f"{leaf.path[depth]}:", ""))
        key = "  " * len(leaf.path) + f"{leaf.path[-1]}: {_shown(leaf.value, leaf.winner.sensitive)}"
        rows.append((key, _annotation(leaf)))
        printed = leaf.path[:-1]
    width = min(max(len(key) for key, _ in rows), 60)
    lines += [f"{key.ljust(width)}  {note}".rstrip() for key, note in rows]
    return "\n".join(lines) + "\n"


def _chains(leaves: Sequence[ExplainedLeaf]) -> list[str]:
    lines: list[str] = []
    for leaf in leaves:
        state = "  (removed: null over a chart default)" if leaf.removed else ""
        lines.append(f"{dotted(leaf.path)} = {_shown(leaf.value, leaf.winner.sensitive)}{state}")
        for setting in leaf.chain:
            verdict = "in effect" if setting is leaf.winner else "overridden"
            lines.append(
                f"  [{setting.layer + 1}] {setting.source}: {dotted(setting.path)} = "
                f"{_shown(setting.value, setting.sensitive)}  ({verdict})"
            )
    return lines


def _setting_json(setting: Setting) -> dict[str, Any]:
    return {
        "source": setting.source,
        "sourceIndex": setting.layer + 1,
        "path": dotted(setting.path),
        "value": setting.value,
        "redacted": setting.sensitive,
    }


def to_json(header: ExplainHeader, explained: ValuesExplanation, path: tuple[str, ...] | None) -> str:
    leaves = explained.leaves if path is None else tuple(narrow(explained, path))
    document = {
        "release": header.release,
        "chart": header.chart,
        "readFrom": header.origin,
        "sources": [
            {"index": n, "source": layer.label, "redacted": layer.sensitive}
            for n, layer in enumerate(explained.sources, start=1)
        ],
        "skipped": list(explained.skipped),
        "values": explained.shown() if path is None else None,
        "leaves": [
            {
                "path": dotted(leaf.path),
                "value": leaf.value,
                "removed": leaf.removed,
                "source": _setting_json(leaf.winner),
                "overrides": [_setting_json(s) for s in leaf.overridden],
            }
            for leaf in leaves
        ],
    }
    if path is not None:
        document["keyPath"] = dotted(path)
        del document["values"]
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
