"""Experiment 4: the leader killed or frozen while its upgrades are in flight.

Two real ``gitops-helm run --leader-elect`` processes share one Lease (lease duration 10 s, renew
deadline 6 s, retry period 1 s, 4 workers each) and manage six HelmReleases of a chart of their own
(published under a unique name: the shared ``hello`` 0.1.0 is republished by every test session,
and helm 4 packages file times, so another worktree's session gives it new bytes and every
release a new desired digest, a legitimate second upgrade the old check took for a double one)
in one namespace (``wait: true``, helm timeout 30 s). Each trial gives every HelmRelease new values
at once (one ``kubectl apply``), waits until the leader's first ``helm upgrade`` runs, lets a random
0-2 s pass (so the fault lands at varying points: some upgrades under way, some finished but not
yet recorded in status, some still queued for the new leader), then either

- ``sigkill``: SIGKILL the leader process (only it: its helm children, in sessions of their own,
  run on as orphans, the harder case for "never two helm processes on one release"), or
- ``sigstop``: SIGSTOP the leader (only it: its helm children run on and end as zombies); once
  the standby has taken over, SIGCONT it, in alternate trials either after a random 0-1 s, while
  the new leader acts, or only after the new leader has settled the change and then a second one
  (so any write the old leader's interrupted run still makes, a helm call or a HelmRelease status,
  would roll the record back; every status is compared before and after the resume). The resumed
  old leader must notice it lost the Lease before doing anything: it starts no helm process, writes
  nothing, and exits 1 ("lost leadership").

The process that died or exited is restarted as the next standby, so the two alternate roles.
All along, a sampler reads the helm child processes of both agent PIDs from
``/proc/PID/task/*/children`` every 50 ms (and follows each one, orphaned or not, until it ends):
their ``cmdline`` names the release they act on. Checked after each fault:

- the standby becomes leader within the lease duration plus two retry periods (the holder's
  last renewal may be up to a retry period old, and the standby reads the Lease once per retry
  period) plus 5 s for a loaded machine; the takeover time is in each trial's detail, with the
  time to the new leader's first helm process when it had one to run, and the last trial of the
  run gives their min / median / max;
- at no sample do two live helm processes (of either agent, orphans included) act on the same
  release;
- Helm history, "one change is applied once": among the revisions written since the change
  that carry its values, exactly one was applied (deployed, or superseded since), whatever its
  digest label (the chart is the experiment's own, so one change is one desired digest); a
  revision whose helm was killed (a resumed old leader cancels its own) keeps helm's or the
  agent's unlock description, not the agent's ``--description``, and is not an application; no
  revision is left ``pending-*``, exactly one is ``deployed``;
- every HelmRelease ends Ready for its current generation, its release deployed at the new values;
- ``lost``: a release with no deployed revision, or a HelmRelease gone.

Measured (2 cores shared with seven other helpers and a full ``make chaos``, a private
environment, 20 trials, the releases on the experiment's own chart): 20 survived; takeover min
9.4 s / median 10.4 s / max 11.5 s after the fault (bound 17 s); the new leader's first helm
process min 10.4 s / median 11.5 s / max 12.7 s; no sample ever showed two helm processes on one
release; no resumed old leader started helm. Earlier runs' "1 trial in 10" with every in-flight
release upgraded a second time at takeover was this experiment's own: the releases ran the shared
``hello``, republished meanwhile by another worktree's test session, so the new leader met a new
desired digest (the two revisions carry different digest labels).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import statistics
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from chaos.framework import Context, Outcome, Trial, experiment
from gitops_helm.release.identity import DESCRIPTION_PREFIX, DIGEST_LABEL
from tests.conftest import Env
from tests.integration.reconcile_helpers import hr_manifest, publish, release_record, repo_chart, unique_name
from tests.integration.syncfix import GITOPS_HELM, AgentProcess, free_port, process_env, wait_for

LEASE_S = 10
RENEW_DEADLINE_S = 6
RETRY_S = 1
#: the takeover bound: the lease, two retry periods (see the docstring), and a margin for load
TAKEOVER_BOUND_S = LEASE_S + 2 * RETRY_S + 5
RELEASES = 6  # more than the 4 workers: some upgrades wait in the queue, the new leader runs them
HELM_TIMEOUT_S = 30
SAMPLE_S = 0.05
APPLIED = ("deployed", "superseded")


@dataclass
class HelmProcess:
    pid: int
    owner: int  # the agent PID it was first seen under
    release: str
    verb: str
    first_seen: float


@dataclass
class Sampler:
    """Polls the helm children of the agents (and follows them once seen, orphaned or not)."""

    helm_bin: str
    releases: frozenset[str]
    agents: set[int] = field(default_factory=set)
    seen: dict[int, HelmProcess] = field(default_factory=dict)
    history: list[HelmProcess] = field(default_factory=list)  # the ended ones
    overlaps: list[tuple[float, str, list[str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _children(self, pid: int) -> set[int]:
        found: set[int] = set()
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{pid}/task"):
                with contextlib.suppress(OSError):
                    found.update(
                        int(c) for c in Path(f"/proc/{pid}/task/{task}/children").read_text().split()
                    )
        return found

    def _describe(self, pid: int) -> tuple[str, str] | None:
        """(release, verb) of a live helm process acting on one of ours; None otherwise."""
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return None  # gone meanwhile
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return None  # finished, not yet reaped: acts on nothing
        args = [a.decode(errors="replace") for a in argv if a]
        if not args or args[0] != self.helm_bin:
            return None
        release = next((a for a in args[1:4] if a in self.releases), None)
        return (release, args[1]) if release else None

    def follow(self, *pids: int) -> None:
        """Sample the helm children of these agent PIDs too (under the lock: the sampling thread
        iterates the set, and a change from the experiment's thread meanwhile ended it once)."""
        with self.lock:
            self.agents.update(pids)

    def sample(self) -> dict[int, HelmProcess]:
        now = time.monotonic()
        with self.lock:
            candidates = {pid: None for pid in self.seen} | {
                child: owner for owner in self.agents for child in self._children(owner)
            }
        live: dict[int, HelmProcess] = {}
        for pid, owner in candidates.items():
            described = self._describe(pid)
            if described is None:
                continue
            with self.lock:
                known = self.seen.get(pid)
                if known is None:
                    if owner is None:
                        continue
                    known = self.seen[pid] = HelmProcess(pid, owner, described[0], described[1], now)
            live[pid] = known
        by_release: dict[str, list[HelmProcess]] = {}
        for proc in live.values():
            by_release.setdefault(proc.release, []).append(proc)
        for release, procs in by_release.items():
            if len(procs) > 1:
                with self.lock:
                    self.overlaps.append((now, release, [f"{p.verb} {p.pid} of {p.owner}" for p in procs]))
        return live

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            with self.lock:  # the ended ones move to the history: only live ones are followed
                gone = [pid for pid in self.seen if not Path(f"/proc/{pid}").exists()]
                self.history.extend(self.seen.pop(pid) for pid in gone)
            self._stop.wait(SAMPLE_S)

    def live_pids(self) -> list[int]:
        with self.lock:
            return list(self.seen)

    def started(self, owner: int, after: float) -> list[HelmProcess]:
        with self.lock:
            every = [*self.history, *self.seen.values()]
        return sorted(
            (p for p in every if p.owner == owner and p.first_seen >= after), key=lambda p: p.first_seen
        )

    def overlaps_since(self, since: float) -> list[tuple[float, str, list[str]]]:
        with self.lock:
            return [o for o in self.overlaps if o[0] >= since]

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="helm-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)


def _start_agent(ctx: Context, namespace: str, lease: str) -> AgentProcess:
    env = ctx.env
    work = ctx.scratch("agent")
    port = free_port()
    argv = [
        GITOPS_HELM, "run", "--reconcile-only", "--kubeconfig", env["KUBECONFIG"],
        "--namespace", namespace, "--helm-bin", env["HELM_BIN"], "--listen", f"127.0.0.1:{port}",
        "--work-dir", str(work / "work"), "--retry-base", "1s", "--retry-max", "3s",
        "--leader-elect", "true", "--leader-election-namespace", namespace, "--leader-election-id", lease,
        "--leader-election-lease-duration", f"{LEASE_S}s",
        "--leader-election-renew-deadline", f"{RENEW_DEADLINE_S}s",
        "--leader-election-retry-period", f"{RETRY_S}s",
        # a pending revision a killed helm left is retried soon after its helm timeout
        "--pending-grace-margin", "5s",
        "--chart-refresh-interval", "2s",
        "--log-level", "debug",  # a broken trial quotes the new leader's plan for the release
    ]  # fmt: skip
    log_path = work / "agent.log"
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env=process_env(env), start_new_session=True
        )
    agent = AgentProcess(proc, port, log_path, "", namespace, argv)

    def healthy() -> bool:
        agent.assert_running()
        try:
            return agent.request("GET", "/healthz")[0] == 200
        except OSError:
            return False

    wait_for("the agent's /healthz", healthy, timeout=60)
    return agent


