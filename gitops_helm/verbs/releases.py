"""``gitops-helm get`` and ``status``: HelmReleases as a table (or data), and the Git sync state.

The sync-state ConfigMaps are found wherever the agent writes them (``--state-namespace`` of
``run``): by their label ``gitops-helm.io/sync-state`` in every namespace, unless
``--state-namespace`` names the one to look in.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any

from gitops_helm import yamlio
from gitops_helm.adapters.kube import Kube, KubeError, KubeErrorKind
from gitops_helm.sync.apply import SYNC_STATE_LABEL, state_configmap_name
from gitops_helm.sync.plan import load_identity
from gitops_helm.verbs.session import Session, use_colour
from gitops_helm.verbs.table import ReleaseRow, release_row, render_table, rows_data

__all__ = ["get", "leases_of", "status"]


def _rows(session: Session, namespace: str | None, name: str | None) -> list[ReleaseRow]:
    items, _ = session.kube.list_helmreleases(namespace)
    if name:
        items = [o for o in items if (o.get("metadata") or {}).get("name") == name]
    now = datetime.now(UTC)
    rows = [release_row(o, now) for o in items]
    return sorted(rows, key=lambda r: (r.namespace, r.name))


def _print_rows(rows: list[ReleaseRow], output: str, *, all_namespaces: bool) -> None:
    if output == "json":
        print(json.dumps(rows_data(rows), indent=2))
    elif output == "yaml":
        print(yamlio.dump(rows_data(rows), sort_keys=False), end="")
    elif rows:
        wide = output == "wide"
        table = render_table(rows, all_namespaces=all_namespaces, wide=wide, colour=use_colour(sys.stdout))
        print(table, end="")


def get(session: Session) -> int:
    """Exit 0; 1 when a named HelmRelease does not exist; 2 when the API cannot be read."""
    args = session.args
    namespace = None if session.all_namespaces else session.namespace
    try:
        rows = _rows(session, namespace, args.name)
    except KubeError as exc:
        print(f"gitops-helm: {exc}", file=sys.stderr)
        return 2
    _print_rows(rows, args.output, all_namespaces=session.all_namespaces)
    if not rows and args.output in ("table", "wide"):
        where = "any namespace" if namespace is None else f"namespace {namespace!r}"
        if args.name:
            print(f"gitops-helm: HelmRelease {args.name!r} not found in {where}", file=sys.stderr)
            return 1
        print(f"no HelmReleases found in {where}", file=sys.stderr)
    return 0


def status(session: Session) -> int:
    """HelmReleases (every namespace unless ``-n``), each sync source's state and the leader of
    each shard (the Lease ``--leader-election-id`` and every ``<id>-<shard>``)."""
    args = session.args
    namespace = session.args.namespace if not session.all_namespaces else None
    try:
        rows = _rows(session, namespace, None)
        states = _sync_states(session.kube, args.state_namespace, args.sync_name)
    except KubeError as exc:
        print(f"gitops-helm: {exc}", file=sys.stderr)
        return 2
    lease_namespace = args.leader_election_namespace or (
        states[0][0] if states else args.state_namespace or "default"
    )
    if args.output in ("json", "yaml"):
        found = [_state_data(ns, n, d) for ns, n, d in states]
        report: dict[str, Any] = {"helmReleases": rows_data(rows), "syncStates": found}
        try:
            leaders = _leaders(session.kube, lease_namespace, args.leader_election_id, _shards(rows))
        except KubeError as exc:
            print(f"gitops-helm: {exc}", file=sys.stderr)
            return 2
        report["leaders"] = [_leader_data(lease_namespace, shard, lease) for shard, lease in leaders]
        if args.output == "json":
            print(json.dumps(report, indent=2))
        else:
            print(yamlio.dump(report, sort_keys=False), end="")
        return 0
    _print_rows(rows, args.output, all_namespaces=namespace is None)
    if not rows:
        print("no HelmReleases found")
    if not states:
        print(
            "\ngit sync: no sync state found"
            + (f" in {args.state_namespace!r}" if args.state_namespace else "")
        )
    for state_namespace, name, data in states:
        _print_state(state_namespace, name, data)
    _print_leader(session.kube, lease_namespace, args.leader_election_id, _shards(rows))
    return 0


def _sync_states(
    kube: Kube, state_namespace: str | None, sync_name: str | None
) -> list[tuple[str, str, dict[str, str]]]:
    """(namespace, ConfigMap name, data) of every sync source asked for, found by label unless
    ``state_namespace`` is given; a state written before the label existed is still found by
    name there."""
    wanted = state_configmap_name(sync_name) if sync_name else None
    try:
        found = kube.list_configmaps(f"{SYNC_STATE_LABEL}=true", state_namespace)
    except KubeError as exc:
        if exc.kind is not KubeErrorKind.FORBIDDEN or state_namespace is not None:
            raise
        found = []  # may not list across namespaces: look where the agent writes by default
        state_namespace = "default"
    states = []
    for cm in found:
        meta = cm.get("metadata") or {}
        if wanted is None or meta.get("name") == wanted:
            states.append((str(meta.get("namespace")), str(meta.get("name")), dict(cm.get("data") or {})))
    if not states and state_namespace is not None:
        name = wanted or state_configmap_name("default")
        data = kube.get_configmap_data(state_namespace, name)
        if data is not None:
            states.append((state_namespace, name, data))
    return sorted(states)


def _state_data(namespace: str, name: str, data: dict[str, str]) -> dict[str, Any]:
    owner = load_identity(data.get("source") or "")
    return {
        "namespace": namespace,
        "configMap": name,
        "source": owner.describe() if owner is not None else None,
        "revision": data.get("revision"),
        "time": data.get("time"),
        "result": data.get("result"),
        "applied": _count(data.get("applied")),
        "unchanged": _count(data.get("unchanged")),
        "nextPoll": data.get("nextPoll"),
        "fetchError": data.get("fetchError") or None,
        "errors": _string_list(data.get("errors")),
        "wouldDelete": _string_list(data.get("wouldDelete")),
    }


def _count(text: str | None) -> int | None:
    """A count the agent wrote; None when the ConfigMap was edited into something else."""
    try:
        return int(text or 0)
    except ValueError:
        return None


def _string_list(text: str | None) -> list[str]:
    """A JSON list of strings the agent wrote; a hand-edited value is shown as it is, never a
    traceback."""
    try:
        value = json.loads(text or "[]")
    except ValueError:
        return [f"(unreadable: {str(text)[:200]!r})"]
    if not isinstance(value, list):
        return [f"(unreadable: {str(text)[:200]!r})"]
    return [str(item) for item in value]


def _print_state(namespace: str, name: str, state: dict[str, str]) -> None:
    print()
    print(
        f"git sync ({namespace}/{name}): revision {state.get('revision', '-')[:12]} "
        f"at {state.get('time', '-')} ({state.get('result', '-')}; {state.get('applied', '0')} applied, "
        f"{state.get('unchanged', '0')} unchanged); next poll {state.get('nextPoll', '-')}"
    )
    owner = load_identity(state.get("source") or "")
    if owner is not None:
        print(f"  source: {owner.describe()}")
    elif state.get("inventory"):
        print("  source: not recorded yet (the next sync of this name records its own)")
    for item in _string_list(state.get("wouldDelete")):
        print(f"  would delete (dry run): {item}")
    if state.get("fetchError"):
        print(f"  fetch error: {state['fetchError']}")
    for err in _string_list(state.get("errors")):
        print(f"  error: {err}")


def leases_of(
    leases: list[dict[str, Any]], lease_id: str, shards: set[str]
) -> list[tuple[str, dict[str, Any]]]:
    """(shard, Lease) of the agents electing on ``lease_id``: the Lease of that name (shard "")
    and ``<lease_id>-<shard>`` for each shard in ``shards`` (the shard labels of the HelmReleases
    shown; see ``config._default_lease_name`` and the chart), sorted by shard. Only shards in use
    are matched: another install in the namespace, named ``<lease_id>-staging`` by the chart, is
    not a shard of this one."""
    found = []
    for lease in leases:
        name = str((lease.get("metadata") or {}).get("name") or "")
        if name == lease_id:
            found.append(("", lease))
        elif name.startswith(f"{lease_id}-") and name[len(lease_id) + 1 :] in shards:
            found.append((name[len(lease_id) + 1 :], lease))
    return sorted(found, key=lambda item: item[0])


def _leaders(kube: Kube, namespace: str, lease_id: str, shards: set[str]) -> list[tuple[str, dict[str, Any]]]:
    """Every shard's Lease; only the named one when Leases may not be listed."""
    try:
        return leases_of(kube.list_leases(namespace), lease_id, shards)
    except KubeError as exc:
        if exc.kind is not KubeErrorKind.FORBIDDEN:
            raise
    lease = kube.get_lease(namespace, lease_id)
    return [("", lease)] if lease is not None else []


def _shards(rows: list[ReleaseRow]) -> set[str]:
    return {r.shard for r in rows if r.shard}


def _leader_data(namespace: str, shard: str, lease: dict[str, Any]) -> dict[str, Any]:
    spec = lease.get("spec") or {}
    return {
        "namespace": namespace,
        "lease": (lease.get("metadata") or {}).get("name"),
        "shard": shard or None,
        "holder": spec.get("holderIdentity") or None,
        "renewTime": spec.get("renewTime") or None,
    }


def _print_leader(kube: Kube, namespace: str, name: str, shards: set[str]) -> None:
    """Who acts, when replicas run with --leader-elect: one line per shard's Lease."""
    try:
        leaders = _leaders(kube, namespace, name, shards)
    except KubeError as exc:
        print(f"\nleader: unknown ({exc.message})")
        return
    if leaders:
        print()
    for shard, lease in leaders:
        data = _leader_data(namespace, shard, lease)
        which = f"leader of shard {shard}" if shard else "leader"
        holder, renewed = data["holder"] or "none", data["renewTime"] or "-"
        print(f"{which} ({namespace}/{data['lease']}): {holder}, renewed {renewed}")
