"""The one YAML decoder of gitops-helm: bounded, with positions, shaped like Kubernetes' decoding.

Place in the data flow: every YAML the agent reads goes through here (manifests from Git in
``sync.discover``, values in ``values``, release manifests in ``release.drift``/``release.observe``,
``Chart.yaml``, ``repositories.yaml``, Helm repository indexes, the packaged CRD), and the few
writers use :func:`dump`. Nothing else in the package imports PyYAML (an import-linter contract).

Built on PyYAML's parser and composer (the C ones, libyaml, when PyYAML has them); the composed
nodes are turned into data here, in one pass that applies every rule below.

What comes out (JSON data, as Kubernetes and helm see a YAML file):

- mappings are ``dict[str, ...]``, sequences are ``list``, scalars are ``str``, ``int``,
  ``float``, ``bool`` or ``None``, resolved as PyYAML's YAML 1.1 resolver does (``yes`` is true,
  ``1.10`` is a float), except that timestamps stay the string that was written
  (``2024-01-02`` is ``"2024-01-02"``, never a ``datetime``);
- ``!!binary`` is the one exception: ``bytes`` (JSON has none; each caller decides:
  ``sync.discover`` sends it base64-encoded like a Kubernetes ``[]byte`` field, ``values``
  refuses it);
- aliases and merge keys (``<<``) are expanded into fresh copies: nothing is shared, so callers
  may modify what they get, and every copy counts against :attr:`Limits.max_nodes`;
- empty documents (nothing, or only ``null``) are skipped by :func:`load_all`; :func:`load`
  returns ``None`` for them.

Mapping keys become strings by the rule of Kubernetes' own YAML-to-JSON conversion
(``sigs.k8s.io/yaml``, used by kubectl, helm and the Helm Operator), see :func:`key_text`:
a string stays itself; ``true``/``false`` become ``"true"``/``"false"``; an integer its decimal
digits; a float Go's ``strconv.FormatFloat(f, 'g', -1, 32)`` (``1.5`` -> ``"1.5"``, ``1.0`` ->
``"1"``, ``1000000.0`` -> ``"1e+06"``), with ``.inf``, ``-.inf``, ``.nan`` for the non-finite
ones. One deviation, kept because both callers always accepted it: a ``null`` key becomes
``"null"`` (Kubernetes refuses it). A sequence, mapping or ``!!binary`` key is an error.

Two keys of one mapping that give the same string (``a`` twice, or ``1`` and ``"1"``) are an
error naming both lines when ``unique_keys`` is true (the default; Git manifests); with
``unique_keys=False`` the last one wins, as helm does for values files and chart metadata.
Keys brought in by a merge key never clash with the mapping's own keys: the own ones win.

Values JSON cannot hold are errors: ``.nan``, ``.inf``, ``!!set``, and tags no one knows.
A caller that needs stricter rules checks the data after decoding.

Limits (:class:`Limits`, one set for every caller, :data:`LIMITS`; only the Helm repository
index, which may legitimately be as large as helmrepo's ``max_index_bytes``, passes larger ones):
bytes of input, values per document after alias and merge expansion ("billion laughs"), and
nesting depth. Files are read with :func:`read_file`, which stops one byte past the byte limit.

Memory: a composed node tree costs about 25 times its text, so ``strings_only`` documents (the
large ones: repository indexes) are built straight from the parser's events instead, and
``reduce_at`` lets the caller drop what it does not need as each value is built (an index of
20 MiB then costs about 2.5 times its size at its peak).

Every failure is one :class:`YAMLError` (permanent) with the 1-based line and column when known;
callers add the file or field. ``syntax`` tells whether the text is not YAML at all, or is YAML
that breaks one of the rules above.
"""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from gitops_helm.errors import GitopsHelmError

try:
    from yaml import CBaseLoader as _BaseLoader
    from yaml import CSafeLoader as _SafeLoader

    _LIBYAML = True
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import BaseLoader as _BaseLoader  # type: ignore[assignment]
    from yaml import SafeLoader as _SafeLoader  # type: ignore[assignment]

    _LIBYAML = False

__all__ = [
    "LIMITS",
    "Document",
    "Limits",
    "Reducer",
    "YAMLError",
    "dump",
    "key_text",
    "load",
    "load_all",
    "read_file",
]

_MiB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """Bounds on one decoding. Real manifests, values and charts stay far below all three."""

    max_bytes: int = 32 * _MiB  # of the whole input (a Kubernetes object is at most 1.5 MiB)
    max_nodes: int = 1_000_000  # values of one document, after alias and merge expansion
    max_depth: int = 400  # nesting of sequences and mappings in one document


