"""Pure parts of the failure diagnosis: which objects, what is wrong with them, the message."""

from __future__ import annotations

import argparse
import itertools
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gitops_helm.adapters.kube import KubeError, KubeErrorKind
from gitops_helm.config import (
    ConfigError,
    FailureDiagnosisSettings,
    Settings,
    add_run_flags,
    settings_from_args,
)
from gitops_helm.release.diagnose import (
    Diagnoser,
    Diagnosis,
    WorkloadRef,
    clean_log,
    failing_container,
    failure_message,
    label_selector,
    newest_events,
    pod_problem,
    shorten,
    workload_problem,
    workloads_in,
)

MANIFEST = """---
# Source: hello/templates/configmap.yaml
apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
data:
  message: "hello"
---
# Source: hello/templates/secret.yaml
apiVersion: v1
kind: Secret
metadata:
  name: web-secret
stringData:
  password: "never looked at"
---
# Source: hello/templates/deployment.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels:
    app.kubernetes.io/instance: web
spec:
  replicas: 1
  selector:
    matchLabels:
      app.kubernetes.io/instance: web
  template:
    metadata:
      labels:
        app.kubernetes.io/instance: web
    spec:
      containers:
      - name: hello
        image: "registry.example/hello:1.0.0"
---
# Source: hello/templates/job.yaml
apiVersion: batch/v1
kind: Job
metadata:
  name: migrate
  namespace: other
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: m, image: "m:1"}]
"""

HOOKS = [
    {
        "name": "web-test",
        "kind": "Pod",
        "path": "hello/templates/tests/test-connection.yaml",
        "manifest": "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web-test\n  annotations:\n"
        "    helm.sh/hook: test\nspec:\n  containers: [{name: check, image: 'b:1'}]\n",
        "events": ["test"],
    },
    {
        "name": "web-pre",
        "kind": "Job",
        "path": "hello/templates/pre.yaml",
        "manifest": "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: web-pre\n",
        "events": ["pre-install", "pre-upgrade"],
    },
]

RECORD = {"name": "web", "manifest": MANIFEST, "hooks": HOOKS}

# As the API server holds a Deployment whose one pod never gets Ready (kube-controller-manager's
# status after the progress deadline).
DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "app", "uid": "d-1"},
    "spec": {"replicas": 1, "selector": {"matchLabels": {"app.kubernetes.io/instance": "web"}}},
    "status": {
        "observedGeneration": 1,
        "replicas": 1,
        "updatedReplicas": 1,
        "unavailableReplicas": 1,
        "conditions": [
            {
                "type": "Available",
                "status": "False",
                "reason": "MinimumReplicasUnavailable",
                "message": "Deployment does not have minimum availability.",
            },
            {
                "type": "Progressing",
                "status": "False",
                "reason": "ProgressDeadlineExceeded",
                "message": 'ReplicaSet "web-5d9c7b8f6" has timed out progressing.',
            },
        ],
    },
}

UNREADY_POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "web-5d9c7b8f6-x2x9q", "namespace": "app", "uid": "p-1"},
    "status": {
        "phase": "Running",
        "conditions": [
            {"type": "Initialized", "status": "True"},
            {"type": "Ready", "status": "False", "reason": "ContainersNotReady"},
            {"type": "ContainersReady", "status": "False", "reason": "ContainersNotReady"},
            {"type": "PodScheduled", "status": "True"},
        ],
        "containerStatuses": [
            {
                "name": "hello",
                "ready": False,
                "started": True,
                "restartCount": 0,
                "state": {"running": {"startedAt": "2026-11-30T22:00:00Z"}},
            }
        ],
    },
}

CRASHING_POD = {
    "metadata": {"name": "api-7f-abcde", "namespace": "app"},
    "status": {
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "False", "reason": "ContainersNotReady"}],
        "containerStatuses": [
            {"name": "sidecar", "ready": True, "restartCount": 0, "state": {"running": {}}},
            {
                "name": "api",
                "ready": False,
                "restartCount": 4,
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 1m20s restarting"}},
                "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}},
            },
        ],
    },
}


def event(reason: str, message: str, when: str, **more: Any) -> dict[str, Any]:
    return {"reason": reason, "message": message, "lastTimestamp": when, "type": "Normal", **more}


# -- which objects -----------------------------------------------------------------------------


