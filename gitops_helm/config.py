"""Typed settings of the agent, from command-line flags and ``GITOPS_HELM_*`` environment variables.

Place in the flow: ``cli.py`` builds a :class:`Settings` here once; every other module receives the
part it needs. Every flag ``--some-flag`` can also be given as ``GITOPS_HELM_SOME_FLAG``; a flag on
the command line wins. Retry and backoff numbers live here, not in loops.
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from gitops_helm.api.history import DEFAULT_HISTORY, MAX_HISTORY
from gitops_helm.api.selector import SelectorError, parse_selector, shard_selector
from gitops_helm.errors import ConfigError

__all__ = [
    "ConfigError",
    "FailureDiagnosisSettings",
    "GitSourceSettings",
    "HTTPServerSettings",
    "ImageCommitSettings",
    "ImageScanSettings",
    "LivenessSettings",
    "RetrySettings",
    "Settings",
    "SyncSettings",
]

ENV_PREFIX = "GITOPS_HELM_"
LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("debug", "info", "warning", "error")
_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
# a DNS subdomain (RFC 1123), what Kubernetes accepts as a ServiceAccount name
_SERVICE_ACCOUNT_NAME = re.compile(
    r"(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
)


# a shard name is a label value and the tail of a Lease name: a DNS label
_SHARD_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def parse_duration(text: str, name: str = "duration") -> float:
    """``90``, ``90s``, ``1m30s``, ``2h``, ``500ms`` -> seconds."""
    t = text.strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", t):
        return float(t)
    pos, total = 0, 0.0
    for m in _DURATION.finditer(t):
        if m.start() != pos:
            break
        value, unit = float(m.group(1)), m.group(2)
        total += value * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
        pos = m.end()
    if pos != len(t) or not t:
        raise ConfigError(f"{name}: {text!r} is not a duration (examples: 30s, 5m, 1h30m)")
    return total


@dataclass(frozen=True)
class RetrySettings:
    """Backoff after a failed reconcile (per HelmRelease) or a failed Git fetch."""

    base_s: float = 10.0
    max_s: float = 300.0
    factor: float = 2.0
    # release attempts the agent itself left pending (crash, kill -9, OOM, node loss) that are
    # retried as "not a failure" for one desired state; each one past this counts as a failure
    max_interruptions: int = 3
    # a pending-* release revision is left alone for the release's timeout plus this (another
    # operation may still be running), then unlocked
    pending_grace_margin_s: float = 60.0

    def delay(self, failures: int) -> float:
        if failures <= 0:
            return 0.0
        return float(min(self.max_s, self.base_s * self.factor ** (failures - 1)))


@dataclass(frozen=True)
class GitSourceSettings:
    """The Git repository the agent syncs (the ``--git-*`` flags)."""

    url: str | None = None
    branch: str | None = None  # None: main
    paths: tuple[str, ...] = ()
    poll_interval_s: float = 60.0
    timeout_s: float = 60.0
    ssh_key: str | None = None
    known_hosts: str | None = None
    # the hosts (host or host:port) of chart.git SSH URLs the key is also used for; empty: the
    # host of the synced repository only
    ssh_key_hosts: tuple[str, ...] = ()
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    webhook_secret: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class SyncSettings:
    name: str = "default"
    garbage_collection: bool = False
    gc_dry_run: bool = False
    only_helmreleases: bool = False
    # make this source the owner of an inventory recorded for another one (and collect from it)
    take_over_inventory: bool = False
    default_namespace: str = "default"
    state_namespace: str = "default"  # where the sync-state ConfigMap lives
    # the leader looks this often for a sync that a standby was asked for (a webhook it received)
    handoff_poll_s: float = 2.0


@dataclass(frozen=True)
class LivenessSettings:
    """How long each loop may be silent before ``/healthz`` fails and Kubernetes restarts the agent.

    Generous on purpose: every call inside a loop has its own deadline, so these only catch a loop
    that is stuck for good (a deadlock, a dead thread). A helm subprocess extends its worker's
    allowance by its own timeout.
    """

    worker_s: float = 900.0  # one reconcile step outside helm: chart fetch, values, API calls
    watch_s: float = 900.0  # a watch request lasts up to 5 minutes before it is renewed
    sync_s: float = 1800.0  # one Git sync of a large repository
    margin_s: float = 600.0  # beyond the resync interval, the poll interval or the Git backoff


@dataclass(frozen=True)
class FailureDiagnosisSettings:
    """How much the agent reads and says about a release's objects after a failed helm action.

    Read only on failure, never on the unchanged path; every number bounds cost or size."""

    max_objects: int = 4  # unhealthy workload objects named in one message
    pods_per_object: int = 2  # failing pods named per workload
    events_per_object: int = 3  # newest Events quoted per object
    events_listed: int = 50  # Events read per object before the newest are chosen
    message_max_chars: int = 1024  # the whole diagnosis in the status and the Event
    log_lines: int = 10  # lines of a failing container's log tail (agent log only); 0: none
    log_bytes: int = 2048
    request_timeout_s: float = 5.0  # each read
    budget_s: float = 15.0  # all reads of one diagnosis; the rest is reported as not read


@dataclass(frozen=True)
class CacheSettings:
    """Bounds of the chart caches (Git chart mirrors and exports, chart archives, unpacked
    charts, repository indexes). Nothing a current HelmRelease uses is ever removed."""

    max_age_s: float = 6 * 3600.0  # an entry no HelmRelease uses is removed after this long
    max_bytes: int = 4 * 1024**3  # above this, unused entries go least recently used first
    sweep_interval_s: float = 300.0  # how often the janitor looks


@dataclass(frozen=True)
class ImageScanSettings:
    """Registry scans for image automation (``images.registry``). Times in seconds, sizes in bytes.

    The rate numbers are per registry host; the caps bound what one repository may cost."""

    scan_interval_s: float = 300.0  # how often the scan loop looks at every repository in use
    # ``gitops-helm run`` scans and commits image/chart updates (off: nothing changes for users
    # who did not ask for it)
    automation: bool = False
    policy_file: str | None = None  # the agent's policy file (setter markers' ``ns:name`` policies)
    docker_config: str | None = None  # a Docker config file with registry logins (``auths``)
    pull_secrets: tuple[tuple[str, str], ...] = ()  # (namespace, name) of dockerconfigjson Secrets
    platform: str = "linux/amd64"  # the image of a multi-platform tag whose build time is read
    rate_per_s: float = 5.0
    burst: int = 10
    rate_limit_retries: int = 2  # a request answered 429 is repeated (after Retry-After) this often
    max_retry_after_s: float = 300.0  # a longer Retry-After is capped to this
    tag_page_size: int = 1000  # tags asked for per page (``n=``)
    max_tag_pages: int = 20
    max_tags: int = 10000  # a repository with more is an error, not a silent truncation
    manifest_refresh_s: float = 3600.0  # a tag's image is looked up again (conditionally) after this
    timeout_s: float = 30.0  # connect timeout, and the longest wait for the next bytes
    total_timeout_s: float = 120.0  # a whole exchange
    max_document_bytes: int = 4 * 1024 * 1024  # a tag list page, a manifest, a config blob, a token
    max_cached_images: int = 20000  # tag -> image entries kept (least recently used go first)


_SIZE_UNITS = {"": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "ki": 1024, "mi": 1024**2, "gi": 1024**3}


def _positive(seconds: float, flag: str) -> float:
    if seconds <= 0:
        raise ConfigError(f"{flag}: must be more than zero")
    return seconds


def parse_size(text: str, name: str = "size") -> int:
    """Bytes from ``"500Mi"``, ``"4Gi"``, ``"2G"`` or a plain number; ConfigError otherwise."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmg]i?)?b?", text.strip().lower())
    if m is None:
        raise ConfigError(f"{name}: {text!r} is not a size (like 500Mi, 4Gi or 1000000)")
    return int(float(m.group(1)) * _SIZE_UNITS[m.group(2) or ""])


