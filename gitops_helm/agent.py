"""Assemble the running agent from settings: adapters, chart sources, reconciler, controller, server.

Place in the flow: ``cli.py run`` builds an :class:`Agent` and calls :meth:`Agent.run`. Nothing
here decides anything; it wires the stages together, installs the CRD at start when asked, and
stops cleanly on SIGTERM (in-flight helm operations finish, so no release is left pending).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from gitops_helm import log as logging
from gitops_helm import metrics
from gitops_helm.adapters.git import GitSettings as AdapterGitSettings
from gitops_helm.adapters.helm import Helm, HelmSettings
from gitops_helm.adapters.kube import Kube, KubeError, KubeErrorKind, KubeSettings
from gitops_helm.api import load_crd
from gitops_helm.charts.auth import RepositoriesFile, load_repositories_file
from gitops_helm.charts.cache import ChartCache
from gitops_helm.charts.gitchart import GitCharts, GitChartSettings
from gitops_helm.charts.helmrepo import HelmRepoClient, HelmRepoSettings
from gitops_helm.charts.oci import OciClient, OciSettings
from gitops_helm.charts.resolver import ChartResolver
from gitops_helm.config import Settings, parse_listen
from gitops_helm.controller import Controller
from gitops_helm.release.reconcile import Outcome, Reconciler
from gitops_helm.server import Hooks, Server

log = logging.get(__name__)

FIELD_MANAGER = "gitops-helm"


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
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        work = settings.work_dir
        work.mkdir(parents=True, exist_ok=True)
        self.kube = Kube(KubeSettings(kubeconfig=settings.kubeconfig, context=settings.kube_context))
        self.helm = Helm(
            HelmSettings(
                binary=settings.helm_bin,
                home=work / "helm",
                kubeconfig=settings.kubeconfig,
                kube_context=settings.kube_context,
            )
        )
        self.cache = ChartCache(work / "cache")
        repositories: RepositoriesFile | None = None
        if settings.repositories_file:
            repositories = load_repositories_file(Path(settings.repositories_file))
        refresh = settings.chart_refresh_interval_s
        self.repos = HelmRepoClient(
            HelmRepoSettings(cache_dir=work / "cache", min_refresh_interval=refresh),
            repositories=repositories,
        )
        self.oci = OciClient(
            OciSettings(plain_http_hosts=settings.oci_plain_http_hosts, refresh_s=refresh), self.cache
        )
        self.git_charts = GitCharts(
            GitChartSettings(
                work_dir=work / "gitcharts",
                default_ref=settings.git_default_ref,
                refresh_s=settings.git.poll_interval_s,
                update_deps=settings.update_chart_deps,
                ssh_key=settings.git.ssh_key,
                known_hosts=settings.git.known_hosts,
                git=AdapterGitSettings(timeout_s=settings.git.timeout_s),
            ),
            self.kube,
            self.helm,
        )
        self.resolver = ChartResolver(
            self.kube,
            self.helm,
            self.repos,
            self.oci,
            self.cache,
            git=self.git_charts,
            repositories=repositories,
        )
        self.controller = Controller(
            self.kube,
            self._reconcile,
            namespace=settings.namespace,
            workers=settings.workers,
            resync_interval_s=settings.resync_interval_s,
            retry_base_s=settings.retry.base_s,
            retry_max_s=settings.retry.max_s,
        )
        self.reconciler = Reconciler(
            self.kube,
            self.helm,
            self.resolver,
            settings,
            on_refs=self.controller.on_refs,
            on_action=metrics.observe_action,
        )
        self.server: Server | None = None
        self._extra_ready: list[tuple[str, object]] = []
        self.stopping = threading.Event()

    def _reconcile(self, obj: dict[str, Any]) -> Outcome:
        outcome = self.reconciler.reconcile(obj)
        metrics.RECONCILES.labels(result="ok" if outcome.ok else "error").inc()
        return outcome

    def _refresh_metrics(self) -> None:
        for command, count in self.helm.calls.items():
            metrics.HELM_CALLS.labels(command=command).set(count)
        metrics.QUEUE_LENGTH.set(len(self.controller.queue))
        metrics.RELEASE_COUNT.set(len(self.controller.cache))

    def ready(self) -> tuple[bool, str]:
        if not self.controller.synced.is_set():
            return False, "HelmReleases not listed yet"
        return True, "ready"

    def start(self, hooks: Hooks | None = None) -> None:
        self.start_server(hooks)
        self.start_workers()

    def start_server(self, hooks: Hooks | None = None) -> None:
        """The HTTP endpoint (health, readiness, metrics, webhook): up at once, leader or not."""
        host, port = parse_listen(self.settings.listen)
        self.server = Server(
            host, port, hooks or Hooks(ready=self.ready, before_metrics=self._refresh_metrics)
        )
        self.server.start()

    def start_workers(self) -> None:
        """Install the CRD and start reconciling (only on the leader when leader election is on)."""
        log.info(
            "starting",
            helm=self.helm.version,
            workers=self.settings.workers,
            namespace=self.settings.namespace or "(all)",
        )
        if self.settings.install_crd:
            install_crd(self.kube)
        self.controller.start()
        threading.Thread(target=self._git_chart_poll_loop, name="git-chart-poll", daemon=True).start()

    def _git_chart_poll_loop(self) -> None:
        """Reconcile a HelmRelease as soon as a commit changes its Git chart (not at the resync)."""
        while not self.stopping.wait(self.settings.git.poll_interval_s):
            try:
                changed = self.git_charts.poll(self.controller.keys())
            except Exception as exc:  # never let the loop die: the resync still covers it
                log.error("Git chart poll crashed", error=f"{type(exc).__name__}: {exc}")
                continue
            for key in changed:
                log.info("Git chart changed", release=key)
                self.controller.queue.add(key)

    def stop(self) -> None:
        self.stopping.set()
        self.controller.stop()
        if self.server:
            self.server.stop()
        self.repos.close()
        log.info("stopped")
