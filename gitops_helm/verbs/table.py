"""PURE: HelmRelease objects as rows, and rows as a table, JSON or YAML data.

No I/O, no clock: ``now`` is passed in, colour is decided by the caller (a terminal, no
``NO_COLOR``), so every rendering is reproducible in tests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from gitops_helm.api import ConditionType, find_condition, parse_status
from gitops_helm.api.selector import SHARD_LABEL

__all__ = ["ReleaseRow", "format_age", "release_row", "render_table", "rows_data"]

_GREEN, _RED, _YELLOW, _RESET = "\033[32m", "\033[31m", "\033[33m", "\033[0m"


@dataclass(frozen=True)
class ReleaseRow:
    """What a person checks first about one HelmRelease."""

    namespace: str
    name: str
    ready: str  # True, False or Unknown (the Ready condition)
    status: str  # the Ready condition's reason (e.g. Succeeded, RetryScheduled, InvalidSpec)
    message: str
    revision: str  # the chart revision (version or Git commit) last released
    chart: str
    last_action: str  # install, upgrade or rollback: what made the current Helm revision
    release: str  # the Helm release name
    release_status: str  # the release's status in Helm storage (deployed, failed, ...)
    helm_revision: str
    suspended: bool
    age: str
    created: str
    shard: str = ""  # the label gitops-helm.io/shard: the agent that serves it ("": the catch-all)


def format_age(seconds: float) -> str:
    """kubectl's style: ``42s``, ``5m``, ``3h``, ``12d``, ``2y``."""
    seconds = max(0, int(seconds))
    for unit, size in (("y", 365 * 86400), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size * (2 if unit == "y" else 1):
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _parse_time(text: object) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def chart_text(chart: object) -> str:
    """A chart source in one short string: ``name@version`` or ``git-url//path@ref``."""
    if not isinstance(chart, Mapping):
        return "-"
    if chart.get("git"):
        ref = chart.get("ref")
        return f"{chart['git']}//{chart.get('path') or '.'}" + (f"@{ref}" if ref else "")
    name, version = chart.get("name") or "?", chart.get("version")
    return f"{name}@{version}" if version else str(name)


def release_row(obj: Mapping[str, Any], now: datetime) -> ReleaseRow:
    """One row from a HelmRelease object as the API server returns it."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = parse_status(obj.get("status"))
    ready = find_condition(status.conditions, ConditionType.READY)
    created = _parse_time(meta.get("creationTimestamp"))
    return ReleaseRow(
        namespace=str(meta.get("namespace") or ""),
        name=str(meta.get("name") or ""),
        ready=str(ready.status) if ready else "Unknown",
        status=ready.reason if ready and ready.reason else "-",
        message=ready.message if ready else "",
        revision=status.revision or status.last_attempted_revision or "-",
        chart=chart_text(spec.get("chart")),
        last_action=status.last_release_action or "-",
        release=status.release_name or "-",
        release_status=status.release_status or "-",
        helm_revision=str(status.last_release_revision) if status.last_release_revision else "-",
        suspended=spec.get("suspend") is True,
        age=format_age((now - created).total_seconds()) if created else "-",
        created=str(meta.get("creationTimestamp") or ""),
        shard=str((meta.get("labels") or {}).get(SHARD_LABEL) or ""),
    )


def _colour_ready(text: str, width: int) -> str:
    colour = {"True": _GREEN, "False": _RED}.get(text, _YELLOW)
    return f"{colour}{text}{_RESET}" + " " * (width - len(text))


def render_table(
    rows: Sequence[ReleaseRow], *, all_namespaces: bool, wide: bool, colour: bool, message_max: int = 80
) -> str:
    """The table ``get`` prints, one line per HelmRelease (a header line first)."""
    head = ["NAME", "READY", "STATUS", "REVISION", "CHART", "LAST ACTION", "SUSPENDED", "AGE"]
    if wide:
        head[5:5] = ["RELEASE", "HELM STATUS", "HELM REV"]
        head.append("SHARD")
    if all_namespaces:
        head.insert(0, "NAMESPACE")
    head.append("MESSAGE")
    table: list[list[str]] = [head]
    for r in rows:
        cells = [r.name, r.ready, r.status, r.revision, r.chart, r.last_action, str(r.suspended), r.age]
        if wide:
            cells[5:5] = [r.release, r.release_status, r.helm_revision]
            cells.append(r.shard or "-")
        if all_namespaces:
            cells.insert(0, r.namespace)
        message = r.message if wide else r.message[:message_max]
        cells.append(" ".join(message.split()))
        table.append(cells)
    widths = [max(len(line[i]) for line in table) for i in range(len(head) - 1)]
    ready_at = head.index("READY")
    out = []
    for n, line in enumerate(table):
        cells = []
        for i, (cell, width) in enumerate(zip(line[:-1], widths, strict=True)):
            if colour and n > 0 and i == ready_at:
                cells.append(_colour_ready(cell, width))
            else:
                cells.append(cell.ljust(width))
        out.append(("  ".join(cells) + "  " + line[-1]).rstrip())
    return "\n".join(out) + "\n"


def rows_data(rows: Sequence[ReleaseRow]) -> list[dict[str, Any]]:
    """The rows as plain data (``-o json``/``-o yaml``), camelCase like the API."""

    def camel(key: str) -> str:
        first, *rest = key.split("_")
        return first + "".join(part.title() for part in rest)

    return [{camel(k): v for k, v in asdict(row).items()} for row in rows]
