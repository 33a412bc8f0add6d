"""Turn a HelmRelease's ``spec.chart`` into a chart on local disk: the reconciler's chart step.

Place in the flow: ``release.reconcile`` calls :meth:`ChartResolver.fetch`; this module picks the
source by kind and returns a :class:`FetchedChart` whose digest identifies the chart's content:

* Helm repository over HTTP(S) -> ``charts.helmrepo`` (cached index, content-addressed archives);
  credentials from ``chart.chartPullSecret`` or the operator-level ``repositories.yaml``;
* OCI registry (``oci://``) -> ``charts.oci`` (registry API, no helm call);
* any other scheme (``s3://``, ``gs://``, ...) -> a helm downloader plugin through ``helm pull``;
  an exact version is immutable, so it is pulled once and then served from the cache;
* Git -> ``charts.gitchart`` (a mirror per repository; only changes under ``chart.path`` count).

Every failure is a :class:`~gitops_helm.charts.errors.ChartError` (temporary or permanent).
"""

from __future__ import annotations

import hashlib
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from gitops_helm.adapters.helm import Helm, HelmError
from gitops_helm.adapters.kube import KubeError
from gitops_helm.api import ChartSource, GitChartSource, OciChartSource, RepoChartSource
from gitops_helm.charts.access import is_local_git_url
from gitops_helm.charts.artifact import FetchedChart
from gitops_helm.charts.auth import (
    RepositoriesFile,
    RepositoryAuth,
    SecretReader,
    auth_from_secret,
    redact_url,
)
from gitops_helm.charts.cache import ChartCache
from gitops_helm.charts.errors import (
    AuthConfigError,
    ChartError,
    ChartNotFoundError,
    RepositoryError,
    RepositoryUnavailableError,
)
from gitops_helm.charts.gitchart import chart_version
from gitops_helm.charts.helmrepo import HelmRepoClient
from gitops_helm.charts.oci import OciClient, OciCredentials
from gitops_helm.charts.repopoll import RepositoryPoll, RepoUse
from gitops_helm.charts.semver import is_exact
from gitops_helm.charts.usage import ChartUsage


class GitCharts(Protocol):
    def fetch(
        self, key: str, source: GitChartSource, *, secrets: SecretReader | None = None
    ) -> FetchedChart: ...


