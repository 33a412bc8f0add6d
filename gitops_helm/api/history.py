"""`status.history`: the last attempts on a HelmRelease's release, newest first (PURE).

Place in the data flow: the release actions build one :class:`HistoryEntry` per helm action
they run (install, upgrade, rollback, uninstall, test) and add it to the status with
:func:`add_entry` (a test of the revision the newest entry produced completes that entry
instead: :func:`record_test`); the entry goes out in the same status patch as the action's
outcome. `gitops-helm history` reads it back with :func:`parse_history`.

An entry says which Git commit of the HelmRelease (the sync's ``gitops-helm.io/commit``
annotation), which chart (name, version, content digest) and which values (a keyed digest:
readable by anyone who may read the HelmRelease, so it must not allow testing guesses of Secret
values) produced which Helm revision, how the action ended and what its test said. A rollback
entry describes what it restored (the entry of the revision rolled back to, when the history
still holds it) and names that revision in ``rolledBackTo``.

The list is bounded twice: by the agent's ``--status-history-limit`` when an entry is added, and
by :data:`MAX_HISTORY` (also the CRD's ``maxItems``) when one is read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

__all__ = [
    "COMMIT_ANNOTATION",
    "DEFAULT_HISTORY",
    "MAX_HISTORY",
    "AttemptOutcome",
    "HistoryAction",
    "HistoryEntry",
    "add_entry",
    "entry_for_revision",
    "parse_history",
    "record_test",
    "serialise_history",
]

#: The Git commit an object's current text was applied from, written by the Git sync
#: (``sync.plan.commit_to_record``); the reconciler copies a HelmRelease's into each entry.
COMMIT_ANNOTATION = "gitops-helm.io/commit"
#: Entries kept unless the agent is told otherwise (``--status-history-limit``).
DEFAULT_HISTORY = 5
#: The most entries a status holds (the CRD's ``maxItems``; the flag's upper bound).
MAX_HISTORY = 50
_MAX_TEXT = 256  # longest string kept in an entry read back (chart names, digests, commits)


class HistoryAction(StrEnum):
    INSTALL = "install"
    UPGRADE = "upgrade"
    ROLLBACK = "rollback"
    UNINSTALL = "uninstall"
    TEST = "test"


class AttemptOutcome(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"


_TEST_RESULTS = frozenset({"passed", "failed"})
_ACTIONS = frozenset(a.value for a in HistoryAction)
_OUTCOMES = frozenset(o.value for o in AttemptOutcome)
# actions whose entry describes what a Helm revision holds
_PRODUCERS = (HistoryAction.INSTALL, HistoryAction.UPGRADE, HistoryAction.ROLLBACK)


@dataclass(frozen=True)
class HistoryEntry:
    """One attempt; times are RFC 3339 text (UTC, seconds), unknown parts are None."""

    action: HistoryAction
    outcome: AttemptOutcome
    started_at: str
    finished_at: str
    helm_revision: int | None = None  # the revision the action produced (removed, for uninstall)
    git_commit: str | None = None
    chart_name: str | None = None
    chart_version: str | None = None
    chart_digest: str | None = None
    values_digest: str | None = None
    test_result: str | None = None  # passed, failed; None: not tested
    rolled_back_to: int | None = None


_FIELDS: tuple[tuple[str, str], ...] = (
    ("action", "action"),
    ("outcome", "outcome"),
    ("helm_revision", "helmRevision"),
    ("git_commit", "gitCommit"),
    ("chart_name", "chartName"),
    ("chart_version", "chartVersion"),
    ("chart_digest", "chartDigest"),
    ("values_digest", "valuesDigest"),
    ("test_result", "testResult"),
    ("rolled_back_to", "rolledBackTo"),
    ("started_at", "startedAt"),
    ("finished_at", "finishedAt"),
)


def add_entry(history: tuple[HistoryEntry, ...], entry: HistoryEntry, limit: int) -> tuple[HistoryEntry, ...]:
    """``entry`` first, then the newest of ``history``: at most ``limit`` entries (0: none)."""
    return (entry, *history)[: max(0, min(limit, MAX_HISTORY))]


def record_test(
    history: tuple[HistoryEntry, ...], test: HistoryEntry, limit: int
) -> tuple[HistoryEntry, ...]:
    """Record ``test`` (a ``test`` entry of Helm revision ``test.helm_revision``).

    When the newest entry is the install or upgrade that produced that revision and holds no test
    result yet, the test completes it (its result, outcome and end time): one line answers "was
    it tested". Otherwise (a test of a revision whose entry is gone, or a second test) the test
    is an entry of its own."""
    newest = history[0] if history else None
    if (
        newest is not None
        and newest.helm_revision == test.helm_revision
        and newest.action in (HistoryAction.INSTALL, HistoryAction.UPGRADE)
        and newest.outcome is AttemptOutcome.SUCCEEDED
        and newest.test_result is None
    ):
        tested = replace(
            newest, test_result=test.test_result, outcome=test.outcome, finished_at=test.finished_at
        )
        return (tested, *history[1:])[: max(0, min(limit, MAX_HISTORY))]
    return add_entry(history, test, limit)


def entry_for_revision(history: tuple[HistoryEntry, ...], revision: int | None) -> HistoryEntry | None:
    """The newest entry that produced Helm revision ``revision`` (install, upgrade, rollback)."""
    if revision is None:
        return None
    return next((e for e in history if e.helm_revision == revision and e.action in _PRODUCERS), None)


def serialise_history(history: tuple[HistoryEntry, ...]) -> list[dict[str, Any]]:
    """camelCase objects, unset fields omitted."""
    result = []
    for entry in history:
        item: dict[str, Any] = {}
        for attr, key in _FIELDS:
            value = getattr(entry, attr)
            if value is not None:
                item[key] = str(value) if isinstance(value, StrEnum) else value
        result.append(item)
    return result


def _text(raw: Mapping[str, Any], key: str) -> str | None:
    value = raw.get(key)
    return value[:_MAX_TEXT] if isinstance(value, str) and value else None


def _number(raw: Mapping[str, Any], key: str) -> int | None:
    value = raw.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _entry(raw: object) -> HistoryEntry | None:
    if not isinstance(raw, Mapping):
        return None
    action, outcome = _text(raw, "action"), _text(raw, "outcome")
    if action not in _ACTIONS or outcome not in _OUTCOMES:
        return None
    test_result = _text(raw, "testResult")
    return HistoryEntry(
        action=HistoryAction(str(action)),
        outcome=AttemptOutcome(str(outcome)),
        started_at=_text(raw, "startedAt") or "",
        finished_at=_text(raw, "finishedAt") or "",
        helm_revision=_number(raw, "helmRevision"),
        git_commit=_text(raw, "gitCommit"),
        chart_name=_text(raw, "chartName"),
        chart_version=_text(raw, "chartVersion"),
        chart_digest=_text(raw, "chartDigest"),
        values_digest=_text(raw, "valuesDigest"),
        test_result=test_result if test_result in _TEST_RESULTS else None,
        rolled_back_to=_number(raw, "rolledBackTo"),
    )


def parse_history(raw: object) -> tuple[HistoryEntry, ...]:
    """Read ``status.history`` leniently: an entry of unknown action or outcome is left out, a
    field of the wrong type reads as unset, at most :data:`MAX_HISTORY` entries."""
    if not isinstance(raw, list):
        return ()
    entries = (_entry(item) for item in raw[:MAX_HISTORY])
    return tuple(e for e in entries if e is not None)
