"""The composition root: build the running agent from settings, and nothing else decides here.

Place in the flow: ``commands.run`` builds one :class:`Agent` and calls :meth:`Agent.run`;
``commands.sync_once``/``diff``/``status`` use the smaller builders below (:func:`build_kube`,
:func:`build_source`). This is the only module that knows every part:

    adapters (kube, helm, git, http)  ->  release wing: charts.ChartResolver -> release.Reconciler
                                          controller.Controller (watch, queue, workers)
                                          sync wing: source.GitSource -> sync.SyncLoop -> sync.Syncer
                                          leader.LeaderElector (optional), server.Server (HTTP)

With leader election on, the HTTP server runs on every replica (probes pass on a standby) and
the CRD install, the controller and the Git sync start only on the leader. On stop, in-flight
helm operations finish, so no release is left pending. On losing the Lease (:meth:`Agent.fence`),
nothing new starts, in-flight helm processes are killed (a standby may act once the lease
duration has passed: they cannot be let finish) and the process exits 1, to restart as a standby.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import socket
import stat
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from gitops_helm import log as logging
from gitops_helm import metrics, yamlio
from gitops_helm.adapters.git import (
    GitError,
    GitSettingNames,
    GitSettings,
    HTTPAuth,
    Remote,
    SSHAuth,
    redact_url,
)
from gitops_helm.adapters.helm import Helm, HelmSettings
from gitops_helm.adapters.http import Destinations, HTTPClient
from gitops_helm.adapters.kube import Kube, KubeError, KubeErrorKind, KubeSettings
from gitops_helm.api import GitChartSource, HelmRelease, condition_pairs
from gitops_helm.api.crd import load_crd
from gitops_helm.charts.access import ssh_host_entry
from gitops_helm.charts.auth import RepositoriesFile, SecretReader, load_repositories_file
from gitops_helm.charts.cache import ChartCache
from gitops_helm.charts.evict import EvictionSettings, Janitor
from gitops_helm.charts.gitchart import GitCharts, GitChartSettings
from gitops_helm.charts.helmrepo import HelmRepoClient, HelmRepoSettings
from gitops_helm.charts.oci import OciClient, OciSettings
from gitops_helm.charts.resolver import ChartResolver
from gitops_helm.charts.usage import ChartUsage
from gitops_helm.config import ConfigError, Settings, parse_listen
from gitops_helm.controller import Controller
from gitops_helm.heartbeat import Heartbeats
from gitops_helm.images.automation import ChartVersions, ImageAutomation, PassResult
from gitops_helm.images.commit import ImageCommitter
from gitops_helm.images.credentials import CredentialsError, RegistryCredentials, registry_credentials
from gitops_helm.images.policy import DeclaredPolicy, parse_policy_file
from gitops_helm.images.registry import RegistryClient
from gitops_helm.leader import LeaderElector, LeaderSettings
from gitops_helm.release.digest_key import DigestKey
from gitops_helm.release.reconcile import Outcome, Reconciler
from gitops_helm.server import Hooks, Server
from gitops_helm.source.gitsource import DEFAULT_BRANCH, GitSource, GitSourceConfig, SourceSettings
from gitops_helm.source.watch import DirectoryWatcher, WatchSettings
from gitops_helm.sync.apply import Syncer
from gitops_helm.sync.discover import discover
from gitops_helm.sync.loop import SyncLoop
from gitops_helm.sync.plan import SourceIdentity

log = logging.get(__name__)

FIELD_MANAGER = "gitops-helm"


def prepare_work_dir(path: Path) -> None:
    """Create ``--work-dir`` private to the agent (0700), or check that an existing one is.

    It holds credentials' effects (Git mirrors, chart archives, helm's repository cache) that
    later runs trust: a directory another user can write could have been planted with a chart
    or a mirror, and one they own could be swapped at any time, so both are refused. An existing
    directory of ours that others may only read (an older version created it 0755) is tightened.
    """
    flag = f"--work-dir {path}"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            path.mkdir(mode=0o700)
        info = path.lstat()
    except OSError as exc:
        raise ConfigError(f"{flag}: cannot create it: {exc.strerror or exc}") from None
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise ConfigError(f"{flag}: not a directory (a symbolic link is refused too): give a private one")
    if info.st_uid != os.geteuid():
        raise ConfigError(
            f"{flag}: owned by uid {info.st_uid}, not by the agent's uid {os.geteuid()}: "
            "give a directory the agent creates itself (for example a subdirectory of a volume)"
        )
    loose = stat.S_IMODE(info.st_mode) & 0o077
    if loose & 0o022:
        raise ConfigError(
            f"{flag}: writable by other users (mode {stat.S_IMODE(info.st_mode):04o}), so its "
            "contents cannot be trusted: remove it, or give a new directory"
        )
    if loose:
        path.chmod(0o700)
        log.info("work directory made private", path=str(path), was=f"{stat.S_IMODE(info.st_mode):04o}")


def build_kube(settings: Settings) -> Kube:
    return Kube(
        KubeSettings(
            kubeconfig=settings.kubeconfig,
            context=settings.kube_context,
            max_identities=settings.max_impersonated_clients,
            recent_events=settings.recent_events,
        )
    )


def ssh_key_hosts(settings: Settings) -> tuple[str, ...]:
    """Where chart.git may use the agent's SSH key: the listed hosts, else the synced repository's
    host (the Helm Operator layout: charts kept in the config repository), else nowhere."""
    if settings.git.ssh_key_hosts:
        return settings.git.ssh_key_hosts
    entry = ssh_host_entry(settings.git.url or "")
    return () if entry is None else (entry,)


def chart_ssh_hosts(releases: Iterable[HelmRelease]) -> tuple[str, ...]:
    """The SSH hosts of the HelmReleases' ``chart.git``: where a one-shot command run by a person
    may use the SSH key (the person chose those HelmReleases)."""
    hosts: set[str] = set()
    for hr in releases:
        chart = hr.spec.chart
        entry = ssh_host_entry(chart.git) if isinstance(chart, GitChartSource) else None
        if entry is not None:
            hosts.add(entry)
    return tuple(sorted(hosts))


def chart_destinations(settings: Settings) -> Destinations:
    """Which addresses chart sources (repositories, registries, an http(s) ``chart.git``) may reach.

    As values URLs (``release.values_reader.url_destinations``), with one difference: outside
    lockdown loopback is allowed, because a single-team agent with a repository on its own host
    is ordinary. Link-local addresses (cloud metadata endpoints) are refused always, loopback and
    private ones in lockdown; ``--allow-internal-urls`` lifts all of it. The environment's proxy
    keeps working: the destination is then checked on the agent's own resolution before the
    request (see ``adapters.http.Destinations.via_proxy``)."""
    if settings.allow_internal_urls:
        return Destinations(refuse_local=False, refuse_internal=False)
    return Destinations(
        refuse_link_local=True,
        refuse_local=settings.lockdown,
        refuse_internal=settings.lockdown,
        via_proxy=True,
        https_upgrade=True,
    )


def _is_local_path(url: str) -> bool:
    """Git's rule: no ``scheme://`` and no colon before the first slash (``user@host:path`` is
    an scp-like SSH address, whatever the user name)."""
    if "://" in url:
        return False
    head, colon, _ = url.partition(":")
    return not colon or "/" in head


def _source_url(url: str) -> str:
    """The URL the source fetches: a local path becomes its absolute ``file://`` URL."""
    return Path(url).resolve().as_uri() if _is_local_path(url) else url