class ChartResolver:
    def __init__(
        self,
        kube: SecretReader,
        helm: Helm,
        repos: HelmRepoClient,
        oci: OciClient,
        cache: ChartCache,
        *,
        git: GitCharts | None = None,
        repositories: RepositoriesFile | None = None,
        usage: ChartUsage | None = None,
        allow_local_git: bool = False,
        repo_poll: RepositoryPoll | None = None,
    ) -> None:
        self.kube = kube
        self.helm = helm
        self.repos = repos
        self.oci = oci
        self.cache = cache
        self.git = git
        self.repositories = repositories
        self.allow_local_git = allow_local_git
        self.usage = usage or ChartUsage()
        # what each HelmRelease last got from a Helm repository, for the chart-source poll
        self.repo_poll = repo_poll or RepositoryPoll(repos)
        self._plugin_cache: dict[tuple[str, str, str], str] = {}  # exact source -> archive digest
        self._plugin_users: dict[str, tuple[str, str, str]] = {}  # HelmRelease key -> its source
        self._lock = threading.Lock()

    def fetch(
        self, namespace: str, name: str, source: ChartSource, *, secrets: SecretReader | None = None
    ) -> FetchedChart:
        """The chart of the HelmRelease ``namespace``/``name``; Secrets are read in ``namespace``
        through ``secrets`` (the HelmRelease's identity; default: the agent's own client).

        Every cached file the chart comes from is claimed for the HelmRelease (``charts.usage``)
        until its next fetch or its deletion, so the cache janitor never removes it meanwhile."""
        user = f"{namespace}/{name}"
        reader = secrets or self.kube
        with self.usage.fetching(user):
            if not isinstance(source, RepoChartSource):
                self.repo_poll.drop(user)
            if isinstance(source, GitChartSource):
                if self.git is None:
                    raise RepositoryError("Git chart sources are not enabled in this agent")
                if is_local_git_url(source.git) and not self.allow_local_git:
                    raise RepositoryError(
                        f"chart.git {source.git}: a file:// URL or a path on the agent's disk is not "
                        "allowed in this agent (--allow-local-chart-git)"
                    )
                return self.git.fetch(user, source, secrets=reader)
            if isinstance(source, OciChartSource):
                return self._oci(user, reader, namespace, source)
            if isinstance(source, RepoChartSource):
                scheme = source.repository.split("://", 1)[0].lower() if "://" in source.repository else ""
                if scheme in ("http", "https"):
                    try:
                        return self._repo(user, reader, namespace, source)
                    except BaseException:
                        # the poll follows only what the last fetch got with credentials the
                        # HelmRelease could still read: never a deleted or refused Secret's
                        self.repo_poll.drop(user)
                        raise
                self.repo_poll.drop(user)
                return self._plugin(user, source)
            raise RepositoryError(f"unsupported chart source {type(source).__name__}")

    def forget(self, keys: set[str]) -> None:
        """Drop the plugin charts remembered for sources no HelmRelease in ``keys`` still uses,
        and the Helm repository uses of HelmReleases not in ``keys``."""
        self.repo_poll.forget(keys)
        with self._lock:
            wanted = {source for user, source in self._plugin_users.items() if user in keys}
            for gone in set(self._plugin_users) - keys:
                del self._plugin_users[gone]
            for source_key in set(self._plugin_cache) - wanted:
                del self._plugin_cache[source_key]

    def _claimed(self, user: str, hexdigest: str) -> bool:
        """Claim the archive and its unpacked directory; whether the archive is (still) cached.
        Claimed first, looked at second: once seen, it stays."""
        self.usage.claim(user, self.cache.archive_path(hexdigest))
        self.usage.claim(user, self.cache.unpacked_path(hexdigest))
        return self.cache.lookup(hexdigest) is not None

    # -- credentials -------------------------------------------------------------------------

    @staticmethod
    def _pull_secret(reader: SecretReader, namespace: str, name: str | None) -> Mapping[str, bytes] | None:
        if not name:
            return None
        try:
            data = reader.get_secret_data(namespace, name)
        except KubeError as exc:
            if exc.temporary:
                raise RepositoryUnavailableError(
                    f"chartPullSecret {namespace}/{name}: {exc.message}"
                ) from None
            raise AuthConfigError(f"chartPullSecret {namespace}/{name}: {exc.message}") from None
        if data is None:
            raise AuthConfigError(f"chartPullSecret {namespace}/{name} not found")
        return data

    def _repo_auth(
        self, reader: SecretReader, namespace: str, source: RepoChartSource
    ) -> RepositoryAuth | None:
        data = self._pull_secret(reader, namespace, source.chart_pull_secret)
        if data is not None:
            return auth_from_secret(data, secret_ref=f"{namespace}/{source.chart_pull_secret}")
        if self.repositories is not None:
            return self.repositories.auth_for(source.repository)
        return None

    # -- sources -----------------------------------------------------------------------------

    def _unpacked(self, hexdigest: str, what: str) -> Path:
        """The cached chart's files; an unsafe or unreadable archive's error names the chart."""
        try:
            return self.cache.unpack(hexdigest)
        except ChartError as exc:
            raise type(exc)(f"{what}: {exc}") from exc

    def _repo(self, user: str, reader: SecretReader, namespace: str, source: RepoChartSource) -> FetchedChart:
        auth = self._repo_auth(reader, namespace, source)
        for index_file in self.repos.index_files(source.repository, auth):
            self.usage.claim(user, index_file)
        for _attempt in range(2):  # a second time when evicted between the fetch and the claim
            art = self.repos.fetch(source.repository, source.name, source.version, auth)
            hexdigest = art.digest.split(":", 1)[-1]
            if self._claimed(user, hexdigest):
                break
        what = f'chart "{art.name}" version "{art.version}" from {redact_url(source.repository)}'
        chart_dir = self._unpacked(hexdigest, what)
        use = RepoUse(source.repository, source.name, source.version, art.version, art.digest, auth)
        self.repo_poll.record(user, use)
        return FetchedChart(
            name=art.name,
            version=art.version,
            revision=art.version,
            digest=art.digest,
            path=chart_dir,
            chart_dir=chart_dir,
        )

    def _oci(self, user: str, reader: SecretReader, namespace: str, source: OciChartSource) -> FetchedChart:
        data = self._pull_secret(reader, namespace, source.chart_pull_secret)
        creds = OciCredentials(plain_http=source.plain_http)
        if data is not None:
            creds = OciCredentials(
                username=data.get("username", b"").decode(),
                password=data.get("password", b"").decode(),
                plain_http=source.plain_http,
            )
        for _attempt in range(2):  # a second time when evicted between the fetch and the claim
            chart = self.oci.fetch(source.repository, source.name, source.version, creds)
            hexdigest = chart.digest.split(":", 1)[-1]
            if self._claimed(user, hexdigest):
                break
        what = f"chart {source.repository.rstrip('/')}/{source.name}:{chart.version}"
        chart_dir = self._unpacked(hexdigest, what)
        return FetchedChart(
            name=chart.name,
            version=chart.version,
            revision=chart.version,
            digest=chart.digest,
            path=chart_dir,
            chart_dir=chart_dir,
        )

    def _plugin(self, user: str, source: RepoChartSource) -> FetchedChart:
        """Anything a helm downloader plugin serves (``helm pull --repo``)."""
        key = (source.repository, source.name, source.version)
        with self._lock:
            known = self._plugin_cache.get(key) if is_exact(source.version) else None
            self._plugin_users[user] = key
        if known is None or not self._claimed(user, known):
            with tempfile.TemporaryDirectory(prefix="gitops-helm-pull-") as tmp:
                try:
                    tgz = self.helm.pull(source.name, source.version, Path(tmp), repo=source.repository)
                except HelmError as exc:
                    what = f'chart "{source.name}" version "{source.version}" from {source.repository}'
                    error = RepositoryUnavailableError if exc.temporary else ChartNotFoundError
                    raise error(f"{what}: {exc.message}") from None
                data = tgz.read_bytes()
                known = hashlib.sha256(data).hexdigest()
                self._claimed(user, known)  # before it is stored: never evicted in between
                self.cache.store([data], expected=known, max_bytes=len(data) + 1, what=str(tgz.name))
            with self._lock:
                self._plugin_cache[key] = known
        what = f'chart "{source.name}" version "{source.version}" from {redact_url(source.repository)}'
        chart_dir = self._unpacked(known, what)
        version = source.version if is_exact(source.version) else chart_version(chart_dir)
        return FetchedChart(
            name=source.name,
            version=version,
            revision=version,
            digest=f"sha256:{known}",
            path=chart_dir,
            chart_dir=chart_dir,
        )