def _end(agent: AgentProcess) -> None:
    """Stop an agent of this experiment for good (it may be frozen)."""
    if agent.proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            agent.proc.send_signal(signal.SIGCONT)
            agent.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            agent.proc.wait(10)


def _holder_pid(env: Env, namespace: str, lease: str) -> int | None:
    holder = str(env.kube_json("lease", lease, "-n", namespace)["spec"].get("holderIdentity") or "")
    tail = holder.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else None


class Revision(NamedTuple):
    """One stored revision of a release, as a broken trial's detail shows it."""

    version: int
    status: str
    description: str  # helm's, or the agent's ``--description`` once helm completed the upgrade
    digest: str | None  # the agent's digest label: which desired state it applies
    message: str | None  # the values the experiment set

    @property
    def completed_by_helm(self) -> bool:
        """helm finished this upgrade and wrote the agent's description (helm keeps it when it
        supersedes the revision); one whose helm was killed keeps "Preparing upgrade", then the
        agent's unlock mark, even once superseded."""
        return self.description.startswith(DESCRIPTION_PREFIX)


@dataclass
class ReleaseState:
    ready: bool
    why: str  # the Ready condition's reason and message, or what is missing
    deployed_message: str | None
    revisions: list[Revision]


def _states(env: Env, namespace: str, names: list[str]) -> dict[str, ReleaseState]:
    hrs = {h["metadata"]["name"]: h for h in env.kube_json("helmreleases", "-n", namespace)["items"]}
    secrets = env.kube_json("secrets", "-n", namespace, "-l", "owner=helm")["items"]
    states: dict[str, ReleaseState] = {}
    for name in names:
        revisions = []
        for secret in secrets:
            labels = secret["metadata"]["labels"]
            if labels.get("name") != name:
                continue
            record = release_record(secret)
            info = record.get("info") or {}
            message = (record.get("config") or {}).get("message")
            revisions.append(
                Revision(
                    int(labels["version"]),
                    labels["status"],
                    str(info.get("description", "")),
                    labels.get(DIGEST_LABEL),
                    message,
                )
            )
        revisions.sort()
        deployed = [r for r in revisions if r.status == "deployed"]
        hr = hrs.get(name)
        ready, why = False, "no HelmRelease"
        if hr is not None:
            st = hr.get("status") or {}
            cond = next((c for c in st.get("conditions", []) if c["type"] == "Ready"), None)
            why = f"{cond.get('reason')}: {cond.get('message')}" if cond else "no Ready condition"
            if st.get("observedGeneration") != hr["metadata"]["generation"]:
                why += (
                    f" (observedGeneration {st.get('observedGeneration')} of {hr['metadata']['generation']})"
                )
            ready = (
                bool(cond and cond["status"] == "True")
                and st.get("observedGeneration") == hr["metadata"]["generation"]
            )
        states[name] = ReleaseState(ready, why, deployed[-1].message if deployed else None, revisions)
        if hr is None:
            states[name].revisions = []  # the HelmRelease itself is gone
            states[name].deployed_message = None
    return states


