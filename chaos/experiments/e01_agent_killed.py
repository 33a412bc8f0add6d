"""Experiment 1: the agent killed (``kill -9``) at a random moment during each helm action.

What it injects: a real ``gitops-helm run --reconcile-only`` subprocess (one namespace, one per
helm version) is given a change that makes it run one helm action: **install** (a new
HelmRelease), **upgrade** (new values), **test** (new values with ``spec.test.enable``: the kill
aims at ``helm test``), **rollback** (new values whose pods never get Ready, with
``rollback.enable``: the kill aims at the remediation's ``helm rollback``) and **uninstall** (the
HelmRelease deleted). As soon as the agent's ``helm <verb>`` child is in the process table the
experiment sleeps a random 0 to 2.5 s (0.5 s for an uninstall, 1 s for a rollback:
about as long as they take) and then kills with SIGKILL, so the kills land before,
while and after helm writes its storage (each trial's detail says where: helm still running or
exited, and the latest revision right after the kill). Even trials kill the whole "pod" (the
agent and its helm); odd trials kill the agent alone, so its helm, orphaned, goes on and the
restarted agent must wait for it. The agent is then started again. Counts: ``count`` trials per
action with helm 4 and a quarter of that (at least one) with helm 3: 20 and 5 in the full run,
2 and 1 in the quick run. The helm 4 and helm 3 fleets (a namespace and an agent each)
run side by side, so the full run fits its hour and the kills land on a loaded machine; in each
fleet the uninstall trials follow the install trials, so the upgrade, test and rollback trials
run in a namespace without the install trials' releases (each restart reconciles them all).

What it checks, as a user would, after the restart:

- the release ends in the desired state: Ready=True for the current generation, nothing
  Reconciling or Stalled, the latest revision deployed with the HelmRelease's values (``helm get
  values`` and the chart's ConfigMap); for a test, Tested=True; for a rollback, first the
  remediation (the previous values deployed again), then, values fixed, the new state Ready with
  no failure count left; for an uninstall, the HelmRelease gone and the release and its objects
  with it;
- no revision of the release is left ``pending-*``;
- one change is applied once: among the revisions written since the change, exactly one was
  deployed with the change's digest (the agent's digest label). The rule for what is legitimate
  after a kill: the interrupted attempt's own revision (left pending, unlocked as ``failed``
  after the grace and then ``superseded`` by the retry, or completed by an orphaned helm)
  and, with helm 3, the rollback that restores the merge base before the retry (plan row 8f)
  are allowed; a second deployed revision of the same digest is a double upgrade;
- the HelmRelease's counters: ``failures`` 0 once Ready (no stale failure count).

``lost``: a release, or its Deployment, that should exist is gone, or a release that held the
desired state was replaced by an older one. ``violated``: pending left, a double upgrade, a
wrong condition or counter, or the desired state not reached within the wait.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaos.framework import Context, Trial, experiment
from gitops_helm.release.identity import DIGEST_LABEL
from tests.conftest import Env
from tests.integration.reconcile_helpers import (
    apply,
    hr_manifest,
    patch_spec,
    publish,
    release_secrets,
    unique_name,
)
from tests.integration.syncfix import get_object, wait_for
from tests.integration.test_reconcile_interrupted import Agents

#: spec.timeout of the releases: helm's --wait and the pending grace (this + 1 s margin) after a kill
TIMEOUT_S = 6
#: spec.timeout of the upgrades meant to fail (pods that never get Ready), so a rollback follows
FAIL_TIMEOUT_S = 3
#: the longest random delay between seeing the helm child and the kill, per helm verb: about as
#: long as that action takes here, so kills land before, during and after its storage writes
MAX_DELAY_S = {"install": 2.5, "upgrade": 2.5, "test": 2.5, "rollback": 1.0, "uninstall": 0.5}
#: how long the desired state may take after a restart (grace, retries and backoff included)
SETTLE_S = 180.0


@dataclass
class Strike:
    """Where one kill landed."""

    mode: str  # "pod": the agent and its helm; "agent": the agent alone (helm orphaned)
    verb: str
    delay: float
    helm_running: bool
    storage: str

    def __str__(self) -> str:
        state = "running" if self.helm_running else "exited"
        return (
            f"kill {self.mode} {self.delay:.2f}s after helm {self.verb} was seen (helm {state} at the "
            f"kill; latest revision then: {self.storage})"
        )


def _children(pid: int) -> dict[int, list[str]]:
    """The processes whose parent is ``pid``, with their argv."""
    found: dict[int, list[str]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = Path(f"/proc/{entry.name}/stat").read_text()
            ppid = int(stat[stat.rindex(")") + 2 :].split()[1])  # comm may hold spaces
            if ppid == pid:
                raw = Path(f"/proc/{entry.name}/cmdline").read_bytes()
                found[int(entry.name)] = [a.decode(errors="replace") for a in raw.split(b"\0") if a]
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return state[state.rindex(")") + 2] != "Z"


@dataclass
class Fleet:
    """One namespace, one agent at a time, the helm version under test."""

    ctx: Context
    namespace: str
    helm_var: str
    agents: Agents
    rng: random.Random
    chart: dict[str, str]  # a chart of the experiment's own: nobody else republishes it meanwhile
    # releases that must exist (name -> what they must still hold), checked after every trial
    expected: dict[str, str] = field(default_factory=dict)
    orphans: list[int] = field(default_factory=list)
    # (release, revision) left pending by a helm killed with the agent: never completed, so not an
    # application of the change even when a later upgrade marks it superseded
    interrupted: set[tuple[str, int]] = field(default_factory=set)

    @property
    def env(self) -> Env:
        return self.ctx.env

    @property
    def helm(self) -> str:
        return self.env[self.helm_var]

    @property
    def label(self) -> str:
        return "helm 4" if self.helm_var == "HELM_BIN" else "helm 3"

    def strike(self, verb: str, trial: int) -> Strike:
        """Wait until the agent runs ``helm <verb>``, then kill it after a random delay."""
        running = self.agents.running
        assert running is not None
        pid = running.proc.pid

        def helm_child() -> int | None:
            running.assert_running()
            for child, argv in _children(pid).items():
                if len(argv) > 1 and Path(argv[0]).name.startswith("helm") and argv[1] == verb:
                    return child
            return None

        child: int = wait_for(f"the agent to run helm {verb}", helm_child, timeout=120, interval=0.01)
        delay = self.rng.uniform(0.0, MAX_DELAY_S[verb])
        time.sleep(delay)
        helm_running = _alive(child)
        mode = "pod" if trial % 2 == 0 else "agent"
        self.agents.kill()
        if mode == "pod":
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child, signal.SIGKILL)  # helm leads its own process group
        else:
            self.orphans.append(child)
        return Strike(mode, verb, delay, helm_running, self.storage_summary(helm_dead=mode == "pod"))

    def storage_summary(self, *, helm_dead: bool = False) -> str:
        found = []
        for name in self._releases():
            secrets = release_secrets(self.env, self.namespace, name)
            if secrets:
                labels = secrets[-1]["metadata"]["labels"]
                found.append(f"{name} {labels['version']} {labels['status']}")
                if helm_dead and labels["status"].startswith("pending"):
                    self.interrupted.add((name, int(labels["version"])))
        return "; ".join(found) or "none"

    def _releases(self) -> list[str]:
        items = self.env.kube_json("secrets", "-n", self.namespace, "-l", "owner=helm")["items"]
        return sorted({s["metadata"]["labels"]["name"] for s in items})

    def restart(self) -> None:
        self.agents.start()

    def reap_orphans(self) -> None:
        for pid in self.orphans:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        self.orphans.clear()

    # -- what a user checks ---------------------------------------------------------------------

    def hr(self, name: str) -> dict[str, Any]:
        return get_object(self.env, "helmrelease", self.namespace, name) or {}

    def condition(self, hr: dict[str, Any], ctype: str) -> dict[str, Any] | None:
        return next((c for c in hr.get("status", {}).get("conditions", []) if c["type"] == ctype), None)

    def history(self, name: str) -> list[tuple[int, str, str]]:
        """(revision, status, digest label) of every stored revision, oldest first."""
        return [
            (int(s["metadata"]["labels"]["version"]), s["metadata"]["labels"]["status"],
             s["metadata"]["labels"].get(DIGEST_LABEL, ""))
            for s in release_secrets(self.env, self.namespace, name)
        ]  # fmt: skip

    def values(self, name: str) -> dict[str, Any]:
        out = self.env.run([self.helm, "get", "values", name, "-n", self.namespace, "-o", "json"])
        return json.loads(out.stdout) or {}

    def message(self, name: str) -> str | None:
        cm = get_object(self.env, "configmap", self.namespace, f"{name}-config")
        return None if cm is None else str(cm.get("data", {}).get("message"))

    def in_sync(self, name: str, since: int, tested: bool = False) -> bool:
        """Ready=True for the current generation, the run over, a revision newer than ``since``
        deployed (and tested)."""
        hr = self.hr(name)
        st = hr.get("status", {})
        ready = self.condition(hr, "Ready")
        history = self.history(name)
        return bool(
            ready
            and ready["status"] == "True"
            and st.get("observedGeneration") == hr.get("metadata", {}).get("generation")
            and self.condition(hr, "Reconciling") is None
            and history
            and history[-1][0] > since
            and history[-1][1] == "deployed"
            and (not tested or (self.condition(hr, "Tested") or {}).get("status") == "True")
        )

    def settle(self, name: str, since: int, tested: bool = False) -> str:
        """Wait for the desired state; '' when reached, else what was seen."""
        try:
            wait_for(
                f"{name} in sync", lambda: self.in_sync(name, since, tested), timeout=SETTLE_S, interval=0.5
            )
        except AssertionError:
            st = self.hr(name).get("status", {})
            conds = {c["type"]: f"{c['status']}/{c.get('reason')}" for c in st.get("conditions", [])}
            return f"not in sync after {SETTLE_S:.0f}s: history {self.history(name)}, conditions {conds}"
        return ""

    def verdict(
        self, name: str, since: int, want: dict[str, Any], *, tested: bool = False
    ) -> tuple[str, str]:
        """(outcome, problem) of a release that should hold ``want`` after the change made at
        revision ``since``."""
        problem = self.settle(name, since, tested)
        history = self.history(name)
        if not history or get_object(self.env, "deployment", self.namespace, name) is None:
            return "lost", f"release or its Deployment gone: history {history}"
        if problem:
            return "violated", problem
        pending = [h for h in history if h[1].startswith("pending")]
        if pending:
            return "violated", f"left pending: {pending}"
        digest = history[-1][2]
        applied = [
            h
            for h in history
            if h[0] > since
            and h[2] == digest
            and h[1] in ("deployed", "superseded")
            and (name, h[0]) not in self.interrupted  # helm 4/3 supersede a failed latest revision too
        ]
        if len(applied) != 1:
            return "violated", f"one change applied {len(applied)} times: history {history}"
        values, message = self.values(name), self.message(name)
        if values != want or message != want.get("message"):
            older = message is not None and message != want.get("message")
            return ("lost" if older else "violated"), f"values {values}, ConfigMap message {message!r}"
        st = self.hr(name).get("status", {})
        if st.get("failures", 0) or self.condition(self.hr(name), "Stalled") is not None:
            return "violated", f"stale failure count or Stalled once Ready: {st}"
        return "survived", ""

    def bystanders(self) -> str:
        """Every release that must still exist is deployed with its message: '' or what is lost."""
        lost = []
        for name, message in self.expected.items():
            history = self.history(name)
            if not history or history[-1][1] not in ("deployed", "failed") or self.message(name) is None:
                lost.append(f"{name}: history {history}")
            elif get_object(self.env, "deployment", self.namespace, name) is None:
                lost.append(f"{name}: Deployment gone")
            elif self.message(name) != message:
                lost.append(f"{name}: message {self.message(name)!r}, expected {message!r}")
        return "; ".join(lost)


def _trial(
    fleet: Fleet, action: str, index: int, name: str, body: Callable[[], tuple[str, str, Strike | None]]
) -> Trial:
    """Run one trial of release ``name``; its outcome, what went wrong, and where the kill landed."""
    scenario = f"{action} ({fleet.label})"
    started = time.monotonic()
    try:
        outcome, problem, strike = body()
    except AssertionError as exc:  # a bounded wait of the experiment itself ran out
        return Trial(scenario, "error", f"trial {index}: {exc}"[:600], seconds=time.monotonic() - started)
    finally:
        fleet.reap_orphans()
        if fleet.agents.running is None:
            fleet.restart()
    if outcome != "survived" and name in fleet.expected:
        # checked by the trial itself; the next trials compare with what it holds now
        fleet.expected[name] = fleet.message(name) or ""
    lost = fleet.bystanders()
    if lost:
        outcome, problem = "lost", f"{problem}; other releases: {lost}".lstrip("; ")
    detail = f"trial {index}: {strike}" + (f"; {problem}" if problem else "")
    return Trial(scenario, outcome, detail, seconds=time.monotonic() - started)  # type: ignore[arg-type]


def _manifest(fleet: Fleet, name: str, values: dict[str, Any], **spec: Any) -> dict[str, Any]:
    chart = fleet.chart
    return hr_manifest(name, fleet.namespace, chart, values=values, wait=True, timeout=TIMEOUT_S, **spec)


def _ready_first(fleet: Fleet, name: str, manifest: dict[str, Any], tested: bool = False) -> None:
    apply(fleet.env, manifest)
    wait_for(f"{name} Ready before the trial", lambda: fleet.in_sync(name, 0, tested), timeout=SETTLE_S)


def _install(fleet: Fleet, index: int) -> Trial:
    name = f"inst-{index}"

    def body() -> tuple[str, str, Strike | None]:
        want = {"message": f"install-{index}"}
        apply(fleet.env, _manifest(fleet, name, want))
        strike = fleet.strike("install", index)
        fleet.restart()
        outcome, problem = fleet.verdict(name, 0, want)
        if outcome == "survived":
            fleet.expected[name] = want["message"]
        return outcome, problem, strike

    return _trial(fleet, "install", index, name, body)


def _upgrade(fleet: Fleet, index: int, name: str, *, tested: bool) -> Trial:
    def body() -> tuple[str, str, Strike | None]:
        since = fleet.history(name)[-1][0]
        want = {"message": f"{'test' if tested else 'upgrade'}-{index}"}
        patch_spec(fleet.env, fleet.namespace, name, {"values": want})
        strike = fleet.strike("test" if tested else "upgrade", index)
        fleet.restart()
        outcome, problem = fleet.verdict(name, since, want, tested=tested)
        if outcome == "survived":
            fleet.expected[name] = want["message"]
        return outcome, problem, strike

    return _trial(fleet, "test" if tested else "upgrade", index, name, body)


def _rollback(fleet: Fleet, index: int, name: str) -> Trial:
    def body() -> tuple[str, str, Strike | None]:
        good = fleet.expected[name]
        since = fleet.history(name)[-1][0]
        bad = {"message": f"bad-{index}", "unready": True}
        patch_spec(fleet.env, fleet.namespace, name, {"timeout": FAIL_TIMEOUT_S, "values": bad})
        strike = fleet.strike("rollback", index)
        fleet.restart()

        # the remediation is carried through: the last good values deployed again, no pending
        def remediated() -> bool:
            history = fleet.history(name)
            return bool(
                history
                and history[-1][0] > since + 1
                and history[-1][1] == "deployed"
                and fleet.message(name) == good
                and (fleet.condition(fleet.hr(name), "Ready") or {}).get("status") == "False"
            )

        try:
            wait_for(f"{name} rolled back to {good!r}", remediated, timeout=SETTLE_S, interval=0.5)
        except AssertionError:
            history = fleet.history(name)
            if not history or fleet.message(name) is None:
                return "lost", f"release gone after the kill: history {history}", strike
            return (
                "violated",
                f"remediation not completed: history {history}, message {fleet.message(name)!r}",
                strike,
            )
        # the user fixes the values: the new state is reached once, with no failure left over
        want = {"message": f"fixed-{index}"}
        since = fleet.history(name)[-1][0]
        fixed = {"message": want["message"], "unready": None}
        patch_spec(fleet.env, fleet.namespace, name, {"timeout": TIMEOUT_S, "values": fixed})
        outcome, problem = fleet.verdict(name, since, want)
        if outcome == "survived":
            fleet.expected[name] = want["message"]
        return outcome, problem, strike

    return _trial(fleet, "rollback", index, name, body)


def _uninstall(fleet: Fleet, index: int) -> Trial:
    name = f"inst-{index}"

    def body() -> tuple[str, str, Strike | None]:
        if name not in fleet.expected:  # its install trial failed: install it again first
            _ready_first(fleet, name, _manifest(fleet, name, {"message": f"install-{index}"}))
        fleet.expected.pop(name, None)
        fleet.env.kubectl("delete", "helmrelease", name, "-n", fleet.namespace, "--wait=false")
        strike = fleet.strike("uninstall", index)
        fleet.restart()
        try:
            wait_for(f"{name} deleted", lambda: not fleet.hr(name), timeout=SETTLE_S, interval=0.5)
        except AssertionError:
            return "violated", f"HelmRelease not finalized: {fleet.hr(name).get('status')}", strike
        left = [h for h in fleet.history(name) if h[1] != "uninstalled"]
        objects = [
            kind for kind in ("deployment", "configmap", "service")
            if get_object(fleet.env, kind, fleet.namespace, name if kind != "configmap" else f"{name}-config")
        ]  # fmt: skip
        if left or objects:
            return "violated", f"release left: history {left}, objects {objects}", strike
        return "survived", "", strike

    return _trial(fleet, "uninstall", index, name, body)


def _run_fleet(ctx: Context, helm_var: str, count: int, rng: random.Random) -> Iterator[Trial]:
    with ctx.namespace("killed") as namespace:
        scratch = ctx.scratch("agent-killed")
        name = publish(scratch, unique_name("killed"))
        chart = {"repository": ctx.env["TESTENV_CHARTS"], "name": name, "version": "0.1.0"}
        agents = Agents(ctx.env, namespace, ctx.env[helm_var], scratch)
        fleet = Fleet(ctx, namespace, helm_var, agents, rng, chart)
        try:
            agents.start()
            for i in range(count):
                yield _install(fleet, i)
            # the uninstalls come next, so the releases the install trials made are gone before
            # the upgrade, test and rollback trials: every restart reconciles the whole namespace,
            # and twenty idle releases made each later trial several times slower
            for i in range(count):
                yield _uninstall(fleet, i)
            _ready_first(fleet, "up", _manifest(fleet, "up", {"message": "up-0"}))
            fleet.expected["up"] = "up-0"
            for i in range(count):
                yield _upgrade(fleet, i, "up", tested=False)
            tested = {"enable": True, "timeout": TIMEOUT_S}
            _ready_first(
                fleet, "tst", _manifest(fleet, "tst", {"message": "test-0"}, test=tested), tested=True
            )
            fleet.expected["tst"] = "test-0"
            for i in range(count):
                yield _upgrade(fleet, i + 1, "tst", tested=True)
            remediate = {"enable": True, "wait": True, "timeout": TIMEOUT_S}
            _ready_first(fleet, "rb", _manifest(fleet, "rb", {"message": "fixed-0"}, rollback=remediate))
            fleet.expected["rb"] = "fixed-0"
            for i in range(count):
                yield _rollback(fleet, i + 1, "rb")
        finally:
            fleet.reap_orphans()
            agents.kill()  # the namespace's deletion takes the releases with it


@experiment(
    1,
    "agent-killed",
    "Agent killed mid-action (install, upgrade, test, rollback, uninstall)",
    injects="SIGKILL of the agent (alone or with its helm) at a random moment of a helm action",
    quick=1,
    full=20,
    budget_seconds=3600,
)
def agent_killed(ctx: Context, count: int) -> Iterator[Trial]:
    seed = int(os.environ.get("CHAOS_SEED", "0")) or None
    fleets = {
        "helm 4": (lambda rng: _run_fleet(ctx, "HELM_BIN", count, rng)),
        "helm 3": (lambda rng: _run_fleet(ctx, "HELM3_BIN", max(1, count // 4), rng)),
    }
    yield from _side_by_side(fleets, seed)


def _side_by_side(
    fleets: dict[str, Callable[[random.Random], Iterator[Trial]]], seed: int | None
) -> Iterator[Trial]:
    """Run the fleets (one namespace and agent each) at the same time, yielding trials as they end.

    The helm 4 and helm 3 fleets share nothing but the cluster, so running them side by side halves
    the wall time of the full run (which must fit the suite's hour) and adds load, which is a fault
    of its own. Each fleet's generator runs, and is closed, in its own thread; when the consumer
    stops early (the time budget), each fleet ends after its current trial and cleans up.
    """
    finished = object()
    trials: queue.Queue[Trial | BaseException | object] = queue.Queue()
    stop = threading.Event()

    def drive(make: Callable[[random.Random], Iterator[Trial]], rng: random.Random) -> None:
        fleet = make(rng)
        try:
            for trial in fleet:
                trials.put(trial)
                if stop.is_set():
                    break
        except BaseException as exc:  # handed to the consumer, which reports it as the framework does
            trials.put(exc)
        finally:
            fleet.close()
            trials.put(finished)

    threads = [
        threading.Thread(
            target=drive, args=(make, random.Random(f"{seed}-{name}" if seed else None)), daemon=True
        )
        for name, make in fleets.items()
    ]
    for thread in threads:
        thread.start()
    running = len(threads)
    try:
        while running:
            item = trials.get()
            if item is finished:
                running -= 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield item  # type: ignore[misc]
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=SETTLE_S * 3)  # a fleet ends its current trial (bounded) and cleans up
