"""What each CLI command does: run the agent, sync once, preview (the verbs that look at and
drive a running agent, ``status`` among them, are in ``gitops_helm.verbs``).

Place in the flow: ``cli.py`` parses the flags into :class:`Settings` and calls one function here;
the parts are built by the composition root (``agent``). ``run`` is the long-running agent;
``sync --once`` and ``diff`` do one fetch and one apply (or server-side dry run) and exit;
``images list``/``images update`` run one
image automation pass; ``crd`` prints the CRD.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from types import FrameType
from typing import Any

from gitops_helm import log as logging
from gitops_helm import yamlio
from gitops_helm.adapters.http import HTTPClient
from gitops_helm.agent import (
    Agent,
    build_chart_clients,
    build_image_automation,
    build_image_committer,
    build_kube,
    build_source,
    helmrelease_files,
    image_credentials,
    sync_identity,
)
from gitops_helm.api.crd import load_crd
from gitops_helm.config import Settings
from gitops_helm.images.automation import ImageReport, PassResult, Plan
from gitops_helm.images.model import Shape
from gitops_helm.images.policy import Action
from gitops_helm.sync.apply import UNCHANGED, Syncer

log = logging.get(__name__)


def crd() -> int:
    print(yamlio.dump(load_crd(), sort_keys=False), end="")
    return 0


def _stop_on_signals(stop: threading.Event) -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        del frame
        log.info("signal received: finishing in-flight work", signal=signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def run(settings: Settings) -> int:
    """``gitops-helm run``: the agent, until SIGTERM/SIGINT (in-flight helm operations finish)."""
    stop = threading.Event()
    _stop_on_signals(stop)
    return Agent(settings).run(stop)


def sync_once(settings: Settings, *, diff_only: bool) -> int:
    """``sync --once`` (apply, exit 1 on any error) and ``diff`` (show, change nothing: :func:`diff`)."""
    if diff_only:
        return diff(settings)
    kube = build_kube(settings)
    source = build_source(settings)
    checkout = source.poll_once()
    checkout = checkout or source.checkout
    if checkout is None:
        print(f"gitops-helm: cannot fetch {settings.git.url}: {source.last_error}", file=sys.stderr)
        return 1
    syncer = Syncer(kube, settings.sync, sync_identity(settings))
    result = syncer.sync(checkout.path, settings.git.paths, checkout.sha)
    print(
        f"synced {checkout.sha[:12]}: {len(result.applied)} applied, {len(result.unchanged)} unchanged, "
        f"{len(result.deleted)} deleted, {len(result.errors)} errors"
    )
    for name in result.would_delete:
        print(f"would delete (dry run): {name}")
    if result.gc_skipped and settings.sync.garbage_collection:
        print(f"garbage collection skipped: {result.gc_skipped}")
    for err in result.errors:
        print(f"error: {err}", file=sys.stderr)
    return 0 if result.ok else 1


# ``diff``'s exit codes, those of ``kubectl diff``
DIFF_NONE = 0
DIFF_FOUND = 1
DIFF_ERROR = 2


def diff(settings: Settings) -> int:
    """``gitops-helm diff``: what a sync of the Git head would create, update or delete (server-side
    dry run, nothing changes). Exit 0 when nothing would change, 1 when something would, 2 on an
    error (the fetch, a manifest, a dry run), whatever else was found."""
    kube = build_kube(settings)
    source = build_source(settings)
    checkout = source.poll_once() or source.checkout
    if checkout is None:
        print(f"gitops-helm: cannot fetch {settings.git.url}: {source.last_error}", file=sys.stderr)
        return DIFF_ERROR
    syncer = Syncer(kube, settings.sync, sync_identity(settings))
    lines, errors = syncer.diff(checkout.path, settings.git.paths)
    print(f"# {settings.git.url} at {checkout.sha[:12]}")
    for line in lines:
        print(line)
    for err in errors:
        print(f"error: {err}", file=sys.stderr)
    if errors:
        return DIFF_ERROR
    return DIFF_FOUND if any(not line.startswith(UNCHANGED) for line in lines) else DIFF_NONE


# -- image automation ----------------------------------------------------------------------------


def images(settings: Settings, *, update: bool, dry_run: bool, output: str = "table") -> int:
    """``images list`` (what a pass finds and would pick), ``images update [--dry-run]`` (one pass:
    commit, or print the diff). Exit 0 when no error was reported, 1 otherwise (an image or file
    with an error, the Git fetch, or the commit), 2 for bad flags (``cli``). ``output`` ``json``
    (``images list -o json``): one JSON document on stdout instead of the table."""
    source = build_source(settings)
    checkout = source.poll_once() or source.checkout
    if checkout is None:
        print(f"gitops-helm: cannot fetch {settings.git.url}: {source.last_error}", file=sys.stderr)
        return 1
    committer = build_image_committer(settings) if update else None
    http = HTTPClient()
    try:
        charts = build_chart_clients(settings, http)
        automation = build_image_automation(settings, http, charts, image_credentials(settings))
        plan = automation.plan(checkout.path, helmrelease_files(checkout.path, settings.git.paths))
        if output == "json":
            document = plan_document(plan, settings.git.url or "", checkout.sha)
            print(json.dumps(document, indent=2, sort_keys=True))
            return 1 if plan.errors else 0
        print(f"# {settings.git.url} at {checkout.sha[:12]}")
        _print_plan(plan)
        if committer is None:
            errors = plan.errors
        else:
            result = automation.apply(plan, committer, dry_run=dry_run)
            _print_result(result, dry_run=dry_run)
            errors = result.errors
    finally:
        http.close()
    if errors:
        print(f"{len(errors)} error(s):", file=sys.stderr)
        for error in errors:
            print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def plan_document(plan: Plan, url: str, revision: str) -> dict[str, Any]:
    """``images list -o json``: every image and chart version found (``images``), what was
    skipped and why (``skipped``), and every error line (``errors``, non-empty: exit 1)."""
    return {
        "source": {"url": url, "revision": revision},
        "images": [_report_document(report) for report in plan.reports],
        "skipped": [
            {
                "file": skip.file,
                "line": skip.line,
                "release": str(skip.release) if skip.release else None,
                "name": skip.name,
                "reason": skip.reason,
                "error": skip.error,
            }
            for skip in plan.skips
        ],
        "errors": plan.errors,
    }


def _report_document(report: ImageReport) -> dict[str, Any]:
    automation = report.automation
    image, policy, decision = automation.image, automation.policy, report.decision
    update = decision if decision is not None and decision.action is Action.UPDATE else None
    return {
        "file": image.file,
        "line": image.line,
        "release": str(image.release),
        "name": image.name,
        "kind": "chart" if image.shape is Shape.CHART else "image",
        "reference": str(image.ref),
        "tag": image.ref.tag,
        "digest": image.ref.digest or None,
        "policy": policy.filter.text,
        "policySource": policy.source,
        "action": str(decision.action) if decision else "error",
        "newTag": (update.tag or None) if update else None,
        "newDigest": (update.digest or None) if update else None,
        "reason": decision.reason if decision else None,
        "error": report.error,
        "errorReason": (report.reason or None) if report.error else None,
        "notes": list(report.notes),
    }


def _print_plan(plan: Plan) -> None:
    for report in plan.reports:
        print(_report_line(report))
    for skip in plan.skips:
        print(f"{'error' if skip.error else 'skipped'}: {skip}")
    for problem in plan.file_errors:
        print(f"error: {problem}")


def _report_line(report: ImageReport) -> str:
    automation = report.automation
    image = automation.image
    policy = automation.policy
    head = (
        f"{image.file}:{image.line}  HelmRelease {image.release}  {image.name}  {image.ref}  "
        f"policy {policy.filter.text} ({policy.source})"
    )
    if report.error:
        return f"{head}  -> error ({report.reason}): {report.error}"
    decision = report.decision
    assert decision is not None  # noqa: S101 - a report holds a decision or an error
    if decision.action is Action.UPDATE:
        new = f"{decision.tag}@{decision.digest}" if decision.digest else decision.tag
        outcome = f"update to {new}: {decision.reason}"
    else:
        outcome = f"{decision.action}: {decision.reason}"
    notes = "".join(f"\n    note: {note}" for note in report.notes)
    return f"{head}  -> {outcome}{notes}"


def _print_result(result: PassResult, *, dry_run: bool) -> None:
    if dry_run:
        if result.diff:
            print(result.diff, end="")
        else:
            print("dry run: nothing would change")
        return
    if result.commit is not None:
        print(f"committed {result.commit[:12]}: {len(result.committed)} update(s)")
        for update in result.committed:
            print(f"  {update.line}")
    elif result.commit_error is None:
        print("nothing to commit")
    for report in result.plan.reports:
        if report.reason == "changed-shape" and report.error:
            print(f"not written: {report.image}: {report.error}")
