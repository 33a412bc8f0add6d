"""Run one verb: connect, call it, close; a bad kubeconfig is a clear error (exit 2)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from gitops_helm.adapters.kube import KubeError
from gitops_helm.config import BAD_BOOLEANS
from gitops_helm.verbs.check import check
from gitops_helm.verbs.events import events
from gitops_helm.verbs.flags import get_words
from gitops_helm.verbs.history import history
from gitops_helm.verbs.reconcile import reconcile, resume, suspend
from gitops_helm.verbs.releases import get, status
from gitops_helm.verbs.session import Session

__all__ = ["run_verb"]

_VERBS: dict[str, Callable[[Session], int]] = {
    "get": get,
    "status": status,
    "reconcile": reconcile,
    "suspend": suspend,
    "resume": resume,
    "events": events,
    "check": check,
    "history": history,
}


def run_verb(args: argparse.Namespace) -> int:
    bad_booleans = getattr(args, BAD_BOOLEANS, None)
    if bad_booleans:
        print(f"gitops-helm: {bad_booleans[0]}", file=sys.stderr)
        return 2
    problem = get_words(args) if args.command == "get" else None
    if problem is not None:
        print(f"gitops-helm: {problem}", file=sys.stderr)
        return 2
    try:
        session = Session(args)
    except KubeError as exc:
        print(f"gitops-helm: {exc}", file=sys.stderr)
        return 2
    try:
        return _VERBS[args.command](session)
    finally:
        session.close()