@dataclass(frozen=True)
class HTTPServerSettings:
    """Bounds of the agent's HTTP endpoint against slow and hostile clients (see ``server``)."""

    max_connections: int = 256  # being read at once; a new one beyond closes the oldest
    max_active: int = 16  # requests answered at once; beyond, 503 at once
    read_timeout_s: float = 10.0  # the whole request, head and body, from the accept
    max_head_bytes: int = 64 * 1024  # request line and headers
    max_body_bytes: int = 5 * 1024 * 1024  # a webhook delivery; a push event is far smaller
    # bodies being received by the reading thread, all connections together (at least
    # max_body_bytes): a new one beyond closes the oldest connections receiving a body, so
    # max_connections clients announcing max_body_bytes each cannot hold that much memory
    max_pending_body_bytes: int = 16 * 1024 * 1024
    # webhook deliveries remembered (delivery ids, commits being fetched): a replay of one of them
    # triggers no fetch
    remembered_deliveries: int = 1024


_AUTHOR = re.compile(r"\s*(?P<name>[^<>\n\r]*?)\s*<(?P<email>[^<>\s]+)>\s*")


def parse_author(text: str, name: str = "--image-commit-author") -> tuple[str, str]:
    """``"Name <email>"`` -> (name, email); ConfigError otherwise."""
    m = _AUTHOR.fullmatch(text)
    if m is None or not m["name"] or "@" not in m["email"]:
        raise ConfigError(
            f'{name}: {text!r} is not "Name <email>" (example: "gitops-helm <bot@example.com>")'
        )
    return m["name"], m["email"]


@dataclass(frozen=True)
class ImageCommitSettings:
    """How image and chart updates are committed back to Git (``--image-*`` flags)."""

    author_name: str = "gitops-helm"
    author_email: str = "gitops-helm@noreply.invalid"
    # string.Template text ($summary, $changes, $count, $releases, $files); None: the default
    message_template: str | None = None
    # an SSH private key (unencrypted): commits are signed with gpg.format=ssh; None: unsigned
    signing_key: Path | None = None
    # push here instead of the sync branch; created from the sync branch when missing
    push_branch: str | None = None
    # a push refused because the branch moved is redone on the new head this many times in all
    push_attempts: int = 5
    # wait between those attempts (several writers of one branch spread out)
    push_retry: RetrySettings = field(default_factory=lambda: RetrySettings(base_s=1.0, max_s=30.0))
    # a file bigger than this is not edited
    max_file_bytes: int = 4 * 1024 * 1024


