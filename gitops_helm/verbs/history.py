"""``gitops-helm history NAME``: a HelmRelease's ``status.history`` as a table (or JSON).

One line per attempt, oldest first like ``helm history``, with the Helm revision and the Git
commit side by side, then the action, its outcome, the test result, the chart and values, and
the times; a last line says which revision is live and from which commit. So "which commit is
live, was it tested, was it rolled back" is one command. ``-o json`` prints the status's own
entries (newest first, as stored) with the release's name, live revision and status.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from gitops_helm.adapters.kube import KubeError
from gitops_helm.api import HistoryAction, HistoryEntry, entry_for_revision, parse_status
from gitops_helm.api.history import serialise_history
from gitops_helm.verbs.session import Session

__all__ = ["history", "history_data", "render_history"]

_HEAD = ["REVISION", "COMMIT", "ACTION", "OUTCOME", "TEST", "CHART", "VALUES", "STARTED", "FINISHED"]
_COMMIT_CHARS = 12
_DIGEST_CHARS = 8


def _short_digest(digest: str | None) -> str:
    """``h1-<hex>`` / ``sha256:<hex>`` as its first hex digits: enough to see a change."""
    if not digest:
        return "-"
    return digest.split(":", 1)[-1].removeprefix("h1-")[:_DIGEST_CHARS]


def _chart(entry: HistoryEntry) -> str:
    if not entry.chart_name:
        return "-"
    return f"{entry.chart_name}@{entry.chart_version}" if entry.chart_version else entry.chart_name


def _action(entry: HistoryEntry) -> str:
    if entry.action is HistoryAction.ROLLBACK and entry.rolled_back_to is not None:
        return f"rollback to {entry.rolled_back_to}"
    return str(entry.action)


def _row(entry: HistoryEntry) -> list[str]:
    return [
        str(entry.helm_revision) if entry.helm_revision is not None else "-",
        (entry.git_commit or "-")[:_COMMIT_CHARS],
        _action(entry),
        str(entry.outcome),
        entry.test_result or "-",
        _chart(entry),
        _short_digest(entry.values_digest),
        entry.started_at or "-",
        entry.finished_at or "-",
    ]


def live_line(status: Mapping[str, Any]) -> str | None:
    """What is live: the Helm revision the agent last recorded, its storage status, and the
    commit and chart of the entry that produced it (None when the status names no revision)."""
    parsed = parse_status(status)
    revision = parsed.last_release_revision
    if revision is None:
        return None
    line = f"live: Helm revision {revision} ({parsed.release_status or 'status unknown'})"
    entry = entry_for_revision(parsed.history, revision)
    if entry is not None:
        line += f", commit {entry.git_commit or '-'}, chart {_chart(entry)}"
    return line


def render_history(entries: Sequence[HistoryEntry]) -> str:
    """The table, oldest attempt first (``entries`` are newest first, as stored)."""
    table = [_HEAD, *(_row(e) for e in reversed(entries))]
    widths = [max(len(line[i]) for line in table) for i in range(len(_HEAD))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in table
    ]
    return "\n".join(lines) + "\n"


def history_data(obj: Mapping[str, Any]) -> dict[str, Any]:
    """``-o json``: the HelmRelease's name, release, live revision and history (newest first)."""
    meta = obj.get("metadata") or {}
    status = parse_status(obj.get("status"))
    return {
        "namespace": meta.get("namespace"),
        "name": meta.get("name"),
        "releaseName": status.release_name,
        "lastReleaseRevision": status.last_release_revision,
        "releaseStatus": status.release_status,
        "history": serialise_history(status.history),
    }


def history(session: Session) -> int:
    """Exit 0 (also with no attempts recorded), 1 when the HelmRelease does not exist, 2 when the
    API cannot be read."""
    args = session.args
    try:
        obj = session.kube.get_helmrelease(session.namespace, args.name)
    except KubeError as exc:
        print(f"gitops-helm: {exc}", file=sys.stderr)
        return 2
    if obj is None:
        print(
            f"gitops-helm: HelmRelease {args.name!r} not found in namespace {session.namespace!r}",
            file=sys.stderr,
        )
        return 1
    if args.output == "json":
        print(json.dumps(history_data(obj), indent=2))
        return 0
    entries = parse_status(obj.get("status")).history
    if not entries:
        print(f"no release attempts recorded for HelmRelease {session.namespace}/{args.name} yet")
        return 0
    print(render_history(entries), end="")
    live = live_line(obj.get("status") or {})
    if live:
        print(live)
    return 0