#: The limits of every caller but the Helm repository index.
LIMITS: Final = Limits()

#: ``(depth, reduce)`` of :func:`load`: what to keep of each value nested ``depth`` levels deep.
Reducer = tuple[int, Callable[[Any], Any]]


class YAMLError(GitopsHelmError):
    """YAML that cannot be decoded. Permanent: only a change of the text fixes it.

    ``problem`` says what is wrong without position; ``line`` and ``column`` are 1-based (None
    when unknown); ``syntax`` is true when the text is not well-formed YAML (including unknown
    tags, bad scalars for their tag, and non-scalar keys), false when it is YAML that breaks a
    rule of this decoder (a limit, a duplicate key, a value JSON cannot hold). ``str()`` is
    ``"line L, column C: problem"``. The problem may quote the text: callers decoding secret
    material show only :attr:`position`.
    """

    temporary = False

    def __init__(self, problem: str, line: int | None = None, column: int | None = None, *, syntax: bool):
        self.problem = problem
        self.line = line
        self.column = column
        self.syntax = syntax
        super().__init__(f"{self.position}: {problem}" if self.position else problem)

    @property
    def position(self) -> str:
        """``"line L, column C"``, ``"line L"`` or ``""``."""
        if self.line is None:
            return ""
        return f"line {self.line}" + (f", column {self.column}" if self.column is not None else "")


@dataclass(frozen=True, eq=False)
class Document:
    """One decoded document of :func:`load_all`: its data and the line where it starts."""

    data: Any
    line: int
    _node: Node = field(repr=False)

    def line_of(self, path: Sequence[str | int]) -> int | None:
        """The line where the value at ``path`` (mapping keys and sequence indices) starts.

        Keys are matched as written (a merge key's mapping is looked into when the key is not the
        mapping's own); None when the path does not lead to a value.
        """
        node: Node | None = self._node
        for step in path:
            node = _child(node, step) if node is not None else None
        return node.start_mark.line + 1 if node is not None else None


# --- the one key rule --------------------------------------------------------------------------


def key_text(key: object) -> str:
    """A decoded mapping key as the string Kubernetes and helm make of it (see module doc).

    Raises ``TypeError`` for a key that has no string form (a sequence, mapping, bytes).
    """
    if isinstance(key, str):
        return key
    if isinstance(key, bool):
        return "true" if key else "false"
    if key is None:
        return "null"
    if isinstance(key, int):
        return str(key)
    if isinstance(key, float):
        return _go_float32(key)
    raise TypeError(f"unsupported map key of type {type(key).__name__}")


def _as_float32(value: float) -> float:
    try:
        return float(struct.unpack("<f", struct.pack("<f", value))[0])
    except OverflowError:  # beyond float32: Go's conversion gives an infinity
        return math.copysign(math.inf, value)


def _go_float32(value: float) -> str:
    """``strconv.FormatFloat(value, 'g', -1, 32)``, with YAML's names for non-finite values."""
    if math.isnan(value):
        return ".nan"
    f32 = _as_float32(value)
    if math.isinf(f32):
        return ".inf" if f32 > 0 else "-.inf"
    sign = "-" if math.copysign(1.0, f32) < 0 else ""
    if f32 == 0:
        return sign + "0"
    # the shortest decimal digits that read back as the same float32
    for precision in range(9):
        text = f"{abs(f32):.{precision}e}"
        if _as_float32(float(text)) == abs(f32):
            break
    mantissa, exponent_text = text.split("e")
    digits = mantissa.replace(".", "").rstrip("0") or "0"
    exponent = int(exponent_text)
    if exponent < -4 or exponent >= 6:  # %e form (precision 6 decides, as Go does for shortest)
        tail = "." + digits[1:] if len(digits) > 1 else ""
        return f"{sign}{digits[0]}{tail}e{'-' if exponent < 0 else '+'}{abs(exponent):02d}"
    if exponent < 0:
        return f"{sign}0.{'0' * (-exponent - 1)}{digits}"
    whole, fraction = digits[: exponent + 1], digits[exponent + 1 :]
    return f"{sign}{whole.ljust(exponent + 1, '0')}{'.' + fraction if fraction else ''}"


# --- decoding ----------------------------------------------------------------------------------