@dataclass(frozen=True)
class Settings:
    kubeconfig: str | None = None
    kube_context: str | None = None
    namespace: str | None = None  # watch HelmReleases only here; None = all namespaces
    # Sharding: only HelmReleases whose labels match (``--watch-label-selector``, and
    # ``gitops-helm.io/shard=<shard>`` for ``--shard``), as the API server reads a labelSelector;
    # "" = every HelmRelease. Checked at startup (``api.selector.parse_selector``).
    watch_label_selector: str = ""
    shard: str | None = None  # the shard this agent serves (``--shard``), for logs and metrics
    workers: int = 4
    resync_interval_s: float = 180.0
    resync_jitter_max_s: float = 30.0  # periodic resyncs are spread over up to this long
    listen: str = ":3030"
    http_server: HTTPServerSettings = field(default_factory=HTTPServerSettings)
    helm_bin: str = "helm"
    work_dir: Path = field(default_factory=lambda: Path(tempfile.gettempdir()) / "gitops-helm")
    log_format: str = "text"
    log_level: str = "info"
    reconcile_only: bool = False
    install_crd: bool = True
    allow_cross_namespace_refs: bool = True
    # Tenancy lockdown. A HelmRelease without spec.serviceAccountName acts as this ServiceAccount
    # of its own namespace (None: as the agent itself). Also counts toward lockdown mode.
    default_service_account: str | None = None
    # adopt a release without an owner marker outside the HelmRelease's own namespace
    allow_adoption_across_namespaces: bool = False
    # chart.git may be file:// or a path on the agent's disk (its own mirrors live there)
    allow_local_chart_git: bool = False
    # values URLs may reach loopback, link-local and (in lockdown) private addresses
    allow_internal_urls: bool = False
    # clients kept for impersonated ServiceAccounts (one Kubernetes connection pool and one helm
    # discovery cache each), least recently used first out; more accounts than this only cost
    # a new client (a connection and an API discovery) when an evicted one is needed again
    max_impersonated_clients: int = 64
    # Events remembered so that a repeated failure increments one Event's count (bounded memory)
    recent_events: int = 1024
    # attempts kept in each HelmRelease's status.history (0: none); at most api.MAX_HISTORY, so
    # the status object stays bounded
    status_history_limit: int = DEFAULT_HISTORY
    update_chart_deps: bool = True
    git_default_ref: str = "master"
    repositories_file: str | None = None
    values_url_timeout_s: float = 30.0  # connect timeout, and the longest wait for the next bytes
    values_url_total_timeout_s: float = 300.0  # a whole values URL download
    # A values file bigger than this could not be stored in a Helm release Secret (1 MiB) anyway.
    values_url_max_bytes: int = 64 * 1024 * 1024
    chart_refresh_interval_s: float = 60.0  # a repository index / OCI tag is re-checked this often
    # every chart repository index in use is asked this often (a conditional request) whether a
    # HelmRelease's version range now resolves to another chart; those are reconciled at once
    # rather than at the resync. 0: off (Git charts are polled every --git-poll-interval)
    chart_poll_interval_s: float = 60.0
    # the longest wait for the next bytes from a chart repository or registry (a hung one fails then)
    chart_timeout_s: float = 30.0
    oci_plain_http_hosts: tuple[str, ...] = ()
    leader_elect: bool = False
    leader_election_namespace: str | None = None  # None: the sync state namespace
    leader_election_id: str = "gitops-helm"
    # client-go's three numbers: a standby takes over a Lease it has seen unchanged for the lease
    # duration; a leader that has not renewed within the renew deadline (measured on its
    # monotonic clock) stops acting at once, so the lease minus the renew deadline is the margin
    # in which it kills its helm processes; both renew and retry every retry period.
    leader_election_lease_s: float = 30.0
    leader_election_renew_deadline_s: float = 20.0
    leader_election_retry_period_s: float = 4.0
    retry: RetrySettings = field(default_factory=RetrySettings)
    liveness: LivenessSettings = field(default_factory=LivenessSettings)
    failure_diagnosis: FailureDiagnosisSettings = field(default_factory=FailureDiagnosisSettings)
    # a helm release operation is killed this long after what its own --timeout allows (helm
    # applies --timeout to pre-hooks, the wait and post-hooks separately: 3 x timeout)
    helm_kill_margin_s: float = 30.0
    # On SIGTERM, in-flight helm actions may finish for this long (nothing new starts). Keep it
    # below the pod's terminationGracePeriodSeconds (deploy/deployment.yaml: 330 s = this + 30 s
    # for the rest of the shutdown), or the kubelet kills helm and leaves a pending-* release.
    shutdown_grace_s: float = 300.0
    # a write that lost a race on resourceVersion (409) is retried after this long
    conflict_retry_s: float = 1.0
    # a failed watch request of the controller is repeated after this backoff
    # after a failed watch request; the longest step bounds how late changes made during an API
    # server outage are seen once it is back (a re-list every 10 s against a down server is cheap)
    watch_retry: RetrySettings = field(default_factory=lambda: RetrySettings(base_s=1.0, max_s=10.0))
    git: GitSourceSettings = field(default_factory=GitSourceSettings)
    sync: SyncSettings = field(default_factory=SyncSettings)
    cache: CacheSettings = field(default_factory=CacheSettings)
    image_commit: ImageCommitSettings = field(default_factory=ImageCommitSettings)
    images: ImageScanSettings = field(default_factory=ImageScanSettings)

    @property
    def lockdown(self) -> bool:
        """Tenants do not trust each other: a default ServiceAccount is imposed, or references
        may not leave a HelmRelease's namespace. Stricter defaults follow (values URLs)."""
        return self.default_service_account is not None or not self.allow_cross_namespace_refs


def _env_name(flag: str) -> str:
    return ENV_PREFIX + flag.lstrip("-").upper().replace("-", "_")


# The words a boolean flag or variable takes, case-insensitive: Go's strconv.ParseBool words (what
# Flux v1 and the Helm Operator accepted as --flag=VALUE) plus yes/no and on/off.
TRUE_WORDS = frozenset({"true", "t", "1", "yes", "y", "on"})
FALSE_WORDS = frozenset({"false", "f", "0", "no", "n", "off"})


def parse_bool(text: str, name: str) -> bool:
    """A boolean flag's value; ConfigError naming the flag otherwise."""
    low = text.strip().lower()
    if low in TRUE_WORDS:
        return True
    if low in FALSE_WORDS:
        return False
    raise ConfigError(f"{name}: {text!r} is not a boolean (true/false, 1/0, yes/no, on/off)")


def _bool(text: str, name: str) -> bool:
    # an empty variable (GITOPS_HELM_X=) is false, as it always was
    return False if not text.strip() else parse_bool(text, name)


class BoolFlag(argparse.Action):
    """A boolean flag: bare ``--flag`` is true; ``--flag=false`` (any word of :func:`parse_bool`)
    and the older ``--flag false`` set it either way. Unset, it stays ``None`` so that the
    ``GITOPS_HELM_*`` variable and then the default apply.

    The CLI's parser (``cli_flags.FlagParser``) also makes every ``action="store_true"`` flag one
    of these, and rewrites a bare ``--flag`` into ``--flag=true`` before parsing, so a boolean flag
    never takes the next word (a positional argument) as its value."""

    def __init__(
        self,
        option_strings: Sequence[str],
        dest: str,
        default: object = None,
        required: bool = False,
        help: str | None = None,
        **_ignored: object,
    ) -> None:
        super().__init__(
            option_strings,
            dest,
            nargs="?",
            const="true",
            default=default,
            required=required,
            help=help,
            metavar="true|false",
        )

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[object] | None,
        option_string: str | None = None,
    ) -> None:
        text = values if isinstance(values, str) else "true"
        try:
            setattr(namespace, self.dest, parse_bool(text, option_string or self.dest))
        except ConfigError as exc:
            # kept as given: the settings name the flag and its value (exit 2, no usage dump);
            # a verb that reads no settings finds the problem in BAD_BOOLEANS
            setattr(namespace, self.dest, text)
            bad = getattr(namespace, BAD_BOOLEANS, None) or []
            setattr(namespace, BAD_BOOLEANS, [*bad, str(exc)])


#: where :class:`BoolFlag` records flags given a value that is not a boolean
BAD_BOOLEANS = "_bad_booleans"


class ListFlag(argparse.Action):
    """A list flag: repeatable, and each value may be a comma-separated list (``--git-path a,b
    --git-path c`` is ``[a, b, c]``), as Flux v1's flags were. Empty items are dropped."""

    def __init__(
        self,
        option_strings: Sequence[str],
        dest: str,
        default: object = None,
        required: bool = False,
        help: str | None = None,
        metavar: str | None = None,
        **_ignored: object,
    ) -> None:
        super().__init__(option_strings, dest, default=default, required=required, help=help, metavar=metavar)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[object] | None,
        option_string: str | None = None,
    ) -> None:
        items = list(getattr(namespace, self.dest, None) or [])
        items += [item.strip() for item in str(values).split(",") if item.strip()]
        setattr(namespace, self.dest, items)


def _count(text: str | None, name: str, default: int, *, minimum: int) -> int:
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"{name}: {text!r} is not a whole number") from None
    if value < minimum:
        raise ConfigError(f"{name}: must be at least {minimum}" if minimum else f"{name}: must be 0 or more")
    return value