def test_workloads_of_a_release_are_its_workload_kinds_in_manifest_order_then_hooks() -> None:
    assert workloads_in(RECORD, "app", tests=False) == [
        WorkloadRef("Deployment", "app", "web"),
        WorkloadRef("Job", "other", "migrate"),
        WorkloadRef("Job", "app", "web-pre"),
    ]


def test_a_failed_test_looks_only_at_the_test_hooks() -> None:
    assert workloads_in(RECORD, "app", tests=True) == [WorkloadRef("Pod", "app", "web-test")]


def test_a_manifest_that_cannot_be_decoded_names_no_objects() -> None:
    assert workloads_in({"manifest": "kind: [unclosed"}, "app", tests=False) == []
    assert workloads_in({}, "app", tests=False) == []


def test_an_object_of_a_workload_kind_at_another_api_version_is_not_taken_for_one() -> None:
    record = {"manifest": "apiVersion: example.com/v1\nkind: Deployment\nmetadata: {name: x}\n"}
    assert workloads_in(record, "app", tests=False) == []


def test_label_selector_text() -> None:
    selector = {
        "matchLabels": {"b": "2", "a": "1"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["web", "api"]},
            {"key": "env", "operator": "NotIn", "values": ["dev"]},
            {"key": "x", "operator": "Exists"},
            {"key": "y", "operator": "DoesNotExist"},
        ],
    }
    assert label_selector(selector) == "a=1,b=2,tier in (web,api),env notin (dev),x,!y"
    assert label_selector({}) is None
    assert label_selector(None) is None


# -- what is wrong -----------------------------------------------------------------------------


def test_a_deployment_without_its_ready_replicas_says_how_many_and_why() -> None:
    assert workload_problem("Deployment", DEPLOYMENT) == (
        'ProgressDeadlineExceeded: ReplicaSet "web-5d9c7b8f6" has timed out progressing.'
    ).join(["0/1 replicas ready, ", ""])


def test_a_healthy_deployment_has_no_problem() -> None:
    healthy = {
        **DEPLOYMENT,
        "status": {"replicas": 2, "readyReplicas": 2, "updatedReplicas": 2, "availableReplicas": 2},
    }
    assert workload_problem("Deployment", {**healthy, "spec": {"replicas": 2}}) is None


def test_a_deployment_scaled_to_zero_is_healthy_and_one_without_replicas_means_one() -> None:
    assert workload_problem("Deployment", {"spec": {"replicas": 0}, "status": {}}) is None
    assert workload_problem("StatefulSet", {"spec": {}, "status": {}}) == "0/1 replicas ready, 0/1 updated"


def test_a_stuck_rolling_update_is_not_taken_for_a_healthy_deployment() -> None:
    # the new pod runs but is not Ready; the old one keeps serving (maxUnavailable rounds to 0)
    rolling = {
        "spec": {"replicas": 1},
        "status": {
            "replicas": 2,
            "updatedReplicas": 1,
            "readyReplicas": 1,
            "availableReplicas": 1,
            "unavailableReplicas": 1,
        },
    }
    assert workload_problem("Deployment", rolling) == "1 old replica not yet replaced"
    waiting = {"spec": {"replicas": 2}, "status": {"replicas": 2, "updatedReplicas": 2, "readyReplicas": 2}}
    assert workload_problem("Deployment", waiting) == "0/2 available"


def test_a_replica_failure_is_quoted() -> None:
    obj = {
        "spec": {"replicas": 1},
        "status": {
            "conditions": [
                {
                    "type": "ReplicaFailure",
                    "status": "True",
                    "reason": "FailedCreate",
                    "message": 'pods "web-1" is forbidden: exceeded quota: compute',
                }
            ]
        },
    }
    assert workload_problem("Deployment", obj) == (
        '0/1 replicas ready, 0/1 updated, FailedCreate: pods "web-1" is forbidden: exceeded quota: compute'
    )


def test_daemonset_counts() -> None:
    obj = {"status": {"desiredNumberScheduled": 3, "numberReady": 2, "updatedNumberScheduled": 3}}
    assert workload_problem("DaemonSet", obj) == "2/3 replicas ready"