def sync_identity(settings: Settings) -> SourceIdentity:
    """What the Git sync reads, recorded with its inventory: the URL without credentials
    (userinfo stripped; passwords and tokens are never stored), branch, paths and mode."""
    g = settings.git
    url = redact_url(_source_url(g.url)) if g.url else ""
    return SourceIdentity.of(url, g.branch or DEFAULT_BRANCH, g.paths, settings.sync.only_helmreleases)


#: the flags of the sync source's repository, named in the hints of its Git errors
SYNC_GIT_NAMES = GitSettingNames(
    url="--git-url",
    credentials="--git-user and --git-password-file (or GITOPS_HELM_GIT_PASSWORD)",
    ssh_key="--git-ssh-key",
    known_hosts="--git-known-hosts",
    ref="--git-branch (the default is main; Flux v1's was master)",
    timeout="--git-timeout",
)


def git_auth(settings: Settings) -> HTTPAuth | SSHAuth | None:
    """The credentials of ``--git-url``: the SSH key (with its known_hosts) or HTTP user and password.
    The sync and the image update commits use the same ones, for the same repository only."""
    g = settings.git
    if g.ssh_key:
        if not g.known_hosts:
            raise ConfigError(
                "--git-known-hosts is required with --git-ssh-key (host keys are always verified)"
            )
        return SSHAuth(private_key=Path(g.ssh_key), known_hosts=Path(g.known_hosts))
    if g.user or g.password:
        return HTTPAuth(username=g.user or "git", password=g.password or "")
    return None


def build_source(settings: Settings, on_checkout: Any = None) -> GitSource:
    """The Git source of ``--git-url``: credentials, branch, paths and retry numbers from settings."""
    g = settings.git
    if not g.url:
        raise ConfigError("--git-url is required (or run with --reconcile-only)")
    prepare_work_dir(settings.work_dir)
    auth = git_auth(settings)
    url = _source_url(g.url)
    key = hashlib.sha256(f"{url}\0{settings.sync.name}".encode()).hexdigest()[:16]
    try:
        config = GitSourceConfig(
            url=url,
            branch=g.branch or DEFAULT_BRANCH,
            paths=g.paths,
            poll_interval_s=g.poll_interval_s,
            auth=auth,
            names=SYNC_GIT_NAMES,
        )
        return GitSource(
            config,
            settings.work_dir / "source" / key,
            SourceSettings(retry=settings.retry, git=GitSettings(timeout_s=g.timeout_s)),
            on_checkout=on_checkout,
        )
    except (ValueError, GitError) as exc:
        raise ConfigError(f"--git-url: {exc}") from None