def _read_secret_file(path: str, name: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read {path}: {exc.strerror}") from None


def add_common_flags(p: argparse.ArgumentParser) -> None:
    """Flags shared by every subcommand that talks to a cluster."""
    g = p.add_argument_group("cluster")
    g.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config, in-cluster)")
    g.add_argument("--kube-context", help="kubeconfig context")
    g.add_argument("--namespace", help="only HelmReleases in this namespace (default: all)")
    g.add_argument("--helm-bin", help="helm 3 or helm 4 binary (default: helm on PATH)")
    g.add_argument("--work-dir", help="cache and scratch directory (default: $TMPDIR/gitops-helm)")
    g.add_argument("--log-format", choices=LOG_FORMATS, help="log format (default: text)")
    g.add_argument("--log-level", choices=LOG_LEVELS, help="default: info")


def add_run_flags(p: argparse.ArgumentParser) -> None:
    r = p.add_argument_group("reconciler")
    r.add_argument("--workers", type=int, help="parallel release workers (default: 4)")
    r.add_argument("--resync-interval", help="re-check every HelmRelease this often (default: 3m)")
    r.add_argument(
        "--listen", "-l", help="HTTP address for /metrics, /healthz, /readyz, webhooks (default: :3030)"
    )
    r.add_argument(
        "--http-max-connections",
        help="HTTP connections read at once; a new one beyond closes the oldest (default: 256)",
    )
    r.add_argument(
        "--http-read-timeout",
        help="an HTTP client must send its whole request within this long (default: 10s)",
    )
    r.add_argument("--reconcile-only", action=BoolFlag, help="no Git sync")
    r.add_argument(
        "--install-crd", action=BoolFlag, help="install/upgrade the HelmRelease CRD at start (default: true)"
    )
    r.add_argument(
        "--allow-cross-namespace-refs",
        action=BoolFlag,
        help="valuesFrom, chart.secretRef and dependsOn may name other namespaces (default: true)",
    )
    r.add_argument(
        "--no-cross-namespace-refs",
        action=BoolFlag,
        help="every reference of a HelmRelease stays in its own namespace (the same as "
        "--allow-cross-namespace-refs=false); turns on lockdown mode",
    )
    r.add_argument(
        "--default-service-account",
        help="a HelmRelease without spec.serviceAccountName acts as this ServiceAccount of its own "
        "namespace (helm and Kubernetes reads impersonate it; default: the agent itself); turns on "
        "lockdown mode",
    )
    r.add_argument(
        "--allow-local-chart-git",
        action=BoolFlag,
        help="chart.git may be a file:// URL or a path on the agent's disk (default: false)",
    )
    r.add_argument(
        "--allow-adoption-across-namespaces",
        action=BoolFlag,
        help="take over a release installed outside the agent (no owner marker) even when it lives "
        "outside the HelmRelease's own namespace (default: false)",
    )
    r.add_argument(
        "--allow-internal-urls",
        action=BoolFlag,
        help="valuesFrom.externalSourceRef may reach loopback and link-local addresses, and in "
        "lockdown mode private and cluster-internal ones (default: false)",
    )
    r.add_argument(
        "--update-chart-deps",
        action=BoolFlag,
        help="run helm dependency update for Git charts (default: true)",
    )
    r.add_argument("--git-default-ref", help="chart.ref when a Git chart gives none (default: master)")
    r.add_argument("--repositories-file", help="helm repositories.yaml with chart repository credentials")
    r.add_argument(
        "--chart-refresh-interval",
        help="re-check a chart repository index or OCI tag at most this often (default: 1m)",
    )
    r.add_argument(
        "--chart-poll-interval",
        help="ask every chart repository index in use this often whether a HelmRelease's version "
        "range now resolves to a new chart, and reconcile those at once; 0 turns it off and leaves "
        "it to the resync (default: 1m)",
    )
    r.add_argument(
        "--chart-timeout",
        help="a chart repository or registry that sends nothing for this long has failed (default: 30s)",
    )
    r.add_argument(
        "--oci-plain-http",
        action=ListFlag,
        help="registry host:port spoken to over plain HTTP (repeatable, or comma-separated)",
    )
    r.add_argument(
        "--leader-elect",
        action=BoolFlag,
        help="run several replicas: only the holder of a Lease acts (default: false)",
    )
    r.add_argument("--leader-election-namespace", help="namespace of the Lease (default: --state-namespace)")
    r.add_argument("--leader-election-id", help="name of the Lease (default: gitops-helm)")
    r.add_argument(
        "--leader-election-lease-duration",
        help="a standby takes over a Lease it has seen unchanged for this long (default: 30s)",
    )
    r.add_argument(
        "--leader-election-renew-deadline",
        help="the leader stops acting (kills its helm processes, exits) when it could not renew for "
        "this long; shorter than the lease duration (default: two thirds of it)",
    )
    r.add_argument(
        "--leader-election-retry-period",
        help="the leader renews, and a standby checks the Lease, this often; shorter than the renew "
        "deadline (default: the lease duration / 7.5)",
    )
    r.add_argument(
        "--shutdown-grace",
        help="on SIGTERM, let in-flight helm actions finish for this long; start nothing new. Keep it "
        "below the pod's terminationGracePeriodSeconds (default: 5m)",
    )
    r.add_argument(
        "--failure-message-max",
        help="longest description of a failed release's objects and Events in its status and Event "
        "(characters; default: 1024)",
    )
    r.add_argument(
        "--failure-log-lines",
        help="lines of a failing pod's log the agent logs after a failed release (never written to "
        "status or Events); 0: none (default: 10)",
    )
    r.add_argument(
        "--cache-max-age",
        help="remove a cached chart, Git chart export or mirror, or repository index that no "
        "HelmRelease has used for this long (default: 6h)",
    )
    r.add_argument(
        "--cache-max-size",
        help="keep the chart caches under this size by removing unused entries, least recently "
        "used first (default: 4Gi)",
    )
    r.add_argument("--cache-sweep-interval", help="how often the chart caches are swept (default: 5m)")
    r.add_argument("--retry-base", help="first retry delay after a failure (default: 10s)")
    r.add_argument("--retry-max", help="longest retry delay (default: 5m)")
    r.add_argument(
        "--pending-grace-margin",
        help="a release revision left pending-* is unlocked after the release's timeout plus this; a "
        "helm test the agent started is waited for its test timeout plus this (default: 60s)",
    )
    r.add_argument(
        "--max-interruptions",
        help="interrupted release attempts (the agent killed mid-upgrade) retried for one desired "
        "state before each further one counts as a failure (default: 3)",
    )
    r.add_argument(
        "--status-history-limit",
        help="release attempts kept in each HelmRelease's status.history, newest first (0: none; "
        f"at most {MAX_HISTORY}; default: {DEFAULT_HISTORY})",
    )