def test_jobs_failed_running_and_complete() -> None:
    failed = {
        "status": {
            "failed": 2,
            "conditions": [
                {
                    "type": "Failed",
                    "status": "True",
                    "reason": "BackoffLimitExceeded",
                    "message": "Job has reached the specified backoff limit",
                }
            ],
        }
    }
    assert (
        workload_problem("Job", failed)
        == "failed (BackoffLimitExceeded: Job has reached the specified backoff limit)"
    )
    assert workload_problem("Job", {"status": {"active": 1}}) == "not complete (1 active, 0 failed)"
    complete = {"status": {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}}
    assert workload_problem("Job", complete) is None


def test_an_unready_pod_says_its_readiness_and_which_container() -> None:
    assert pod_problem(UNREADY_POD) == "Running, Ready=False (ContainersNotReady), container hello not ready"


def test_a_crashing_pod_names_the_crashing_container_only() -> None:
    assert pod_problem(CRASHING_POD) == (
        "Running, Ready=False (ContainersNotReady), "
        "container api waiting (CrashLoopBackOff: back-off 1m20s restarting, 4 restarts)"
    )


def test_an_unschedulable_pod() -> None:
    pod = {
        "status": {
            "phase": "Pending",
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": "0/1 nodes are available: 1 Insufficient cpu.",
                }
            ],
        }
    }
    assert (
        pod_problem(pod)
        == "Pending, not scheduled (Unschedulable: 0/1 nodes are available: 1 Insufficient cpu.)"
    )


def test_a_failed_test_pod_says_its_exit_code() -> None:
    pod = {
        "status": {
            "phase": "Failed",
            "containerStatuses": [
                {"name": "check", "ready": False, "state": {"terminated": {"exitCode": 1, "reason": "Error"}}}
            ],
        }
    }
    assert pod_problem(pod) == "Failed, container check terminated (exit code 1, Error)"