_TAG = "tag:yaml.org,2002:"
_STR, _NULL, _BOOL, _INT, _FLOAT = (_TAG + t for t in ("str", "null", "bool", "int", "float"))
_BINARY, _TIMESTAMP, _MERGE, _VALUE = (_TAG + t for t in ("binary", "timestamp", "merge", "value"))
_SEQ, _MAP, _SET, _OMAP, _PAIRS = (_TAG + t for t in ("seq", "map", "set", "omap", "pairs"))

_SafeConstructor = yaml.constructor.SafeConstructor
_SCALARS: Final = {
    _NULL: _SafeConstructor.construct_yaml_null,
    _BOOL: _SafeConstructor.construct_yaml_bool,
    _INT: _SafeConstructor.construct_yaml_int,
    _FLOAT: _SafeConstructor.construct_yaml_float,
    _BINARY: _SafeConstructor.construct_yaml_binary,
}
_AS_WRITTEN: Final = frozenset({_STR, _TIMESTAMP, _VALUE, _MERGE})  # scalars kept as their text


class _Loader(_SafeLoader):
    """PyYAML's safe parser, composer and resolver, without the timestamp resolver."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _TIMESTAMP]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


class _StringsLoader(_BaseLoader):
    """PyYAML's base parser and composer: no implicit types, every plain scalar is a string."""


def _short(tag: str) -> str:
    return "!!" + tag[len(_TAG) :] if tag.startswith(_TAG) else tag


