"""After a failed helm action: which of the release's objects are not healthy, and why.

Place in the flow: when an install, upgrade, rollback or test fails, ``actions`` asks
:meth:`Diagnoser.diagnose` about the release's latest revision. The workload objects come from
the manifest (and hooks) stored with that revision in Helm storage, the same record ``observe``
decodes, so no helm call is made: Deployments, StatefulSets, DaemonSets, Jobs and Pods, and the
Pods of each workload found through its label selector. For each object that is not healthy the
diagnosis says what is wrong and quotes its newest Events; the helm message on the status and
the Event is followed by it, e.g.::

    Deployment app/web: 0/1 replicas ready; Events: ScalingReplicaSet: Scaled up replica set ...
    | Pod app/web-5d9c-x2x: Running, Ready=False (ContainersNotReady), container web not ready

Where a log tail goes: a failing container's last lines are written to the agent's log ONLY, never
to the HelmRelease status or its Events. Log lines may hold anything (tokens, passwords printed
by a crashing program); the status is kept, copied by backups and dashboards, and both status
and Events are readable by everyone who may read HelmReleases, a wider audience than those
allowed ``pods/log`` in the target namespace. The message names the pod and container, so
``kubectl logs`` finds the rest. Secrets are never read for a diagnosis.

It costs API calls only on failure. Every read has its own deadline and the whole diagnosis a
budget (``config.FailureDiagnosisSettings``); every error is swallowed into
``(could not read ...: reason)``, so a diagnosis never makes a reconcile fail or hang. A log that
cannot be read (a simulated node serves none, a container that never started) is not mentioned.

Selection and formatting (everything but :class:`Diagnoser`) are pure and unit-tested.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from gitops_helm import log as logging
from gitops_helm import yamlio
from gitops_helm.config import FailureDiagnosisSettings
from gitops_helm.errors import GitopsHelmError

log = logging.get(__name__)

#: The workload kinds a diagnosis looks at, with the apiVersion it reads them at.
WORKLOAD_KINDS = {
    "Deployment": "apps/v1",
    "StatefulSet": "apps/v1",
    "DaemonSet": "apps/v1",
    "Job": "batch/v1",
    "Pod": "v1",
}
#: Kinds whose Pods are found through ``spec.selector``.
_OWNS_PODS = ("Deployment", "StatefulSet", "DaemonSet", "Job")
_EVENT_TEXT = 160  # one Event's message in a diagnosis
_STATE_TEXT = 160  # one reason/message of a condition or container state
_SEPARATOR = " | "


class DiagnoseKube(Protocol):
    """The slice of the Kubernetes adapter a diagnosis reads through."""

    def get_workload(
        self, kind: str, namespace: str, name: str, *, timeout_s: float | None = None
    ) -> dict[str, Any] | None: ...

    def list_pods(
        self, namespace: str, label_selector: str, *, limit: int, timeout_s: float | None = None
    ) -> list[dict[str, Any]]: ...

    def list_events(
        self,
        namespace: str,
        kind: str,
        name: str,
        uid: str | None,
        *,
        limit: int,
        timeout_s: float | None = None,
    ) -> list[dict[str, Any]]: ...

    def pod_log_tail(
        self,
        namespace: str,
        pod: str,
        container: str,
        *,
        lines: int,
        max_bytes: int,
        previous: bool = False,
        timeout_s: float | None = None,
    ) -> str: ...


@dataclass(frozen=True)
class WorkloadRef:
    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


@dataclass(frozen=True)
class LogTail:
    """The last lines of one failing container (for the agent's log only)."""

    pod: str
    container: str
    text: str


@dataclass(frozen=True)
class Diagnosis:
    """What a diagnosis found: one entry per unhealthy object (or unreadable thing), and log tails."""

    findings: tuple[str, ...] = ()
    log_tails: tuple[LogTail, ...] = field(default=(), repr=False)

    def summary(self, max_chars: int) -> str:
        return shorten(_SEPARATOR.join(self.findings), max_chars)


# -- pure: which objects ---------------------------------------------------------------------


def workloads_in(record: Mapping[str, Any], default_namespace: str, *, tests: bool) -> list[WorkloadRef]:
    """The workload objects of a decoded Helm release record, in manifest order.

    ``tests``: only the test hooks (a failed ``helm test``); otherwise the manifest, then the
    other hooks (a failed pre/post hook Job is a common cause of a failed install or upgrade).
    A manifest that cannot be decoded yields nothing here (helm wrote it; drift reports it)."""
    texts: list[str] = []
    hooks = [h for h in record.get("hooks") or () if isinstance(h, Mapping)]
    if tests:
        texts += [str(h.get("manifest") or "") for h in hooks if "test" in (h.get("events") or ())]
    else:
        texts.append(str(record.get("manifest") or ""))
        texts += [str(h.get("manifest") or "") for h in hooks if "test" not in (h.get("events") or ())]
    found: list[WorkloadRef] = []
    for text in texts:
        try:
            documents = yamlio.load_all(text, unique_keys=False)
        except yamlio.YAMLError:
            continue
        for doc in (d.data for d in documents):
            ref = _workload_ref(doc, default_namespace)
            if ref is not None and ref not in found:
                found.append(ref)
    return found


def _workload_ref(doc: Any, default_namespace: str) -> WorkloadRef | None:
    if not isinstance(doc, Mapping):
        return None
    kind, meta = doc.get("kind"), doc.get("metadata")
    if WORKLOAD_KINDS.get(str(kind)) != doc.get("apiVersion") or not isinstance(meta, Mapping):
        return None
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        return None
    namespace = meta.get("namespace")
    return WorkloadRef(
        str(kind), namespace if isinstance(namespace, str) and namespace else default_namespace, name
    )


def label_selector(selector: Any) -> str | None:
    """A LabelSelector (``matchLabels``, ``matchExpressions``) as selector text; None if empty."""
    if not isinstance(selector, Mapping):
        return None
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or ():
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In":
            parts.append(f"{key} in ({','.join(values)})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({','.join(values)})")
        elif op == "Exists":
            parts.append(str(key))
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts) or None


