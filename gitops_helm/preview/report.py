"""What ``gitops-helm plan`` found, as data, and its three formats: text, markdown and JSON.

PURE: no I/O. ``planner`` fills a :class:`PlanReport`; the CLI prints one format of it. Every
text here was redacted before it got in (``objects.Redactor``): nothing is redacted again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

# the actions of a planned release, in the words of the summary
INSTALL = "install"
UPGRADE = "upgrade"
UNINSTALL = "uninstall"
NO_CHANGE = "no change"
ERROR = "error"

# what happens to one object of a release
CREATE = "create"
CHANGE = "change"
DELETE = "delete"

# exit statuses, those of ``kubectl diff`` and ``gitops-helm diff``
EXIT_NO_CHANGE = 0
EXIT_CHANGES = 1
EXIT_ERROR = 2


@dataclass(frozen=True)
class Input:
    """Something a planned release was computed from: the chart, a ConfigMap, a Secret, a URL,
    a chart file, the digest key. ``fingerprint`` changes when its content does (a Secret's is
    keyed with the installation's digest key, so it says "changed" and nothing else)."""

    kind: str
    name: str
    fingerprint: str

    def __str__(self) -> str:
        return f"{self.kind} {self.name}: {self.fingerprint}"


@dataclass(frozen=True)
class ObjectChange:
    """One object of a release that the plan would create, change or delete; ``diff`` is a
    unified diff of the live object and the server's dry-run answer (redacted)."""

    object: str
    change: str
    diff: str


@dataclass(frozen=True)
class ReleasePlan:
    helmrelease: str  # NAMESPACE/NAME of the HelmRelease
    release: str  # TARGET_NAMESPACE/RELEASE_NAME of the Helm release
    action: str
    chart: str = ""  # the chart's name
    version_from: str | None = None
    version_to: str | None = None
    planned_digest: str | None = None  # what the reconciler will record as lastAppliedDigest
    live_digest: str | None = None
    objects: tuple[ObjectChange, ...] = ()
    inputs: tuple[Input, ...] = ()
    notes: tuple[str, ...] = ()
    error: str | None = None
    manifest_change: str = ""  # what the sync does to the HelmRelease object itself

    def count(self, change: str) -> int:
        return sum(1 for o in self.objects if o.change == change)

    @property
    def changes(self) -> bool:
        """Whether applying the commit changes something: the release, its objects, or the
        HelmRelease object itself (``suspend: true`` or a new timeout moves no digest, yet the
        sync writes it and the agent acts on it)."""
        return (
            self.action not in (NO_CHANGE, ERROR)
            or any(self.objects)
            or self.manifest_change in ("create", "update", "delete")
        )


@dataclass(frozen=True)
class ManifestChange:
    """One plain object of the sync (what ``gitops-helm diff`` reports)."""

    change: str  # create, update, unchanged, delete
    object: str
    origin: str | None = None


@dataclass
class PlanReport:
    source: str  # the directory, or URL and ref
    revision: str | None  # the commit planned, when known
    releases: list[ReleasePlan] = field(default_factory=list)
    manifests: list[ManifestChange] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    # ``--since PLAN.json``: releases whose planned digest moved since that plan, and why
    since_saved: list[str] = field(default_factory=list)

    def exit_code(self) -> int:
        """0 nothing would change, 1 something would, 2 an error (whatever else was found)."""
        if self.errors or any(r.action == ERROR for r in self.releases):
            return EXIT_ERROR
        if any(r.changes for r in self.releases) or any(m.change != "unchanged" for m in self.manifests):
            return EXIT_CHANGES
        return EXIT_NO_CHANGE


# -- formats ------------------------------------------------------------------------------------

SUMMARY_HEADER = ("RELEASE", "ACTION", "CHART", "VERSION", "CREATED", "CHANGED", "DELETED")


def version_change(plan: ReleasePlan) -> str:
    old, new = plan.version_from, plan.version_to
    if old and new and old != new:
        return f"{old} -> {new}"
    if old and new:
        return new
    if new:
        return f"(none) -> {new}"
    if old:
        return f"{old} -> (none)"
    return "-"


def summary_rows(report: PlanReport) -> list[tuple[str, ...]]:
    return [
        (
            r.helmrelease,
            r.action,
            r.chart or "-",
            version_change(r),
            str(r.count(CREATE)),
            str(r.count(CHANGE)),
            str(r.count(DELETE)),
        )
        for r in report.releases
    ]


def _table(rows: Iterable[tuple[str, ...]]) -> list[str]:
    rows = list(rows)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]


