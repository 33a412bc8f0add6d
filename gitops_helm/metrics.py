"""Prometheus metrics of the agent (served on ``/metrics`` by ``server.py``).

Names follow the Helm Operator's where a user's alerts may depend on them (``release_*``), with
the prefix ``gitops_helm_``. Labels never carry values from Secrets.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

REGISTRY = CollectorRegistry(auto_describe=True)

ACTION_DURATION = Histogram(
    "gitops_helm_release_action_duration_seconds",
    "Duration of release actions (install, upgrade, test, rollback, uninstall, ...).",
    ["action", "success"],
    buckets=(0.5, 1, 5, 10, 30, 60, 120, 300, 600, 1800),
    registry=REGISTRY,
)
RECONCILES = Counter(
    "gitops_helm_reconciles_total", "HelmRelease reconciles run, by result.", ["result"], registry=REGISTRY
)
HELM_CALLS = Gauge(
    "gitops_helm_helm_calls",
    "helm subprocess calls made since start, by subcommand.",
    ["command"],
    registry=REGISTRY,
)
QUEUE_LENGTH = Gauge(
    "gitops_helm_release_queue_length_count", "Keys waiting in the work queue.", registry=REGISTRY
)
LEADER = Gauge(
    "gitops_helm_leader",
    "1 when this replica acts (holds the leader Lease, or runs without leader election), else 0.",
    registry=REGISTRY,
)
RELEASE_COUNT = Gauge("gitops_helm_release_count", "HelmReleases known to the controller.", registry=REGISTRY)
SYNC_RUNS = Counter("gitops_helm_sync_runs_total", "Git sync runs, by result.", ["result"], registry=REGISTRY)
SYNC_OBJECT_ERRORS = Gauge(
    "gitops_helm_sync_object_errors", "Objects that failed to apply in the last Git sync.", registry=REGISTRY
)
SYNC_LAST_SUCCESS = Gauge(
    "gitops_helm_sync_last_success_timestamp_seconds",
    "Time of the last successful Git sync.",
    registry=REGISTRY,
)


def observe_action(action: str, key: str, ok: bool, seconds: float) -> None:
    del key  # per-release labels would grow without bound on large fleets
    ACTION_DURATION.labels(action=action, success=str(ok).lower()).observe(seconds)


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
    "file, commit).",
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
