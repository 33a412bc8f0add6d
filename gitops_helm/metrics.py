"""Prometheus metrics of the agent (served on ``/metrics`` by ``server.py``).

Names follow the Prometheus conventions: counters end ``_total``, durations are ``_seconds``
histograms, gauges carry no reserved suffix (``_count``, ``_total``, ``_sum``, ``_bucket``).
The prefix is ``gitops_helm_``; ``release_*`` names follow the Helm Operator's where a user's
alerts may depend on them. Labels never carry values from Secrets, and per-HelmRelease labels
appear only on ``gitops_helm_release_condition_info`` (one series per condition of each
HelmRelease the agent knows, gone with the HelmRelease).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

REGISTRY = CollectorRegistry(auto_describe=True)
# process_* (CPU, memory, open files, start time) and python_info, on our own registry
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)

_DURATION_BUCKETS = (0.5, 1, 5, 10, 30, 60, 120, 300, 600, 1800)

ACTION_DURATION = Histogram(
    "gitops_helm_release_action_duration_seconds",
    "Duration of release actions (install, upgrade, test, rollback, uninstall, ...).",
    ["action", "success"],
    buckets=_DURATION_BUCKETS,
    registry=REGISTRY,
)
RECONCILE_DURATION = Histogram(
    "gitops_helm_reconcile_duration_seconds",
    "Duration of HelmRelease reconcile runs, by the last helm action the run took (none: the "
    "release was in sync, waiting, or failed before any helm action) and outcome (ok, error).",
    ["action", "outcome"],
    buckets=_DURATION_BUCKETS,
    registry=REGISTRY,
)
RECONCILES = Counter(
    "gitops_helm_reconciles_total", "HelmRelease reconciles run, by result.", ["result"], registry=REGISTRY
)
HELM_CALLS_TOTAL = Counter(
    "gitops_helm_helm_calls_total",
    "helm subprocess calls, by verb (install, upgrade, test, status, ...) and outcome (ok, or the "
    "error class: failed, temporary, locked, not-found, chart, interrupted).",
    ["verb", "outcome"],
    registry=REGISTRY,
)
# The gauge ``gitops_helm_helm_calls`` is gone, not kept deprecated: a counter's family name is
# its name without ``_total``, so the two cannot be served side by side.
QUEUE_DEPTH = Gauge(
    "gitops_helm_queue_depth", "HelmRelease keys waiting in the work queue.", registry=REGISTRY
)
QUEUE_LENGTH = Gauge(
    "gitops_helm_release_queue_length_count",
    "DEPRECATED (removed in the next release): use gitops_helm_queue_depth.",
    registry=REGISTRY,
)
LEADER = Gauge(
    "gitops_helm_leader",
    "1 when this replica acts (holds the leader Lease, or runs without leader election), else 0.",
    registry=REGISTRY,
)
RELEASES = Gauge("gitops_helm_releases", "HelmReleases known to the controller.", registry=REGISTRY)
# deprecated: a gauge with the reserved suffix ``_count``; the same value, served for one release
RELEASE_COUNT = Gauge("gitops_helm_release_count", "Deprecated: use gitops_helm_releases.", registry=REGISTRY)
SYNC_RUNS = Counter("gitops_helm_sync_runs_total", "Git sync runs, by result.", ["result"], registry=REGISTRY)
SYNC_OBJECT_ERRORS = Gauge(
    "gitops_helm_sync_object_errors", "Objects that failed to apply in the last Git sync.", registry=REGISTRY
)
SYNC_LAST_SUCCESS = Gauge(
    "gitops_helm_sync_last_success_timestamp_seconds",
    "Time of the last successful Git sync.",
    registry=REGISTRY,
)
GIT_FETCHES = Counter(
    "gitops_helm_git_fetches_total",
    "Fetches of the Git repository the agent syncs, by result (ok, error).",
    ["result"],
    registry=REGISTRY,
)
GIT_LAST_FETCH = Gauge(
    "gitops_helm_git_last_fetch_success_timestamp_seconds",
    "Time of the last successful fetch of the Git repository.",
    registry=REGISTRY,
)
SYNC_LAG = Gauge(
    "gitops_helm_sync_lag_seconds",
    "Seconds since the last successful Git fetch (how stale the applied state may be); 0 until "
    "the first one.",
    registry=REGISTRY,
)
REGISTRY_REQUESTS = Counter(
    "gitops_helm_registry_requests_total",
    "HTTP requests to chart repositories and registries, by kind (helm-index: a Helm repository "
    "index, helm-chart: a chart archive, oci: an OCI chart registry, image: image automation's "
    "tags, manifests and blobs; token requests count with their kind), host (host[:port]) and "
    "outcome (ok, or the error class: unreachable, tls, unauthorized, not-found, rate-limited, "
    "error).",
    ["kind", "host", "outcome"],
    registry=REGISTRY,
)

KUBE_REQUESTS = Counter(
    "gitops_helm_kube_requests_total",
    "Requests to the Kubernetes API, by verb (get: a get or a list, watch, create, update, patch, "
    "delete) and outcome (ok, or error: no answer or an error status).",
    ["verb", "outcome"],
    registry=REGISTRY,
)
HELM_STORAGE_READ_BYTES = Counter(
    "gitops_helm_helm_storage_read_bytes_total",
    "Bytes of Helm release storage (sh.helm.release.v1 Secrets) read from the Kubernetes API, by "
    "read (list: a release's revisions, metadata only; record: one revision's whole record).",
    ["read"],
    registry=REGISTRY,
)


def observe_action(action: str, key: str, ok: bool, seconds: float) -> None:
    del key  # per-release labels would grow without bound on large fleets
    ACTION_DURATION.labels(action=action, success=str(ok).lower()).observe(seconds)


@dataclass(frozen=True)
class ConditionSample:
    """One condition of one HelmRelease, as ``release_condition_info`` shows it."""

    namespace: str
    name: str
    condition: str
    status: str  # True, False, Unknown


# the Helm Operator's values: alerts written against it (== -1: False) keep working
_CONDITION_VALUE = {"True": 1.0, "False": -1.0}


class ReleaseConditions(Collector):
    """``gitops_helm_release_condition_info``, read at scrape time from the agent's cache of
    HelmReleases: a deleted HelmRelease's series disappear with it, no bookkeeping to forget."""

    def __init__(self) -> None:
        self.source: Callable[[], Iterable[ConditionSample]] = lambda: ()

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "gitops_helm_release_condition_info",
            "Conditions of each HelmRelease: 1 True, 0 Unknown, -1 False (the status is a label too).",
            labels=["namespace", "name", "condition", "status"],
        )
        for sample in self.source():
            family.add_metric(
                [sample.namespace, sample.name, sample.condition, sample.status],
                _CONDITION_VALUE.get(sample.status, 0.0),
            )
        yield family

    def describe(self) -> Iterator[Metric]:
        return iter(())


RELEASE_CONDITIONS = ReleaseConditions()
REGISTRY.register(RELEASE_CONDITIONS)
IMAGE_SCANS = Counter(
    "gitops_helm_image_scans_total",
    "Image automation passes, by result (ok, error: some image or file had an error).",
    ["result"],
    registry=REGISTRY,
)
IMAGE_ERRORS = Counter(
    "gitops_helm_image_errors_total",
    "Images (or chart versions) not updated because of an error, by reason (unreachable, "
    "unauthorized, not-found, rate-limited, bad-answer, chart-repository, invalid, changed-shape, "
    "file, commit, fenced: a replica that lost the leader Lease pushed nothing, credentials).",
    ["reason"],
    registry=REGISTRY,
)
IMAGE_UPDATES = Counter(
    "gitops_helm_image_updates_total",
    "Image and chart version updates committed to Git, by kind (image, chart).",
    ["kind"],
    registry=REGISTRY,
)

SHARD = Info(
    "gitops_helm_shard",
    "Which HelmReleases this agent serves: its --shard (empty: none) and the whole label selector "
    "it watches with (empty: every HelmRelease).",
    registry=REGISTRY,
)
