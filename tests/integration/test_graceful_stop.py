"""SIGTERM to `gitops-helm run` while `helm upgrade --wait` runs: the upgrade finishes within the
shutdown grace (default 5m, below deploy/deployment.yaml's terminationGracePeriodSeconds), its
outcome is recorded, nothing new starts (no rollback), and no revision is left pending-*."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

from tests.conftest import Env
from tests.integration.reconcile_helpers import (
    apply,
    hr_manifest,
    latest_revision,
    patch_spec,
    release_secrets,
    repo_chart,
)
from tests.integration.syncfix import (
    GITOPS_HELM,
    AgentProcess,
    free_port,
    get_object,
    process_env,
    wait_for,
)

#: spec.timeout of the upgrade that never becomes Ready: longer than the 30 s the agent used to
#: wait for its workers, far shorter than the default shutdown grace.
UPGRADE_TIMEOUT_S = 45


def _storage(env: Env, namespace: str, release: str) -> list[tuple[int, str]]:
    return [
        (int(s["metadata"]["labels"]["version"]), s["metadata"]["labels"]["status"])
        for s in release_secrets(env, namespace, release)
    ]


def test_sigterm_lets_a_running_helm_upgrade_finish_and_starts_nothing_new(
    env: Env, namespace: str, tmp_path: Path
) -> None:
    port = free_port()
    log_path = tmp_path / "agent.log"
    argv = [
        GITOPS_HELM, "run", "--reconcile-only", "--kubeconfig", env["KUBECONFIG"],
        "--namespace", namespace, "--helm-bin", env["HELM_BIN"], "--listen", f"127.0.0.1:{port}",
        "--work-dir", str(tmp_path / "work"), "--retry-base", "1s", "--retry-max", "3s",
    ]  # fmt: skip
    with open(log_path, "wb") as out:
        # its own process group: killing the group afterwards is what the end of a pod does to
        # any helm the agent left running
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env=process_env(env), start_new_session=True
        )
    try:
        # on a fresh cluster the agent installs the CRD first: apply nothing before it acts
        AgentProcess(proc, port, log_path, "", namespace, argv).wait_acting()
        hr = hr_manifest(
            "app",
            namespace,
            repo_chart(env),
            values={"message": "one"},
            wait=True,
            timeout=UPGRADE_TIMEOUT_S,
            # a failed upgrade is rolled back at once: the shutdown must not start that rollback
            rollback={"enable": True},
        )
        apply(env, hr)
        wait_for("revision 1 deployed", lambda: _storage(env, namespace, "app") == [(1, "deployed")], 90)
        # an upgrade whose pod never becomes Ready: helm --wait fails after spec.timeout
        patch_spec(env, namespace, "app", {"values": {"message": "two", "unready": True}})
        wait_for(
            "the upgrade to revision 2 to be under way",
            lambda: latest_revision(env, namespace, "app") == (2, "pending-upgrade"),
            60,
        )
        time.sleep(2)
        signalled = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(UPGRADE_TIMEOUT_S + 90)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the agent did not stop:\n{log_path.read_text()[-3000:]}") from None
        took = time.monotonic() - signalled
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        # the container ends: whatever the agent left running dies with it
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    log = log_path.read_text()
    time.sleep(1)
    # helm finished (its --wait failed) before the agent exited: nothing is left pending
    assert _storage(env, namespace, "app") == [(1, "deployed"), (2, "failed")], log[-3000:]
    assert code == 0, log[-3000:]
    assert took > UPGRADE_TIMEOUT_S - 15, f"exited after {took:.0f}s: helm cannot have finished"
    # the outcome is recorded on the status; the rollback it calls for was not started
    st = (get_object(env, "helmrelease", namespace, "app") or {}).get("status", {})
    assert st.get("failures") == 1, st
    assert st.get("lastFailedAction") == "upgrade", st
    assert "rolled back" not in log, log[-3000:]


def _tgkill(pid: int, tid: int, sig: int) -> None:
    """Send ``sig`` to one thread of another process (Linux ``tgkill``), as the kernel may do
    with a process-directed signal when the main thread is not the one it picks."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    sys_tgkill = {"x86_64": 234, "aarch64": 131}[os.uname().machine]
    if libc.syscall(sys_tgkill, pid, tid, sig) != 0:
        raise OSError(ctypes.get_errno(), "tgkill")


def test_sigterm_received_by_another_thread_still_stops_the_agent(
    env: Env, namespace: str, tmp_path: Path
) -> None:
    """Python runs signal handlers on the main thread only; a SIGTERM that lands on a worker
    thread just sets a flag. The main thread used to wait with no timeout, so it slept through
    it: the agent never stopped gracefully (the kubelet's SIGKILL would end it mid-helm)."""
    port = free_port()
    log_path = tmp_path / "agent.log"
    argv = [
        GITOPS_HELM, "run", "--reconcile-only", "--kubeconfig", env["KUBECONFIG"],
        "--namespace", namespace, "--helm-bin", env["HELM_BIN"], "--listen", f"127.0.0.1:{port}",
        "--work-dir", str(tmp_path / "work"),
    ]  # fmt: skip
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=process_env(env))
    try:
        AgentProcess(proc, port, log_path, "", namespace, argv).wait_acting()
        threads = [int(t) for t in os.listdir(f"/proc/{proc.pid}/task") if int(t) != proc.pid]
        assert threads, "the agent runs worker threads"
        _tgkill(proc.pid, threads[0], signal.SIGTERM)
        try:
            code = proc.wait(60)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"the agent slept through SIGTERM:\n{log_path.read_text()[-2000:]}"
            ) from None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert code == 0, log_path.read_text()[-2000:]
    assert "signal received" in log_path.read_text()
