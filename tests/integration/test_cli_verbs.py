"""The CLI verbs against the real API server and a running agent: ``get``, ``status``,
``reconcile``, ``suspend``, ``resume``, ``events``, ``check`` (run as the installed command, as a
person types them; not a terminal, so plain lines and no colour)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from gitops_helm import yamlio
from tests.conftest import Env
from tests.integration.reconcile_helpers import apply, hr_manifest, repo_chart, wait_ready
from tests.integration.syncfix import (
    ConfigRepo,
    cli,
    configmap,
    get_object,
    sync_flags,
    unique_name,
    wait_for,
)


def verb(env: Env, *args: str) -> subprocess.CompletedProcess[str]:
    return cli(env, *args, "--kubeconfig", env["KUBECONFIG"])


def handled(env: Env, namespace: str, name: str) -> str | None:
    obj = get_object(env, "helmrelease", namespace, name) or {}
    return (obj.get("status") or {}).get("lastHandledReconcileAt")  # type: ignore[no-any-return]


def test_get_reconcile_suspend_resume_and_events(env: Env, namespace: str, start_agent: Any) -> None:
    agent = start_agent(namespace, env["HELM_BIN"])
    apply(env, hr_manifest("web", namespace, repo_chart(env)))
    missing = dict(repo_chart(env), version="9.9.9")
    apply(env, hr_manifest("broken", namespace, missing))
    wait_ready(agent, "web", namespace)

    # get: the table of this namespace, the data forms, and -A with a NAMESPACE column
    out = verb(env, "get", "-n", namespace)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split()[:4] == ["NAME", "READY", "STATUS", "REVISION"], out.stdout
    web = next(line for line in lines if line.startswith("web "))
    assert web.split()[:6] == ["web", "True", "Succeeded", "0.1.0", "hello@0.1.0", "install"], web
    assert "\033[" not in out.stdout, "colour written to a pipe"
    rows = json.loads(verb(env, "get", "hr", "web", "-n", namespace, "-o", "json").stdout)
    assert [(r["name"], r["ready"], r["suspended"], r["lastAction"]) for r in rows] == [
        ("web", "True", False, "install")
    ]
    as_yaml = yamlio.load(verb(env, "get", "hr", "web", "-n", namespace, "-o", "yaml").stdout)
    assert [dict(r, age=None) for r in as_yaml] == [dict(r, age=None) for r in rows]  # age moves on
    everywhere = verb(env, "get", "-A").stdout.splitlines()
    assert everywhere[0].startswith("NAMESPACE"), everywhere[0]
    assert any(line.split()[:2] == [namespace, "web"] for line in everywhere), everywhere
    absent = verb(env, "get", "hr", "nothing", "-n", namespace)
    assert absent.returncode == 1 and "'nothing' not found" in absent.stderr, absent.stderr

    # Flux's annotation is a reconcile request too: the agent records the value it handled
    env.kubectl("annotate", "helmrelease", "web", "-n", namespace, "reconcile.fluxcd.io/requestedAt=flux-1")
    wait_for("the Flux request handled", lambda: handled(env, namespace, "web") == "flux-1", timeout=60)

    # reconcile: Ready -> 0, with the handled request recorded
    out = verb(env, "reconcile", "web", "-n", namespace, "--timeout", "90s")
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"HelmRelease {namespace}/web reconciled: revision 0.1.0" in out.stdout, out.stdout
    obj = get_object(env, "helmrelease", namespace, "web") or {}
    requested = obj["metadata"]["annotations"]["gitops-helm.io/reconcile-requested-at"]
    assert obj["status"]["lastHandledReconcileAt"] == requested

    # a HelmRelease that is not Ready -> 1, with the reason
    out = verb(env, "reconcile", "broken", "-n", namespace, "--timeout", "90s")
    assert out.returncode == 1, out.stdout + out.stderr
    assert f"HelmRelease {namespace}/broken is not ready (ChartFetchFailed)" in out.stderr, out.stderr
    # not found -> 2
    out = verb(env, "reconcile", "nothing", "-n", namespace, "--timeout", "5s")
    assert out.returncode == 2 and "not found" in out.stderr, out.stderr

    # suspend: spec.suspend, shown by get; a reconcile of it is refused (2); resume waits (0)
    out = verb(env, "suspend", "web", "-n", namespace)
    assert out.returncode == 0, out.stderr
    assert (get_object(env, "helmrelease", namespace, "web") or {})["spec"]["suspend"] is True
    rows = json.loads(verb(env, "get", "hr", "web", "-n", namespace, "-o", "json").stdout)
    assert rows[0]["suspended"] is True
    out = verb(env, "reconcile", "web", "-n", namespace, "--timeout", "5s")
    assert out.returncode == 2 and "is suspended" in out.stderr, out.stderr
    out = verb(env, "resume", "web", "-n", namespace, "--timeout", "90s")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "resumed" in out.stdout and "reconciled" in out.stdout, out.stdout
    assert (get_object(env, "helmrelease", namespace, "web") or {})["spec"]["suspend"] is False

    # events: the failing HelmRelease's Warning, and none of them for the healthy one's name
    out = verb(env, "events", "broken", "-n", namespace)
    assert out.returncode == 0, out.stderr
    header, *events = out.stdout.splitlines()
    assert header.split()[:4] == ["LAST", "SEEN", "TYPE", "REASON"], header
    assert any("Warning" in e and "ChartFetchFailed" in e and "helmrelease/broken" in e for e in events)
    assert not any("helmrelease/web" in e for e in events), events
    everywhere = verb(env, "events", "-A").stdout
    assert namespace in everywhere and "helmrelease/broken" in everywhere


def test_status_finds_the_sync_state_where_the_agent_writes_it(
    env: Env, namespace: str, tmp_path: Path
) -> None:
    """The state is written in the agent's --state-namespace (not ``default``): ``status``
    without --state-namespace finds it by label."""
    url = f"{env['TESTENV_GIT_HTTP']}/{unique_name('verbs-status')}.git"
    repo = ConfigRepo(tmp_path / "repo", url)
    sha = repo.replace({"cm.yaml": configmap("seen", {"v": "1"})})
    sync_name = unique_name("verbs")
    out = cli(env, "sync", "--once", *sync_flags(env, namespace, sync_name), "--git-url", url)
    assert out.returncode == 0, out.stdout + out.stderr

    out = verb(env, "status", "-n", namespace, "--sync-name", sync_name)
    assert out.returncode == 0, out.stderr
    assert f"git sync ({namespace}/gitops-helm-sync-" in out.stdout, out.stdout
    assert f"revision {sha[:12]}" in out.stdout and f"source: {url}" in out.stdout, out.stdout
    data = json.loads(verb(env, "status", "-n", namespace, "--sync-name", sync_name, "-o", "json").stdout)
    assert [(s["namespace"], s["revision"]) for s in data["syncStates"]] == [(namespace, sha)]


def test_check_passes_for_an_admin_and_names_missing_permissions(env: Env, namespace: str) -> None:
    apply(env, hr_manifest("any", namespace, repo_chart(env)))  # the CRD is installed
    out = verb(env, "check", "--helm-bin", env["HELM_BIN"])
    assert out.returncode == 0, out.stdout + out.stderr
    assert "✔ API server" in out.stdout and "✔ CRD helmreleases.helm.fluxcd.io installed" in out.stdout
    assert "✔ helm v" in out.stdout and "✔ git version" in out.stdout, out.stdout

    # a ServiceAccount that may only read HelmReleases: every other permission is named
    env.kubectl("create", "serviceaccount", "reader", "-n", namespace)
    env.kubectl(
        "create", "clusterrole", f"{namespace}-reader", "--verb=get,list,watch", "--resource=helmreleases"
    )
    try:
        env.kubectl(
            "create",
            "clusterrolebinding",
            f"{namespace}-reader",
            f"--clusterrole={namespace}-reader",
            f"--serviceaccount={namespace}:reader",
        )
        user = f"system:serviceaccount:{namespace}:reader"
        out = verb(
            env, "check", "--helm-bin", env["HELM_BIN"], "--as", user, "--leader-elect", "-n", namespace
        )
        assert out.returncode == 1, out.stdout + out.stderr
        lines = out.stdout.splitlines()
        every = f"in every namespace: {user} may not"
        assert f"✗ RBAC: get,list,watch,patch helmreleases.helm.fluxcd.io {every} patch" in lines
        assert f"✗ RBAC: patch helmreleases/status.helm.fluxcd.io {every} patch" in lines
        lease = f"in namespace {namespace}: {user} may not get, create, update"
        assert f"✗ RBAC: get,create,update leases.coordination.k8s.io {lease}" in lines, out.stdout
        assert "check(s) failed" in out.stdout
    finally:
        env.kubectl("delete", "clusterrolebinding", f"{namespace}-reader", check=False)
        env.kubectl("delete", "clusterrole", f"{namespace}-reader", check=False)