def test_ready_and_succeeded_pods_have_no_problem() -> None:
    ready = {"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}
    assert pod_problem(ready) is None
    assert pod_problem({"status": {"phase": "Succeeded"}}) is None


def test_the_log_to_read_is_the_failing_containers_and_after_a_crash_its_previous_run() -> None:
    assert failing_container(CRASHING_POD) == ("api", True)
    assert failing_container(UNREADY_POD) == ("hello", False)
    assert failing_container({"status": {"phase": "Pending"}}) is None


def test_newest_events_first_and_bounded() -> None:
    events = [
        event("Scheduled", "Successfully assigned app/web-x to node-0", "2026-11-30T22:00:01Z"),
        event(
            "Unhealthy", "Readiness probe failed:   HTTP 500", "2026-11-30T22:00:09Z", type="Warning", count=7
        ),
        {
            "reason": "Pulled",
            "message": "Container image pulled",
            "eventTime": "2026-11-30T22:00:05.123456Z",
            "lastTimestamp": None,
        },
    ]
    assert newest_events(events, 2) == [
        "Warning Unhealthy: Readiness probe failed: HTTP 500 (x7)",
        "Pulled: Container image pulled",
    ]
    assert newest_events([], 3) == []


def test_a_long_event_message_is_shortened() -> None:
    (text,) = newest_events([event("Failed", "x" * 1000, "2026-11-30T22:00:00Z")], 1)
    assert len(text) < 200


# -- the message ---------------------------------------------------------------------------------


HELM_MESSAGE = (
    "UPGRADE FAILED: resource Deployment/app/web not ready. status: InProgress, message: Available: 0/1\n"
    "context deadline exceeded\n"
)


def test_the_message_is_helms_followed_by_the_findings() -> None:
    diagnosis = Diagnosis(("Deployment app/web: 0/1 replicas ready", "Pod app/web-x: Running, Ready=False"))
    assert failure_message(HELM_MESSAGE, diagnosis, 1024) == (
        HELM_MESSAGE.strip()
        + "; objects: Deployment app/web: 0/1 replicas ready | Pod app/web-x: Running, Ready=False"
    )


def test_without_findings_the_message_is_helms_own() -> None:
    assert failure_message(HELM_MESSAGE, Diagnosis(), 80) == HELM_MESSAGE.strip()


@given(
    helm_message=st.text(min_size=0, max_size=3000),
    findings=st.lists(st.text(min_size=1, max_size=600), min_size=1, max_size=8),
    cap=st.integers(min_value=80, max_value=4096),
)
def test_the_message_never_exceeds_its_cap_and_keeps_a_part_of_each(
    helm_message: str, findings: list[str], cap: int
) -> None:
    message = failure_message(helm_message, Diagnosis(tuple(findings)), cap)
    assert len(message) <= cap
    assert "; objects: " in message
    helm_part, _, diagnosis_part = message.partition("; objects: ")
    assert diagnosis_part  # the diagnosis is never crowded out by a long helm message
    # helm's message keeps at least half of the room (or all of it, when it is shorter)
    assert len(helm_part) >= min(len(helm_message.strip()), (cap - len("; objects: ")) // 2)


@given(text=st.text(max_size=500), size=st.integers(min_value=0, max_value=400))
def test_shorten_keeps_start_and_end_within_the_size(text: str, size: int) -> None:
    out = shorten(text, size)
    assert len(out) <= size or len(text) <= size
    if len(text) <= size:
        assert out == text
    elif size >= 10:
        assert text.startswith(out.split(" ... ")[0]) and text.endswith(out.split(" ... ")[-1])


def test_log_tails_are_bounded_and_lose_terminal_escapes() -> None:
    text = "".join(f"line {i}\n" for i in range(100)) + "\x1b[31mpanic: boom\x1b[0m\n"
    tail = clean_log(text, 3, 4096)
    assert tail == "line 98\nline 99\n?[31mpanic: boom?[0m"
    assert len(clean_log("é" * 5000, 10, 100).encode()) <= 100 + 3  # a cut character becomes U+FFFD


# -- the reads never fail a reconcile --------------------------------------------------------------


class _Cluster:
    """What a diagnosis reads, as the API server would answer; any entry may be an error."""

    def __init__(self, objects: dict[str, Any], pods: Any, events: Any, log: Any) -> None:
        self.objects, self.pods, self.events, self.log = objects, pods, events, log
        self.reads: list[str] = []

    @staticmethod
    def _answer(value: Any) -> Any:
        if isinstance(value, Exception):
            raise value
        return json.loads(json.dumps(value))

    def get_workload(self, kind: str, namespace: str, name: str, *, timeout_s: float | None = None) -> Any:
        assert timeout_s is not None and timeout_s <= 5.0
        self.reads.append(f"get {kind} {name}")
        return self._answer(self.objects.get(f"{kind}/{name}"))

    def list_pods(
        self, namespace: str, label_selector: str, *, limit: int, timeout_s: float | None = None
    ) -> Any:
        assert timeout_s is not None
        self.reads.append(f"pods {label_selector}")
        return self._answer(self.pods)

    def list_events(
        self,
        namespace: str,
        kind: str,
        name: str,
        uid: str | None,
        *,
        limit: int,
        timeout_s: float | None = None,
    ) -> Any:
        assert timeout_s is not None
        self.reads.append(f"events {kind} {name}")
        return self._answer(self.events)

    def pod_log_tail(self, namespace: str, pod: str, container: str, **kwargs: Any) -> str:
        assert kwargs["timeout_s"] is not None
        self.reads.append(f"log {pod} {container}")
        return str(self._answer(self.log))


def test_a_failing_read_becomes_a_note_and_a_missing_log_is_not_mentioned() -> None:
    forbidden = KubeError(KubeErrorKind.FORBIDDEN, "list events", "403 events is forbidden")
    no_logs = KubeError(KubeErrorKind.TEMPORARY, "read log", "500 no logs on this node")
    cluster = _Cluster({"Deployment/web": DEPLOYMENT}, [UNREADY_POD], forbidden, no_logs)
    diagnosis = Diagnoser(cluster, FailureDiagnosisSettings()).diagnose(lambda: RECORD, "app", tests=False)
    assert diagnosis.findings[0].startswith("Deployment app/web: 0/1 replicas ready")
    assert "(could not read its Events: list events: 403 events is forbidden)" in diagnosis.findings[0]
    assert diagnosis.findings[1].startswith("Pod app/web-5d9c7b8f6-x2x9q: Running, Ready=False")
    assert "log" not in " ".join(diagnosis.findings)
    assert diagnosis.log_tails == ()
    assert "Job other/migrate: not found" in diagnosis.findings


def test_a_log_tail_is_kept_for_the_agents_log_only() -> None:
    cluster = _Cluster({"Deployment/web": DEPLOYMENT}, [CRASHING_POD], [], "starting\npanic: boom\n")
    diagnosis = Diagnoser(cluster, FailureDiagnosisSettings()).diagnose(lambda: RECORD, "app", tests=False)
    assert [(t.pod, t.container, t.text) for t in diagnosis.log_tails] == [
        ("app/api-7f-abcde", "api", "starting\npanic: boom")
    ]
    assert "panic" not in diagnosis.summary(10_000)


def test_an_unreadable_release_record_is_a_note() -> None:
    def record() -> dict[str, Any]:
        raise KubeError(KubeErrorKind.TEMPORARY, "read release app/sh.helm.release.v1.web.v2", "timed out")

    diagnosis = Diagnoser(_Cluster({}, [], [], ""), FailureDiagnosisSettings()).diagnose(
        record, "app", tests=False
    )
    assert diagnosis.findings == (
        "(could not read the release manifest: read release app/sh.helm.release.v1.web.v2: timed out)",
    )


def test_an_unexpected_error_never_escapes() -> None:
    broken = {**DEPLOYMENT, "spec": {"replicas": "many"}}  # not what an API server returns
    cluster = _Cluster({"Deployment/web": broken}, [], [], "")
    diagnosis = Diagnoser(cluster, FailureDiagnosisSettings()).diagnose(lambda: RECORD, "app", tests=False)
    assert diagnosis.findings == ("(could not diagnose: ValueError)",)


def test_when_the_time_is_up_nothing_more_is_read() -> None:
    # the start, the manifest, the first object (its check and its read); then the time is up
    clock = itertools.chain([0.0, 0.0, 0.0, 0.0], itertools.repeat(100.0))
    cluster = _Cluster({"Deployment/web": DEPLOYMENT}, [UNREADY_POD], [], "")
    diagnoser = Diagnoser(cluster, FailureDiagnosisSettings(budget_s=15.0), monotonic=lambda: next(clock))
    diagnosis = diagnoser.diagnose(lambda: RECORD, "app", tests=False)
    assert cluster.reads == ["get Deployment web"]
    assert diagnosis.findings == (
        'Deployment app/web: 0/1 replicas ready, ProgressDeadlineExceeded: ReplicaSet "web-5d9c7b8f6" has '
        "timed out progressing.; Events: (could not read its Events: diagnosis time is up)",
        "(could not read the pods of Deployment app/web: diagnosis time is up)",
    )


def test_the_number_of_objects_is_bounded() -> None:
    many = "".join(
        f"---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: d{i}}}\nspec: {{replicas: 1}}\n"
        for i in range(30)
    )
    objects = {f"Deployment/d{i}": {"spec": {"replicas": 1}, "status": {}} for i in range(30)}
    cluster = _Cluster(objects, [], [], "")
    settings = FailureDiagnosisSettings(max_objects=3)
    diagnosis = Diagnoser(cluster, settings).diagnose(lambda: {"manifest": many}, "app", tests=False)
    assert [f.split(":")[0] for f in diagnosis.findings] == [
        "Deployment app/d0",
        "Deployment app/d1",
        "Deployment app/d2",
    ]
    assert len([r for r in cluster.reads if r.startswith("get")]) == 3


# -- the operator's numbers ------------------------------------------------------------------------


def _settings(*argv: str, environ: dict[str, str] | None = None) -> Settings:
    parser = argparse.ArgumentParser()
    add_run_flags(parser)
    return settings_from_args(parser.parse_args(list(argv)), environ or {})


def test_flags_and_environment_set_the_message_cap_and_log_lines() -> None:
    assert _settings().failure_diagnosis == FailureDiagnosisSettings()
    s = _settings("--failure-log-lines", "0", environ={"GITOPS_HELM_FAILURE_MESSAGE_MAX": "2048"})
    assert (s.failure_diagnosis.log_lines, s.failure_diagnosis.message_max_chars) == (0, 2048)


def test_bad_numbers_are_refused_naming_the_flag() -> None:
    with pytest.raises(ConfigError, match="--failure-log-lines: 'ten' is not a whole number"):
        _settings("--failure-log-lines", "ten")
    with pytest.raises(ConfigError, match="--failure-message-max: must be at least 80"):
        _settings("--failure-message-max", "10")