def build_image_committer(settings: Settings, may_act: Callable[[], bool] = lambda: True) -> ImageCommitter:
    """Writes image and chart updates to the repository of ``--git-url`` (its branch, or
    ``--image-push-branch``) with the sync's credentials and git timeout; ``may_act`` (the
    leader fence) is asked before every push."""
    g = settings.git
    if not g.url:
        raise ConfigError("--git-url is required to commit image updates")
    prepare_work_dir(settings.work_dir)
    url = _source_url(g.url)
    key = hashlib.sha256(f"{url}\0{settings.sync.name}".encode()).hexdigest()[:16]
    try:
        remote = Remote(url, git_auth(settings), SYNC_GIT_NAMES)
    except GitError as exc:
        raise ConfigError(f"--git-url: {exc}") from None
    return ImageCommitter(
        remote,
        g.branch or DEFAULT_BRANCH,
        settings.work_dir / "images" / "commit" / key,
        settings.image_commit,
        GitSettings(timeout_s=g.timeout_s),
        may_act=may_act,
    )


def build_chart_clients(settings: Settings, http: HTTPClient) -> tuple[HelmRepoClient, OciClient]:
    """The Helm repository and OCI chart clients (the reconciler's, and the chart version scan's)."""
    work = settings.work_dir
    repositories: RepositoriesFile | None = None
    if settings.repositories_file:
        repositories = load_repositories_file(Path(settings.repositories_file))
    refresh = settings.chart_refresh_interval_s
    repos = HelmRepoClient(
        HelmRepoSettings(
            cache_dir=work / "cache",
            min_refresh_interval=refresh,
            read_timeout=settings.chart_timeout_s,
            destinations=chart_destinations(settings),
        ),
        http=http,
        repositories=repositories,
    )
    oci = OciClient(
        OciSettings(
            plain_http_hosts=settings.oci_plain_http_hosts,
            refresh_s=refresh,
            timeout_s=settings.chart_timeout_s,
            destinations=chart_destinations(settings),
        ),
        ChartCache(work / "cache"),
        http,
    )
    return repos, oci


def build_oneshot_resolver(
    settings: Settings, secrets: SecretReader, helm: Helm, http: HTTPClient, releases: Iterable[HelmRelease]
) -> ChartResolver:
    """The agent's chart sources and caches (under ``--work-dir``) for a one-shot command run by
    a person (``render``, ``explain values``, ``plan``) on ``releases``: Git charts are fetched as
    the branch is now, the SSH key goes to the hosts those HelmReleases name
    (:func:`chart_ssh_hosts`), a local ``chart.git`` is allowed (the disk is the person's own),
    chart Secrets are read through ``secrets``."""
    work = settings.work_dir
    repos, oci = build_chart_clients(settings, http)
    git_charts = GitCharts(
        GitChartSettings(
            work_dir=work / "gitcharts",
            default_ref=settings.git_default_ref,
            refresh_s=0.0,  # one run: always fetch the branch as it is now
            update_deps=settings.update_chart_deps,
            ssh_key=settings.git.ssh_key,
            known_hosts=settings.git.known_hosts,
            ssh_key_hosts=chart_ssh_hosts(releases) if settings.git.ssh_key else (),
            git=GitSettings(timeout_s=settings.git.timeout_s),
            destinations=chart_destinations(settings),
        ),
        secrets,
        helm,
    )
    repositories = (
        load_repositories_file(Path(settings.repositories_file)) if settings.repositories_file else None
    )
    return ChartResolver(
        secrets,
        helm,
        repos,
        oci,
        ChartCache(work / "cache"),
        git=git_charts,
        repositories=repositories,
        allow_local_git=True,
    )


def helmrelease_files(root: Path, paths: tuple[str, ...]) -> list[str]:
    """The files of a checkout holding HelmReleases, found as the Git sync finds them (the same
    walk and ``--git-path``\\ s). Problems with other files are the sync's to report."""
    found = discover(root, paths, only_helmreleases=True)
    return sorted({m.origin.path for m in (*found.objects, *found.ignored)})


def load_image_policies(settings: Settings) -> dict[str, DeclaredPolicy]:
    """The policies of ``--image-policy-file``; ConfigError naming the file and the entry."""
    path = settings.images.policy_file
    if not path:
        return {}
    try:
        data = yamlio.load(yamlio.read_file(path).decode("utf-8-sig"))
    except (OSError, UnicodeDecodeError, yamlio.YAMLError) as exc:
        raise ConfigError(f"--image-policy-file {path}: {exc}") from None
    declared, problems = parse_policy_file(data, path)
    if problems:
        raise ConfigError(f"--image-policy-file: {'; '.join(problems)}")
    return declared