def _statuses(env: Env, namespace: str) -> dict[str, Any]:
    return {
        h["metadata"]["name"]: h.get("status") or {}
        for h in env.kube_json("helmreleases", "-n", namespace)["items"]
    }


def _status_change(before: dict[str, Any], after: dict[str, Any] | None) -> str:
    """The scalar fields of a status that changed (enough to name a rollback of its record)."""
    if after is None:
        return "HelmRelease gone"
    keys = sorted(k for k in {*before, *after} if k != "conditions" and before.get(k) != after.get(k))
    changed = [f"{k} {before.get(k)!r}->{after.get(k)!r}" for k in keys]
    if before.get("conditions") != after.get("conditions"):
        changed.append("conditions")
    return ", ".join(changed)


def _set_values(env: Env, namespace: str, names: list[str], chart: str, message: str) -> None:
    """One kubectl call for all: the upgrades start together, as after one Git commit."""
    patches = [
        hr_manifest(
            n,
            namespace,
            repo_chart(env, chart),  # the experiment's own chart, never the shared hello
            values={"message": message},
            wait=True,
            timeout=HELM_TIMEOUT_S,
        )
        for n in names
    ]
    env.kubectl(
        "apply", "-f", "-", input_text=json.dumps({"apiVersion": "v1", "kind": "List", "items": patches})
    )