def _manifest_counts(report: PlanReport) -> str:
    counts = {c: sum(1 for m in report.manifests if m.change == c) for c in ("create", "update", "delete")}
    unchanged = sum(1 for m in report.manifests if m.change == "unchanged")
    return (
        f"{counts['create']} to create, {counts['update']} to update, {counts['delete']} to delete, "
        f"{unchanged} unchanged"
    )


def text(report: PlanReport) -> str:
    """The terminal format: the summary table, then each release's details and object diffs."""
    out = [f"# plan of {report.source}" + (f" at {report.revision[:12]}" if report.revision else "")]
    if report.releases:
        out += ["", *_table([SUMMARY_HEADER, *summary_rows(report)])]
    else:
        out += ["", "no HelmRelease changes"]
    out += ["", f"manifests: {_manifest_counts(report)}"]
    out += [f"  {m.change:9} {m.object}" for m in report.manifests if m.change != "unchanged"]
    for r in report.releases:
        out += ["", f"## {r.helmrelease} ({r.release}): {r.action}"]
        out += _details(r, "  ")
        for o in r.objects:
            out += [f"  {o.change} {o.object}"]
            out += [f"    {line}" for line in o.diff.splitlines()]
    if report.since_saved:
        out += ["", "since the saved plan:"] + [f"  {line}" for line in report.since_saved]
    for error in report.errors:
        out.append(f"error: {error}")
    return "\n".join(out) + "\n"


def _details(r: ReleasePlan, indent: str) -> list[str]:
    out: list[str] = []
    if r.error:
        out.append(f"{indent}error: {r.error}")
    if r.planned_digest or r.live_digest:
        out.append(f"{indent}digest: {r.live_digest or '(none)'} -> {r.planned_digest or '(unknown)'}")
    if r.manifest_change:
        out.append(f"{indent}HelmRelease object: {r.manifest_change}")
    if r.inputs:
        out.append(f"{indent}inputs:")
        out += [f"{indent}  {i}" for i in r.inputs]
    out += [f"{indent}note: {n}" for n in r.notes]
    return out


def _cell(text_: str) -> str:
    return text_.replace("|", "\\|")


def _fence(body: str) -> str:
    """A fence longer than any backtick run in ``body`` (a diff may hold backticks)."""
    longest = max((len(run) for run in body.split("\n") if set(run) == {"`"}), default=0)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}diff\n{body.rstrip()}\n{ticks}"


def markdown(report: PlanReport) -> str:
    """A pull-request comment: summary table, then per release a collapsed block of diffs."""
    head = f"### gitops-helm plan: `{report.source}`" + (
        f" at `{report.revision[:12]}`" if report.revision else ""
    )
    out = [head, ""]
    if report.releases:
        out.append("| " + " | ".join(h.capitalize() for h in SUMMARY_HEADER) + " |")
        out.append("|" + "---|" * len(SUMMARY_HEADER))
        out += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in summary_rows(report)]
    else:
        out.append("No HelmRelease changes.")
    out += ["", f"**Manifests:** {_manifest_counts(report)}"]
    changed = [m for m in report.manifests if m.change != "unchanged"]
    if changed:
        out += [""] + [f"- {m.change} `{m.object}`" for m in changed]
    for r in report.releases:
        out += ["", "<details>", f"<summary><b>{r.helmrelease}</b>: {r.action}</summary>", ""]
        out += [f"- {_cell(line.strip())}" for line in _details(r, "") if not line.startswith(" ")]
        if r.inputs:
            out += [f"  - {_cell(str(i))}" for i in r.inputs]
        for o in r.objects:
            out += ["", f"**{o.change}** `{o.object}`", "", _fence(o.diff)]
        out += ["", "</details>"]
    if report.since_saved:
        out += ["", "**Since the saved plan**", ""] + [f"- {_cell(line)}" for line in report.since_saved]
    if report.errors:
        out += ["", "**Errors**", ""] + [f"- {_cell(e)}" for e in report.errors]
    return "\n".join(out) + "\n"