def add_shard_flags(p: argparse.ArgumentParser) -> None:
    """Which HelmReleases this agent serves, when several agents split them (sharding)."""
    g = p.add_argument_group("sharding")
    g.add_argument(
        "--watch-label-selector",
        help="reconcile only HelmReleases whose labels match this Kubernetes label selector "
        "(e.g. 'team=web' or '!gitops-helm.io/shard' for those of no shard; default: all)",
    )
    g.add_argument(
        "--shard",
        help="reconcile only HelmReleases labelled gitops-helm.io/shard=NAME (with "
        "--watch-label-selector: both must match); the Lease becomes gitops-helm-NAME",
    )


def add_git_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("git source")
    g.add_argument("--git-url", help="config repository (ssh://, https://, file:// or a path)")
    g.add_argument("--git-branch", help="branch to sync (default: main)")
    g.add_argument(
        "--git-path",
        action=ListFlag,
        help="directory in the repository to sync (repeatable, or comma-separated)",
    )
    g.add_argument("--git-poll-interval", help="fetch this often (default: 1m)")
    g.add_argument("--git-timeout", help="timeout of one git operation (default: 60s)")
    g.add_argument("--git-ssh-key", help="private key for SSH URLs")
    g.add_argument("--git-known-hosts", help="known_hosts file for SSH URLs")
    g.add_argument(
        "--git-ssh-key-hosts",
        action=ListFlag,
        help="host or host:port of chart.git SSH URLs that may use --git-ssh-key (repeatable, or "
        "comma-separated; default: the host of --git-url only)",
    )
    g.add_argument("--git-user", help="user name for HTTPS URLs")
    g.add_argument("--git-password-file", help="file holding the HTTPS password or token")
    g.add_argument("--git-webhook-secret-file", help="file holding the webhook shared secret")
    s = p.add_argument_group("sync")
    s.add_argument("--sync-name", help="name of this sync source (labels applied objects; default: default)")
    s.add_argument(
        "--sync-garbage-collection", action=BoolFlag, help="delete objects that left Git (default: false)"
    )
    s.add_argument(
        "--sync-garbage-collection-dry-run",
        action=BoolFlag,
        help="only log and report what would be deleted; implies --sync-garbage-collection (default: false)",
    )
    s.add_argument(
        "--sync-take-over-inventory",
        action=BoolFlag,
        help="make this source the owner of the inventory of --sync-name when it was recorded for "
        "another URL, branch or paths; garbage collection then deletes what that source applied and "
        "this one does not declare (default: false)",
    )
    s.add_argument(
        "--only-helmreleases", action=BoolFlag, help="apply only HelmReleases from Git (default: false)"
    )
    s.add_argument(
        "--default-namespace", help="namespace for namespaced objects without one (default: default)"
    )
    s.add_argument("--state-namespace", help="namespace of the sync-state ConfigMap (default: default)")


def add_image_commit_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("image updates: commits")
    g.add_argument(
        "--image-commit-template",
        help="commit message template; $summary, $changes (one line per update), $count, $releases, "
        "$files, $$ for a dollar (default: $summary, a blank line, $changes)",
    )
    g.add_argument(
        "--image-commit-author",
        help='author and committer of update commits, "Name <email>" (default: gitops-helm '
        "<gitops-helm@noreply.invalid>)",
    )
    g.add_argument(
        "--image-signing-key",
        help="SSH private key (unencrypted) that signs update commits (git gpg.format=ssh; "
        "default: unsigned)",
    )
    g.add_argument(
        "--image-push-branch",
        help="push update commits to this branch, created from --git-branch when missing "
        "(default: --git-branch)",
    )
    g.add_argument(
        "--image-push-attempts",
        help="attempts of one update commit when its push is refused because the branch moved; each "
        "redoes the edits on the new head (default: 5)",
    )


def _image_commit_settings(
    get: Callable[[str], str | None], count: Callable[[str, int], int]
) -> ImageCommitSettings:
    defaults = ImageCommitSettings()
    name, email = defaults.author_name, defaults.author_email
    author = get("image-commit-author")
    if author is not None:
        name, email = parse_author(author)
    template = get("image-commit-template")
    if template is not None and not template.strip():
        raise ConfigError("--image-commit-template: is empty")
    key = get("image-signing-key")
    if key is not None and not Path(key).is_file():
        raise ConfigError(f"--image-signing-key: {key} is not a readable file")
    push_branch = get("image-push-branch") or None
    if push_branch is not None and (push_branch.startswith("-") or not push_branch.strip()):
        raise ConfigError(f"--image-push-branch: {push_branch!r} is not a branch name")
    return ImageCommitSettings(
        author_name=name,
        author_email=email,
        message_template=template,
        signing_key=Path(key) if key is not None else None,
        push_branch=push_branch,
        push_attempts=count("image-push-attempts", defaults.push_attempts),
    )


def add_image_scan_flags(p: argparse.ArgumentParser) -> None:
    """Registry scan flags (image automation): credentials, pacing and caps."""
    i = p.add_argument_group("image scans")
    i.add_argument(
        "--image-scan-interval", help="scan the image repositories in use this often (default: 5m)"
    )
    i.add_argument(
        "--image-docker-config",
        help="Docker config file (auths) with registry logins for image scans",
    )
    i.add_argument(
        "--image-pull-secrets",
        action=ListFlag,
        help="NS/NAME,... of kubernetes.io/dockerconfigjson Secrets with registry logins for image "
        "scans (later ones win for the same registry)",
    )
    i.add_argument(
        "--image-platform",
        help="the platform of a multi-platform image whose build time is read (default: linux/amd64)",
    )
    i.add_argument("--image-registry-rps", help="requests per second to one registry host (default: 5)")
    i.add_argument("--image-registry-burst", help="requests to one registry host at once (default: 10)")
    i.add_argument(
        "--image-retry-after-max",
        help="longest pause a registry's 429 Retry-After may impose before the scan of that "
        "repository gives up (default: 5m)",
    )
    i.add_argument(
        "--image-max-tags", help="a repository with more tags is reported, not scanned (default: 10000)"
    )
    i.add_argument("--image-max-tag-pages", help="tag list pages read per repository (default: 20)")
    i.add_argument(
        "--image-policy-file",
        help="YAML file of image policies referenced by Flux v2 setter markers (policies: [{name: "
        "NS:NAME, image: REPO, filter: semver:~1.2, minAge: 2h, pinDigest: true}])",
    )