def _judge(
    states: dict[str, ReleaseState], baseline: dict[str, int], changes: list[str]
) -> tuple[Outcome, list[str]]:
    """The worst outcome over the releases, and what broke; the last of ``changes`` is desired."""
    message = changes[-1]
    lost, violated = [], []
    for name, state in states.items():
        if state.deployed_message is None:
            lost.append(f"{name}: no deployed revision (history {state.revisions})")
            continue
        if not state.ready or state.deployed_message != message:
            violated.append(
                f"{name}: Ready={state.ready} ({state.why[:300]}), deployed values {state.deployed_message!r}"
            )
        pending = [r for r in state.revisions if r.status.startswith("pending")]
        deployed = [r for r in state.revisions if r.status == "deployed"]
        if pending or len(deployed) != 1:
            violated.append(f"{name}: pending {pending}, deployed {deployed}")
        new = [r for r in state.revisions if r.version > baseline[name]]
        for change in changes:
            # one change is applied by exactly one revision that helm completed and that was
            # deployed (maybe superseded since); an attempt whose helm was killed (the resumed old
            # leader cancels its own) is not an application of it, even when a later upgrade
            # supersedes it. The chart is the experiment's own, published once, so one change is
            # one desired digest: a second application under another digest is a double upgrade
            # too (the digest labels are in the detail)
            applied = [r for r in new if r.message == change and r.status in APPLIED and r.completed_by_helm]
            if len(applied) != 1:
                violated.append(f"{name}: {len(applied)} applied revisions for one change: {new}")
    if lost:
        return "lost", lost + violated
    return ("violated", violated) if violated else ("survived", [])


