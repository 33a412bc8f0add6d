"""The HelmRelease field reference (docs/helmrelease-reference.md), generated from the packaged CRD.

The CRD's descriptions are the one source of the field documentation: ``kubectl explain
helmrelease.spec.X`` shows them, and this module renders the same text as Markdown, so the two
cannot drift (a unit test compares the committed page with :func:`render_reference`). A
description states a default in its last sentence, ``Default: X.``; the page shows it in its own
column.

Regenerate with ``python -m gitops_helm.api.reference > docs/helmrelease-reference.md``.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from gitops_helm.api.crd import load_crd

# The API server refuses a description on metadata (only name and generateName may be specified
# there), so its row gets this text instead.
METADATA = (
    "Standard object metadata. The Flux v1 image-automation annotations (fluxcd.io/automated, "
    "filter.fluxcd.io/<name>, ...) keep their meaning."
)

_DEFAULT = re.compile(r"^(?P<text>.*?)\s*Default: (?P<default>.+?)\.?$", re.DOTALL)

HEADER = """\
# HelmRelease reference (`helm.fluxcd.io/v1`)

<!-- Generated from gitops_helm/api/crd.yaml by `python -m gitops_helm.api.reference`; do not edit. -->

Every field of the HelmRelease schema, with its type, its default and the description that
`kubectl explain helmrelease.<field>` prints. Array elements are written `[]`
(`spec.valuesFrom[].configMapKeyRef`). The agent's parser checks more than the schema can express
(for example exactly one chart source, `helmVersion: v2` refused) and names the field in its error.
"""


@dataclass(frozen=True)
class Field:
    path: str
    type: str
    required: bool
    default: str
    description: str


def split_default(description: str) -> tuple[str, str]:
    """(description without its default sentence, the default or "")."""
    match = _DEFAULT.match(description.strip())
    if match is None:
        return " ".join(description.split()), ""
    return " ".join(match["text"].split()), match["default"]


def type_of(node: Mapping[str, Any]) -> str:
    kind = str(node.get("type", "any"))
    if kind == "array":
        return f"array of {type_of(node.get('items', {}))}"
    if node.get("x-kubernetes-preserve-unknown-fields"):
        return f"{kind} (free-form)"
    details = [str(node["format"])] if "format" in node else []
    if "enum" in node:
        details.append(" \\| ".join(str(value) for value in node["enum"]))
    if "minimum" in node:
        details.append(f">= {node['minimum']}")
    if "maxLength" in node:
        details.append(f"at most {node['maxLength']} characters")
    if node.get("minLength") == 1:
        details.append("non-empty")
    elif "minLength" in node:
        details.append(f"at least {node['minLength']} characters")
    if "minItems" in node:
        details.append(f"at least {node['minItems']} items")
    return f"{kind} ({', '.join(details)})" if details else kind


def fields(node: Mapping[str, Any], path: str = "") -> Iterator[Field]:
    """Every property under `node`, depth first in schema order; array items as `[]`."""
    required = set(node.get("required", []))
    for key, child in node.get("properties", {}).items():
        child_path = f"{path}.{key}" if path else key
        described = child.get("description") or (METADATA if child_path == "metadata" else "")
        text, default = split_default(str(described))
        yield Field(child_path, type_of(child), key in required, default, text)
        yield from _children(child, child_path)


def _children(node: Mapping[str, Any], path: str) -> Iterator[Field]:
    if node.get("x-kubernetes-preserve-unknown-fields"):
        return
    if node.get("type") == "array":
        yield from _children(node.get("items", {}), f"{path}[]")
    else:
        yield from fields(node, path)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;") if text else ""


def _table(rows: list[Field]) -> list[str]:
    lines = ["| field | type | default | description |", "|---|---|---|---|"]
    for row in rows:
        name = f"`{row.path}`" + (" (required)" if row.required else "")
        default = f"`{_cell(row.default)}`" if row.default and " " not in row.default else _cell(row.default)
        lines.append(f"| {name} | {row.type} | {default} | {_cell(row.description)} |")
    return lines


def render_reference(crd: Mapping[str, Any] | None = None) -> str:
    """The Markdown page for the CRD (the packaged one by default)."""
    document = crd if crd is not None else load_crd()
    schema = document["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    every = list(fields(schema))
    spec = [f for f in every if f.path == "spec" or f.path.startswith("spec.")]
    status = [f for f in every if f.path == "status" or f.path.startswith("status.")]
    top = [f for f in every if f not in spec and f not in status]
    out = [HEADER, "## Object", "", *_table(top), "", "## spec", "", *_table(spec), ""]
    out += ["## status", "", *_table(status), ""]
    return "\n".join(out)


def main() -> None:
    sys.stdout.write(render_reference())


if __name__ == "__main__":
    main()
