"""Tag policies: which tags an image may move to, in which order, and the decision for one image.

Place in the data flow: ``images.find`` reads a HelmRelease's annotations (and the agent's policy
file) into :class:`ReleaseSettings` and one :class:`Policy` per image; the registry client lists
:class:`~gitops_helm.images.model.Candidate` tags; :func:`decide` picks the tag to write, or says
why nothing is written. Pure: strings, candidates and ``now`` in, a :class:`Decision` out.

Rules (README "Image automation"):

- Filters ``semver:<range>`` (Helm's ranges, ``charts.semver``; pre-releases only when the range
  has a pre-release comparator), ``glob:<pattern>`` (``*`` is the only wildcard, whole tag),
  ``regex:<pattern>`` (``regexp:`` too; RE2 syntax and semantics, as Go's regexp in Flux, searched
  unanchored like Flux v1: linear in the tag's length whatever the pattern, so a tenant's filter
  cannot stall the agent; backreferences do not exist in RE2). A filter
  without a prefix is a glob; no filter is ``glob:*``.
- Ordering: semver filters order by version; glob and regex by build time (the candidates'
  ``created``), ties broken by the greater tag so the answer never depends on listing order.
- ``latest`` (any case) is never chosen unless the filter is exactly ``glob:latest``.
- Never a downgrade: a candidate is taken only when strictly newer than the current tag by the
  ordering in force. A current tag the ordering cannot place (not a version under semver, not in
  the registry under build time) is left for the newest matching tag, and the decision says so.
- ``min-age``: a candidate built less than that long ago waits; the newest old-enough candidate
  is taken meanwhile, and the decision names the waiting tag and when it becomes eligible.
- Digest pinning (``pin-digest``, or a current reference that already carries a digest): the
  reference is written ``tag@digest``; a pinned tag whose digest moved is updated too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import re2

from gitops_helm.charts.semver import ConstraintError, Version, VersionError, parse_constraint, parse_version
from gitops_helm.errors import GitopsHelmError
from gitops_helm.images.model import Candidate, ImageRef, ReferenceError, parse_reference

__all__ = [
    "AUTOMATED",
    "CHART_VERSION",
    "LOCKED",
    "LOCKED_MSG",
    "MIN_AGE",
    "PIN_DIGEST",
    "Action",
    "Decision",
    "DeclaredPolicy",
    "Filter",
    "FilterKind",
    "Order",
    "Policy",
    "PolicyError",
    "ReleaseSettings",
    "decide",
    "image_policy",
    "parse_duration",
    "parse_filter",
    "parse_policy_file",
    "release_settings",
]

AUTOMATED = "fluxcd.io/automated"
LOCKED = "fluxcd.io/locked"
LOCKED_MSG = "fluxcd.io/locked_msg"
FILTER_PREFIX = "filter.fluxcd.io/"
LEGACY_FILTER_PREFIX = "fluxcd.io/tag."
MIN_AGE = "gitops-helm.io/min-age"
MIN_AGE_PREFIX = "min-age.gitops-helm.io/"
PIN_DIGEST = "gitops-helm.io/pin-digest"
PIN_DIGEST_PREFIX = "pin-digest.gitops-helm.io/"
CHART_VERSION = "gitops-helm.io/chart-version"

_MAX_PATTERN = 1024  # a longer filter is a mistake, and bounds the cost of compiling a regex


class PolicyError(GitopsHelmError):
    """A policy that cannot be used (bad filter, duration, two policies for one image). Permanent;
    the message names the annotation or policy entry."""

    temporary = False


class FilterKind(StrEnum):
    SEMVER = "semver"
    GLOB = "glob"
    REGEX = "regex"


class Order(StrEnum):
    VERSION = "version"  # semver precedence
    BUILD_TIME = "build-time"  # the image's creation time (config blob)


@dataclass(frozen=True)
class Filter:
    """A parsed tag filter; ``text`` is what the user wrote (``semver:~1.0``)."""

    kind: FilterKind
    pattern: str
    text: str
    _regex: Any = field(default=None, repr=False, compare=False)  # an RE2 pattern (regex filters)

    @property
    def order(self) -> Order:
        return Order.VERSION if self.kind is FilterKind.SEMVER else Order.BUILD_TIME

    def matches(self, tag: str) -> bool:
        """Whether ``tag`` passes (``latest`` only for the literal ``glob:latest``)."""
        if tag.lower() == "latest" and not (self.kind is FilterKind.GLOB and self.pattern == "latest"):
            return False
        if self.kind is FilterKind.SEMVER:
            try:
                return parse_constraint(self.pattern).matches(parse_version(tag))
            except VersionError:
                return False
        if self.kind is FilterKind.GLOB:
            return _glob_matches(self.pattern, tag)
        assert self._regex is not None  # noqa: S101 - set by parse_filter for regex filters
        return self._regex.search(tag) is not None


def _glob_matches(pattern: str, tag: str) -> bool:
    """Whether ``tag`` matches the ``*``-glob ``pattern`` (each ``*`` any run of characters but a
    line break). Linear: each literal part is found leftmost after the previous one, which is
    exact for ``*``-only globs; a backtracking regex (``.*a.*a...``) is exponential in the stars,
    and would hold the interpreter lock for hours on a crafted filter."""
    parts = pattern.split("*")
    if len(parts) == 1:
        return tag == pattern
    if "\n" in tag:
        return False
    first, *middle, last = parts
    end = len(tag) - len(last)
    if end < len(first) or not tag.startswith(first) or not tag.endswith(last):
        return False
    pos = len(first)
    for part in middle:
        found = tag.find(part, pos, end)
        if found < 0:
            return False
        pos = found + len(part)
    return True


ALL_TAGS: Filter


def parse_filter(text: str, where: str = "filter") -> Filter:
    """``semver:<range>``, ``glob:<pattern>``, ``regex:<pattern>`` (or a bare glob).

    Raises :class:`PolicyError` naming ``where`` for an invalid range or regular expression.
    """
    if len(text) > _MAX_PATTERN:
        raise PolicyError(f"{where}: filter is longer than {_MAX_PATTERN} characters")
    prefix, colon, rest = text.partition(":")
    kind_text = prefix.strip().lower() if colon else ""
    if kind_text == "semver":
        pattern = rest.strip()
        try:
            parse_constraint(pattern)
        except ConstraintError as exc:
            raise PolicyError(f"{where}: invalid semver range: {exc}") from None
        return Filter(FilterKind.SEMVER, pattern, text)
    if kind_text in ("regex", "regexp"):
        return Filter(FilterKind.REGEX, rest, text, _compile_re2(rest, where))
    if colon and kind_text != "glob":  # a tag holds no ":", so this is a misspelt prefix
        raise PolicyError(f"{where}: unknown filter {prefix!r} (use semver:, glob: or regex:)")
    pattern = rest if colon else text
    return Filter(FilterKind.GLOB, pattern, text)


def _compile_re2(pattern: str, where: str) -> Any:
    """An RE2 pattern: matching is linear in the input, so no filter can make the agent
    backtrack for hours while it holds the interpreter lock (Python's ``re`` would)."""
    options = re2.Options()
    options.log_errors = False  # the error is raised (and named) below, not printed by RE2
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        detail = (
            exc.args[0].decode("utf-8", "replace") if exc.args and isinstance(exc.args[0], bytes) else exc
        )
        raise PolicyError(
            f"{where}: invalid regular expression {pattern!r}: {detail} (RE2 syntax, as in Flux; "
            "no backreferences or lookarounds)"
        ) from None


ALL_TAGS = parse_filter("glob:*")


_DURATION_RE = re.compile(r"(\d+)([dhms])")
_UNIT = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_duration(text: str, where: str = "duration") -> timedelta:
    """``2h``, ``30m``, ``1h30m``, ``1d``, ``90s``. Raises :class:`PolicyError` naming ``where``."""
    stripped = text.strip()
    parts = _DURATION_RE.findall(stripped)
    if not stripped or "".join(n + u for n, u in parts) != stripped:
        raise PolicyError(f"{where}: {text!r} is not a duration (examples: 30m, 2h, 1h30m, 1d)")
    return timedelta(seconds=sum(int(n) * _UNIT[u] for n, u in parts))


@dataclass(frozen=True)
class Policy:
    """How one image is updated; ``source`` names where it was declared, for messages."""

    filter: Filter = ALL_TAGS
    min_age: timedelta | None = None
    pin_digest: bool = False
    source: str = "default (glob:*)"


@dataclass(frozen=True)
class ReleaseSettings:
    """The release-wide annotations: automation switch, lock, defaults, chart version policy.

    ``problems``: annotations that could not be read; each is a per-release error.
    """

    automated: bool = False
    locked: bool = False
    locked_msg: str = ""
    min_age: timedelta | None = None
    pin_digest: bool = False
    chart_filter: Filter | None = None
    problems: tuple[str, ...] = ()


def _flag(annotations: Mapping[str, Any], key: str, problems: list[str]) -> bool:
    value = annotations.get(key)
    if value is None:
        return False
    if not isinstance(value, str):
        problems.append(f'annotation {key}: {value!r} must be a quoted string ("true")')
        return False
    if value.strip().lower() not in ("true", "false"):
        problems.append(f'annotation {key}: {value!r} is neither "true" nor "false"')
        return False
    return value.strip().lower() == "true"


def release_settings(annotations: Mapping[str, Any]) -> ReleaseSettings:
    """Read the release-wide annotations; unreadable ones become ``problems``, never exceptions."""
    problems: list[str] = []
    automated = _flag(annotations, AUTOMATED, problems)
    locked = _flag(annotations, LOCKED, problems)
    pin = _flag(annotations, PIN_DIGEST, problems)
    min_age: timedelta | None = None
    chart_filter: Filter | None = None
    text = annotations.get(MIN_AGE)
    if text is not None:
        try:
            min_age = parse_duration(str(text), f"annotation {MIN_AGE}")
        except PolicyError as exc:
            problems.append(str(exc))
    text = annotations.get(CHART_VERSION)
    if text is not None:
        try:
            chart_filter = parse_filter(str(text), f"annotation {CHART_VERSION}")
        except PolicyError as exc:
            problems.append(str(exc))
        else:
            if chart_filter.kind is not FilterKind.SEMVER:
                problems.append(
                    f"annotation {CHART_VERSION}: {text!r}: chart versions take semver: ranges only"
                )
                chart_filter = None
    locked_msg = annotations.get(LOCKED_MSG)
    return ReleaseSettings(
        automated=automated,
        locked=locked,
        locked_msg=str(locked_msg) if locked_msg is not None else "",
        min_age=min_age,
        pin_digest=pin,
        chart_filter=chart_filter,
        problems=tuple(problems),
    )


def image_policy(
    annotations: Mapping[str, Any],
    settings: ReleaseSettings,
    name: str,
    declared: DeclaredPolicy | None = None,
) -> Policy:
    """The policy of image ``name`` of a release: its filter annotation (``filter.fluxcd.io/<name>``
    or the legacy ``fluxcd.io/tag.<name>``) or a declared policy (setter markers), with per-image
    ``min-age.gitops-helm.io/<name>`` and ``pin-digest.gitops-helm.io/<name>`` over the release's.

    Raises :class:`PolicyError` naming the annotations for an invalid value or two policies.
    """
    sources: list[tuple[str, str]] = []
    for key in (FILTER_PREFIX + name, LEGACY_FILTER_PREFIX + name):
        value = annotations.get(key)
        if value is not None:
            sources.append((f"annotation {key}", str(value)))
    if len(sources) == 2 and sources[0][1] == sources[1][1]:
        sources.pop()  # the same filter written both ways is one policy
    if declared is not None:
        sources.append((declared.source, declared.policy.filter.text))
    if len(sources) > 1:
        named = " and ".join(f"{where} ({text!r})" for where, text in sources)
        raise PolicyError(f"two policies for one image: {named}; keep one")
    min_age = settings.min_age
    pin = settings.pin_digest
    if declared is not None:
        min_age = declared.policy.min_age if declared.policy.min_age is not None else min_age
        pin = declared.policy.pin_digest or pin
    key = MIN_AGE_PREFIX + name
    if annotations.get(key) is not None:
        min_age = parse_duration(str(annotations[key]), f"annotation {key}")
    key = PIN_DIGEST_PREFIX + name
    if annotations.get(key) is not None:
        flag_problems: list[str] = []
        pin = _flag(annotations, key, flag_problems)
        if flag_problems:
            raise PolicyError(flag_problems[0])
    if declared is not None:
        return Policy(declared.policy.filter, min_age, pin, declared.source)
    if sources:
        where, text = sources[0]
        return Policy(parse_filter(text, where), min_age, pin, where)
    return Policy(ALL_TAGS, min_age, pin)


@dataclass(frozen=True)
class DeclaredPolicy:
    """A policy of the agent's policy file, referenced by setter markers as ``namespace:name``."""

    name: str
    image: ImageRef
    policy: Policy
    source: str


def parse_policy_file(data: Any, source: str) -> tuple[dict[str, DeclaredPolicy], list[str]]:
    """The policies of the agent's policy file (already decoded YAML), and its problems.

    Shape::

        policies:
          - name: flux-system:podinfo       # what setter markers reference
            image: ghcr.io/stefanprodan/podinfo
            filter: semver:~6.5             # default glob:*
            minAge: 2h                      # optional
            pinDigest: true                 # optional

    An entry with a problem is left out and reported (naming ``source`` and the entry); the others
    are kept. A name declared twice is an error for both entries.
    """
    problems: list[str] = []
    declared: dict[str, DeclaredPolicy] = {}
    twice: set[str] = set()
    if data is None:
        return declared, problems
    entries = data.get("policies") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        return declared, [f"{source}: expected a mapping with a 'policies' list"]
    for index, entry in enumerate(entries):
        where = f"{source}: policies[{index}]"
        try:
            item = _declared(entry, where)
        except PolicyError as exc:
            problems.append(str(exc))
            continue
        if item.name in declared or item.name in twice:
            problems.append(f"{where}: policy {item.name!r} is declared twice")
            declared.pop(item.name, None)
            twice.add(item.name)
            continue
        declared[item.name] = item
    return declared, problems


def _declared(entry: Any, where: str) -> DeclaredPolicy:
    if not isinstance(entry, dict):
        raise PolicyError(f"{where}: expected a mapping")
    unknown = sorted(set(entry) - {"name", "image", "filter", "minAge", "pinDigest"})
    if unknown:
        raise PolicyError(f"{where}: unknown field(s) {', '.join(unknown)}")
    name, image = entry.get("name"), entry.get("image")
    if not isinstance(name, str) or name.count(":") != 1 or not all(name.split(":")):
        raise PolicyError(f"{where}.name: expected 'namespace:name', got {name!r}")
    where = f"{where} ({name})"
    if not isinstance(image, str):
        raise PolicyError(f"{where}.image: expected an image repository, got {image!r}")
    try:
        ref = parse_reference(image)
    except ReferenceError as exc:
        raise PolicyError(f"{where}.image: {exc}") from None
    if ref.tag or ref.digest:
        raise PolicyError(f"{where}.image: {image!r}: a repository without tag or digest")
    text = entry.get("filter", "glob:*")
    if not isinstance(text, str):
        raise PolicyError(f"{where}.filter: expected a string, got {text!r}")
    tag_filter = parse_filter(text, f"{where}.filter")
    min_age = entry.get("minAge")
    if min_age is not None and not isinstance(min_age, str):
        raise PolicyError(f"{where}.minAge: expected a duration string such as 2h, got {min_age!r}")
    pin = entry.get("pinDigest", False)
    if not isinstance(pin, bool):
        raise PolicyError(f"{where}.pinDigest: expected true or false, got {pin!r}")
    policy = Policy(
        tag_filter,
        parse_duration(min_age, f"{where}.minAge") if min_age is not None else None,
        pin,
        f"policy {name} of {where.split(':')[0]}",
    )
    return DeclaredPolicy(name, ref, policy, policy.source)


# ---------------------------------------------------------------------------------------------
# the decision


class Action(StrEnum):
    UPDATE = "update"  # write tag (and digest)
    KEEP = "keep"  # nothing newer, or nothing allowed
    WAIT = "wait"  # only younger-than-min-age candidates are newer
    LOCKED = "locked"


@dataclass(frozen=True)
class Decision:
    """What to do with one image. ``tag``/``digest``: the version to write (UPDATE). ``waiting``:
    a newer tag that is not old enough yet and when it will be."""

    action: Action
    reason: str
    tag: str = ""
    digest: str = ""
    waiting: tuple[str, datetime | None] | None = None


def locked(settings: ReleaseSettings) -> Decision:
    message = f": {settings.locked_msg}" if settings.locked_msg else ""
    return Decision(Action.LOCKED, f"locked ({LOCKED}){message}")


@dataclass(frozen=True)
class _Ranked:
    candidate: Candidate
    key: tuple[Any, ...]


def _rank(candidates: Iterable[Candidate], order: Order) -> tuple[list[_Ranked], list[str]]:
    """Candidates with their sort key; tags the ordering cannot place are named apart."""
    ranked: list[_Ranked] = []
    unplaced: list[str] = []
    for candidate in candidates:
        if order is Order.VERSION:
            version = _version(candidate.tag)
            if version is None:
                unplaced.append(candidate.tag)
                continue
            # equal precedence: the longer spelling (1.10.0 over 1.10), then the greater text
            ranked.append(_Ranked(candidate, (version, len(candidate.tag), candidate.tag)))
        else:
            if candidate.created is None or candidate.created.timestamp() <= 0:
                unplaced.append(candidate.tag)
                continue
            ranked.append(_Ranked(candidate, (candidate.created, candidate.tag)))
    ranked.sort(key=lambda r: r.key)
    return ranked, unplaced


def _version(tag: str) -> Version | None:
    try:
        return parse_version(tag)
    except VersionError:
        return None


def _newer(best: _Ranked, current: _Ranked) -> bool:
    # strictly newer by the ordering itself (1.10 and 1.10.0 are the same version: no flapping)
    return bool(best.key[0] > current.key[0])


def decide(
    policy: Policy,
    current_tag: str,
    candidates: Sequence[Candidate],
    now: datetime,
    *,
    current_digest: str = "",
) -> Decision:
    """The decision for one image at ``now`` (timezone-aware), given the registry's candidates."""
    tag_filter = policy.filter
    order = tag_filter.order
    matching = [c for c in candidates if tag_filter.matches(c.tag)]
    ranked, unplaced = _rank(matching, order)
    if not ranked:
        why = f"no tag matches {tag_filter.text}"
        if unplaced:
            need = "a build time" if order is Order.BUILD_TIME else "a version"
            why += f" with {need} ({len(unplaced)} matching tag(s) without one, e.g. {unplaced[0]!r})"
        return Decision(Action.KEEP, why)
    pin = policy.pin_digest or bool(current_digest)
    current_entry = _current(current_tag, candidates, order)
    eligible = ranked
    waiting: tuple[str, datetime | None] | None = None
    if policy.min_age is not None:
        min_age = policy.min_age
        eligible = [r for r in ranked if _old_enough(r.candidate, min_age, now)]
        floor = eligible[-1].key if eligible else None
        younger = [r for r in ranked if floor is None or r.key > floor]
        if younger:
            created = younger[-1].candidate.created
            waiting = (younger[-1].candidate.tag, created + min_age if created is not None else None)
    note = ""
    if current_entry is None:
        what = "not a version" if order is Order.VERSION else "not in the registry (no build time to compare)"
        note = f"; current tag {current_tag!r} is {what}, so the newest matching tag is taken"
    elif not tag_filter.matches(current_tag):
        note = f"; current tag {current_tag!r} does not match {tag_filter.text} (compared by {order})"
    best = eligible[-1] if eligible else None
    if best is not None and (current_entry is None or _newer(best, current_entry)):
        return _update(
            best.candidate, pin, f"{best.candidate.tag} is the newest tag matching {tag_filter.text}" + note
        )
    if waiting is not None and (current_entry is None or _newer(ranked[-1], current_entry)):
        tag, until = waiting
        when = f"eligible at {until.isoformat()}" if until is not None else "its build time is unknown"
        return Decision(
            Action.WAIT,
            f"{tag} is younger than min-age {_duration_text(policy.min_age)}; {when}",
            waiting=waiting,
        )
    if pin and best is not None and best.candidate.tag == current_tag:
        digest = best.candidate.digest
        if digest and digest != current_digest:
            return _update(best.candidate, pin, f"tag {current_tag} now points to {digest}")
    top = ranked[-1].candidate.tag
    if current_entry is not None and current_entry.key[0] > ranked[-1].key[0]:
        return Decision(
            Action.KEEP,
            f"current {current_tag} is newer than {top}, the newest matching {tag_filter.text}: no downgrade",
        )
    return Decision(Action.KEEP, f"current {current_tag} is the newest matching {tag_filter.text}")


def _old_enough(candidate: Candidate, min_age: timedelta, now: datetime) -> bool:
    return candidate.created is not None and candidate.created + min_age <= now


def _current(tag: str, candidates: Sequence[Candidate], order: Order) -> _Ranked | None:
    if order is Order.VERSION:
        version = _version(tag)
        return _Ranked(Candidate(tag), (version, len(tag), tag)) if version is not None else None
    for candidate in candidates:
        if candidate.tag == tag and candidate.created is not None and candidate.created.timestamp() > 0:
            return _Ranked(candidate, (candidate.created, tag))
    return None


def _update(candidate: Candidate, pin: bool, reason: str) -> Decision:
    if pin and not candidate.digest:
        return Decision(
            Action.KEEP, f"{candidate.tag}: digest unknown, and the reference is pinned by digest"
        )
    return Decision(Action.UPDATE, reason, candidate.tag, candidate.digest if pin else "")


def _duration_text(value: timedelta | None) -> str:
    seconds = int(value.total_seconds()) if value is not None else 0
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts) or "0s"