@experiment(
    4,
    "leader",
    "Leader killed or frozen during upgrades",
    injects="SIGKILL or SIGSTOP of the leader of two agents sharing a Lease, during helm upgrades",
    quick=1,
    full=10,
    budget_seconds=1800,
)
def run(ctx: Context, count: int) -> Iterator[Trial]:
    env = ctx.env
    rng = random.Random()
    with ctx.namespace("leader") as namespace:
        lease = f"lease-{uuid.uuid4().hex[:6]}"
        names = [f"leader-app-{i}" for i in range(RELEASES)]
        sampler = Sampler(env["HELM_BIN"], frozenset(names))
        agents: list[AgentProcess] = []
        # a chart of its own: the shared hello 0.1.0 is republished by other runs (new archive
        # bytes, a new desired digest), which would upgrade every release for a reason of its own
        chart = publish(ctx.scratch("chart"), unique_name("leader-hello"))
        takeovers: list[float] = []
        first_acts: list[float] = []
        try:
            agents.append(_start_agent(ctx, namespace, lease))
            agents[0].wait_acting(90)  # its CRD installed: HelmReleases can be applied
            agents.append(_start_agent(ctx, namespace, lease))
            sampler.follow(*(a.proc.pid for a in agents))
            sampler.start()
            _set_values(env, namespace, names, chart, "first")
            wait_for(
                "the HelmReleases installed and Ready",
                lambda: all(
                    s.ready and s.deployed_message == "first" for s in _states(env, namespace, names).values()
                ),
                180,
                interval=1.0,
            )
            scenarios = [s for _ in range(count) for s in ("sigkill", "sigstop")]
            for number, scenario in enumerate(scenarios):
                trial_started = time.monotonic()
                try:
                    found = _trial(
                        ctx, rng, namespace, lease, names, chart, agents, sampler, scenario, number
                    )
                except AssertionError as exc:  # a wait timed out: the trial could not go on
                    found = Found("violated", str(exc)[:1500])
                    # start over with two fresh agents (one may still be frozen)
                    for agent in agents:
                        _end(agent)
                    agents[:] = [_start_agent(ctx, namespace, lease) for _ in range(2)]
                    sampler.follow(*(a.proc.pid for a in agents))
                if found.takeover_s is not None:
                    takeovers.append(found.takeover_s)
                if found.first_helm_s is not None:
                    first_acts.append(found.first_helm_s)
                text = found.detail
                if number == len(scenarios) - 1 and takeovers:
                    text += f"; takeover over {len(takeovers)} trials: {_spread(takeovers)}"
                    if first_acts:
                        text += f", new leader's first helm: {_spread(first_acts)}"
                yield Trial(scenario, found.outcome, text, seconds=time.monotonic() - trial_started)
                # the dead/exited agent is replaced by a fresh standby for the next trial
                for i, agent in enumerate(agents):
                    if agent.proc.poll() is not None:
                        agents[i] = _start_agent(ctx, namespace, lease)
                        sampler.follow(agents[i].proc.pid)
        finally:
            sampler.stop()
            for agent in agents:
                _end(agent)
            for pid in sampler.live_pids():  # an orphaned helm of a killed agent (its own group)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)


@dataclass
class Found:
    """What one trial found."""

    outcome: Outcome
    detail: str
    takeover_s: float | None = None
    first_helm_s: float | None = None


def _spread(values: list[float]) -> str:
    return f"min {min(values):.1f}s / median {statistics.median(values):.1f}s / max {max(values):.1f}s"


