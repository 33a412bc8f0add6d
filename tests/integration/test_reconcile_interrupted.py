"""The agent killed mid-upgrade (kill -9: a crash, OOM or node loss), helm 3 and 4.

Issue #8 item 5, as a new user tries it: the agent is killed during an upgrade that fails its
``--wait`` (pods never Ready, a short progress deadline), the user fixes the values, the agent
starts again. It unlocks the interrupted revision after the grace and upgrades with the fixed
values; that upgrade returns the pod template to the one of the first rollout, so the deployment
controller keeps the failed rollout's ``ProgressDeadlineExceeded`` at the new generation for a
moment, and helm 4's kstatus wait fails at once on it. Before, that failure counted and, with no
remediation configured, the release stayed failed and Stalled. Now the stale verdict is retried
without counting, failures are retried with backoff by default, and the release ends Ready.

Issue #8 item 4: repeated interruptions of the agent for the same desired state are bounded:
past ``--max-interruptions`` each one counts as a failure (so backoff and the retry policy apply).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Env
from tests.integration.reconcile_helpers import (
    apply,
    config_message,
    hr_manifest,
    latest_revision,
    patch_spec,
    publish,
    unique_name,
    user_values,
)
from tests.integration.syncfix import GITOPS_HELM, AgentProcess, free_port, get_object, process_env, wait_for

#: spec.timeout of the upgrades: the agent is killed as soon as helm has applied the upgrade and
#: waits; the grace of a pending revision is this plus the agent's --pending-grace-margin (1 s).
TIMEOUT_S = 10


class Agents:
    """``gitops-helm run --reconcile-only`` subprocesses, each in its own process group, so that a
    kill -9 takes its helm with it (as the end of a pod does)."""

    def __init__(self, env: Env, namespace: str, helm: str, tmp_path: Path, *extra: str) -> None:
        self.env, self.namespace, self.helm, self.tmp_path, self.extra = env, namespace, helm, tmp_path, extra
        self.running: AgentProcess | None = None
        self.logs: list[Path] = []

    def start(self) -> AgentProcess:
        port = free_port()
        log_path = self.tmp_path / f"agent-{len(self.logs)}.log"
        self.logs.append(log_path)
        argv = [
            GITOPS_HELM, "run", "--reconcile-only", "--kubeconfig", self.env["KUBECONFIG"],
            "--namespace", self.namespace, "--helm-bin", self.helm, "--listen", f"127.0.0.1:{port}",
            "--work-dir", str(self.tmp_path / "work"), "--retry-base", "1s", "--retry-max", "3s",
            "--pending-grace-margin", "1s", *self.extra,
        ]  # fmt: skip
        with open(log_path, "wb") as out:
            proc = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, env=process_env(self.env), start_new_session=True
            )
        self.running = AgentProcess(proc, port, log_path, "", self.namespace, argv)
        self.running.wait_acting()
        return self.running

    def kill(self) -> None:
        """kill -9 the agent and everything it runs (helm included)."""
        agent, self.running = self.running, None
        if agent is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(agent.proc.pid, signal.SIGKILL)
        agent.proc.wait(10)

    def log_tail(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-2500:] for p in self.logs[-2:])


@pytest.fixture
def agents(env: Env, namespace: str, tmp_path: Path) -> Iterator[Any]:
    made: list[Agents] = []

    def factory(helm: str, *extra: str) -> Agents:
        made.append(Agents(env, namespace, helm, tmp_path, *extra))
        return made[-1]

    yield factory
    for a in made:
        a.kill()


def _hr(env: Env, namespace: str) -> dict[str, Any]:
    return get_object(env, "helmrelease", namespace, "app") or {}


def _condition(env: Env, namespace: str, ctype: str) -> dict[str, Any] | None:
    conditions = _hr(env, namespace).get("status", {}).get("conditions", [])
    return next((c for c in conditions if c["type"] == ctype), None)


def _ready_in_sync(env: Env, namespace: str, since_revision: int = 0) -> bool:
    """Ready=True for the current generation, the run finished (no Reconciling), and the latest
    revision (newer than ``since_revision``) deployed. While the agent waits out the grace of a
    pending revision it has seen the current generation but the Ready=True of an older revision
    is still there: only the last two facts tell that apart."""
    hr = _hr(env, namespace)
    st = hr.get("status", {})
    ready = _condition(env, namespace, "Ready")
    current = st.get("observedGeneration") == hr.get("metadata", {}).get("generation")
    revision, storage_status = latest_revision(env, namespace, "app")
    return bool(
        ready
        and ready["status"] == "True"
        and current
        and _condition(env, namespace, "Reconciling") is None
        and revision > since_revision
        and storage_status == "deployed"
    )


def _deadline_exceeded(env: Env, namespace: str) -> bool:
    deployment = get_object(env, "deployment", namespace, "app") or {}
    conditions = deployment.get("status", {}).get("conditions", [])
    return any(
        c["type"] == "Progressing" and c.get("reason") == "ProgressDeadlineExceeded" for c in conditions
    )


def _crd_note(env: Env) -> str:
    """The shared test cluster has one HelmRelease CRD: an agent of an older tree that installs
    its CRD meanwhile prunes ``status.interruptions``. Say so when an assertion fails."""
    crd = env.kube_json("crd", "helmreleases.helm.fluxcd.io")
    status = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    return f"CRD in the cluster knows status.interruptions: {'interruptions' in status}"


def _unready_applied(env: Env, namespace: str) -> bool:
    deployment = get_object(env, "deployment", namespace, "app") or {}
    labels = deployment.get("spec", {}).get("template", {}).get("metadata", {}).get("labels", {})
    return labels.get("testenv.gitops-helm.io/unready") == "true"


def _kill_during_upgrade(env: Env, namespace: str, agents: Agents, revision: int) -> None:
    """Wait until the agent's upgrade to ``revision`` has applied the unready pods and waits for
    them, then kill -9 the agent (and its helm)."""
    wait_for(
        f"the upgrade to revision {revision} to be applied and waiting",
        lambda: (
            latest_revision(env, namespace, "app") == (revision, "pending-upgrade")
            and _unready_applied(env, namespace)
        ),
        timeout=120,
        interval=0.1,
    )
    agents.kill()
    assert latest_revision(env, namespace, "app") == (revision, "pending-upgrade")


@pytest.mark.parametrize("helm_var", ["HELM_BIN", "HELM3_BIN"], ids=["helm4", "helm3"])
def test_killed_during_a_failing_upgrade_then_fixed_values_ends_ready(
    env: Env, namespace: str, agents: Any, tmp_path: Path, helm_var: str
) -> None:
    # With helm 3 this needs plan row 8f: an upgrade after a failed revision three-way-merges
    # against the last *deployed* revision, so without restoring that revision first the pod
    # label the failed revision added stays on the live Deployment and every retry times out.
    helm = env[helm_var]
    name = publish(tmp_path, unique_name("stale"))
    chart = {"repository": env["TESTENV_CHARTS"], "name": name, "version": "0.1.0"}
    run = agents(helm)
    run.start()
    apply(env, hr_manifest("app", namespace, chart, values={"message": "good"}, wait=True, timeout=TIMEOUT_S))
    wait_for("revision 1 Ready", lambda: _ready_in_sync(env, namespace), timeout=120)

    # the bad values: pods that never become Ready, and a 3 s progress deadline; the agent is
    # killed while helm waits, and the rollout then passes its deadline
    fixed = {"message": "good", "progressDeadlineSeconds": 3}
    patch_spec(env, namespace, "app", {"values": {**fixed, "unready": True}})
    _kill_during_upgrade(env, namespace, run, 2)
    wait_for("the rollout to exceed its deadline", lambda: _deadline_exceeded(env, namespace), timeout=120)

    # the user fixes the values (back to the first rollout's pod template); the agent restarts
    patch_spec(env, namespace, "app", {"values": {"unready": None}})
    run.start()
    try:
        wait_for("Ready with the fixed values", lambda: _ready_in_sync(env, namespace, 2), timeout=240)
    except AssertionError as exc:
        raise AssertionError(
            f"{exc}\nstatus: {_hr(env, namespace).get('status')}\n{run.log_tail()}"
        ) from None
    assert user_values(env, helm, namespace, "app") == fixed
    assert config_message(env, namespace, "app") == "good"
    assert latest_revision(env, namespace, "app")[1] == "deployed"
    assert _condition(env, namespace, "Stalled") is None


def test_repeated_interruptions_of_one_desired_state_are_bounded(
    env: Env, namespace: str, agents: Any
) -> None:
    # the bound is the agent's, not helm's: one helm version is enough
    run = agents(env["HELM_BIN"], "--max-interruptions", "1")
    run.start()
    chart = {"repository": env["TESTENV_CHARTS"], "name": "hello", "version": "0.1.0"}
    apply(env, hr_manifest("app", namespace, chart, values={"message": "one"}, wait=True, timeout=TIMEOUT_S))
    wait_for("revision 1 Ready", lambda: _ready_in_sync(env, namespace), timeout=120)

    # a desired state whose upgrade is interrupted each time (the agent is killed mid-upgrade)
    patch_spec(env, namespace, "app", {"values": {"message": "two", "unready": True}})
    _kill_during_upgrade(env, namespace, run, 2)
    run.start()  # unlocks revision 2 after the grace: interruption 1, not a failure; upgrades again
    _kill_during_upgrade(env, namespace, run, 3)
    st = _hr(env, namespace).get("status", {})
    assert (st.get("interruptions"), st.get("failures")) == (1, 0), (st, _crd_note(env))

    run.start()  # unlocks revision 3: interruption 2, past the bound of 1: a failure

    def counted() -> dict[str, Any] | None:
        status = _hr(env, namespace).get("status", {})
        return status if status.get("interruptions") == 2 else None

    try:
        st = wait_for("the second interruption to be recorded", counted, timeout=120)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; {_crd_note(env)}") from None
    assert st.get("failures", 0) >= 1, st
    assert st.get("lastFailedAction") == "upgrade", st
    events = env.kube_json("events", "-n", namespace)["items"]
    unlocked = [e["message"] for e in events if e["reason"] == "PendingReleaseUnlocked"]
    assert any("revision 3" in m and "counted as a failure" in m for m in unlocked), unlocked
    # no retry budget is configured: never Stalled, the failure is retried with backoff
    assert _condition(env, namespace, "Stalled") is None