def _mark(node: Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _error(node: Node, problem: str, *, syntax: bool) -> YAMLError:
    return YAMLError(problem, *_mark(node), syntax=syntax)


def _kind(node: Node) -> str:
    return "list" if isinstance(node, SequenceNode) else "dict"


class _Builder:
    """Turns the composed nodes of one document into data, applying every rule of the module."""

    __slots__ = ("budget", "limits", "loader", "strings_only", "unique_keys")

    def __init__(self, loader: Any, limits: Limits, *, unique_keys: bool, strings_only: bool) -> None:
        self.loader = loader
        self.limits = limits
        self.unique_keys = unique_keys
        self.strings_only = strings_only
        self.budget = limits.max_nodes

    def document(self, node: Node) -> Any:
        self.budget = self.limits.max_nodes
        return self.build(node, 0)

    def build(self, node: Node, depth: int) -> Any:
        self.budget -= 1
        if self.budget < 0:
            message = f"document expands to more than {self.limits.max_nodes} values (YAML aliases?)"
            raise _error(node, message, syntax=False)
        if depth > self.limits.max_depth:
            message = f"document is nested more than {self.limits.max_depth} levels deep"
            raise _error(node, message, syntax=False)
        if isinstance(node, ScalarNode):
            return node.value if self.strings_only else self.scalar(node, key=False)
        tag = node.tag
        if isinstance(node, SequenceNode):
            if tag == _SEQ or self.strings_only:
                out: list[Any] = []
                for item in node.value:
                    out.append(self.build(item, depth + 1))
                return out
            if tag in (_OMAP, _PAIRS):  # ordered pairs: [[key, value], ...] as PyYAML's tuples were
                return self.pairs(node, depth)
        elif isinstance(node, MappingNode):
            if tag == _MAP or self.strings_only:
                return self.mapping(node, depth)
            if tag == _SET:
                raise _error(node, "unsupported YAML value of type set", syntax=False)
        raise _error(node, f"could not determine a constructor for the tag {tag!r}", syntax=True)

    def scalar(self, node: ScalarNode, *, key: bool) -> Any:
        tag = node.tag
        if tag in _AS_WRITTEN:
            return node.value
        construct = _SCALARS.get(tag)
        if construct is None:
            raise _error(node, f"could not determine a constructor for the tag {tag!r}", syntax=True)
        try:
            value = construct(self.loader, node)
        except Exception:  # e.g. "!!int abc": the constructors raise ValueError, KeyError, ...
            raise _error(node, f"invalid {_short(tag)} value", syntax=True) from None
        if not key and isinstance(value, float) and not math.isfinite(value):
            raise _error(node, f"unsupported number {value}", syntax=False)
        return value

    def key(self, node: Node) -> str:
        if not isinstance(node, ScalarNode):
            raise _error(node, f"unsupported map key of type {_kind(node)}", syntax=True)
        if node.tag == _STR or self.strings_only:
            return str(node.value)
        value = self.scalar(node, key=True)
        try:
            return key_text(value)
        except TypeError as exc:
            raise _error(node, str(exc), syntax=True) from None

    def mapping(self, node: MappingNode, depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        first: dict[str, Node] | None = {} if self.unique_keys else None
        merged: dict[str, Any] | None = None
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE and not self.strings_only:
                merged = merged if merged is not None else {}
                merged.update(self.merge_source(value_node, depth + 1))
                continue
            name = self.key(key_node)
            if first is not None:
                if name in first:
                    raise _duplicate(name, first[name], key_node)
                first[name] = key_node
            out[name] = self.build(value_node, depth + 1)
        if merged is None:
            return out
        merged.update(out)  # the mapping's own keys win over merged ones
        return merged

    def merge_source(self, node: Node, depth: int) -> dict[str, Any]:
        """The mapping a merge key brings: a mapping, or a list where earlier mappings win."""
        if isinstance(node, MappingNode):
            source: dict[str, Any] = self.build(node, depth)
            return source
        if isinstance(node, SequenceNode):
            out: dict[str, Any] = {}
            for item in reversed(node.value):
                if not isinstance(item, MappingNode):
                    raise _error(item, "expected a mapping for merging", syntax=True)
                out.update(self.build(item, depth + 1))
            return out
        raise _error(node, "expected a mapping or list of mappings for merging", syntax=True)

    def pairs(self, node: SequenceNode, depth: int) -> list[Any]:
        out: list[Any] = []
        for item in node.value:
            if not isinstance(item, MappingNode) or len(item.value) != 1:
                raise _error(item, f"expected a single-pair mapping in {_short(node.tag)}", syntax=True)
            key_node, value_node = item.value[0]
            out.append([self.build(key_node, depth + 1), self.build(value_node, depth + 1)])
        return out


class _StreamingStrings:
    """Builds one strings-only document straight from the parser's events, never composing nodes.

    PyYAML's composed node tree costs about 25 times the text (a 20 MB Helm repository index made
    the process grow by 500 MiB); built from events, only the data is kept (about 3 times the
    text, keys and short values shared). Same rules and limits as :class:`_Builder` with
    ``strings_only``: every scalar is its text, anchors and aliases are expanded into copies that
    count against the limits, tags are ignored, ``<<`` is an ordinary key.
    """

    __slots__ = ("anchors", "budget", "limits", "loader", "reduce_at", "shared", "unique_keys")

    def __init__(
        self, loader: Any, limits: Limits, *, unique_keys: bool, reduce_at: Reducer | None = None
    ) -> None:
        self.loader = loader
        self.limits = limits
        self.unique_keys = unique_keys
        self.reduce_at = reduce_at
        self.budget = limits.max_nodes
        self.anchors: dict[str, Any] = {}
        self.shared: dict[str, str] = {}  # one object for each short text seen (keys, "v2", ...)

    def document(self) -> Any:
        """The data of the stream's single document (None when there is none)."""
        loader = self.loader
        loader.get_event()  # StreamStartEvent
        if loader.check_event(yaml.StreamEndEvent):
            return None
        loader.get_event()  # DocumentStartEvent
        data = self.build(loader.get_event(), 0)
        loader.get_event()  # DocumentEndEvent
        if not loader.check_event(yaml.StreamEndEvent):
            mark = loader.peek_event().start_mark
            problem = "expected a single document in the stream, but found another document"
            raise YAMLError(problem, mark.line + 1, mark.column + 1, syntax=True)
        return data

    def spend(self, event: Any, depth: int) -> None:
        self.budget -= 1
        if self.budget < 0:
            message = f"document expands to more than {self.limits.max_nodes} values (YAML aliases?)"
            raise _event_error(event, message)
        if depth > self.limits.max_depth:
            raise _event_error(event, f"document is nested more than {self.limits.max_depth} levels deep")

    def text(self, value: str) -> str:
        if len(value) > 32:
            return value
        return self.shared.setdefault(value, value)

    def build(self, event: Any, depth: int) -> Any:
        self.spend(event, depth)
        if isinstance(event, yaml.AliasEvent):
            if event.anchor not in self.anchors:
                raise _event_error(event, f"found undefined alias {event.anchor!r}", syntax=True)
            self.budget += 1  # the copy counts every value it holds, this one included
            return self.copy(self.anchors[event.anchor], event, depth)
        data: Any
        if isinstance(event, yaml.ScalarEvent):
            data = self.text(event.value)
        elif isinstance(event, yaml.SequenceStartEvent):
            data = []
            while not self.loader.check_event(yaml.SequenceEndEvent):
                data.append(self.build(self.loader.get_event(), depth + 1))
            self.loader.get_event()
        else:
            data = self.mapping(event, depth)
        if self.reduce_at is not None and depth == self.reduce_at[0]:
            data = self.reduce_at[1](data)
        if event.anchor is not None:
            self.anchors[event.anchor] = data
        return data

    def mapping(self, start: Any, depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        first: dict[str, Any] = {}
        while not self.loader.check_event(yaml.MappingEndEvent):
            key_event = self.loader.get_event()
            key = self.build(key_event, depth + 1)
            if not isinstance(key, str):
                kind = "list" if isinstance(key, list) else "dict"
                raise _event_error(key_event, f"unsupported map key of type {kind}", syntax=True)
            if self.unique_keys:
                if key in first:
                    line = first[key].start_mark.line + 1
                    raise _event_error(key_event, f"duplicate mapping key '{key}' (first at line {line})")
                first[key] = key_event
            out[key] = self.build(self.loader.get_event(), depth + 1)
        self.loader.get_event()
        return out

    def copy(self, data: Any, event: Any, depth: int) -> Any:
        self.spend(event, depth)
        if isinstance(data, list):
            return [self.copy(item, event, depth + 1) for item in data]
        if isinstance(data, dict):
            return {key: self.copy(value, event, depth + 1) for key, value in data.items()}
        return data


def _event_error(event: Any, problem: str, *, syntax: bool = False) -> YAMLError:
    return YAMLError(problem, event.start_mark.line + 1, event.start_mark.column + 1, syntax=syntax)


def _duplicate(name: str, first: Node, again: Node) -> YAMLError:
    same = (first.tag, first.value) == (again.tag, again.value)
    how = "" if same else " after conversion to string"
    message = f"duplicate mapping key '{name}'{how} (first at line {_mark(first)[0]})"
    return _error(again, message, syntax=False)


def _child(node: Node, step: str | int) -> Node | None:
    if isinstance(node, SequenceNode) and isinstance(step, int):
        return node.value[step] if 0 <= step < len(node.value) else None
    if not isinstance(node, MappingNode):
        return None
    found: Node | None = None
    merges: list[Node] = []
    for key_node, value_node in node.value:
        if key_node.tag == _MERGE:
            merges.append(value_node)
        elif isinstance(key_node, ScalarNode) and key_node.value == step:
            found = value_node
    if found is not None:
        return found
    for source in reversed(merges):  # a later merge key wins; in a list, an earlier mapping wins
        for candidate in source.value if isinstance(source, SequenceNode) else [source]:
            found = _child(candidate, step)
            if found is not None:
                return found
    return None


def _size(text: str | bytes) -> int:
    if isinstance(text, bytes) or text.isascii():
        return len(text)
    return len(text.encode("utf-8", "surrogatepass"))


def _line_and_column(text: str | bytes, offset: int, *, in_bytes: bool) -> tuple[int, int]:
    """1-based line and column (in characters) of an offset counted in bytes or characters."""
    data = text.encode("utf-8", "surrogatepass") if in_bytes and isinstance(text, str) else text
    if isinstance(data, bytes):
        start = data.rfind(b"\n", 0, offset) + 1
        return data.count(b"\n", 0, offset) + 1, len(data[start:offset].decode("utf-8", "replace")) + 1
    return data.count("\n", 0, offset) + 1, offset - data.rfind("\n", 0, offset)


def _is_tab_at(text: str | bytes, line: int, column: int) -> bool:
    """Whether a tab is at 0-based ``line`` and ``column`` of ``text`` (an error's position)."""
    data = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    start = 0
    for _ in range(line):
        start = data.find("\n", start) + 1
        if start == 0:
            return False
    return data[start + column : start + column + 1] == "\t"


def _converted(exc: Exception, text: str | bytes) -> YAMLError:
    """One :class:`YAMLError` for whatever PyYAML (or Python, on odd input) raised."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        if exc.problem and exc.context and exc.problem.startswith("but "):  # "expected X but found Y"
            problem = f"{exc.context} {exc.problem}"
        elif exc.problem and exc.context and exc.context_mark is not None:
            problem += f" ({exc.context} at line {exc.context_mark.line + 1})"
        if mark is None:
            return YAMLError(problem, syntax=True)
        if "cannot start any token" in problem and _is_tab_at(text, mark.line, mark.column):
            problem = "a tab character: YAML indents with spaces, never tabs"  # the parser names no character
        return YAMLError(problem, mark.line + 1, mark.column + 1, syntax=True)
    if isinstance(exc, yaml.reader.ReaderError):
        # libyaml counts bytes of the UTF-8 text; the pure-Python reader counts characters
        line, column = _line_and_column(text, exc.position, in_bytes=_LIBYAML)
        character = f" (character #x{exc.character:04x})" if isinstance(exc.character, int) else ""
        return YAMLError(f"{exc.reason}{character}", line, column, syntax=True)
    if isinstance(exc, RecursionError):  # pragma: no cover - only the pure-Python composer recurses
        return YAMLError("nested too deeply", syntax=False)
    if isinstance(exc, UnicodeError):  # a str holding lone surrogates cannot be encoded for libyaml
        return YAMLError("not valid Unicode text", syntax=True)
    return YAMLError(str(exc) or type(exc).__name__, syntax=True)


def _loader(text: str | bytes, limits: Limits, strings_only: bool) -> Any:
    if _size(text) > limits.max_bytes:
        raise YAMLError(f"YAML text is larger than the limit of {limits.max_bytes} bytes", syntax=False)
    return (_StringsLoader if strings_only else _Loader)(text)


@contextmanager
def _decoding(
    text: str | bytes, limits: Limits, unique_keys: bool, strings_only: bool
) -> Iterator[tuple[Any, _Builder]]:
    """A loader and a builder for ``text``; every failure inside leaves as a :class:`YAMLError`."""
    loader = None
    try:
        loader = _loader(text, limits, strings_only)
        yield loader, _Builder(loader, limits, unique_keys=unique_keys, strings_only=strings_only)
    except YAMLError:
        raise
    except (yaml.YAMLError, RecursionError, UnicodeError) as exc:
        raise _converted(exc, text) from None
    finally:
        if loader is not None:
            loader.dispose()


def load(
    text: str | bytes,
    *,
    limits: Limits = LIMITS,
    unique_keys: bool = True,
    strings_only: bool = False,
    reduce_at: Reducer | None = None,
) -> Any:
    """The data of a single-document YAML text (None when it is empty). Raises :class:`YAMLError`.

    ``strings_only``: no implicit types, no merge keys, every scalar is its text (as PyYAML's
    BaseLoader: ``version: 1.10`` stays ``"1.10"``, ``~`` stays ``"~"``); for the Helm repository
    index, whose versions must not become floats.

    ``reduce_at`` (with ``strings_only``): ``(depth, reduce)``; every value nested ``depth``
    levels deep is replaced by ``reduce(value)`` as soon as it is built, so that a caller needing
    little of a large document never holds all of it (the top-level value is at depth 0).
    """
    with _decoding(text, limits, unique_keys, strings_only) as (loader, builder):
        if strings_only:  # the large inputs (repository indexes): built from events, see the class
            return _StreamingStrings(loader, limits, unique_keys=unique_keys, reduce_at=reduce_at).document()
        node = loader.get_single_node()
        return None if node is None else builder.document(node)


def load_all(
    text: str | bytes,
    *,
    limits: Limits = LIMITS,
    unique_keys: bool = True,
    strings_only: bool = False,
) -> list[Document]:
    """Every non-empty document of a YAML stream, with its first line. Raises :class:`YAMLError`.

    All or nothing: a stream with one bad document gives no document at all.
    """
    documents: list[Document] = []
    with _decoding(text, limits, unique_keys, strings_only) as (loader, builder):
        while loader.check_node():
            node = loader.get_node()
            data = builder.document(node)
            if data is not None:
                documents.append(Document(data, node.start_mark.line + 1, node))
    return documents


def read_file(path: str | os.PathLike[str], *, limits: Limits = LIMITS) -> bytes:
    """The bytes of a YAML file for :func:`load`, never more than ``limits.max_bytes`` in memory.

    A larger file (a hostile chart's ``Chart.yaml`` or values file) is a :class:`YAMLError`
    after reading one byte over the limit, not after reading the whole file. ``OSError`` as
    ``open`` raises it.
    """
    with open(path, "rb") as fh:
        data = fh.read(limits.max_bytes + 1)
    if len(data) > limits.max_bytes:
        raise YAMLError(f"YAML file is larger than the limit of {limits.max_bytes} bytes", syntax=False)
    return data


def dump(data: Any, *, sort_keys: bool = True) -> str:
    """Plain data (JSON types) as block-style YAML that :func:`load` reads back equal."""
    text: str = yaml.dump(data, Dumper=yaml.SafeDumper, default_flow_style=False, sort_keys=sort_keys)
    return text