def _trial(
    ctx: Context,
    rng: random.Random,
    namespace: str,
    lease: str,
    names: list[str],
    chart: str,
    agents: list[AgentProcess],
    sampler: Sampler,
    scenario: str,
    number: int,
) -> Found:
    env = ctx.env
    holder = wait_for("a holder of the Lease", lambda: _holder_pid(env, namespace, lease), 60)
    leader = next((a for a in agents if a.proc.pid == holder), None)
    if leader is None:
        raise AssertionError(
            f"the Lease names PID {holder}, none of the agents {[a.proc.pid for a in agents]}"
        )
    standby = next(a for a in agents if a is not leader)
    leader.wait_acting(60)
    before = _states(env, namespace, names)
    baseline = {n: max((r.version for r in s.revisions), default=0) for n, s in before.items()}
    message = f"trial-{number}-{uuid.uuid4().hex[:6]}"
    since = time.monotonic()
    _set_values(env, namespace, names, chart, message)
    wait_for(
        "the leader's first helm upgrade",
        lambda: any(p.verb == "upgrade" for p in sampler.started(leader.proc.pid, since)),
        60,
        interval=0.02,
    )
    time.sleep(rng.uniform(0, 2.0))  # before, during or after the first upgrades
    in_flight = sum(1 for p in sampler.sample().values() if p.owner == leader.proc.pid)
    became = standby.log().count("became leader")
    faulted = time.monotonic()
    os.kill(leader.proc.pid, signal.SIGKILL if scenario == "sigkill" else signal.SIGSTOP)
    notes = [f"{in_flight} helm of the leader in flight at the fault"]
    problems: list[str] = []
    wait_for(
        "the standby to take over",
        lambda: standby.log().count("became leader") > became,
        TAKEOVER_BOUND_S + 120,
        interval=0.1,
    )
    took = time.monotonic() - faulted
    notes.append(f"takeover {took:.1f}s")
    if took > TAKEOVER_BOUND_S:
        problems.append(f"takeover after {took:.1f}s, bound {TAKEOVER_BOUND_S}s")

    def settle(wanted: str, problems: list[str]) -> dict[str, ReleaseState]:
        """Wait until every HelmRelease is Ready at ``wanted``; on timeout, say why."""

        def settled() -> dict[str, ReleaseState] | None:
            states = _states(env, namespace, names)
            return states if all(x.ready and x.deployed_message == wanted for x in states.values()) else None

        try:
            return wait_for(  # type: ignore[no-any-return]
                f"every HelmRelease Ready at {wanted}", settled, HELM_TIMEOUT_S + 120, 1.0
            )
        except AssertionError as exc:
            problems.append(str(exc).split(";", 1)[0])
            states = _states(env, namespace, names)
            stuck = next((n for n, x in states.items() if not x.ready), None)
            if stuck is not None:  # what the new leader said about it
                lines = [line for line in standby.log().splitlines() if f"/{stuck} " in line + " "]
                problems.append(f"new leader's log on {stuck}: " + " // ".join(lines[-6:])[-1500:])
            return states

    changes = [message]
    if scenario == "sigstop":
        late_resume = number % 4 == 1  # alternate sigstop trials: see the module docstring
        statuses: dict[str, Any] = {}
        if late_resume:
            # the new leader finishes the change and applies a second one, all while the old
            # leader is frozen; a status write of the old one's run would now roll them back
            settle(changes[-1], problems)
            changes.append(f"{message}-then")
            _set_values(env, namespace, names, chart, changes[-1])
            settle(changes[-1], problems)
            statuses = _statuses(env, namespace)
        else:
            time.sleep(rng.uniform(0, 1.0))  # the new leader is acting meanwhile
        resumed = time.monotonic()
        leader.proc.send_signal(signal.SIGCONT)
        try:
            code: int | None = leader.proc.wait(60)
        except subprocess.TimeoutExpired:
            code = None
        time.sleep(2)  # keep sampling: a late helm call of the old leader would show by now
        late = sampler.started(leader.proc.pid, resumed)
        log = leader.log()
        if code != 1 or "lost leadership" not in log:
            problems.append(f"the resumed old leader exited {code}, log tail: {log[-600:]!r}")
            _end(leader)
        if late:
            problems.append(f"the resumed old leader started helm: {[(p.verb, p.release) for p in late]}")
        if statuses:
            after = _statuses(env, namespace)
            rewritten = {
                n: _status_change(statuses[n], after.get(n)) for n in statuses if statuses[n] != after.get(n)
            }
            if rewritten:
                problems.append(
                    f"the status changed after the old leader resumed (nothing else acted): {rewritten}"
                )
        notes.append(
            f"resumed old leader ({'after a second change' if late_resume else 'while the new one acts'}) "
            f"exited {code}"
        )
    else:
        leader.proc.wait(30)
    states = settle(changes[-1], problems)
    first_helm_s = None
    new_helm = sampler.started(standby.proc.pid, faulted)
    if new_helm:
        first_helm_s = new_helm[0].first_seen - faulted
        notes.append(f"new leader ran {len(new_helm)} helm, the first +{first_helm_s:.1f}s")
    else:
        notes.append("new leader needed no helm")
    overlaps = sampler.overlaps_since(since)
    if overlaps:
        problems.append(f"two helm processes on one release: {overlaps[:3]}")
    outcome, broken = _judge(states, baseline, changes)
    problems += broken
    if broken:  # what the new leader said about the first release that broke
        name = broken[0].split(":", 1)[0]
        lines = [line for line in standby.log().splitlines() if f"/{name} " in line + " "]
        problems.append(f"new leader's log on {name}: " + " // ".join(lines[-8:])[-2500:])
    if problems and outcome == "survived":
        outcome = "violated"
    if problems:
        notes.append("BROKEN: " + " | ".join(problems)[:5000])
    return Found(outcome, "; ".join(notes), took, first_helm_s)
