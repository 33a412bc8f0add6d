"""The agent alone killed during ``helm test``: no second helm operation while the orphan runs.

Issue #12 (found by reading): helm runs in its own session, so a SIGKILL of the agent alone
leaves its ``helm test`` child running. Helm writes nothing to storage until a test ends, so the
restarted agent saw only ``testState: pending`` and started a second ``helm test`` at once: its
``before-hook-creation`` deleted the orphan's test pod, and two helm operations ran on one
release. Now the status records when the test started (``testStartedAt``, written before helm
runs) and any agent waits as long as that test may run (``spec.test.timeout`` + the pending-grace
margin) before it calls helm for the release again, and records the outcome the orphan wrote
to the tested revision when it ended instead of testing a second time.

The test pod of the chart value ``testOutcome: slow`` passes after 20 s (kwok stage
``testenv-helm-test-slow``): long enough to kill the agent and start another one meanwhile.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Env
from tests.integration.reconcile_helpers import apply, hr_manifest, repo_chart
from tests.integration.syncfix import get_object, release_exists, wait_for
from tests.integration.test_reconcile_interrupted import Agents

#: spec.test.timeout: more than the slow test pod takes (20 s), so the orphan passes
TEST_TIMEOUT_S = 40


def _helm_tests(helm: str, namespace: str) -> set[int]:
    """Process ids of ``helm test`` runs for releases of ``namespace`` (from the process table)."""
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:  # the process ended meanwhile
            continue
        words = [w.decode(errors="replace") for w in argv if w]
        if state == "Z" or len(words) < 2 or words[0] != helm or words[1] != "test":
            continue
        if namespace in words and words[words.index(namespace) - 1] == "--namespace":
            found.add(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _status(env: Env, namespace: str) -> dict[str, Any]:
    return (get_object(env, "helmrelease", namespace, "app") or {}).get("status", {})


def _tested(env: Env, namespace: str) -> bool:
    st = _status(env, namespace)
    tested = next((c for c in st.get("conditions", []) if c["type"] == "Tested"), None)
    return bool(tested and tested["status"] == "True" and st.get("testState") == "passed")


def _orphan_a_slow_test(env: Env, namespace: str, helm: str, agents: Agents, timeout_s: int) -> int:
    """Install a release whose helm test takes 20 s, kill the agent alone while its ``helm test``
    child runs; return that child's pid."""
    first = agents.start()
    spec = {"test": {"enable": True, "timeout": timeout_s}, "values": {"testOutcome": "slow"}}
    apply(env, hr_manifest("app", namespace, repo_chart(env), **spec))
    orphan: int = wait_for(
        "the agent's helm test to run",
        lambda: next(iter(_helm_tests(helm, namespace)), None),
        timeout=120,
        interval=0.05,
    )
    # the agent alone, as a crash or OOM kill does: its helm child lives on in its own session
    os.kill(first.proc.pid, signal.SIGKILL)
    first.proc.wait(10)
    assert _alive(orphan), "the helm test child died with the agent: nothing to test here"
    return orphan


@pytest.mark.parametrize("helm_var", ["HELM_BIN", "HELM3_BIN"], ids=["helm4", "helm3"])
def test_a_restarted_agent_waits_for_the_orphaned_helm_test(
    env: Env, namespace: str, tmp_path: Path, helm_var: str
) -> None:
    helm = env[helm_var]
    agents = Agents(env, namespace, helm, tmp_path)
    try:
        orphan = _orphan_a_slow_test(env, namespace, helm, agents, TEST_TIMEOUT_S)
        agents.start()
        # sampled until the outcome is recorded: no second helm test beside the orphan, and none
        # after it either (the restarted agent records the outcome the orphan wrote)
        deadline = time.monotonic() + 180
        while not _tested(env, namespace):
            running = _helm_tests(helm, namespace)
            assert running <= {orphan}, (
                f"a second helm test ({running - {orphan}}) ran (the orphan {orphan} alive: "
                f"{_alive(orphan)})\nstatus: {_status(env, namespace)}\n{agents.log_tail()}"
            )
            assert time.monotonic() < deadline, (
                f"never Tested=True\nstatus: {_status(env, namespace)}\n{agents.log_tail()}"
            )
            time.sleep(0.1)
        assert not _alive(orphan)
        status = _status(env, namespace)
        assert status.get("testStartedAt") is None
        # the recorded outcome completes the install's history entry, as a test the agent saw
        # end does: `gitops-helm history` says the live revision was tested
        newest = status["history"][0]
        assert (newest["action"], newest["helmRevision"]) == ("install", 1), status["history"]
        assert (newest["outcome"], newest.get("testResult")) == ("succeeded", "passed"), status["history"]
    finally:
        agents.kill()


def test_a_deleted_helmrelease_is_uninstalled_only_after_the_orphaned_helm_test(
    env: Env, namespace: str, tmp_path: Path
) -> None:
    # helm-agnostic (the planner's wait); one helm keeps the suite short
    helm = env["HELM_BIN"]
    agents = Agents(env, namespace, helm, tmp_path)
    try:
        # the shortest timeout that still lets the 20 s test pass: the wait is this + 1 s
        orphan = _orphan_a_slow_test(env, namespace, helm, agents, 25)
        env.kubectl("delete", "helmrelease", "app", "-n", namespace, "--wait=false")
        agents.start()
        deadline = time.monotonic() + 180
        while _alive(orphan):
            assert release_exists(env, namespace, "app"), (
                f"the release was uninstalled while the orphaned helm test ran\n{agents.log_tail()}"
            )
            assert time.monotonic() < deadline, "the orphaned helm test never ended"
            time.sleep(0.2)
        wait_for(
            "the HelmRelease gone", lambda: get_object(env, "helmrelease", namespace, "app") is None, 180
        )
        assert not release_exists(env, namespace, "app")
    finally:
        agents.kill()
