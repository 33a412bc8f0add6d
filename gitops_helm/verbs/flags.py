"""The flags of the CLI verbs (argparse only: ``cli`` imports this at start, nothing heavy).

The verbs need no agent settings, only where the cluster is: ``--kubeconfig`` (else
``$KUBECONFIG``, ``~/.kube/config``, in-cluster) and ``--kube-context``; ``-n`` defaults to the
context's namespace as with kubectl.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

__all__ = ["EXPLAIN", "KINDS", "VERBS", "add_verbs", "get_words", "positive_count", "positive_seconds"]

VERBS = ("get", "status", "reconcile", "suspend", "resume", "events", "check", "history")
EXPLAIN = "explain"  # a verb with agent settings (charts, values URLs): dispatched by ``cli``
_OUTPUTS = ("table", "wide", "json", "yaml")
KINDS = ("helmreleases", "helmrelease", "hr")  # `get [KIND] [NAME]`: the kind is optional


def positive_seconds(text: str) -> float:
    """A deadline in seconds: more than 0. kubectl reads 0 as "no timeout", but every request this
    project makes has a deadline, so 0 and negative values are refused."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(
            f"{text!r}: must be more than 0 seconds (every API request has a deadline)"
        )
    return value


def positive_count(text: str) -> int:
    """A count of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: must be at least 1")
    return value


def _cluster(p: argparse.ArgumentParser, *, all_namespaces: bool) -> None:
    g = p.add_argument_group("cluster")
    g.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config, in-cluster)")
    g.add_argument("--kube-context", help="kubeconfig context (default: the current one)")
    g.add_argument("-n", "--namespace", help="namespace (default: the context's namespace, else default)")
    if all_namespaces:
        g.add_argument("-A", "--all-namespaces", action="store_true", help="every namespace (overrides -n)")
    g.add_argument(
        "--request-timeout",
        type=positive_seconds,
        default=30.0,
        metavar="SECONDS",
        help="deadline of each API request, more than 0 (default: 30)",
    )


def _wait(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("name", metavar="NAME", help="the HelmRelease")
    p.add_argument(
        "--timeout",
        default="5m",
        help=f"how long to wait for the agent to {what} (default: 5m; exit status 2 when it has not)",
    )
    p.add_argument("--no-wait", action="store_true", help="only ask; do not wait for the outcome")


def _state(p: argparse.ArgumentParser) -> None:
    s = p.add_argument_group("sync state")
    s.add_argument("--sync-name", help="sync source to show (default: every one found)")
    s.add_argument(
        "--state-namespace",
        help="namespace of the sync-state ConfigMap (default: found by its label in every namespace)",
    )
    s.add_argument("--leader-election-namespace", help="namespace of the Lease (default: the state's)")
    s.add_argument(
        "--leader-election-id",
        default="gitops-helm",
        help="name of the Lease; each shard's is NAME-SHARD (default: gitops-helm)",
    )


def add_verbs(sub: argparse._SubParsersAction[Any]) -> None:
    """Add the verbs to the ``gitops-helm`` subcommands."""
    get = sub.add_parser(
        "get", help="list HelmReleases: ready, status, revision, chart, last action, suspended, age"
    )
    get.add_argument(
        "kind",
        nargs="?",
        metavar="hr",
        help="helmreleases, helmrelease or hr: what to list (only HelmReleases; optional, accepted "
        "for flux/kubectl habits)",
    )
    get.add_argument("name", nargs="?", metavar="NAME", help="only this HelmRelease")
    status = sub.add_parser(
        "status", help="HelmReleases (every namespace unless -n), the Git sync state and the leader"
    )
    for parser in (get, status):
        _cluster(parser, all_namespaces=True)
        parser.add_argument("-o", "--output", choices=_OUTPUTS, default="table", help="default: table")
    _state(status)

    reconcile = sub.add_parser(
        "reconcile", help="ask the agent to reconcile a HelmRelease now, wait, print the outcome"
    )
    _wait(reconcile, "reconcile it")
    reconcile.add_argument(
        "--with-source", action="store_true", help="also ask for a Git fetch and sync first"
    )
    _state(reconcile)
    suspend = sub.add_parser("suspend", help="stop reconciling a HelmRelease (spec.suspend=true)")
    suspend.add_argument("name", metavar="NAME", help="the HelmRelease")
    resume = sub.add_parser("resume", help="reconcile a HelmRelease again (spec.suspend=false), then wait")
    _wait(resume, "reconcile it")
    for parser in (reconcile, suspend, resume):
        _cluster(parser, all_namespaces=False)

    events = sub.add_parser("events", help="Events of a HelmRelease (or of all of them), newest last")
    events.add_argument("name", nargs="?", metavar="NAME", help="the HelmRelease (default: every one)")
    events.add_argument(
        "--limit", type=positive_count, default=500, help="only the newest N Events (default: 500)"
    )
    _cluster(events, all_namespaces=True)

    history = sub.add_parser(
        "history",
        help="a HelmRelease's last release attempts: Helm revision and Git commit, action, outcome, "
        "test, chart, times",
    )
    history.add_argument("name", metavar="NAME", help="the HelmRelease")
    _cluster(history, all_namespaces=False)
    history.add_argument("-o", "--output", choices=("table", "json"), default="table", help="default: table")

    check = sub.add_parser(
        "check", help="prerequisites: API server, CRD, helm, git, RBAC of the current identity"
    )
    _cluster(check, all_namespaces=False)
    check.add_argument(
        "--helm-bin",
        default=os.environ.get("GITOPS_HELM_HELM_BIN") or "helm",
        help="helm binary (default: $GITOPS_HELM_HELM_BIN, else helm on PATH)",
    )
    check.add_argument("--git-bin", default="git", help="git binary (default: git on PATH)")
    check.add_argument(
        "--as",
        dest="as_user",
        metavar="USER",
        help="check the permissions of this user instead (e.g. system:serviceaccount:NS:NAME)",
    )
    check.add_argument(
        "--leader-elect", action="store_true", help="also check the permissions leader election needs"
    )
    check.add_argument(
        "--leader-election-namespace",
        help="namespace of the Lease, for --leader-elect (default: the -n namespace)",
    )
    _explain(sub)


def _explain(sub: argparse._SubParsersAction[Any]) -> None:
    from gitops_helm.config import add_chart_flags  # argparse only, like the rest of config's flags

    explain = sub.add_parser(EXPLAIN, help="explain a HelmRelease: where each of its values comes from")
    what = explain.add_subparsers(dest="explain_what", required=True, metavar="WHAT")
    values = what.add_parser(
        "values",
        help="the final values of a release, each with the source that set it and the sources it "
        "overrode (chart default, chart file, ConfigMap, Secret (redacted), URL, inline)",
    )
    values.add_argument("release", metavar="NS/NAME", help="the HelmRelease (NAME alone: in -n's namespace)")
    values.add_argument(
        "key",
        nargs="?",
        metavar="KEY.PATH",
        help="only this key (e.g. image.tag), with its whole override chain",
    )
    values.add_argument(
        "--path",
        metavar="DIR",
        help="offline: read the HelmRelease and its ConfigMaps/Secrets from the manifests under DIR "
        "(as render does), not from a cluster",
    )
    values.add_argument("-o", "--output", choices=("text", "json"), default="text", help="default: text")
    _cluster(values, all_namespaces=False)
    add_chart_flags(values)


def get_words(args: argparse.Namespace) -> str | None:
    """``get [KIND] [NAME]``: ``get podinfo`` names a HelmRelease, as ``get hr podinfo`` does.
    Sets ``args.name``; the error to show (exit 2), or None."""
    kind, name = args.kind, args.name
    if kind is None or kind.lower() in KINDS:
        return None
    if name is None:
        args.kind, args.name = None, kind
        return None
    return f"get {kind} {name}: only HelmReleases can be listed ({', '.join(KINDS)})"