def document(report: PlanReport) -> dict[str, Any]:
    """``-o json``: the whole report for machines."""
    return {
        "source": report.source,
        "revision": report.revision,
        "exitCode": report.exit_code(),
        "releases": [
            {
                "helmRelease": r.helmrelease,
                "release": r.release,
                "action": r.action,
                "chart": r.chart or None,
                "versionFrom": r.version_from,
                "versionTo": r.version_to,
                "plannedDigest": r.planned_digest,
                "liveDigest": r.live_digest,
                "objects": {
                    "created": r.count(CREATE),
                    "changed": r.count(CHANGE),
                    "deleted": r.count(DELETE),
                },
                "diffs": [{"object": o.object, "change": o.change, "diff": o.diff} for o in r.objects],
                "inputs": [{"kind": i.kind, "name": i.name, "fingerprint": i.fingerprint} for i in r.inputs],
                "notes": list(r.notes),
                "error": r.error,
                "helmReleaseChange": r.manifest_change or None,
            }
            for r in report.releases
        ],
        "manifests": [{"change": m.change, "object": m.object, "origin": m.origin} for m in report.manifests],
        "errors": list(report.errors),
        "sinceSaved": list(report.since_saved),
    }


def changed_inputs(before: Iterable[Input], after: Iterable[Input]) -> list[str]:
    """The inputs that differ between two plans of one release: why their digests differ."""
    old = {(i.kind, i.name): i.fingerprint for i in before}
    new = {(i.kind, i.name): i.fingerprint for i in after}
    out: list[str] = []
    for key in sorted(set(old) | set(new)):
        kind, name = key
        if key not in new:
            out.append(f"{kind} {name}: no longer read")
        elif key not in old:
            out.append(f"{kind} {name}: newly read ({new[key]})")
        elif old[key] != new[key]:
            out.append(f"{kind} {name}: {old[key]} -> {new[key]}")
    return out


def inputs_from_document(release: dict[str, Any]) -> list[Input]:
    """The inputs of one release of a saved ``-o json`` plan (entries that are not well-formed
    are ignored: a saved plan is the person's file)."""
    out: list[Input] = []
    for entry in release.get("inputs") or ():
        if isinstance(entry, dict) and all(
            isinstance(entry.get(k), str) for k in ("kind", "name", "fingerprint")
        ):
            out.append(Input(entry["kind"], entry["name"], entry["fingerprint"]))
    return out


def explain_against(report: PlanReport, saved: dict[str, Any]) -> list[str]:
    """For every release whose planned digest differs from a saved plan's (``--since``), which
    inputs changed since: a mismatch of ``lastAppliedDigest`` with the saved plan, explained."""
    earlier = {r.get("helmRelease"): r for r in saved.get("releases") or () if isinstance(r, dict)}
    lines: list[str] = []
    for r in report.releases:
        old = earlier.get(r.helmrelease)
        if old is None or old.get("plannedDigest") == r.planned_digest:
            continue
        changed = changed_inputs(inputs_from_document(old), r.inputs)
        why = "; ".join(changed) if changed else "no input changed (the HelmRelease spec did)"
        lines.append(
            f"{r.helmrelease}: planned digest {old.get('plannedDigest')} -> {r.planned_digest}: {why}"
        )
    return lines