def add_image_source_flags(p: argparse.ArgumentParser) -> None:
    """``images list|update``: how registries and chart repositories are reached (``run`` has
    these among its reconciler flags)."""
    c = p.add_argument_group("registries and chart repositories")
    c.add_argument(
        "--oci-plain-http",
        action=ListFlag,
        help="registry host:port spoken to over plain HTTP (repeatable, or comma-separated)",
    )
    c.add_argument("--repositories-file", help="helm repositories.yaml with chart repository credentials")
    c.add_argument(
        "--allow-internal-urls",
        action=BoolFlag,
        help="chart repositories may be reached at link-local addresses too (default: false)",
    )


def add_render_flags(p: argparse.ArgumentParser) -> None:
    """``render``: offline, so none of the cluster flags; where charts come from and how helm
    renders them. ``--work-dir``, ``--default-namespace`` and the chart source flags keep the
    names (and ``GITOPS_HELM_*`` variables) they have for ``run``."""
    p.add_argument("path", metavar="PATH", help="directory (or file) of manifests holding HelmReleases")
    o = p.add_argument_group("output")
    o.add_argument(
        "--output-dir", help="write one file per HelmRelease, DIR/NAMESPACE/NAME.yaml (default: stdout)"
    )
    o.add_argument(
        "--include-crds",
        action="store_true",
        default=None,
        help="include the charts' crds/ (not for a HelmRelease with skipCRDs: true)",
    )
    o.add_argument("--kube-version", help="Kubernetes version the templates see (default: helm's)")
    o.add_argument(
        "--api-versions", action="append", help="API version the templates see as available (repeatable)"
    )
    add_chart_flags(p)


def add_chart_flags(p: argparse.ArgumentParser) -> None:
    """Where charts come from and how values are read, for a one-shot command run by a person
    (``render``, ``explain values``): the names and variables they have for ``run``."""
    c = p.add_argument_group("charts and values")
    c.add_argument("--helm-bin", help="helm 3 or helm 4 binary (default: helm on PATH)")
    c.add_argument("--repositories-file", help="helm repositories.yaml with chart repository credentials")
    c.add_argument(
        "--oci-plain-http", action="append", help="registry host:port spoken to over plain HTTP (repeatable)"
    )
    c.add_argument(
        "--allow-internal-urls",
        help="charts and values URLs may be reached at loopback and link-local addresses (default: false)",
    )
    c.add_argument("--default-namespace", help="namespace of manifests that give none (default: default)")
    c.add_argument("--git-default-ref", help="chart.ref when a Git chart gives none (default: master)")
    c.add_argument("--git-ssh-key", help="private key for SSH chart.git URLs")
    c.add_argument("--git-known-hosts", help="known_hosts file for SSH chart.git URLs")
    c.add_argument("--work-dir", help="chart cache and scratch directory (default: $TMPDIR/gitops-helm)")
    c.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help="default: warning")


def add_plan_flags(p: argparse.ArgumentParser) -> None:
    """``plan``: what is planned and how it is shown; the cluster, Git and chart flags are the
    ones ``diff`` and ``images`` have (added beside these)."""
    p.add_argument(
        "directory", metavar="DIR", nargs="?", help="directory or checkout to plan (or --git-url with --ref)"
    )
    o = p.add_argument_group("plan")
    o.add_argument("--ref", help="branch, tag or commit of --git-url to plan (the sync stays --git-branch's)")
    o.add_argument(
        "--all",
        action="store_true",
        help="every HelmRelease, not only those the commit adds, changes or removes",
    )
    o.add_argument(
        "-o",
        "--output",
        choices=("text", "markdown", "json"),
        default="text",
        help="text (default), markdown (a pull-request comment) or json",
    )
    o.add_argument(
        "--since",
        metavar="PLAN.json",
        help="a plan saved with -o json: say which inputs changed for every release whose digest moved",
    )
    o.add_argument("--git-default-ref", help="chart.ref when a Git chart gives none (default: master)")


def add_image_automation_flag(p: argparse.ArgumentParser) -> None:
    """``run`` only: the switch of the image update loop."""
    p.add_argument(
        "--image-automation",
        action=BoolFlag,
        help="scan the images and chart versions of the HelmReleases in Git every "
        "--image-scan-interval and commit updates back to --git-url (leader only; default: off)",
    )


def _pull_secret_refs(text: str | None) -> tuple[tuple[str, str], ...]:
    refs: list[tuple[str, str]] = []
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        namespace, sep, name = item.partition("/")
        if (
            not sep
            or not _SERVICE_ACCOUNT_NAME.fullmatch(namespace)
            or not _SERVICE_ACCOUNT_NAME.fullmatch(name)
        ):
            raise ConfigError(f"--image-pull-secrets: {item!r} is not NAMESPACE/NAME")
        refs.append((namespace, name))
    return tuple(refs)


def _image_scan_settings(
    get: Callable[[str], str | None],
    get_dur: Callable[[str, float], float],
    get_count: Callable[[str, int], int],
    defaults: ImageScanSettings,
    get_bool: Callable[[str, bool], bool],
) -> ImageScanSettings:
    platform = get("image-platform") or defaults.platform
    parts = platform.split("/")
    if len(parts) not in (2, 3) or not all(re.fullmatch(r"[a-z0-9_.-]+", part) for part in parts):
        raise ConfigError(
            f"--image-platform: {platform!r} is not a platform (like linux/amd64 or linux/arm/v7)"
        )
    rps_text = get("image-registry-rps")
    try:
        rate = defaults.rate_per_s if rps_text is None else float(rps_text)
    except ValueError:
        raise ConfigError(f"--image-registry-rps: {rps_text!r} is not a number") from None
    if not rate > 0:
        raise ConfigError("--image-registry-rps: must be more than zero")
    interval = get_dur("image-scan-interval", defaults.scan_interval_s)
    if interval <= 0:
        raise ConfigError("--image-scan-interval: must be more than zero")
    return replace(
        defaults,
        scan_interval_s=interval,
        docker_config=get("image-docker-config") or None,
        pull_secrets=_pull_secret_refs(get("image-pull-secrets")),
        platform=platform,
        rate_per_s=rate,
        burst=get_count("image-registry-burst", defaults.burst),
        max_retry_after_s=get_dur("image-retry-after-max", defaults.max_retry_after_s),
        max_tags=get_count("image-max-tags", defaults.max_tags),
        max_tag_pages=get_count("image-max-tag-pages", defaults.max_tag_pages),
        automation=get_bool("image-automation", defaults.automation),
        policy_file=get("image-policy-file") or None,
    )


