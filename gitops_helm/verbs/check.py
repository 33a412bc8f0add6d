"""``gitops-helm check``: are the prerequisites of the agent there? A checklist, exit 1 if not.

The API server answers; the HelmRelease CRD is installed, serves ``v1`` and is this version's;
helm (3 or 4) and git run; the current identity (or ``--as USER``, e.g. the agent's
ServiceAccount) holds every permission the agent itself uses, each asked with a
SelfSubjectAccessReview. What the releases' charts create is not checked: that depends on them.
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from gitops_helm.adapters.git import GitError, GitRunner, GitSettings
from gitops_helm.adapters.helm import Helm, HelmError, HelmSettings
from gitops_helm.adapters.kube import Kube, KubeError
from gitops_helm.api import GROUP, PLURAL, VERSION
from gitops_helm.api.crd import CRD_NAME, load_crd
from gitops_helm.verbs.session import Session, use_colour

__all__ = ["AGENT_PERMISSIONS", "LEADER_PERMISSIONS", "STATE_PERMISSIONS", "Permission", "check"]


@dataclass(frozen=True)
class Permission:
    verbs: tuple[str, ...]
    group: str
    resource: str
    why: str
    subresource: str = ""
    namespaced: bool = True
    name: str = ""  # one object only (an RBAC rule with resourceNames)

    def text(self) -> str:
        resource = f"{self.resource}/{self.subresource}" if self.subresource else self.resource
        return f"{','.join(self.verbs)} {resource}{'.' + self.group if self.group else ''}"


#: What the agent itself does in every namespace: ``deploy/rbac.yaml``'s ClusterRole, part (a) of
#: the RBAC (the releases' own objects are part (b), the release permissions, checked by helm).
AGENT_PERMISSIONS = (
    Permission(
        ("get", "list", "watch", "patch"), GROUP, PLURAL, "watch HelmReleases and set their finalizer"
    ),
    Permission(("patch",), GROUP, PLURAL, "write the status of HelmReleases", subresource="status"),
    Permission(("create", "patch"), "", "events", "record Events on HelmReleases (a repeat is counted)"),
    Permission(
        ("get", "list", "watch", "patch", "delete"),
        "",
        "secrets",
        "read Helm release storage, values and chart credentials; label the agent's release records; "
        "delete its own interrupted remediation rollback",
    ),
    Permission(("get", "list", "watch"), "", "configmaps", "read values sources"),
    Permission(("get", "list", "watch"), "", "pods", "name the failing pods of a failed release"),
    Permission(
        ("get", "patch"),
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        "install the HelmRelease CRD at start (--install-crd)",
        namespaced=False,
        name=f"{PLURAL}.{GROUP}",
    ),
)
#: In the agent's own namespace (``--state-namespace``, also the Lease's): its state objects.
STATE_PERMISSIONS = (
    Permission(("create", "patch"), "", "configmaps", "write the Git sync state"),
    Permission(("create",), "", "secrets", "create the installation's digest key once"),
)
#: With ``--leader-elect``, in the Lease's namespace.
LEADER_PERMISSIONS = (
    Permission(
        ("get", "create", "update"), "coordination.k8s.io", "leases", "leader election (--leader-elect)"
    ),
)


class _Checklist:
    def __init__(self) -> None:
        self.failed = 0
        self.colour = use_colour(sys.stdout)

    def line(self, ok: bool, text: str) -> None:
        mark = "✔" if ok else "✗"
        if self.colour:
            mark = f"\033[{'32' if ok else '31'}m{mark}\033[0m"
        print(f"{mark} {text}")
        self.failed += not ok

    def note(self, text: str) -> None:
        print(f"  {text}")


def check(session: Session) -> int:
    args = session.args
    out = _Checklist()
    kube = session.kube
    reachable = _api_server(out, kube)
    if reachable:
        _crd(out, kube)
    _helm(out, args.helm_bin)
    _git(out, args.git_bin)
    if reachable:
        who = kube.impersonating(args.as_user) if args.as_user else kube
        lease_namespace = args.leader_election_namespace or session.namespace
        _permissions(out, who, args.as_user or "the current identity", lease_namespace, args.leader_elect)
    if out.failed:
        print(f"\n{out.failed} check(s) failed")
        return 1
    print("\nall checks passed")
    return 0


def _api_server(out: _Checklist, kube: Kube) -> bool:
    try:
        version = kube.server_version()
    except KubeError as exc:
        out.line(False, f"API server: {exc}")
        return False
    out.line(True, f"API server {kube.configuration.host} reachable: Kubernetes {version}")
    return True


def _crd(out: _Checklist, kube: Kube) -> None:
    try:
        installed = kube.get_crd(CRD_NAME)
    except KubeError as exc:
        out.line(False, f"CRD {CRD_NAME}: {exc}")
        return
    if installed is None:
        out.line(
            False,
            f"CRD {CRD_NAME} is not installed: the agent installs it at start (--install-crd), "
            "or: gitops-helm crd | kubectl apply -f -",
        )
        return
    versions = {v.get("name"): v for v in (installed.get("spec") or {}).get("versions") or []}
    served = sorted(str(n) for n, v in versions.items() if v.get("served"))
    if VERSION not in served:
        out.line(
            False, f"CRD {CRD_NAME} installed but does not serve {VERSION} (serves: {', '.join(served)})"
        )
        return
    shipped = {v["name"]: v.get("schema") for v in load_crd()["spec"]["versions"]}
    if versions[VERSION].get("schema") == shipped.get(VERSION):
        out.line(True, f"CRD {CRD_NAME} installed, serves {', '.join(served)}, same as this version's")
    else:
        out.line(True, f"CRD {CRD_NAME} installed, serves {', '.join(served)}")
        out.note(
            "its schema differs from this version's: the agent updates it at start (--install-crd), "
            "or: gitops-helm crd | kubectl apply --server-side -f -"
        )


def _helm(out: _Checklist, binary: str) -> None:
    with tempfile.TemporaryDirectory(prefix="gitops-helm-check-") as home:
        try:
            helm = Helm(HelmSettings(binary=binary, home=Path(home), query_timeout_s=30.0))
        except HelmError as exc:
            out.line(False, f"helm ({binary}): {exc}")
            return
    out.line(True, f"helm {helm.version} ({binary})")


def _git(out: _Checklist, binary: str) -> None:
    with tempfile.TemporaryDirectory(prefix="gitops-helm-check-") as cwd:
        try:
            result = GitRunner(GitSettings(git_executable=binary, timeout_s=30.0)).run(
                ["--version"], operation="version", url=binary, cwd=Path(cwd)
            )
        except GitError as exc:
            out.line(False, f"git ({binary}): {exc}")
            return
    out.line(True, result.stdout.decode("utf-8", "replace").strip() + f" ({binary})")


def _permissions(out: _Checklist, kube: Kube, who: str, lease_namespace: str, leader_elect: bool) -> None:
    wanted: list[tuple[Permission, str | None]] = [(p, None) for p in AGENT_PERMISSIONS]
    wanted += [(p, lease_namespace) for p in STATE_PERMISSIONS]
    if leader_elect:
        wanted += [(p, lease_namespace) for p in LEADER_PERMISSIONS]
    for permission, namespace in wanted:
        where = (
            f"in namespace {namespace}"
            if namespace
            else ("in every namespace" if permission.namespaced else "cluster-wide")
        )
        missing = []
        for verb in permission.verbs:
            try:
                allowed, reason = kube.may(
                    verb,
                    permission.group,
                    permission.resource,
                    namespace=namespace,
                    subresource=permission.subresource,
                    name=permission.name,
                )
            except KubeError as exc:
                out.line(False, f"RBAC of {who}: {exc}")
                return
            if not allowed:
                missing.append(verb + (f" ({reason})" if reason else ""))
        if missing:
            out.line(False, f"RBAC: {permission.text()} {where}: {who} may not {', '.join(missing)}")
            out.note(f"needed to {permission.why}")
        else:
            out.line(True, f"RBAC: {permission.text()} {where} ({permission.why})")
