"""``gitops-helm events [NAME]``: the Events of a HelmRelease (or of every one), newest last;
``--limit N`` keeps the newest N."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Any

from gitops_helm.adapters.kube import KubeError
from gitops_helm.api import KIND
from gitops_helm.verbs.session import Session, use_colour
from gitops_helm.verbs.table import format_age

__all__ = ["event_time", "events", "newest"]


def event_time(event: dict[str, Any]) -> str:
    """When an Event last happened: ``series.lastObservedTime``, ``lastTimestamp``, ``eventTime``,
    else its creation (each writer fills a different one)."""
    series = event.get("series") or {}
    for value in (
        series.get("lastObservedTime"),
        event.get("lastTimestamp"),
        event.get("eventTime"),
        event.get("firstTimestamp"),
        (event.get("metadata") or {}).get("creationTimestamp"),
    ):
        if value:
            return str(value)
    return ""


def _when(stamp: str) -> datetime | None:
    try:
        then = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    return then if then.tzinfo else then.replace(tzinfo=UTC)


_NEVER = datetime.min.replace(tzinfo=UTC)


def newest(found: list[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """The ``limit`` most recent Events, oldest first. Times are compared as times: writers mix
    ``...:05Z`` and ``...:05.250000Z``, which do not sort as text; an Event without a readable time
    counts as the oldest."""
    ordered = sorted(found, key=lambda event: _when(event_time(event)) or _NEVER)
    return ordered[-limit:] if limit > 0 else []


def _age(stamp: str, now: datetime) -> str:
    then = _when(stamp)
    if then is None:
        return "-"
    return format_age((now - then).total_seconds())


def events(session: Session) -> int:
    """Exit 0 (also with no Events), 2 when the API cannot be read."""
    args = session.args
    namespace = None if session.all_namespaces else session.namespace
    try:
        found = newest(session.kube.list_kind_events(namespace, KIND, args.name), args.limit)
    except KubeError as exc:
        print(f"gitops-helm: {exc}", file=sys.stderr)
        return 2
    if not found:
        what = f"HelmRelease {args.name!r}" if args.name else "HelmReleases"
        print(f"no Events of {what} in {'any namespace' if namespace is None else repr(namespace)}")
        return 0
    now = datetime.now(UTC)
    colour = use_colour(sys.stdout)
    head = ["LAST SEEN", "TYPE", "REASON", "OBJECT", "COUNT"]
    if namespace is None:
        head.insert(0, "NAMESPACE")
    rows: list[list[str]] = [head]
    messages = ["MESSAGE"]
    for event in found:
        involved = event.get("involvedObject") or {}
        series = event.get("series") or {}
        row = [
            _age(event_time(event), now),
            str(event.get("type") or ""),
            str(event.get("reason") or ""),
            f"helmrelease/{involved.get('name')}",
            str(series.get("count") or event.get("count") or 1),
        ]
        if namespace is None:
            row.insert(0, str(involved.get("namespace") or (event.get("metadata") or {}).get("namespace")))
        rows.append(row)
        messages.append(" ".join(str(event.get("message") or "").split()))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    type_at = head.index("TYPE")
    for n, (row, message) in enumerate(zip(rows, messages, strict=True)):
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
        if colour and n > 0 and row[type_at] == "Warning":
            cells[type_at] = f"\033[33m{cells[type_at]}\033[0m"
        print("  ".join([*cells, message]).rstrip())
    return 0