def settings_from_args(ns: argparse.Namespace, environ: Mapping[str, str] | None = None) -> Settings:
    """Merge parsed flags with ``GITOPS_HELM_*`` variables (flags win) into :class:`Settings`."""
    env: Mapping[str, str] = os.environ if environ is None else environ
    given = vars(ns)

    def get(flag: str) -> str | None:
        key = flag.replace("-", "_")
        value = given.get(key)
        if isinstance(value, list):  # a ListFlag: the same comma text as its variable
            value = ",".join(str(item) for item in value) or None
        if value is not None:
            return value if isinstance(value, str) else str(value)
        return env.get(_env_name(flag))

    def get_bool(flag: str, default: bool) -> bool:
        v = given.get(flag.replace("-", "_"))
        if isinstance(v, bool):
            return v
        text = get(flag)
        return default if text is None else _bool(text, f"--{flag}")

    def get_dur(flag: str, default: float) -> float:
        text = get(flag)
        return default if text is None else parse_duration(text, f"--{flag}")

    paths_flag = given.get("git_path") or []
    paths_env = [p for p in env.get(_env_name("git-path"), "").split(",") if p]
    password = env.get(_env_name("git-password"))
    if get("git-password-file"):
        password = _read_secret_file(str(get("git-password-file")), "--git-password-file")
    secret = env.get(_env_name("git-webhook-secret"))
    if get("git-webhook-secret-file"):
        secret = _read_secret_file(str(get("git-webhook-secret-file")), "--git-webhook-secret-file")

    def get_count(flag: str, default: int, minimum: int = 1) -> int:
        return _count(get(flag), f"--{flag}", default, minimum=minimum)

    workers = get_count("workers", 4)
    defaults = Settings()
    max_interruptions = get_count("max-interruptions", defaults.retry.max_interruptions, minimum=0)
    default_sa = get("default-service-account") or None
    if default_sa is not None and not _SERVICE_ACCOUNT_NAME.fullmatch(default_sa):
        raise ConfigError(f"--default-service-account: {default_sa!r} is not a ServiceAccount name")
    retry = RetrySettings(
        base_s=get_dur("retry-base", defaults.retry.base_s),
        max_s=get_dur("retry-max", defaults.retry.max_s),
        max_interruptions=max_interruptions,
        pending_grace_margin_s=get_dur("pending-grace-margin", defaults.retry.pending_grace_margin_s),
    )
    diagnosis = replace(
        defaults.failure_diagnosis,
        message_max_chars=get_count(
            "failure-message-max", defaults.failure_diagnosis.message_max_chars, minimum=80
        ),
        log_lines=get_count("failure-log-lines", defaults.failure_diagnosis.log_lines, minimum=0),
    )
    git = GitSourceSettings(
        url=get("git-url"),
        branch=get("git-branch"),
        paths=tuple(paths_flag or paths_env),
        poll_interval_s=get_dur("git-poll-interval", 60.0),
        timeout_s=get_dur("git-timeout", 60.0),
        ssh_key=get("git-ssh-key"),
        known_hosts=get("git-known-hosts"),
        ssh_key_hosts=tuple(given.get("git_ssh_key_hosts") or [])
        or tuple(h for h in env.get(_env_name("git-ssh-key-hosts"), "").split(",") if h),
        user=get("git-user"),
        password=password,
        webhook_secret=secret,
    )
    gc_dry_run = get_bool("sync-garbage-collection-dry-run", False)
    sync = SyncSettings(
        name=get("sync-name") or "default",
        # As Flux v1's --sync-garbage-collection-dry: the dry run implies garbage collection.
        garbage_collection=get_bool("sync-garbage-collection", False) or gc_dry_run,
        gc_dry_run=gc_dry_run,
        only_helmreleases=get_bool("only-helmreleases", False),
        take_over_inventory=get_bool("sync-take-over-inventory", False),
        default_namespace=get("default-namespace") or "default",
        state_namespace=get("state-namespace") or "default",
    )
    plain_http = tuple(given.get("oci_plain_http") or []) or tuple(
        h for h in env.get(_env_name("oci-plain-http"), "").split(",") if h
    )
    work_dir = get("work-dir")
    size_text = get("cache-max-size")
    max_bytes = defaults.cache.max_bytes if size_text is None else parse_size(size_text, "--cache-max-size")
    cache = CacheSettings(
        max_age_s=get_dur("cache-max-age", defaults.cache.max_age_s),
        max_bytes=max_bytes,
        sweep_interval_s=get_dur("cache-sweep-interval", defaults.cache.sweep_interval_s),
    )
    if cache.sweep_interval_s <= 0:
        raise ConfigError("--cache-sweep-interval: must be more than zero")
    lease_s, renew_deadline_s, retry_period_s = _leader_numbers(get_dur, defaults)
    selector, shard = _shard_settings(get)
    http_read_timeout_s = get_dur("http-read-timeout", defaults.http_server.read_timeout_s)
    if http_read_timeout_s <= 0:  # every request would be late: probes fail, the pod restarts
        raise ConfigError("--http-read-timeout: must be more than zero")
    return Settings(
        kubeconfig=get("kubeconfig"),
        kube_context=get("kube-context"),
        namespace=_namespace(get("namespace")),
        workers=workers,
        resync_interval_s=get_dur("resync-interval", defaults.resync_interval_s),
        listen=get("listen") or defaults.listen,
        http_server=HTTPServerSettings(
            max_connections=get_count("http-max-connections", defaults.http_server.max_connections),
            read_timeout_s=http_read_timeout_s,
        ),
        helm_bin=get("helm-bin") or defaults.helm_bin,
        work_dir=Path(work_dir) if work_dir else defaults.work_dir,
        log_format=_choice(get("log-format"), "--log-format", LOG_FORMATS, "text"),
        log_level=_choice(get("log-level"), "--log-level", LOG_LEVELS, "info"),
        reconcile_only=get_bool("reconcile-only", False),
        install_crd=get_bool("install-crd", True),
        allow_cross_namespace_refs=_cross_namespace_refs(get_bool, given),
        default_service_account=default_sa,
        allow_adoption_across_namespaces=get_bool("allow-adoption-across-namespaces", False),
        allow_local_chart_git=get_bool("allow-local-chart-git", False),
        allow_internal_urls=get_bool("allow-internal-urls", False),
        update_chart_deps=get_bool("update-chart-deps", True),
        git_default_ref=get("git-default-ref") or "master",
        repositories_file=get("repositories-file"),
        chart_refresh_interval_s=get_dur("chart-refresh-interval", defaults.chart_refresh_interval_s),
        chart_poll_interval_s=get_dur("chart-poll-interval", defaults.chart_poll_interval_s),
        chart_timeout_s=_positive(get_dur("chart-timeout", defaults.chart_timeout_s), "--chart-timeout"),
        oci_plain_http_hosts=plain_http,
        leader_elect=get_bool("leader-elect", False),
        leader_election_namespace=get("leader-election-namespace"),
        leader_election_id=get("leader-election-id") or _default_lease_name(shard),
        watch_label_selector=selector,
        shard=shard,
        leader_election_lease_s=lease_s,
        leader_election_renew_deadline_s=renew_deadline_s,
        leader_election_retry_period_s=retry_period_s,
        retry=retry,
        failure_diagnosis=diagnosis,
        status_history_limit=_history_limit(get_count("status-history-limit", DEFAULT_HISTORY, minimum=0)),
        shutdown_grace_s=get_dur("shutdown-grace", defaults.shutdown_grace_s),
        git=git,
        sync=sync,
        cache=cache,
        image_commit=_image_commit_settings(get, get_count),
        images=_image_scan_settings(get, get_dur, get_count, defaults.images, get_bool),
    )


