"""``gitops-helm reconcile`` as people use it beside each other (run as the installed command)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from tests.conftest import Env
from tests.integration.reconcile_helpers import apply, hr_manifest, repo_chart, user_values
from tests.integration.syncfix import (
    GITOPS_HELM,
    ConfigRepo,
    cli,
    get_object,
    helmrelease,
    process_env,
    release_exists,
    start_agent,
    sync_state,
    unique_name,
    wait_for,
)

REQUEST = "gitops-helm.io/reconcile-requested-at"


def requested(env: Env, namespace: str, name: str) -> str | None:
    obj = get_object(env, "helmrelease", namespace, name) or {}
    return (obj["metadata"].get("annotations") or {}).get(REQUEST)  # type: ignore[no-any-return]


def install_crd(env: Env) -> None:
    """The CRD as ``gitops-helm crd`` prints it (the agents install it too, but these tests write
    HelmReleases before any agent runs)."""
    out = cli(env, "crd")
    assert out.returncode == 0, out.stderr
    env.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input_text=out.stdout)
    env.kubectl("wait", "--for=condition=Established", "crd/helmreleases.helm.fluxcd.io", "--timeout=60s")


def reconcile_process(env: Env, namespace: str, name: str) -> subprocess.Popen[str]:
    argv = [GITOPS_HELM, "reconcile", name, "-n", namespace, "--kubeconfig", env["KUBECONFIG"]]
    return subprocess.Popen(
        [*argv, "--timeout", "120s"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=process_env(env),
    )


def test_two_concurrent_reconciles_of_one_helmrelease_both_get_the_outcome(
    env: Env, namespace: str, start_agent: Any
) -> None:
    """The second request overwrites the first's annotation before the agent reads it (the agent
    starts only after both asked): the one reconcile that follows answers both."""
    install_crd(env)
    apply(env, hr_manifest("web", namespace, repo_chart(env)))
    first = reconcile_process(env, namespace, "web")
    second: subprocess.Popen[str] | None = None
    try:
        mine = wait_for("the first request", lambda: requested(env, namespace, "web"), timeout=60)
        second = reconcile_process(env, namespace, "web")
        wait_for(
            "the second request to replace the first",
            lambda: requested(env, namespace, "web") not in (None, mine),
            timeout=60,
        )
        start_agent(namespace, env["HELM_BIN"])
        outputs = [p.communicate(timeout=180) for p in (first, second)]
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
                process.communicate()
    for process, (out, err) in zip((first, second), outputs, strict=True):
        assert process.returncode == 0, out + err
        assert f"HelmRelease {namespace}/web reconciled: revision 0.1.0" in out, out + err


def test_reconcile_with_source_fetches_git_first(env: Env, namespace: str, tmp_path: Path) -> None:
    """``--with-source`` asks the agent's Git sync for a fetch (its next poll is minutes away),
    then reconciles the HelmRelease as the new commit declares it."""
    url = f"{env['TESTENV_GIT_HTTP']}/{unique_name('with-source')}.git"
    repo = ConfigRepo(tmp_path / "repo", url)
    first = repo.replace({"app.yaml": helmrelease(env, "app", {"message": "one"})})
    agent = start_agent(env, tmp_path / "agent", namespace, url, poll="10m")
    try:
        wait_for(
            "the first commit's release",
            lambda: (
                release_exists(env, namespace, "app")
                and user_values(env, env["HELM_BIN"], namespace, "app").get("message") == "one"
            ),
            timeout=180,
        )
        # the agent's record of its first fetch and sync is written (the CLI waits for the next one)
        wait_for(
            "the first fetch and sync recorded",
            lambda: (
                (state := sync_state(env, namespace, agent.sync_name)).get("revision") == first
                and state.get("nextPoll")
            ),
            timeout=60,
        )
        sha = repo.commit({"app.yaml": helmrelease(env, "app", {"message": "two"})})
        out = cli(
            env, "reconcile", "app", "-n", namespace, "--kubeconfig", env["KUBECONFIG"], "--with-source",
            "--sync-name", agent.sync_name, "--state-namespace", namespace, "--timeout", "150s",
            timeout=200,
        )  # fmt: skip
        assert out.returncode == 0, out.stdout + out.stderr
        assert f"Git fetched: revision {sha[:12]}" in out.stdout, out.stdout
        assert f"HelmRelease {namespace}/app reconciled" in out.stdout, out.stdout
        assert user_values(env, env["HELM_BIN"], namespace, "app")["message"] == "two"
    finally:
        agent.stop()
