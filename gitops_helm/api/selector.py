"""Kubernetes label selectors: parsed, checked and matched as the API server does.

Place in the data flow: ``--watch-label-selector`` and ``--shard`` become one
:class:`LabelSelector` at startup (a bad one is refused there with the reason, not at the first
list); the controller sends its text to the API server (server-side filtering of the HelmRelease
list and watch) and both the controller and the reconciler match objects against it locally, so a
HelmRelease whose labels moved it out of this agent's shard is never acted on here, whatever a
watch may still deliver.

The grammar is apimachinery's ``labels.Parse``: comma-separated requirements, each one of
``key``, ``!key``, ``key=value``, ``key==value``, ``key!=value``, ``key in (a,b)``,
``key notin (a,b)``, ``key>N``, ``key<N``; the empty selector matches everything. Keys are
qualified names (``prefix/name``), values label values.

Sharding: :data:`SHARD_LABEL` ``gitops-helm.io/shard`` (Flux's ``sharding.fluxcd.io/key``);
:func:`shard_selector` gives the requirement of one shard, and ``!gitops-helm.io/shard`` takes the
HelmReleases of no shard (the catch-all agent).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from gitops_helm.api.errors import APIError

__all__ = ["SHARD_LABEL", "LabelSelector", "Operator", "Requirement", "SelectorError", "parse_selector"]

SHARD_LABEL = "gitops-helm.io/shard"

_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_INTEGER = re.compile(r"^[-+]?[0-9]+$")
# one lexeme: punctuation of the grammar, or a run of anything else but spaces
_TOKEN = re.compile(r"\s*(==|!=|[=!(),<>]|[^\s=!(),<>]+)")


class SelectorError(APIError):
    """A label selector that the API server would refuse; the message says where and why."""


class Operator(StrEnum):
    EXISTS = "exists"
    NOT_EXISTS = "!"
    EQUALS = "="
    NOT_EQUALS = "!="
    IN = "in"
    NOT_IN = "notin"
    GREATER = ">"
    LESS = "<"


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: Operator
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key, "")
        op = self.operator
        if op is Operator.EXISTS:
            return present
        if op is Operator.NOT_EXISTS:
            return not present
        if op in (Operator.EQUALS, Operator.IN):
            return present and value in self.values
        if op in (Operator.NOT_EQUALS, Operator.NOT_IN):
            return not present or value not in self.values
        # > and <: the label must hold an integer (apimachinery's rule; anything else: no match)
        if not present or not _INTEGER.match(value):
            return False
        bound = int(self.values[0])
        return int(value) > bound if op is Operator.GREATER else int(value) < bound

    def __str__(self) -> str:
        op = self.operator
        if op is Operator.EXISTS:
            return self.key
        if op is Operator.NOT_EXISTS:
            return f"!{self.key}"
        if op in (Operator.IN, Operator.NOT_IN):
            return f"{self.key} {op} ({','.join(self.values)})"
        return f"{self.key}{op}{self.values[0]}"


@dataclass(frozen=True)
class LabelSelector:
    """All requirements must hold; no requirement: everything matches."""

    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    def __bool__(self) -> bool:
        return bool(self.requirements)

    def __str__(self) -> str:
        """The text sent to the API server (``labelSelector``): parses back to an equal selector."""
        return ",".join(str(r) for r in self.requirements)

    def with_requirements(self, other: LabelSelector) -> LabelSelector:
        """Both selectors at once (the requirements of ``self`` first, duplicates once)."""
        extra = tuple(r for r in other.requirements if r not in self.requirements)
        return LabelSelector(self.requirements + extra)

    def matches_object(self, obj: Mapping[str, object]) -> bool:
        """Whether a Kubernetes object (as API data) carries labels this selector matches."""
        meta = obj.get("metadata")
        labels = meta.get("labels") if isinstance(meta, Mapping) else None
        if not isinstance(labels, Mapping):
            return self.matches({})
        return self.matches({str(k): str(v) for k, v in labels.items()})


def shard_selector(shard: str) -> LabelSelector:
    """The HelmReleases of shard ``shard``: ``gitops-helm.io/shard=<shard>``."""
    check_value(shard, "the shard name")
    return LabelSelector((Requirement(SHARD_LABEL, Operator.EQUALS, (shard,)),))


def check_key(key: str) -> None:
    """A label key: ``name`` or ``prefix/name`` (prefix a DNS subdomain up to 253 characters,
    name up to 63 of letters, digits, ``-``, ``_``, ``.``, starting and ending alphanumeric)."""
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        raise SelectorError(
            f"label key {key!r}: the prefix before '/' must be a DNS subdomain "
            "(lower-case letters, digits, '-' and '.', at most 253 characters)"
        )
    if not name or len(name) > 63 or not _NAME.match(name):
        raise SelectorError(
            f"label key {key!r}: the name must be 1 to 63 letters, digits, '-', '_' or '.', "
            "starting and ending with a letter or digit"
        )


def check_value(value: str, what: str = "") -> None:
    """A label value: empty, or up to 63 letters, digits, ``-``, ``_``, ``.``, starting and
    ending alphanumeric."""
    if len(value) > 63 or not _VALUE.match(value):
        raise SelectorError(
            f"{what or 'label value'} {value!r}: must be at most 63 letters, digits, '-', '_' or "
            "'.', starting and ending with a letter or digit"
        )


class _Tokens:
    def __init__(self, text: str) -> None:
        self.items: list[str] = []
        pos = 0
        stripped = text.rstrip()
        while pos < len(stripped):
            match = _TOKEN.match(stripped, pos)
            if match is None:  # pragma: no cover - the pattern accepts every non-space character
                raise SelectorError(f"unexpected text at character {pos + 1}")
            self.items.append(match.group(1))
            pos = match.end()
        self.pos = 0

    def peek(self) -> str | None:
        return self.items[self.pos] if self.pos < len(self.items) else None

    def take(self) -> str | None:
        lexeme = self.peek()
        if lexeme is not None:
            self.pos += 1
        return lexeme


_PUNCTUATION = frozenset({"==", "!=", "=", "!", "(", ")", ",", "<", ">"})


def _identifier(lexeme: str | None, expected: str) -> str:
    if lexeme is None:
        raise SelectorError(f"{expected} expected at the end")
    if lexeme in _PUNCTUATION:
        raise SelectorError(f"{expected} expected, found {lexeme!r}")
    return lexeme


def _requirement(tokens: _Tokens) -> Requirement:
    if tokens.peek() == "!":
        tokens.take()
        key = _identifier(tokens.take(), "a label key after '!'")
        check_key(key)
        return Requirement(key, Operator.NOT_EXISTS)
    key = _identifier(tokens.take(), "a label key")
    check_key(key)
    op_text = tokens.peek()
    if op_text is None or op_text == ",":
        return Requirement(key, Operator.EXISTS)
    tokens.take()
    if op_text in ("=", "==", "!="):
        value = tokens.peek()
        if value is None or value == ",":
            value = ""  # ``key=`` is the empty value, as apimachinery reads it
        else:
            value = _identifier(tokens.take(), f"a value after {key}{op_text}")
        check_value(value)
        return Requirement(key, Operator.NOT_EQUALS if op_text == "!=" else Operator.EQUALS, (value,))
    if op_text in ("<", ">"):
        bound = _identifier(tokens.take(), f"a whole number after {key}{op_text}")
        if not _INTEGER.match(bound):
            raise SelectorError(f"{key}{op_text}{bound}: {bound!r} is not a whole number")
        return Requirement(key, Operator.GREATER if op_text == ">" else Operator.LESS, (bound,))
    if op_text in ("in", "notin"):
        return Requirement(key, Operator(op_text), _values(tokens, f"{key} {op_text}"))
    raise SelectorError(
        f"after the label key {key!r}: expected =, ==, !=, in, notin, <, > or ',', found {op_text!r}"
    )


def _values(tokens: _Tokens, where: str) -> tuple[str, ...]:
    if tokens.take() != "(":
        raise SelectorError(f"{where}: expected '(' and a list of values")
    values: list[str] = []
    expect_value = True
    while True:
        lexeme = tokens.take()
        if lexeme is None:
            raise SelectorError(f"{where}: ')' missing after the values")
        if lexeme == ")":
            if expect_value:
                values.append("")  # ``()`` or a trailing comma: the empty value (apimachinery's rule)
            break
        if lexeme == ",":
            if expect_value:
                values.append("")
            expect_value = True
            continue
        if not expect_value:
            raise SelectorError(f"{where}: expected ',' or ')' after {values[-1]!r}, found {lexeme!r}")
        value = _identifier(lexeme, f"a value in {where} (...)")
        check_value(value)
        values.append(value)
        expect_value = False
    return tuple(dict.fromkeys(values))  # a set: duplicates once, order kept for messages


def parse_selector(text: str) -> LabelSelector:
    """Parse ``text`` as the API server would; :class:`SelectorError` naming the problem."""
    tokens = _Tokens(text)
    requirements: list[Requirement] = []
    if tokens.peek() is None:
        return LabelSelector()
    while True:
        requirements.append(_requirement(tokens))
        lexeme = tokens.take()
        if lexeme is None:
            break
        if lexeme != ",":
            raise SelectorError(f"expected ',' between requirements, found {lexeme!r}")
        if tokens.peek() is None:
            raise SelectorError("a requirement expected after the last ','")
    return LabelSelector(tuple(dict.fromkeys(requirements)))