def _history_limit(limit: int) -> int:
    """``--status-history-limit``: a bound on every HelmRelease's status, so it has one itself."""
    if limit > MAX_HISTORY:
        raise ConfigError(
            f"--status-history-limit: {limit} is more than {MAX_HISTORY} (the most the CRD allows in "
            "status.history; each entry is a few hundred bytes of every HelmRelease's status)"
        )
    return limit


def _shard_settings(get: Callable[[str], str | None]) -> tuple[str, str | None]:
    """The label selector of ``--watch-label-selector`` and ``--shard`` together, checked as the
    API server would (ConfigError naming the flag and the problem), and the shard name."""
    text = get("watch-label-selector") or ""
    try:
        selector = parse_selector(text)
    except SelectorError as exc:
        raise ConfigError(
            f"--watch-label-selector {text!r}: {exc} (a Kubernetes label selector, e.g. "
            "'team=web,tier!=db' or '!gitops-helm.io/shard')"
        ) from None
    shard = get("shard") or None
    if shard is not None:
        if len(shard) > 63 - len("gitops-helm-") or not _SHARD_NAME.fullmatch(shard):
            raise ConfigError(
                f"--shard: {shard!r} is not a shard name (lower-case letters, digits and '-', "
                "starting and ending with a letter or digit, at most 51 characters: it is a label "
                "value and part of the Lease name)"
            )
        selector = shard_selector(shard).with_requirements(selector)
    return str(selector), shard


def _default_lease_name(shard: str | None) -> str:
    """Each shard elects its own leader: ``gitops-helm-<shard>``; unsharded, ``gitops-helm``."""
    return f"gitops-helm-{shard}" if shard else "gitops-helm"


def _choice(text: str | None, name: str, choices: Sequence[str], default: str) -> str:
    """A flag's or variable's value among ``choices`` (the variable is not checked by argparse)."""
    if text is None or not text.strip():
        return default
    if text.strip() not in choices:
        raise ConfigError(f"{name}: {text!r} is not one of {', '.join(choices)}")
    return text.strip()


def _namespace(text: str | None) -> str | None:
    if text is None or not text.strip():
        return None
    if "," in text:
        raise ConfigError(
            f"--namespace: {text!r}: the agent watches one namespace or all of them; run one agent "
            "per namespace (each with its own --sync-name) or select HelmReleases by label"
        )
    if not _NAMESPACE.fullmatch(text.strip()):
        raise ConfigError(f"--namespace: {text!r} is not a namespace name")
    return text.strip()


class _ReadRecorder(dict[str, str]):
    """An empty environment that remembers which variables were asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.asked.add(key)
        return default


def environment_variables_read() -> frozenset[str]:
    """The ``GITOPS_HELM_*`` variables :func:`settings_from_args` reads (for ``--help``): asked of
    an empty environment, so the answer is the code's own, not a list kept beside it."""
    recorder = _ReadRecorder()
    settings_from_args(argparse.Namespace(), recorder)
    return frozenset(recorder.asked)


def _cross_namespace_refs(get_bool: Callable[[str, bool], bool], given: dict[str, object]) -> bool:
    """``--no-cross-namespace-refs`` (flag or ``GITOPS_HELM_NO_CROSS_NAMESPACE_REFS``) or
    ``--allow-cross-namespace-refs``; the two may not contradict each other."""
    allow = get_bool("allow-cross-namespace-refs", True)
    refuse = get_bool("no-cross-namespace-refs", False)
    if refuse and allow and given.get("allow_cross_namespace_refs") is not None:
        raise ConfigError("--no-cross-namespace-refs contradicts --allow-cross-namespace-refs=true")
    return allow and not refuse


def _leader_numbers(get_dur: Callable[[str, float], float], defaults: Settings) -> tuple[float, float, float]:
    """Lease duration, renew deadline and retry period, checked against each other as client-go
    does. Unset, the last two follow the lease duration (client-go's 15s/10s/2s proportions)."""
    lease = get_dur("leader-election-lease-duration", defaults.leader_election_lease_s)
    if lease < 1:
        raise ConfigError(f"--leader-election-lease-duration: {lease:g}s is too short (at least 1s)")
    renew = get_dur("leader-election-renew-deadline", lease * 2 / 3)
    retry = get_dur("leader-election-retry-period", lease * 2 / 15)
    if not 0 < renew < lease:
        raise ConfigError(
            f"--leader-election-renew-deadline: {renew:g}s must be more than 0 and shorter than "
            f"--leader-election-lease-duration ({lease:g}s): the difference is the time a leader that "
            "cannot renew has to stop its helm processes before a standby may take over"
        )
    if not 0 < retry < renew:
        raise ConfigError(
            f"--leader-election-retry-period: {retry:g}s must be more than 0 and shorter than "
            f"--leader-election-renew-deadline ({renew:g}s), or the leader gets no second try to renew"
        )
    return lease, renew, retry


def parse_listen(listen: str) -> tuple[str, int]:
    """``:3030`` -> ("0.0.0.0", 3030); ``127.0.0.1:0`` -> ("127.0.0.1", 0)."""
    host, _, port = listen.rpartition(":")
    try:
        return (host or "0.0.0.0", int(port))  # noqa: S104 - serving all interfaces is the documented default
    except ValueError:
        raise ConfigError(f"--listen: {listen!r} is not host:port") from None


def flag_names(parser: argparse.ArgumentParser) -> Sequence[str]:
    return [a.option_strings[0] for a in parser._actions if a.option_strings]
