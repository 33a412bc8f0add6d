"""``gitops-helm reconcile``, ``suspend`` and ``resume``: ask the agent, wait, print the outcome.

A reconcile request is the annotation ``gitops-helm.io/reconcile-requested-at`` set to the time
of asking: the agent reconciles at once on an annotation change and records the value it handled
in ``status.lastHandledReconcileAt``, which is what this waits for (:class:`RequestWatch`: a
later request, e.g. of a second ``gitops-helm reconcile`` running at the same time, covers this
one). ``--with-source`` first asks
for a Git fetch and sync the way a standby hands a webhook to the leader (the annotation
``gitops-helm.io/sync-requested`` on the sync-state ConfigMap) and waits for the next poll record.

Exit status: 0 when the HelmRelease is Ready afterwards, 1 when it is not, 2 on errors (not
found, suspended, the API) and when the agent has not answered within ``--timeout``.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from typing import Any

from gitops_helm.adapters.kube import Kube, KubeError
from gitops_helm.api import (
    RECONCILE_REQUEST_ANNOTATION,
    ConditionType,
    find_condition,
    parse_status,
    reconcile_request,
)
from gitops_helm.config import parse_duration
from gitops_helm.errors import ConfigError
from gitops_helm.sync.apply import SYNC_REQUESTED_ANNOTATION
from gitops_helm.verbs.releases import _sync_states
from gitops_helm.verbs.session import Progress, Session

__all__ = ["RequestWatch", "reconcile", "resume", "suspend"]

POLL_S = 1.0  # how often the HelmRelease is read while waiting


class _Failed(Exception):
    """Exit 2 with this message."""


class RequestWatch:
    """Has a reconcile that started after our request finished?

    The agent records the request annotation's value it read at the start of a run. A second
    ``gitops-helm reconcile`` (or a ``kubectl annotate``) may overwrite our value before the agent
    reads it; a run that handled such a later value also started after our request. So every value
    the annotation shows after our own write (read from the API in order: after our patch, any other
    value was written later) counts as ours. No clocks are compared: two machines' clocks may
    disagree."""

    def __init__(self, requested: str) -> None:
        self.requested = requested
        self.covering = {requested}

    def satisfied(self, obj: dict[str, Any]) -> bool:
        """Whether ``obj`` (read after our write) shows our request, or a later one, handled."""
        current = reconcile_request((obj.get("metadata") or {}).get("annotations"))
        if current is not None:
            self.covering.add(current)
        handled = parse_status(obj.get("status")).last_handled_reconcile_at
        return handled is not None and handled in self.covering


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _get(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    obj = kube.get_helmrelease(namespace, name)
    if obj is None:
        raise _Failed(f"HelmRelease {namespace}/{name} not found")
    return obj


def _timeout(text: str) -> float:
    try:
        return parse_duration(text, "--timeout")
    except ConfigError as exc:
        raise _Failed(str(exc)) from None


def reconcile(session: Session) -> int:
    args = session.args
    return _guard(lambda: _reconcile(session, args.name, with_source=args.with_source))


def suspend(session: Session) -> int:
    def run() -> int:
        namespace, name = session.namespace, session.args.name
        _get(session.kube, namespace, name)
        session.kube.patch_helmrelease(namespace, name, {"spec": {"suspend": True}})
        print(f"✔ HelmRelease {namespace}/{name} suspended")
        return 0

    return _guard(run)


def resume(session: Session) -> int:
    def run() -> int:
        namespace, name = session.namespace, session.args.name
        _get(session.kube, namespace, name)
        session.kube.patch_helmrelease(namespace, name, {"spec": {"suspend": False}})
        print(f"► HelmRelease {namespace}/{name} resumed")
        return _reconcile(session, name, with_source=False)

    return _guard(run)


def _guard(run: Any) -> int:
    try:
        return int(run())
    except _Failed as exc:
        print(f"✗ {exc}", file=sys.stderr)
        return 2
    except KubeError as exc:
        print(f"✗ {exc}", file=sys.stderr)
        return 2


def _reconcile(session: Session, name: str, *, with_source: bool) -> int:
    args, kube, namespace = session.args, session.kube, session.namespace
    timeout = _timeout(args.timeout)
    deadline = time.monotonic() + timeout
    obj = _get(kube, namespace, name)
    if (obj.get("spec") or {}).get("suspend") is True:
        raise _Failed(
            f"HelmRelease {namespace}/{name} is suspended: gitops-helm resume {name} -n {namespace}"
        )
    progress = Progress()
    if with_source:
        _sync_source(session, progress, deadline)
    watch = RequestWatch(_stamp())
    kube.patch_helmrelease(
        namespace, name, {"metadata": {"annotations": {RECONCILE_REQUEST_ANNOTATION: watch.requested}}}
    )
    print(f"► reconcile of HelmRelease {namespace}/{name} requested")
    if args.no_wait:
        return 0
    while True:
        obj = _get(kube, namespace, name)
        status = parse_status(obj.get("status"))
        if watch.satisfied(obj):
            break
        if time.monotonic() >= deadline:
            progress.done()
            print(
                f"✗ the agent has not reconciled HelmRelease {namespace}/{name} within {args.timeout} "
                "(is it running, and does it watch this namespace? gitops-helm status)",
                file=sys.stderr,
            )
            return 2
        ready = find_condition(status.conditions, ConditionType.READY)
        reason = f" ({ready.reason})" if ready and ready.reason else ""
        progress.update(f"waiting for HelmRelease {namespace}/{name} to be reconciled{reason}")
        time.sleep(POLL_S)
    progress.done()
    ready = find_condition(status.conditions, ConditionType.READY)
    if ready is not None and str(ready.status) == "True":
        revision = status.revision or status.last_attempted_revision or "-"
        print(f"✔ HelmRelease {namespace}/{name} reconciled: revision {revision}, {ready.message}")
        return 0
    reason = ready.reason if ready else "Unknown"
    message = ready.message if ready else "no Ready condition"
    print(f"✗ HelmRelease {namespace}/{name} is not ready ({reason}): {message}", file=sys.stderr)
    return 1


def _sync_source(session: Session, progress: Progress, deadline: float) -> None:
    """Ask the leader's Git sync for a fetch and wait for it to record a poll after the request."""
    args, kube = session.args, session.kube
    states = _sync_states(kube, args.state_namespace, args.sync_name)
    if not states:
        raise _Failed(
            "--with-source: no sync-state ConfigMap found (is the agent syncing Git? --state-namespace)"
        )
    if len(states) > 1:
        names = ", ".join(f"{ns}/{n}" for ns, n, _ in states)
        raise _Failed(f"--with-source: several sync sources ({names}): choose one with --sync-name")
    namespace, configmap, before = states[0]
    kube.annotate(
        "v1", "ConfigMap", namespace, configmap, {SYNC_REQUESTED_ANNOTATION: _stamp()}, "gitops-helm-cli"
    )
    print(f"► Git sync requested ({namespace}/{configmap})")
    while True:
        data = kube.get_configmap_data(namespace, configmap) or {}
        if (data.get("nextPoll"), data.get("time")) != (before.get("nextPoll"), before.get("time")):
            break
        if time.monotonic() >= deadline:
            progress.done()
            raise _Failed("the agent has not fetched Git within --timeout (is it running and the leader?)")
        progress.update("waiting for the Git fetch")
        time.sleep(POLL_S)
    progress.done()
    error = data.get("fetchError")
    if error:
        raise _Failed(f"Git fetch failed: {error}")
    print(f"✔ Git fetched: revision {data.get('revision', '-')[:12]}")
