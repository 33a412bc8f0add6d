"""The objects of a release, compared and shown: pairing, unified diffs, redaction.

PURE: no I/O. ``planner`` hands in what the API server answered (live objects, server-side dry
runs) and the Secret-derived strings to hide; nothing leaves here unredacted.
"""

from __future__ import annotations

import base64
import contextlib
import difflib
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from gitops_helm import yamlio
from gitops_helm.release.drift import comparable

REDACTED = "(redacted)"
REDACTED_CHANGED = "(redacted, changed)"
# shorter Secret-derived strings are not hidden inside other text: "1" or "true" would blank out
# half a manifest and hide nothing (a value that short is guessed anyway)
MIN_REDACTED_LENGTH = 4


def object_name(obj: Mapping[str, Any]) -> str:
    """``Kind/namespace/name`` (``Kind/name`` for a cluster-scoped object)."""
    meta = obj.get("metadata") or {}
    ns, name = meta.get("namespace"), meta.get("name", "")
    return f"{obj.get('kind')}/{ns}/{name}" if ns else f"{obj.get('kind')}/{name}"


def object_identity(obj: Mapping[str, Any]) -> tuple[str, str, str, str]:
    """What makes two manifests' objects the same object: API group, kind, namespace, name."""
    meta = obj.get("metadata") or {}
    group = str(obj.get("apiVersion", "")).rpartition("/")[0]
    return (group, str(obj.get("kind", "")), str(meta.get("namespace") or ""), str(meta.get("name", "")))


def leaf_strings(data: Any) -> Iterable[str]:
    """Every scalar of a values document, as text (what a template may print)."""
    if isinstance(data, Mapping):
        for value in data.values():
            yield from leaf_strings(value)
    elif isinstance(data, list):
        for value in data:
            yield from leaf_strings(value)
    elif data is not None and not isinstance(data, bool):
        yield str(data)


def secret_strings(data: Mapping[str, bytes]) -> list[str]:
    """The strings a Secret's ``data`` may put into values: each key's whole text, and the
    leaves of those that are YAML documents (what a plan hides wherever it meets them)."""
    out: list[str] = []
    for raw in data.values():
        with contextlib.suppress(yamlio.YAMLError):  # not values: compose_values says so if used
            out += leaf_strings(yamlio.load(raw, unique_keys=False))
        out.append(raw.decode("utf-8", errors="replace").strip())
    return out


def _json_escaped(value: str) -> set[str]:
    """``value`` as it appears inside a JSON string (``toJson``, ``quote``): escaped as Python
    writes it, and as Go's encoder does, which also escapes ``<``, ``>`` and ``&``."""
    forms = {json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]}
    go = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"}
    forms |= {"".join(go.get(c, c) for c in form) for form in list(forms)}
    return forms


class Redactor:
    """Hides Secret-derived strings (and their base64 and JSON-escaped forms, as charts put them
    in Secrets and JSON documents)."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None  # built once per set of secrets, not per string

    def add(self, values: Iterable[str]) -> None:
        for value in values:
            if len(value) >= MIN_REDACTED_LENGTH:
                self._secrets.add(value)
                self._secrets.add(base64.b64encode(value.encode()).decode())
                self._secrets |= _json_escaped(value)
                self._pattern = None

    def text(self, value: str) -> str:
        if not self._secrets:
            return value
        if self._pattern is None:
            # one pass, longest first: a secret containing another is hidden whole, and the mark
            # put in is never searched again
            ordered = sorted(self._secrets, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(s) for s in ordered))
        return self._pattern.sub(REDACTED, value)

    def data(self, data: Any) -> Any:
        if isinstance(data, Mapping):
            return {self.text(str(k)): self.data(v) for k, v in data.items()}
        if isinstance(data, list):
            return [self.data(v) for v in data]
        if isinstance(data, str):
            return self.text(data)
        return data


def _hide_secret_data(obj: dict[str, Any] | None, live: dict[str, Any] | None) -> dict[str, Any] | None:
    """A Secret's ``data``/``stringData`` values replaced by a mark, which for a planned object
    says whether each differs from the ``live`` one's (None: ``obj`` is the live object). A
    Secret's content is never shown, even from the live cluster."""
    if obj is None or obj.get("kind") != "Secret":
        return obj
    out = dict(obj)
    for field in ("data", "stringData"):
        values = obj.get(field)
        if not isinstance(values, Mapping):
            continue
        theirs = (live or {}).get(field) or {}
        out[field] = {
            k: REDACTED if live is None or theirs.get(k) == v else REDACTED_CHANGED for k, v in values.items()
        }
    annotations = (out.get("metadata") or {}).get("annotations") or {}
    if "kubectl.kubernetes.io/last-applied-configuration" in annotations:
        out["metadata"] = dict(out["metadata"])
        out["metadata"]["annotations"] = {
            **annotations,
            "kubectl.kubernetes.io/last-applied-configuration": REDACTED,
        }
    return out


def unified_diff(
    name: str, live: Mapping[str, Any] | None, planned: Mapping[str, Any] | None, redactor: Redactor
) -> str:
    """A unified diff of the YAML of ``live`` and ``planned`` (either may be None: created or
    deleted), without status and server-owned metadata, Secrets' data and Secret-derived
    strings hidden."""
    old = comparable(live) if live is not None else None
    new = comparable(planned) if planned is not None else None
    old, new = _hide_secret_data(old, None), _hide_secret_data(new, old)  # new: against old as read
    old_text = yamlio.dump(redactor.data(old)) if old is not None else ""
    new_text = yamlio.dump(redactor.data(new)) if new is not None else ""
    lines = difflib.unified_diff(
        old_text.splitlines(keepends=True),
        new_text.splitlines(keepends=True),
        fromfile=f"live/{name}" if old is not None else "/dev/null",
        tofile=f"planned/{name}" if new is not None else "/dev/null",
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)