def image_credentials(settings: Settings, kube: Kube | None = None) -> RegistryCredentials:
    """The registry logins of ``--image-docker-config`` and ``--image-pull-secrets`` (the
    Secrets read now; Kubernetes is reached only when Secrets are named)."""
    scan = settings.images
    if not scan.pull_secrets:
        return registry_credentials(scan.docker_config, (), _NO_SECRETS)
    return registry_credentials(scan.docker_config, scan.pull_secrets, kube or build_kube(settings))


class _NoSecrets:
    def get_secret_data(self, namespace: str, name: str) -> dict[str, bytes] | None:
        del namespace, name
        return None


_NO_SECRETS = _NoSecrets()


def build_image_automation(
    settings: Settings,
    http: HTTPClient,
    charts: tuple[HelmRepoClient, OciClient],
    credentials: RegistryCredentials,
) -> ImageAutomation:
    """The image automation pass: registry client (logins, plain-HTTP hosts of
    ``--oci-plain-http``), chart version lister, the policy file's policies."""
    registry = RegistryClient(
        settings.images,
        http,
        credentials,
        plain_http_hosts=settings.oci_plain_http_hosts,
        destinations=chart_destinations(settings),
    )
    repos, oci = charts
    declared = load_image_policies(settings)
    return ImageAutomation(registry, ChartVersions(repos, oci, credentials), declared)


def install_crd(kube: Kube, timeout_s: float = 60.0) -> None:
    """Server-side apply the HelmRelease CRD and wait until it is Established."""
    crd = load_crd()
    kube.apply(crd, FIELD_MANAGER)
    name = crd["metadata"]["name"]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        live = kube.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", None, name) or {}
        conds = (live.get("status") or {}).get("conditions") or []
        if any(c.get("type") == "Established" and c.get("status") == "True" for c in conds):
            return
        time.sleep(0.3)
    raise KubeError(KubeErrorKind.TEMPORARY, f"CRD {name}", f"not Established within {timeout_s:.0f}s")


