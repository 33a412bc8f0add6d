"""Two `gitops-helm run --leader-elect` replicas sharing a Lease, the leader frozen (SIGSTOP) or
killed (SIGKILL) during `helm upgrade --wait`: at no moment do two helm processes act on the
release, the standby takes over within the lease duration (plus a generous margin), and a frozen
leader, resumed, notices it lost the Lease before doing anything: it kills its helm upgrade
(left pending-upgrade for the next leader's pending grace), starts no helm, and exits 1.

The helm processes are sampled from /proc all along (argv naming the release and namespace)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Env
from tests.integration.reconcile_helpers import (
    apply,
    hr_manifest,
    latest_revision,
    patch_spec,
    release_record,
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

#: Short lease numbers, as an operator would pass them: a standby takes over a Lease it has seen
#: unchanged for 10 s; a leader unable to renew for 6 s stops acting. A leader stalled 6 s by a
#: loaded machine would lose the Lease: 6 s leaves room for that.
LEASE_S = 10
LEASE_FLAGS = (
    "--leader-election-lease-duration",
    f"{LEASE_S}s",
    "--leader-election-renew-deadline",
    "6s",
    "--leader-election-retry-period",
    "1s",
)
#: the upgrade's helm --timeout: it waits for a pod that never becomes Ready far longer than the
#: test runs, and the pending grace (timeout + 60 s) keeps the next leader away meanwhile
UPGRADE_TIMEOUT_S = 300
#: the takeover must come within the lease duration after the freeze; the margin is for a
#: loaded 2-core machine (this is a correctness bound of leader election, not a benchmark)
TAKEOVER_BOUND_S = LEASE_S + 50


@dataclass
class HelmSampler:
    """Polls /proc for helm processes whose argv names ``release`` in ``namespace``."""

    helm_bin: str
    release: str
    namespace: str
    first_seen: dict[int, tuple[float, int, list[str]]] = field(
        default_factory=dict
    )  # pid -> (when, ppid, argv)
    most_at_once: int = 0
    at_once_seen: list[list[str]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def acting(self) -> dict[int, tuple[int, list[str]]]:
        found: dict[int, tuple[int, list[str]]] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue  # gone meanwhile
            args = [a.decode(errors="replace") for a in argv if a]
            if not args or args[0] != self.helm_bin or self.release not in args[1:3]:
                continue
            if not any(args[i : i + 2] == ["--namespace", self.namespace] for i in range(len(args))):
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if fields[0] == "Z":
                continue  # finished, not yet reaped: acts on nothing
            found[int(entry)] = (int(fields[1]), args)
        return found

    def _loop(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            procs = self.acting()
            for pid, (ppid, args) in procs.items():
                self.first_seen.setdefault(pid, (now, ppid, args))
            if len(procs) > self.most_at_once:
                self.most_at_once = len(procs)
                self.at_once_seen = [args for _, args in procs.values()]
            self._stop.wait(0.05)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def started_by(self, ppid: int, after: float = 0.0) -> list[list[str]]:
        return [args for when, parent, args in self.first_seen.values() if parent == ppid and when >= after]


def _start(env: Env, tmp_path: Path, name: str, namespace: str, lease: str) -> AgentProcess:
    port = free_port()
    work = tmp_path / name
    work.mkdir()
    argv = [
        GITOPS_HELM, "run", "--reconcile-only", "--kubeconfig", env["KUBECONFIG"],
        "--namespace", namespace, "--helm-bin", env["HELM_BIN"], "--listen", f"127.0.0.1:{port}",
        "--work-dir", str(work / "work"), "--retry-base", "1s", "--retry-max", "3s",
        "--leader-elect", "true", "--leader-election-namespace", namespace,
        "--leader-election-id", lease, *LEASE_FLAGS,
        # the chart repository is shared: another test republishing a chart changes the index
        # under a cached copy; refetch it soon rather than after the default minute
        "--chart-refresh-interval", "2s",
    ]  # fmt: skip
    log_path = work / "agent.log"
    with open(log_path, "wb") as out:
        # a session of its own: the clean-up kills what it left (as the end of a pod would)
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env=process_env(env), start_new_session=True
        )
    return AgentProcess(proc, port, log_path, "", namespace, argv)


def _holder(env: Env, namespace: str, lease: str) -> str:
    return str(env.kube_json("lease", lease, "-n", namespace)["spec"].get("holderIdentity") or "")


@pytest.mark.parametrize("fault", ["freeze", "kill"])
def test_a_frozen_or_killed_leader_is_fenced_and_the_standby_takes_over(
    env: Env, namespace: str, tmp_path: Path, fault: str
) -> None:
    lease = f"lease-{uuid.uuid4().hex[:6]}"
    agents = [_start(env, tmp_path, n, namespace, lease) for n in ("a", "b")]
    sampler = HelmSampler(env["HELM_BIN"], "app", namespace)
    try:
        wait_for("one replica leads", lambda: any("became leader" in a.log() for a in agents), 60)
        leader, standby = agents if "became leader" in agents[0].log() else agents[::-1]
        leader.wait_acting()  # its CRD installed: a HelmRelease can be applied
        hr = hr_manifest(
            "app", namespace, repo_chart(env), values={"message": "one"}, wait=True, timeout=UPGRADE_TIMEOUT_S
        )
        apply(env, hr)
        wait_for("revision 1 deployed", lambda: latest_revision(env, namespace, "app") == (1, "deployed"), 90)
        sampler.start()
        # an upgrade whose pod never becomes Ready: helm --wait runs for its whole timeout
        patch_spec(env, namespace, "app", {"values": {"message": "two", "unready": True}})
        wait_for(
            "the leader's helm upgrade under way",
            lambda: (
                latest_revision(env, namespace, "app") == (2, "pending-upgrade")
                and sampler.started_by(leader.proc.pid)
            ),
            60,
        )
        old_helm = next(pid for pid, (_, ppid, _) in sampler.first_seen.items() if ppid == leader.proc.pid)
        leader.proc.send_signal(signal.SIGSTOP if fault == "freeze" else signal.SIGKILL)

        wait_for(
            f"the standby to take over within the lease duration ({LEASE_S}s) plus margin",
            lambda: "became leader" in standby.log(),
            TAKEOVER_BOUND_S,
        )
        assert _holder(env, namespace, lease).endswith(f"-{standby.proc.pid}")
        took_over = [line for line in standby.log().splitlines() if "took over from" in line]
        assert took_over and f"-{leader.proc.pid}" in took_over[0], standby.log()[-2000:]
        # the new leader reconciles the release and leaves the pending upgrade alone (its grace)
        wait_for(
            "the new leader to wait for the pending upgrade",
            lambda: (
                "another operation may be running"
                in json.dumps((get_object(env, "helmrelease", namespace, "app") or {}).get("status", {}))
            ),
            120,
        )

        if fault == "freeze":
            resumed = time.monotonic()
            leader.proc.send_signal(signal.SIGCONT)
            try:
                code = leader.proc.wait(60)
            except subprocess.TimeoutExpired:
                raise AssertionError(
                    f"the resumed old leader did not stop:\n{leader.log()[-3000:]}"
                ) from None
            log = leader.log()
            assert code == 1, log[-3000:]
            assert "lost leadership" in log, log[-3000:]
            assert "killed helm processes" in log and f"upgrade {old_helm}" in log, log[-3000:]
            # it started no helm after it resumed, and its upgrade was killed, not finished
            assert sampler.started_by(leader.proc.pid, after=resumed) == [], sampler.first_seen
            wait_for("the old helm upgrade to be gone", lambda: old_helm not in sampler.acting(), 30)
            assert latest_revision(env, namespace, "app") == (2, "pending-upgrade")
        else:
            # the killed leader's helm, orphaned, still runs: the new leader started none
            assert old_helm in sampler.acting()
            assert sampler.started_by(standby.proc.pid) == [], sampler.first_seen

        assert _holder(env, namespace, lease).endswith(f"-{standby.proc.pid}")
        standby.assert_running()
        assert sampler.most_at_once == 1, sampler.at_once_seen
    finally:
        sampler.stop()
        for agent in agents:
            if agent.proc.poll() is None:
                agent.proc.send_signal(signal.SIGCONT)
                agent.proc.kill()
                agent.proc.wait(10)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(agent.proc.pid, signal.SIGKILL)
        for pid in list(sampler.acting()):  # an orphaned helm (its own session) of a killed leader
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _hr_status(env: Env, namespace: str) -> dict[str, Any]:
    return (get_object(env, "helmrelease", namespace, "app") or {}).get("status") or {}


def test_a_resumed_old_leader_does_not_roll_the_status_back(env: Env, namespace: str, tmp_path: Path) -> None:
    """Found by chaos experiment 4 (``leader``, sigstop): a leader frozen while its helm upgrade
    ran (the upgrade finished meanwhile), resumed after the new leader had applied a later change,
    wrote its old run's status over the new one (observedGeneration, lastReleaseRevision and the
    applied digest rolled back), and nothing corrected it before the next resync. A replica that
    lost the Lease writes no status."""
    lease = f"lease-{uuid.uuid4().hex[:6]}"
    agents = [_start(env, tmp_path, n, namespace, lease) for n in ("a", "b")]
    sampler = HelmSampler(env["HELM_BIN"], "app", namespace)
    try:
        wait_for("one replica leads", lambda: any("became leader" in a.log() for a in agents), 60)
        leader, standby = agents if "became leader" in agents[0].log() else agents[::-1]
        leader.wait_acting()
        apply(env, hr_manifest("app", namespace, repo_chart(env), values={"message": "one"}, wait=True))
        wait_for("revision 1 deployed", lambda: latest_revision(env, namespace, "app") == (1, "deployed"), 90)
        sampler.start()
        # an upgrade that succeeds after a few seconds (helm --wait for the new pod): the leader is
        # frozen while it runs, so its run resumes later with a success to report
        patch_spec(env, namespace, "app", {"values": {"message": "two"}})
        wait_for("the leader's helm upgrade", lambda: sampler.started_by(leader.proc.pid), 60, interval=0.02)
        leader.proc.send_signal(signal.SIGSTOP)

        wait_for("the standby to take over", lambda: "became leader" in standby.log(), TAKEOVER_BOUND_S)
        wait_for("the new leader's status for message two", lambda: _settled(env, namespace, "two"), 120)
        patch_spec(env, namespace, "app", {"values": {"message": "three"}})
        settled = wait_for(
            "the new leader's status for three", lambda: _settled(env, namespace, "three"), 120
        )

        leader.proc.send_signal(signal.SIGCONT)
        try:
            code = leader.proc.wait(60)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the resumed old leader did not stop:\n{leader.log()[-3000:]}") from None
        assert code == 1, leader.log()[-3000:]
        # the old leader has exited: whatever it wrote is there now
        after = _hr_status(env, namespace)
        keys = ("observedGeneration", "lastReleaseRevision", "lastAppliedDigest", "revision")
        assert {k: after.get(k) for k in keys} == {k: settled.get(k) for k in keys}, leader.log()[-3000:]
        assert after.get("conditions") == settled.get("conditions")
        standby.assert_running()
    finally:
        sampler.stop()
        for agent in agents:
            if agent.proc.poll() is None:
                agent.proc.send_signal(signal.SIGCONT)
                agent.proc.kill()
                agent.proc.wait(10)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(agent.proc.pid, signal.SIGKILL)


def _settled(env: Env, namespace: str, message: str) -> dict[str, Any] | None:
    """The HelmRelease's status once Ready for its current generation with ``message`` deployed."""
    hr = get_object(env, "helmrelease", namespace, "app") or {}
    st = hr.get("status") or {}
    ready = next((c for c in st.get("conditions", []) if c["type"] == "Ready"), None)
    current = st.get("observedGeneration") == (hr.get("metadata") or {}).get("generation")
    if not (ready and ready["status"] == "True" and current):
        return None
    secrets = release_secrets(env, namespace, "app")
    deployed = [s for s in secrets if s["metadata"]["labels"]["status"] == "deployed"]
    if len(deployed) != 1 or (release_record(deployed[0]).get("config") or {}).get("message") != message:
        return None
    return st
