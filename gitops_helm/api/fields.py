"""Typed field readers that collect problems instead of raising.

Place in the data flow: the building blocks of `gitops_helm.api.parse`. Each reader takes the
parent mapping, the key and the parent's path, records a `Problem` naming the full field path
when the value is wrong, and returns a usable value (the default, or None) so parsing continues
and every problem of an object is reported at once.

Conventions (the Helm Operator's Go types): an absent key and `null` both mean "unset"; for
optional strings an empty string also means unset; required strings must be non-empty.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, TypeVar

from gitops_helm.api.errors import Problem

__all__ = ["INT64_MAX", "Reader", "join", "json_type"]

INT64_MAX = 2**63 - 1
_MAX_VALUES_DEPTH = 100
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")

E = TypeVar("E", bound=StrEnum)


def join(parent: str, key: str) -> str:
    """`spec` + `chart` => `spec.chart`; keys that are not plain words are quoted."""
    if not _IDENTIFIER.match(key):
        quoted = json.dumps(key, ensure_ascii=False)
        return f"{parent}[{quoted}]" if parent else quoted
    return f"{parent}.{key}" if parent else key


def json_type(value: object) -> str:
    """The JSON name of a value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list | tuple):
        return "array"
    return type(value).__name__


def _shown_int(value: int) -> str:
    """``value`` for a message; a huge one by its size (str() refuses over 4300 digits)."""
    digits = abs(value).bit_length() * 0.30103  # log10(2)
    return str(value) if digits < 40 else f"a number of about {digits:.0f} digits"


class Reader:
    """Collects errors and warnings while fields are read."""

    def __init__(self) -> None:
        self.errors: list[Problem] = []
        self.warnings: list[Problem] = []

    def error(self, path: str, message: str) -> None:
        self.errors.append(Problem(path, message))

    def warn(self, path: str, message: str) -> None:
        self.warnings.append(Problem(path, message))

    # --- containers ---

    def mapping(
        self, parent: Mapping[str, Any], key: str, at: str, *, required: bool = False
    ) -> Mapping[str, Any] | None:
        value = parent.get(key)
        path = join(at, key)
        if value is None:
            if required:
                self.error(path, "required")
            return None
        if not isinstance(value, Mapping):
            self.error(path, f"must be an object, got {json_type(value)}")
            return None
        return value

    def array(self, parent: Mapping[str, Any], key: str, at: str) -> list[Any]:
        value = parent.get(key)
        if value is None:
            return []
        if not isinstance(value, list | tuple):
            self.error(join(at, key), f"must be an array, got {json_type(value)}")
            return []
        return list(value)

    # --- scalars ---

    def optional_string(self, parent: Mapping[str, Any], key: str, at: str) -> str | None:
        value = parent.get(key)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            self.error(join(at, key), f"must be a string, got {json_type(value)}")
            return None
        return value

    def string(self, parent: Mapping[str, Any], key: str, at: str) -> str | None:
        """A required, non-empty string; None (and a problem) when missing or wrong."""
        value = parent.get(key)
        if value is None or value == "":
            self.error(join(at, key), "required")
            return None
        return self.optional_string(parent, key, at)

    def optional_boolean(self, parent: Mapping[str, Any], key: str, at: str) -> bool | None:
        value = parent.get(key)
        if value is None:
            return None
        if not isinstance(value, bool):
            self.error(join(at, key), f"must be true or false, got {json_type(value)}")
            return None
        return value

    def boolean(self, parent: Mapping[str, Any], key: str, at: str, default: bool) -> bool:
        value = self.optional_boolean(parent, key, at)
        return default if value is None else value

    def integer(
        self,
        parent: Mapping[str, Any],
        key: str,
        at: str,
        *,
        default: int,
        minimum: int,
        maximum: int = INT64_MAX,
        what: str = "",
    ) -> int:
        """An integer in [minimum, maximum]; integral floats (300.0) are accepted."""
        value = parent.get(key)
        path = join(at, key)
        if value is None:
            return default
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(path, f"must be an integer{what}, got {json_type(value)}")
            return default
        if value < minimum:
            self.error(path, f"must be at least {minimum}{what}, got {_shown_int(value)}")
            return default
        if value > maximum:
            self.error(path, f"must be at most {maximum}{what}, got {_shown_int(value)}")
            return default
        return value

    def enum(self, parent: Mapping[str, Any], key: str, at: str, enum: type[E], default: E) -> E:
        value = parent.get(key)
        if value is None:
            return default
        allowed = [member.value for member in enum]
        if not isinstance(value, str) or value not in allowed:
            shown = repr(value) if isinstance(value, str) else json_type(value)
            self.error(join(at, key), f"must be one of {', '.join(allowed)}, got {shown}")
            return default
        return enum(value)

    def string_map(self, parent: Mapping[str, Any], key: str, at: str) -> dict[str, str]:
        """A map of string to string (labels, annotations)."""
        value = self.mapping(parent, key, at)
        if value is None:
            return {}
        result: dict[str, str] = {}
        for k, v in value.items():
            if not isinstance(k, str) or not isinstance(v, str):
                self.error(join(join(at, key), str(k)), "must map a string to a string")
                continue
            result[k] = v
        return result

    # --- free-form values ---

    def json_object(self, parent: Mapping[str, Any], key: str, at: str) -> dict[str, Any]:
        """A private copy of a JSON object (string keys; null, bool, int, finite float, str, list).

        Iterative, so deep input cannot overflow the stack; deeper than 100 levels is a problem.
        """
        source = self.mapping(parent, key, at)
        if source is None:
            return {}
        root: dict[str, Any] = {}
        stack: list[tuple[Any, Any, str, int]] = [(source, root, join(at, key), 1)]
        while stack:
            src, dst, path, depth = stack.pop()
            if depth > _MAX_VALUES_DEPTH:
                self.error(path, f"nested deeper than {_MAX_VALUES_DEPTH} levels")
                continue
            items = src.items() if isinstance(src, Mapping) else enumerate(src)
            for k, v in items:
                if isinstance(src, Mapping) and not isinstance(k, str):
                    self.error(f"{path}[{k!r}]", f"keys must be strings, got {json_type(k)}")
                    continue
                child_path = join(path, k) if isinstance(k, str) else f"{path}[{k}]"
                child: Any
                if isinstance(v, Mapping):
                    child = {}
                    stack.append((v, child, child_path, depth + 1))
                elif isinstance(v, list | tuple):
                    child = [None] * len(v)
                    stack.append((v, child, child_path, depth + 1))
                elif v is None or isinstance(v, str | int) or (isinstance(v, float) and math.isfinite(v)):
                    child = v  # bool is an int
                elif isinstance(v, float):
                    self.error(child_path, f"must be a finite number, got {v}")
                    continue
                else:
                    self.error(child_path, f"not a JSON value ({json_type(v)})")
                    continue
                dst[k] = child
        return root