class Agent:
    """Both wings, the controller, leader election and the HTTP server, wired from settings."""

    def __init__(self, settings: Settings) -> None:
        if not settings.reconcile_only and not settings.git.url:
            raise ConfigError("give --git-url (Git sync and releases) or --reconcile-only (releases only)")
        self.settings = settings
        work = settings.work_dir
        prepare_work_dir(work)
        self.stopping = threading.Event()  # set by stop(): no new helm action starts
        self.kube = build_kube(settings)
        self.heartbeats = Heartbeats()
        self.helm = Helm(
            HelmSettings(
                binary=settings.helm_bin,
                home=work / "helm",
                kubeconfig=settings.kubeconfig,
                kube_context=settings.kube_context,
                margin_s=settings.helm_kill_margin_s,
                max_identities=settings.max_impersonated_clients,
            ),
            before_run=self.heartbeats.allow,
            may_act=self._may_act,
        )
        self._build_release_wing(work)
        self.sync_loop: SyncLoop | None = None
        self.source: GitSource | None = None
        if not settings.reconcile_only:
            self.sync_loop = SyncLoop(
                Syncer(self.kube, settings.sync, sync_identity(settings), may_act=self._may_act),
                settings.git.paths,
                settings.git.poll_interval_s,
            )
            self.source = build_source(settings, self.sync_loop.on_checkout)
            self.sync_loop.source = self.source
            self.sync_loop.before_new_commit = self._config_commit_coming
            self.sync_loop.after_new_commit = self._config_commit_synced
        self.images: ImageAutomation | None = None
        self.image_committer: ImageCommitter | None = None
        if settings.images.automation:
            if settings.reconcile_only:
                raise ConfigError(
                    "--image-automation commits to --git-url: it cannot run with --reconcile-only"
                )
            self.image_committer = build_image_committer(settings, self._may_act)
            # logins are read at each pass (pull Secrets may change); none yet
            self.images = build_image_automation(
                settings, self.http, (self.repos, self.oci), RegistryCredentials()
            )
        self.server: Server | None = None
        self.elector: LeaderElector | None = None
        self._election: threading.Thread | None = None
        self._election_stop = threading.Event()
        self._acting = threading.Event()  # the controller and the sync run here (the leader)
        self._watchers: list[DirectoryWatcher] = []

    def _build_release_wing(self, work: Path) -> None:
        settings = self.settings
        self.cache = ChartCache(work / "cache")
        self.janitor_sweeps = 0
        self.usage = ChartUsage()  # which HelmRelease uses which cached path: the janitor's lock
        self.janitor = Janitor(
            self.usage,
            [
                work / "cache" / "charts" / "sha256",
                work / "cache" / "charts" / "unpacked",
                work / "cache" / "index",
                work / "gitcharts" / "exports",
                work / "gitcharts" / "mirrors",
            ],
            work / "trash",
            EvictionSettings(
                max_age_s=settings.cache.max_age_s,
                max_bytes=settings.cache.max_bytes,
                interval_s=settings.cache.sweep_interval_s,
            ),
        )
        repositories: RepositoriesFile | None = None
        if settings.repositories_file:
            repositories = load_repositories_file(Path(settings.repositories_file))
        refresh = settings.chart_refresh_interval_s
        self.http = HTTPClient()  # one per process: it keeps a session per credential identity
        self.repos = HelmRepoClient(
            HelmRepoSettings(
                cache_dir=work / "cache",
                min_refresh_interval=refresh,
                read_timeout=settings.chart_timeout_s,
                destinations=chart_destinations(settings),
            ),
            http=self.http,
            repositories=repositories,
        )
        self.oci = OciClient(
            OciSettings(
                plain_http_hosts=settings.oci_plain_http_hosts,
                refresh_s=refresh,
                timeout_s=settings.chart_timeout_s,
                destinations=chart_destinations(settings),
            ),
            self.cache,
            self.http,
        )
        # set when the Git sync applied a new commit: Git charts of that repository are polled now
        self._git_charts_due = threading.Event()
        self.chart_polls = 0  # completed Git chart polls (tests and benchmarks: "a poll ran since")
        self.git_charts = GitCharts(
            GitChartSettings(
                work_dir=work / "gitcharts",
                default_ref=settings.git_default_ref,
                refresh_s=settings.git.poll_interval_s,
                update_deps=settings.update_chart_deps,
                ssh_key=settings.git.ssh_key,
                known_hosts=settings.git.known_hosts,
                ssh_key_hosts=ssh_key_hosts(settings),
                git=GitSettings(timeout_s=settings.git.timeout_s),
                destinations=chart_destinations(settings),
            ),
            self.kube,
            self.helm,
            self.usage,
        )
        self.resolver = ChartResolver(
            self.kube,
            self.helm,
            self.repos,
            self.oci,
            self.cache,
            git=self.git_charts,
            repositories=repositories,
            usage=self.usage,
            allow_local_git=settings.allow_local_chart_git,
        )
        self.controller = Controller(self.kube, self._reconcile, settings, self.heartbeats)
        metrics.RELEASE_CONDITIONS.source = self._condition_samples
        # keys the desired-state digests written to status and storage labels (created once)
        self.digest_key = DigestKey(self.kube, settings.sync.state_namespace)
        self.reconciler = Reconciler(
            self.kube,
            self.helm,
            self.resolver,
            settings,
            http=self.http,
            on_refs=self.controller.on_refs,
            on_action=metrics.observe_action,
            stopping=self.stopping,
            digest_key=self.digest_key.load,
            may_act=self._may_act,
            in_scope=self.controller.watches,
        )

    # -- the long-running process -------------------------------------------------------------

    def run(self, stop: threading.Event) -> int:
        """``gitops-helm run``: serve HTTP, act (as leader when elected) until ``stop``; exit code."""
        lost = threading.Event()  # leadership lost: stop and exit non-zero (restart as a standby)
        try:
            self.start_server(self.hooks())
            if self.settings.leader_elect:
                if self._lead(stop, lost):
                    self.start_acting()
            else:
                self.start_acting()
        except KubeError as exc:
            log.error("cannot start", error=str(exc))
            return 1
        log.info("running", port=self.server.port if self.server else None)
        # wake every second: a signal that the kernel hands to another thread only sets a flag,
        # and Python runs its handler when the main thread next runs; a wait with no timeout
        # could then sleep through SIGTERM until the kubelet's SIGKILL
        while not stop.wait(1.0):
            pass
        clean = self.stop()
        self._election_stop.set()
        if self._election is not None:
            self._election.join(self.settings.leader_election_lease_s)
        if self.elector is not None and clean and not lost.is_set():
            # in-flight work is over: a standby may take over at once (when helm is still
            # running, the Lease expires as usual and the next leader's pending grace applies)
            self.elector.release()
        return 1 if lost.is_set() or not clean else 0

    def _lead(self, stop: threading.Event, lost: threading.Event) -> bool:
        """Wait until this replica holds the Lease (True) or the process is stopping (False)."""
        s = self.settings
        self.elector = elector = LeaderElector(
            self.kube,
            LeaderSettings(
                namespace=s.leader_election_namespace or s.sync.state_namespace,
                name=s.leader_election_id,
                identity=f"{socket.gethostname()}-{os.getpid()}",
                lease_s=math.ceil(s.leader_election_lease_s),
                renew_deadline_s=s.leader_election_renew_deadline_s,
                retry_s=s.leader_election_retry_period_s,
            ),
        )

        def on_lost() -> None:
            lost.set()
            self.fence()
            stop.set()

        # The Lease is renewed until the agent has stopped (not merely been asked to): in-flight
        # helm actions may run for the whole shutdown grace, longer than the Lease lasts.
        self._election = threading.Thread(
            target=elector.run, args=(self._election_stop, on_lost), name="leader", daemon=True
        )
        self._election.start()
        log.info("waiting for leadership", lease=s.leader_election_id)
        while not stop.is_set() and not elector.leading.wait(1.0):
            pass
        return elector.leading.is_set() and not stop.is_set()

    def _may_act(self) -> bool:
        """Whether a helm action (or a write to Helm storage) may start now: always without leader
        election; with it, only while this replica holds the Lease within its renew deadline."""
        return self.elector is None or self.elector.holds()

    def fence(self) -> None:
        """Leadership is lost: from now on nothing acts. The controller hands out no more work,
        no helm action starts, and the running ones are killed: a standby may take over once the
        lease duration has passed, so they cannot be let finish. A killed install/upgrade leaves
        its revision pending-*; the next leader waits out its pending grace, then retries it as
        an interrupted attempt (not a failure of the release)."""
        self.stopping.set()
        self.controller.halt()
        killed = self.helm.cancel_all("this replica lost the leader Lease")
        if killed:
            log.warning(
                "killed helm processes: another replica may act now; the next leader recovers "
                "their releases after the pending grace",
                killed=", ".join(killed),
            )

    def hooks(self) -> Hooks:
        """What the HTTP server asks of the agent: readiness, the webhook trigger, metrics."""
        return Hooks(
            ready=self.ready,
            git_trigger=self._git_trigger if self.source else None,
            git_url=self.settings.git.url or "",
            git_branch=(lambda: self.settings.git.branch or DEFAULT_BRANCH),
            webhook_secret=self.settings.git.webhook_secret,
            before_metrics=self._refresh_metrics,
            alive=self._alive,
            git_head=(lambda: self.source.head if self.source else None),
        )

    # -- parts ----------------------------------------------------------------------------------

    def _reconcile(self, obj: dict[str, Any]) -> Outcome:
        started = time.monotonic()
        outcome = self.reconciler.reconcile(obj)
        result = "ok" if outcome.ok else "error"
        metrics.RECONCILES.labels(result=result).inc()
        metrics.RECONCILE_DURATION.labels(action=outcome.action, outcome=result).observe(
            time.monotonic() - started
        )
        return outcome

    def _refresh_metrics(self) -> None:
        metrics.LEADER.set(1 if self._acting.is_set() else 0)
        metrics.SHARD.info(
            {"shard": self.settings.shard or "", "selector": self.settings.watch_label_selector}
        )
        depth = len(self.controller.queue)
        metrics.QUEUE_DEPTH.set(depth)
        metrics.QUEUE_LENGTH.set(depth)
        known = len(self.controller.cache)
        metrics.RELEASES.set(known)
        metrics.RELEASE_COUNT.set(known)
        fetched = self.source.last_success_time if self.source is not None else None
        if fetched is not None:
            metrics.GIT_LAST_FETCH.set(fetched.timestamp())
            metrics.SYNC_LAG.set(max(0.0, time.time() - fetched.timestamp()))

    def _condition_samples(self) -> list[metrics.ConditionSample]:
        """``release_condition_info``: the conditions of every HelmRelease in the watch cache."""
        return [
            metrics.ConditionSample(str(meta.get("namespace")), str(meta.get("name")), ctype, cstatus)
            for obj in list(self.controller.cache.values())
            for meta in [obj.get("metadata") or {}]
            for ctype, cstatus in condition_pairs(obj)
        ]

    def _alive(self) -> tuple[bool, str]:
        """/healthz: every loop making progress. While stopping, loops end on purpose and helm may
        run for the whole grace: the agent is not stuck, and must not be killed mid-helm."""
        if self.stopping.is_set():
            return True, "stopping"
        return self.heartbeats.check()

    def _git_trigger(self) -> None:
        """A verified webhook: fetch now, or, on a standby, ask the leader to (it is not lost)."""
        if self.source is None or self.sync_loop is None:
            return
        if self._acting.is_set():
            self.source.trigger()
            return
        try:
            self.sync_loop.syncer.request_sync(time.time())
            log.info("webhook handed to the leader")
        except KubeError as exc:
            log.warning("cannot hand the webhook to the leader", error=exc.message)

    def ready(self) -> tuple[bool, str]:
        """Caches synced and able to serve; a healthy standby is ready too (leadership is not
        readiness: it is the ``gitops_helm_leader`` metric and a line of ``gitops-helm status``)."""
        if self.stopping.is_set():
            return False, "stopping"
        if not self._acting.is_set() and self.elector is not None:
            if self.elector.reachable.is_set():
                return True, f"standby; leader: {self.elector.holder or 'none yet'}"
            return False, "standby: the API server has not answered leader election yet"
        if not self.controller.synced.is_set():
            return False, "HelmReleases not listed yet"
        if self.sync_loop is not None and not self.sync_loop.first_sync.is_set():
            return False, "first Git sync not done yet"
        return True, "ready"

    def start(self, hooks: Hooks | None = None) -> None:
        """Serve HTTP and act at once, without leader election (tests, single replica)."""
        self.start_server(hooks)
        self.start_acting()

    def start_server(self, hooks: Hooks | None = None) -> None:
        """The HTTP endpoint (health, readiness, metrics, webhook): up at once, leader or not."""
        host, port = parse_listen(self.settings.listen)
        self.server = Server(host, port, hooks or self.hooks(), self.settings.http_server)
        self.server.start()

    def start_acting(self) -> None:
        """Install the CRD, start reconciling and syncing (only on the leader when elected)."""
        log.info(
            "starting",
            helm=self.helm.version,
            workers=self.settings.workers,
            namespace=self.settings.namespace or "(all)",
            shard=self.settings.shard or "(none)",
            selector=self.settings.watch_label_selector or "(all HelmReleases)",
        )
        if self.settings.install_crd:
            install_crd(self.kube)
        # the agent's own Secret: a refusal here is the agent's RBAC, said at start, not blamed on
        # a HelmRelease's ServiceAccount at its first reconcile
        self.digest_key.load()
        self.controller.start()
        self._acting.set()
        live = self.settings.liveness
        # a round asks every chart source in use, each request under its own deadline: allowed as
        # long as a Git sync, so only a loop that is stuck for good (a dead thread) fails /healthz
        beat = self.heartbeats.register(
            "git-chart-poll", self.settings.git.poll_interval_s + live.sync_s + live.margin_s
        )
        threading.Thread(
            target=self._git_chart_poll_loop, args=(beat,), name="git-chart-poll", daemon=True
        ).start()
        if self.settings.chart_poll_interval_s > 0:
            beat = self.heartbeats.register(
                "chart-repository-poll", self.settings.chart_poll_interval_s + live.sync_s + live.margin_s
            )
            threading.Thread(
                target=self._repository_poll_loop, args=(beat,), name="chart-repository-poll", daemon=True
            ).start()
        beat = self.heartbeats.register(
            "cache-janitor", self.settings.cache.sweep_interval_s + self.settings.liveness.margin_s
        )
        threading.Thread(target=self._janitor_loop, args=(beat,), name="cache-janitor", daemon=True).start()
        if self.source is not None and self.sync_loop is not None:
            live, git = self.settings.liveness, self.settings.git
            # watched from now on only: a standby's idle sync wing is not a stuck one
            self.source.beat = self.heartbeats.register(
                "git-source", git.poll_interval_s + self.settings.retry.max_s + live.margin_s
            )
            self.sync_loop.beat = self.heartbeats.register("git-sync", live.sync_s)
            self.source.start()
            self.sync_loop.start()
            local = Path(self.settings.git.url or "")
            if local.is_dir() and (local / ".git").exists():
                # .git is watched too: a local commit changes nothing else in the work tree.
                watcher = DirectoryWatcher(local, self.source.trigger, WatchSettings(ignored_names=()))
                watcher.start()
                self._watchers.append(watcher)
        if self.images is not None:
            live = self.settings.liveness
            beat = self.heartbeats.register(
                "image-automation", self.settings.images.scan_interval_s + live.sync_s + live.margin_s
            )
            threading.Thread(
                target=self._image_loop, args=(beat,), name="image-automation", daemon=True
            ).start()

    def _image_loop(self, beat: Callable[[], None]) -> None:
        """Image automation: a pass every ``--image-scan-interval`` in its own thread, so scans
        never hold up reconciles or the Git sync. The registry client beats too, before each
        repository and candidate image, so only one stuck request (bounded by its deadline), not
        a long pass, can make the loop look stuck."""
        if self.images is not None:
            self.images.registry.on_progress = beat
        while True:
            beat()
            try:
                self.image_pass()
            except Exception as exc:  # never let the loop die: the next pass tries again
                log.error("image automation pass crashed", error=f"{type(exc).__name__}: {exc}")
            if self.stopping.wait(self.settings.images.scan_interval_s):
                return

    def image_pass(self) -> PassResult | None:
        """One pass over the last checkout: scan, decide, commit; a commit makes the Git source
        fetch at once, so the sync applies it without waiting for the poll. Only while this
        replica may act (it writes to Git: the leader fence applies as to the sync)."""
        if self.images is None or self.image_committer is None or self.source is None:
            return None
        checkout = self.source.checkout
        if checkout is None or not self._may_act():
            return None
        try:
            self.images.set_credentials(image_credentials(self.settings, self.kube))
        except (CredentialsError, KubeError) as exc:
            log.warning("registry logins not re-read; the previous ones are used", error=str(exc))
            metrics.IMAGE_ERRORS.labels(reason="credentials").inc()
        plan = self.images.plan(checkout.path, helmrelease_files(checkout.path, self.settings.git.paths))
        if not self._may_act() or self.stopping.is_set():
            return None  # the Lease was lost during the scan: write nothing
        result = self.images.apply(plan, self.image_committer)
        if result.commit is not None:
            log.info("image updates pushed; fetching now", commit=result.commit[:12])
            self.source.trigger()
        return result

    def _git_chart_poll_loop(self, beat: Callable[[], None]) -> None:
        """Reconcile a HelmRelease as soon as a commit changes its Git chart (not at the resync):
        every ``--git-poll-interval``, and at once after the Git sync applied a new commit (a
        chart kept in the config repository)."""
        while not self.stopping.is_set():
            beat()
            self._git_charts_due.wait(self.settings.git.poll_interval_s)
            self._git_charts_due.clear()
            if self.stopping.is_set():
                return
            try:
                changed = self.git_charts.poll(self.controller.keys())
            except Exception as exc:  # never let the loop die: the resync still covers it
                log.error("Git chart poll crashed", error=f"{type(exc).__name__}: {exc}")
                continue
            finally:
                self.chart_polls += 1
            for key in changed:
                log.info("Git chart changed", release=key)
                self.controller.queue.add(key)

    def _config_commit_coming(self, sha: str) -> None:
        """Before the sync of a new commit: a Git chart in the same repository is fetched afresh
        by the reconciles this sync causes (a HelmRelease changed with its chart in one commit is
        upgraded once, to both)."""
        url = self.settings.git.url
        if url and self.git_charts.expire(url):
            log.debug("Git charts of the config repository expired", revision=sha[:12])

    def _config_commit_synced(self, sha: str) -> None:
        """After the sync of a new commit: poll the Git charts now, so HelmReleases whose chart
        path changed in it are reconciled without waiting for the poll interval."""
        self._git_charts_due.set()

    def _repository_poll_loop(self, beat: Callable[[], None]) -> None:
        """Every ``--chart-poll-interval``: reconcile the HelmReleases whose version range now
        resolves to a new chart in its Helm repository (``charts.repopoll``); an unchanged index
        costs one conditional request per repository and identity, and enqueues nothing."""
        poll = self.resolver.repo_poll
        while not self.stopping.wait(self.settings.chart_poll_interval_s):
            beat()
            try:
                changed = poll.poll(self.controller.keys())
            except Exception as exc:  # never let the loop die: the resync still covers it
                log.error("chart repository poll crashed", error=f"{type(exc).__name__}: {exc}")
                continue
            for key in changed:
                log.info("chart repository has a new chart", release=key)
                self.controller.queue.add(key)

    def _janitor_loop(self, beat: Callable[[], None]) -> None:
        """Forget what deleted HelmReleases used, then keep the chart caches bounded."""
        while not self.stopping.wait(self.settings.cache.sweep_interval_s):
            beat()
            try:
                self.prune_and_sweep()
            except Exception as exc:  # never let the loop die: the next sweep tries again
                log.error("cache sweep crashed", error=f"{type(exc).__name__}: {exc}")

    def prune_and_sweep(self) -> None:
        """One janitor round: drop in-memory state of HelmReleases that are gone, then remove
        cached charts, exports, mirrors and indexes no current HelmRelease uses (``charts.evict``)."""
        if not self.controller.synced.is_set():
            return  # before the first list every HelmRelease would look deleted
        since = time.monotonic()
        live = self.controller.keys() | self.controller.queue.running()
        self.controller.forget(live)
        self.usage.retain(live, since)
        self.git_charts.forget(live)
        self.resolver.forget(live)
        self.repos.forget_idle(self.settings.cache.max_age_s)
        self.oci.forget_idle(self.settings.cache.max_age_s)
        self.janitor.sweep()
        self.janitor_sweeps += 1

    def stop(self) -> bool:
        """Start nothing new; let in-flight helm actions finish within the shutdown grace.
        False when the grace expired with helm still running (those releases are logged; the
        next agent's pending grace recovers them)."""
        self.stopping.set()
        self._git_charts_due.set()  # the Git chart poll ends now, not after its interval
        deadline = time.monotonic() + self.settings.shutdown_grace_s
        for watcher in self._watchers:
            watcher.stop()
        if self.sync_loop is not None:
            self.sync_loop.stop()
        if self.source is not None:
            self.source.stop(timeout=10)
        busy = self.controller.stop(timeout=max(0.0, deadline - time.monotonic()))
        if busy:
            log.error(
                "shutdown grace expired with helm still running; a release may be left pending "
                "until the next agent's pending grace recovers it",
                releases=",".join(busy),
                grace=self.settings.shutdown_grace_s,
            )
        if self.server:
            self.server.stop()
        self.repos.close()
        self.http.close()
        log.info("stopped", clean=not busy)
        return not busy
