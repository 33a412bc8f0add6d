"""Chart version selection with Helm's semver constraint rules.

Place in the data flow: the chart source (``gitops_helm.charts``) reads a Helm repository
index, then calls :func:`select_version` with ``spec.chart.version`` and the versions listed
for the chart. The result is the exact version to download, and becomes part of the release
digest, so a range resolves to one concrete version and the cache key is that version (never
the literal range; see Helm Operator issue #469). :func:`is_exact` tells the caller when the
index needs no range resolution.

Pure: strings in, strings out. No I/O.

Rules (Helm resolves versions with Masterminds semver v3, ``repo.IndexFile.Get``):

* A constraint is one or more AND groups joined by ``||``. Inside a group, comparators are
  separated by whitespace or commas: ``>=1.0 <2``, ``>=1.0, <2``.
* Operators: ``=`` (or none), ``!=``, ``>``, ``<``, ``>=`` (``=>``), ``<=`` (``=<``), ``~``
  (``~>``), ``^``. Hyphen ranges ``1.2 - 1.4.5`` (spaces around the hyphen are required;
  ``1.2-1.4.5`` is version 1.2 with pre-release ``1.4.5``) mean ``>=1.2, <=1.4.5``.
* A missing or wildcard (``x``, ``X``, ``*``) part makes the comparator a range:
  ``1.2.x``/``1.2``/``=1.2`` mean ``>=1.2.0 <1.3.0``; ``*`` means any release; ``<=2.x``
  means ``<3``; ``>1.2`` means ``>=1.3.0``; ``~1.2.3`` means ``>=1.2.3 <1.3.0``; ``~1`` means
  ``>=1 <2``; ``^1.2.3`` means ``>=1.2.3 <2``; ``^0.2.3`` means ``>=0.2.3 <0.3``;
  ``^0.0.3`` means ``=0.0.3``; a leading ``v`` is ignored.
* Pre-releases: an AND group that contains no comparator with a pre-release matches no
  pre-release version at all. A group with at least one pre-release comparator considers
  pre-releases for every comparator in the group, whatever their major.minor.patch
  (``>=1.0.0-0 <2`` matches ``1.5.0-beta``). This is where Masterminds differs from npm (and
  from ``semantic_version.NpmSpec``), which only admits pre-releases of the same
  major.minor.patch as the pre-release comparator.
* Index selection: a version string equal to the constraint string wins first (so build
  metadata can be selected exactly), then the highest version by semver precedence that
  satisfies the constraint. Entries that are not versions are skipped. An empty constraint
  means ``*`` (the latest release), as in Helm. Equal precedence (``1.0.0+a`` vs ``1.0.0+b``)
  is broken by the greater string, so the answer does not depend on index order.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import total_ordering

__all__ = [
    "Constraint",
    "ConstraintError",
    "Version",
    "VersionError",
    "is_exact",
    "parse_constraint",
    "parse_version",
    "select_version",
]


class ConstraintError(ValueError):
    """A version constraint that cannot be parsed. The message names the constraint."""


class VersionError(ValueError):
    """A string that is not a semantic version."""


# Helm (Masterminds semver) reads each numeric part as a uint64; a longer one is not a version.
# Checked before int(), which would refuse more than 4300 digits with a bare ValueError.
MAX_PART = 2**64 - 1
_MAX_PART_DIGITS = len(str(MAX_PART))

_NUM = r"0|[1-9][0-9]*"
_PRE_IDENT = r"(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)"
_BUILD_IDENT = r"[0-9A-Za-z-]+"
_VERSION_RE = re.compile(
    rf"^v?({_NUM})(?:\.({_NUM}))?(?:\.({_NUM}))?"
    rf"(?:-({_PRE_IDENT}(?:\.{_PRE_IDENT})*))?"
    rf"(?:\+({_BUILD_IDENT}(?:\.{_BUILD_IDENT})*))?$"
)


@total_ordering
@dataclass(frozen=True, eq=False)
class Version:
    """A semantic version; ordering and equality follow semver precedence (build ignored)."""

    major: int
    minor: int
    patch: int
    prerelease: tuple[int | str, ...] = ()
    build: str = ""
    original: str = ""

    def _key(self) -> tuple[int, int, int, int, tuple[tuple[int, int, str], ...]]:
        # A release sorts after all of its pre-releases; numeric identifiers sort before
        # alphanumeric ones; alphanumerics compare in ASCII order.
        pre = tuple((0, p, "") if isinstance(p, int) else (1, 0, p) for p in self.prerelease)
        return (self.major, self.minor, self.patch, 0 if self.prerelease else 1, pre)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key() == other._key()

    def __lt__(self, other: Version) -> bool:
        return self._key() < other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            text += "-" + ".".join(str(p) for p in self.prerelease)
        if self.build:
            text += "+" + self.build
        return text


def _number(digits: str) -> int | None:
    """The value of an ASCII digit string, or None when it exceeds :data:`MAX_PART`."""
    if len(digits) > _MAX_PART_DIGITS:
        return None
    value = int(digits)
    return value if value <= MAX_PART else None


def _checked_parts(parts: Iterable[str | None], text: str, error: type[ValueError]) -> None:
    """Raise ``error`` when a numeric part of ``text`` is larger than Helm accepts."""
    for part in parts:
        if part is not None and part.isascii() and part.isdigit() and _number(part) is None:
            shown = text if len(text) <= 64 else text[:61] + "..."
            raise error(f"{shown!r}: a numeric part is larger than {MAX_PART}")


def _split_pre(pre: str | None) -> tuple[int | str, ...]:
    if not pre:
        return ()
    return tuple(int(p) if p.isascii() and p.isdigit() else p for p in pre.split("."))


def parse_version(text: str) -> Version:
    """Parse a version as Helm reads index entries: ``v`` prefix and ``1.2`` are accepted."""
    m = _VERSION_RE.match(text.strip())
    if m is None:
        shown = text if len(text) <= 64 else text[:61] + "..."
        raise VersionError(f"{shown!r} is not a semantic version")
    major, minor, patch, pre, build = m.groups()
    _checked_parts((major, minor, patch, *(pre or "").split(".")), text, VersionError)
    return Version(int(major), int(minor or 0), int(patch or 0), _split_pre(pre), build or "", original=text)


# ---------------------------------------------------------------------------------------------
# constraints

_OPS = ("!=", ">=", "=>", "<=", "=<", "~>", "=", ">", "<", "~", "^", "")
_WILD = {"x", "X", "*"}
_PART = r"(?:[0-9]+|[xX*])"
_CV = (
    rf"v?{_PART}(?:\.{_PART})?(?:\.{_PART})?"
    r"(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?"
    r"(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?"
)
_OP_RE = r"!=|>=|=>|<=|=<|~>|=|>|<|~|\^"
_COMPARATOR_RE = re.compile(rf"({_OP_RE})?\s*({_CV})(?=$|[\s,])")
_SEPARATOR_RE = re.compile(r"\s*,\s*|\s+")
_HYPHEN_RE = re.compile(rf"(?:^|(?<=[\s,|]))({_CV})\s+-\s+({_CV})(?=$|[\s,|])")
_CV_PARTS_RE = re.compile(
    rf"^v?({_PART})(?:\.({_PART}))?(?:\.({_PART}))?(?:-([0-9A-Za-z.-]+))?(?:\+([0-9A-Za-z.-]+))?$"
)


@dataclass(frozen=True)
class _Comparator:
    op: str
    ver: Version  # wildcard and missing parts are zero
    major_wild: bool  # "*" or "x": every part is open
    minor_wild: bool  # "1" or "1.x"
    patch_wild: bool  # "1.2" or "1.2.x"
    text: str

    @property
    def dirty(self) -> bool:
        return self.major_wild or self.minor_wild or self.patch_wild

    def matches(self, v: Version) -> bool:
        op = self.op
        c = self.ver
        if op in ("", "="):
            return self._tilde(v) if self.dirty else v == c
        if op == "!=":
            return self._not_equal(v)
        if op == ">":
            if not self.dirty or self.major_wild:
                return v > c
            if v.major != c.major:
                return v.major > c.major
            # ">1" needs 2.0.0 or more; ">1.2" needs 1.3.0 or more
            return (not self.minor_wild) and v.minor > c.minor
        if op == "<":
            return v < c
        if op in (">=", "=>"):
            return v >= c
        if op in ("<=", "=<"):
            if not self.dirty:
                return v <= c
            if v.major > c.major:
                return False
            return not (v.major == c.major and v.minor > c.minor and not self.minor_wild)
        if op in ("~", "~>"):
            return self._tilde(v)
        return self._caret(v)

    def _tilde(self, v: Version) -> bool:
        c = self.ver
        if v < c:
            return False
        if (c.major, c.minor, c.patch) == (0, 0, 0) and not (self.minor_wild or self.patch_wild):
            return True  # "~0.0.0", "*" and "~*": anything from 0.0.0 up
        if v.major != c.major:
            return False
        return self.minor_wild or v.minor == c.minor

    def _caret(self, v: Version) -> bool:
        c = self.ver
        if v < c:
            return False
        if c.major > 0 or self.minor_wild:
            return v.major == c.major
        if v.major > 0:
            return False
        if c.minor > 0 or self.patch_wild:
            return v.minor == c.minor
        if v.minor > 0:
            return False
        return v.patch == c.patch

    def _not_equal(self, v: Version) -> bool:
        c = self.ver
        if self.dirty:
            if v.major != c.major:
                return True
            if self.minor_wild:
                return False
            if v.minor != c.minor:
                return True
            if self.patch_wild:
                return v.prerelease != c.prerelease
        return v != c


@dataclass(frozen=True)
class Constraint:
    """A parsed constraint: OR of AND groups. Build it with :func:`parse_constraint`."""

    text: str
    groups: tuple[tuple[_Comparator, ...], ...]

    def matches(self, version: Version | str) -> bool:
        """Whether ``version`` satisfies the constraint (Masterminds ``Check``)."""
        v = parse_version(version) if isinstance(version, str) else version
        for group in self.groups:
            allow_pre = any(cmp.ver.prerelease for cmp in group)
            if v.prerelease and not allow_pre:
                continue
            if all(cmp.matches(v) for cmp in group):
                return True
        return False


def _parse_comparator(op: str, cv: str, constraint: str) -> _Comparator:
    m = _CV_PARTS_RE.match(cv)
    if m is None:  # pragma: no cover - _CV and _CV_PARTS_RE accept the same strings
        raise ConstraintError(f"invalid version constraint {constraint!r}: {cv!r}")
    major, minor, patch, pre, build = m.groups()
    _checked_parts((major, minor, patch, *(pre or "").split(".")), cv, ConstraintError)
    major_wild = major in _WILD
    minor_wild = not major_wild and (minor is None or minor in _WILD)
    patch_wild = not (major_wild or minor_wild) and (patch is None or patch in _WILD)
    nums = [p for p in (major, minor, patch) if p is not None and p not in _WILD]
    if any(len(p) > 1 and p.startswith("0") for p in nums):
        raise ConstraintError(f"invalid version constraint {constraint!r}: leading zero in {cv!r}")
    prerelease = _split_pre(pre)
    for ident in pre.split(".") if pre else ():
        if not ident or (ident.isdigit() and len(ident) > 1 and ident.startswith("0")):
            raise ConstraintError(f"invalid version constraint {constraint!r}: bad pre-release in {cv!r}")
    if build is not None and "" in build.split("."):
        raise ConstraintError(f"invalid version constraint {constraint!r}: bad build metadata in {cv!r}")

    def num(part: str | None, open_: bool) -> int:
        return 0 if open_ or part is None or part in _WILD else int(part)

    ver = Version(
        num(major, major_wild),
        num(minor, major_wild or minor_wild),
        num(patch, major_wild or minor_wild or patch_wild),
        prerelease,
        build or "",
        original=cv,
    )
    return _Comparator(op, ver, major_wild, minor_wild, patch_wild, text=f"{op}{cv}")


def _parse_group(segment: str, constraint: str) -> tuple[_Comparator, ...]:
    comparators: list[_Comparator] = []
    pos = 0
    text = segment.strip()
    if not text:
        raise ConstraintError(f"invalid version constraint {constraint!r}: empty alternative")
    while pos < len(text):
        if comparators:
            sep = _SEPARATOR_RE.match(text, pos)
            if sep is None or sep.end() == pos:
                raise ConstraintError(
                    f"invalid version constraint {constraint!r}: expected a space or comma at {text[pos:]!r}"
                )
            pos = sep.end()
        m = _COMPARATOR_RE.match(text, pos)
        if m is None or m.end() == pos:
            raise ConstraintError(f"invalid version constraint {constraint!r}: cannot parse {text[pos:]!r}")
        comparators.append(_parse_comparator(m.group(1) or "", m.group(2), constraint))
        pos = m.end()
    return tuple(comparators)


def parse_constraint(constraint: str) -> Constraint:
    """Parse a Helm/Masterminds constraint; :class:`ConstraintError` names it when invalid."""
    text = constraint.strip() or "*"
    text = _HYPHEN_RE.sub(lambda m: f">={m.group(1)}, <={m.group(2)}", text)
    groups = tuple(_parse_group(segment, constraint) for segment in text.split("||"))
    return Constraint(constraint, groups)


def is_exact(constraint: str) -> bool:
    """True when the constraint names one version (``1.2.3``, ``v1.2.3``, ``=1.2.3-rc.1``).

    Such a constraint needs no range resolution: the chart source only checks that the index
    (or the registry) has that version.
    """
    try:
        parsed = parse_constraint(constraint)
    except ConstraintError:
        return False
    if len(parsed.groups) != 1 or len(parsed.groups[0]) != 1:
        return False
    cmp = parsed.groups[0][0]
    return cmp.op in ("", "=") and not cmp.dirty and constraint.strip() != ""


def select_version(constraint: str, versions: Iterable[str]) -> str | None:
    """The entry of ``versions`` that Helm would pick for ``constraint``, or None.

    Raises :class:`ConstraintError` when the constraint is invalid (whatever the versions).
    """
    parsed = parse_constraint(constraint)
    candidates = list(versions)
    wanted = constraint.strip()
    if wanted and wanted in candidates:
        return wanted
    best: tuple[Version, str] | None = None
    for text in candidates:
        try:
            v = parse_version(text)
        except VersionError:
            continue
        if not parsed.matches(v):
            continue
        if best is None or (v, text) > best:
            best = (v, text)
    return None if best is None else best[1]