# -- pure: what is wrong ---------------------------------------------------------------------


def _conditions(obj: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    conds = (obj.get("status") or {}).get("conditions") or ()
    return {str(c.get("type")): c for c in conds if isinstance(c, Mapping)}


def _why(condition: Mapping[str, Any]) -> str:
    """``Reason: message`` of a condition or container state, short."""
    reason, message = condition.get("reason") or "", " ".join(str(condition.get("message") or "").split())
    text = f"{reason}: {message}" if reason and message else reason or message
    return shorten(text, _STATE_TEXT)


def _replicas(kind: str, obj: Mapping[str, Any]) -> list[str]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    if kind == "DaemonSet":
        desired = int(status.get("desiredNumberScheduled") or 0)
        ready, updated = int(status.get("numberReady") or 0), int(status.get("updatedNumberScheduled") or 0)
    else:
        replicas = spec.get("replicas")
        desired = 1 if replicas is None else int(replicas)
        ready, updated = int(status.get("readyReplicas") or 0), int(status.get("updatedReplicas") or 0)
    problems = []
    if ready < desired:
        problems.append(f"{ready}/{desired} replicas ready")
    if updated < desired:
        problems.append(f"{updated}/{desired} updated")
    # A rolling update whose new pods do not get Ready keeps the old ones: the ready count is
    # met by old pods, so only these say that the rollout is stuck (as helm's wait sees it).
    old = int(status.get("replicas") or 0) - updated if kind == "Deployment" else 0
    if old > 0:
        problems.append(f"{old} old {'replica' if old == 1 else 'replicas'} not yet replaced")
    if kind == "Deployment" and ready >= desired and int(status.get("availableReplicas") or 0) < desired:
        problems.append(f"{int(status.get('availableReplicas') or 0)}/{desired} available")
    return problems


def workload_problem(kind: str, obj: Mapping[str, Any]) -> str | None:
    """What is wrong with a workload object as the API server has it; None when it is healthy."""
    if kind == "Pod":
        return pod_problem(obj)
    conds = _conditions(obj)
    if kind == "Job":
        if (conds.get("Complete") or {}).get("status") == "True":
            return None
        failed = conds.get("Failed") or {}
        if failed.get("status") == "True":
            return f"failed ({_why(failed)})"
        status = obj.get("status") or {}
        return (
            f"not complete ({int(status.get('active') or 0)} active, {int(status.get('failed') or 0)} failed)"
        )
    problems = _replicas(kind, obj)
    progressing, replica_failure = conds.get("Progressing") or {}, conds.get("ReplicaFailure") or {}
    if progressing.get("status") == "False":
        problems.append(_why(progressing))
    if replica_failure.get("status") == "True":
        problems.append(_why(replica_failure))
    return ", ".join(problems) or None


def pod_problem(pod: Mapping[str, Any]) -> str | None:
    """What is wrong with a Pod; None when it is Ready or Succeeded."""
    status = pod.get("status") or {}
    phase = str(status.get("phase") or "Unknown")
    conds = _conditions(pod)
    ready = conds.get("Ready") or {}
    if phase == "Succeeded" or (phase == "Running" and ready.get("status") == "True"):
        return None
    parts = [phase]
    if phase == "Failed" and (status.get("reason") or status.get("message")):
        parts.append(_why(status))
    scheduled = conds.get("PodScheduled") or {}
    if scheduled.get("status") == "False":
        parts.append(f"not scheduled ({_why(scheduled)})")
    elif phase != "Failed" and ready:
        parts.append(f"Ready={ready.get('status')}" + (f" ({_why(ready)})" if _why(ready) else ""))
    for cs in status.get("containerStatuses") or ():
        state = container_state(cs)
        if state:
            parts.append(f"container {cs.get('name')} {state}")
    return ", ".join(parts)


def container_state(cs: Mapping[str, Any]) -> str | None:
    """A not-ready container's state in a few words; None for a ready one."""
    if cs.get("ready"):
        return None
    state = cs.get("state") or {}
    restarts = int(cs.get("restartCount") or 0)
    again = f", {restarts} restarts" if restarts else ""
    if state.get("waiting"):
        return f"waiting ({_why(state['waiting']) or 'waiting'}{again})"
    if state.get("terminated"):
        term = state["terminated"]
        return (
            f"terminated (exit code {term.get('exitCode')}{', ' + _why(term) if _why(term) else ''}{again})"
        )
    return f"not ready{again}"


def failing_container(pod: Mapping[str, Any]) -> tuple[str, bool] | None:
    """The container whose log tells why the pod fails, and whether its previous run's log is
    the one to read (it is waiting to restart after a crash); None if no container ran."""
    for cs in (pod.get("status") or {}).get("containerStatuses") or ():
        if cs.get("ready") or not cs.get("name"):
            continue
        state, last = cs.get("state") or {}, cs.get("lastState") or {}
        if state.get("waiting") and last.get("terminated"):
            return str(cs["name"]), True
        if state.get("running") or state.get("terminated"):
            return str(cs["name"]), False
    return None


def _event_time(event: Mapping[str, Any]) -> float:
    meta = event.get("metadata") or {}
    for value in (event.get("eventTime"), event.get("lastTimestamp"), event.get("firstTimestamp"),
                  meta.get("creationTimestamp")):  # fmt: skip
        if isinstance(value, str) and value:
            try:
                return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
            except ValueError:
                continue
    return 0.0


def newest_events(events: Iterable[Mapping[str, Any]], limit: int) -> list[str]:
    """The ``limit`` newest Events, newest first, as ``[Warning ]Reason: message (xN)``."""
    ordered = sorted(events, key=_event_time, reverse=True)[:limit]
    out = []
    for e in ordered:
        series = e.get("series") or {}
        count = int(e.get("count") or series.get("count") or 1)
        text = f"{'Warning ' if e.get('type') == 'Warning' else ''}{e.get('reason') or '?'}: "
        text += shorten(" ".join(str(e.get("message") or "").split()), _EVENT_TEXT)
        out.append(text + (f" (x{count})" if count > 1 else ""))
    return out


def finding(what: str, problem: str, events: Sequence[str]) -> str:
    """One object's entry: ``Kind ns/name: problem; Events: a; b``."""
    text = f"{what}: {problem}"
    return f"{text}; Events: {'; '.join(events)}" if events else text


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def clean_log(text: str, lines: int, max_bytes: int) -> str:
    """A log tail fit for the agent's log: the last ``lines`` lines within ``max_bytes``, control
    characters (terminal escapes) replaced."""
    kept = text.encode()[-max_bytes:].decode("utf-8", errors="replace")
    return "\n".join(_CONTROL.sub("?", line) for line in kept.splitlines()[-lines:])


def shorten(text: str, max_chars: int) -> str:
    """``text`` within ``max_chars``: its start and its end (where helm puts the cause) kept."""
    if len(text) <= max_chars:
        return text
    if max_chars < 10:
        return text[:max_chars]
    head = (max_chars - 5) * 2 // 3
    return f"{text[:head]} ... {text[len(text) - (max_chars - 5 - head) :]}"


def failure_message(helm_message: str, diagnosis: Diagnosis, max_chars: int) -> str:
    """Helm's message followed by the diagnosis, within ``max_chars`` (helm's part keeps at least
    half when both are long); helm's message alone when nothing was found."""
    helm_text = helm_message.strip()
    if not diagnosis.findings:
        return helm_text
    lead = "; objects: "
    room = max_chars - len(lead)
    helm_part = shorten(helm_text, max(room - len(diagnosis.summary(room)), room // 2))
    return f"{helm_part}{lead}{diagnosis.summary(room - len(helm_part))}"


# -- the reads -------------------------------------------------------------------------------


class Diagnoser:
    """Reads what a diagnosis needs, within its deadlines, and never raises."""

    def __init__(
        self,
        kube: DiagnoseKube,
        settings: FailureDiagnosisSettings,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kube = kube
        self.settings = settings
        self.monotonic = monotonic

    def diagnose(
        self, read_record: Callable[[], Mapping[str, Any]], namespace: str, *, tests: bool
    ) -> Diagnosis:
        """Diagnose the release whose latest record ``read_record`` returns (it may raise)."""
        try:
            return _Run(self, namespace).diagnose(read_record, tests=tests)
        except Exception as exc:  # a surprise in what the cluster returned: the helm message stays
            log.warning("failure diagnosis failed", namespace=namespace, error=f"{type(exc).__name__}: {exc}")
            return Diagnosis((f"(could not diagnose: {type(exc).__name__})",))


class _Run:
    """One diagnosis: its deadline, what it found."""

    def __init__(self, diagnoser: Diagnoser, namespace: str) -> None:
        self.kube = diagnoser.kube
        self.s = diagnoser.settings
        self.monotonic = diagnoser.monotonic
        self.namespace = namespace
        self.deadline = self.monotonic() + self.s.budget_s
        self.findings: list[str] = []
        self.tails: list[LogTail] = []

    def _timeout(self) -> float | None:
        """This read's deadline; None once the budget is spent."""
        left = self.deadline - self.monotonic()
        return min(self.s.request_timeout_s, left) if left > 0.1 else None

    def _read(self, what: str, fn: Callable[[float], Any]) -> tuple[Any, str | None]:
        """``fn(timeout)``, or None and why it could not be read (the run goes on)."""
        timeout = self._timeout()
        if timeout is None:
            return None, f"(could not read {what}: diagnosis time is up)"
        try:
            return fn(timeout), None
        except GitopsHelmError as exc:
            return None, f"(could not read {what}: {shorten(str(exc), _STATE_TEXT)})"

    def diagnose(self, read_record: Callable[[], Mapping[str, Any]], *, tests: bool) -> Diagnosis:
        # the record is read (at most once per step) with the adapter's own request deadline
        record, failed = self._read("the release manifest", lambda _t: read_record())
        if failed:
            return Diagnosis((failed,))
        refs = workloads_in(record or {}, self.namespace, tests=tests)
        unhealthy = 0
        for ref in refs[: self.s.max_objects * 3]:  # bounded reads, even when most are healthy
            if unhealthy >= self.s.max_objects or self._timeout() is None:
                break
            obj, failed = self._read(str(ref), functools.partial(self._get, ref))
            problem = failed or (f"{ref}: not found" if obj is None else workload_problem(ref.kind, obj))
            if problem is None:
                continue
            unhealthy += 1
            if obj is None:
                self.findings.append(problem)
                continue
            self._object(ref, obj, problem)
            if ref.kind == "Pod":
                self._log_tail(obj)
            else:
                self._pods_of(ref, obj)
        return Diagnosis(tuple(self.findings), tuple(self.tails))

    def _get(self, ref: WorkloadRef, timeout_s: float) -> dict[str, Any] | None:
        return self.kube.get_workload(ref.kind, ref.namespace, ref.name, timeout_s=timeout_s)

    def _object(self, ref: WorkloadRef, obj: Mapping[str, Any], problem: str) -> None:
        uid = (obj.get("metadata") or {}).get("uid")
        events, failed = self._read(
            "its Events",
            lambda t: self.kube.list_events(
                ref.namespace, ref.kind, ref.name, uid, limit=self.s.events_listed, timeout_s=t
            ),
        )
        quoted = [failed] if failed else newest_events(events or [], self.s.events_per_object)
        self.findings.append(finding(str(ref), problem, quoted))

    def _pods_of(self, ref: WorkloadRef, obj: Mapping[str, Any]) -> None:
        selector = label_selector((obj.get("spec") or {}).get("selector"))
        if selector is None:
            return
        # more than are reported: a workload's healthy pods are listed too, and skipped
        pods, failed = self._read(
            f"the pods of {ref}",
            lambda t: self.kube.list_pods(
                ref.namespace, selector, limit=self.s.pods_per_object * 5, timeout_s=t
            ),
        )
        if failed:
            self.findings.append(failed)
        shown = 0
        for pod in pods or ():
            problem = pod_problem(pod)
            if problem is None or shown >= self.s.pods_per_object:
                continue
            shown += 1
            name = str((pod.get("metadata") or {}).get("name"))
            self._object(WorkloadRef("Pod", ref.namespace, name), pod, problem)
            self._log_tail(pod)

    def _log_tail(self, pod: Mapping[str, Any]) -> None:
        """A failing container's last lines, for the agent's log; no log is normal, not a finding."""
        container = failing_container(pod)
        timeout = self._timeout()
        if self.s.log_lines <= 0 or container is None or timeout is None:
            return
        meta = pod.get("metadata") or {}
        name, namespace = str(meta.get("name")), str(meta.get("namespace") or self.namespace)
        try:
            text = self.kube.pod_log_tail(
                namespace,
                name,
                container[0],
                lines=self.s.log_lines,
                max_bytes=self.s.log_bytes,
                previous=container[1],
                timeout_s=timeout,
            )
        except GitopsHelmError as exc:
            log.debug("no log tail", pod=f"{namespace}/{name}", container=container[0], error=str(exc))
            return
        cleaned = clean_log(text, self.s.log_lines, self.s.log_bytes)
        if cleaned.strip():
            self.tails.append(LogTail(f"{namespace}/{name}", container[0], cleaned))
