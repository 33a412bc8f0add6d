"""Where a HelmRelease's values come from in the running agent: the cluster, URLs, the chart.

Place in the flow: the reconciler hands a :class:`ClusterValuesReader` to
``values.compose_values``, which does no I/O itself. ConfigMaps and Secrets are read through the
Kubernetes adapter, ``externalSourceRef`` URLs through the HTTP adapter (anonymous, within the
agent's timeouts and size limit, to the destinations :func:`url_destinations` allows),
``chartFileRef`` files from the fetched chart (never outside its directory).

Values URLs are written by whoever may create a HelmRelease, and the agent fetches them from
inside the cluster with its own network position: without a rule, a HelmRelease could make the
agent read a cloud metadata endpoint (credentials of the node) or a service on its own host. So
loopback and link-local addresses are refused by default; in lockdown mode (tenants do not trust
each other) every private or cluster-internal address is refused as well. ``--allow-internal-urls``
lifts both, for values kept on an internal server as Helm Operator users may have them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from gitops_helm import values as values_mod
from gitops_helm import yamlio
from gitops_helm.adapters.http import Destinations, HTTPClient, HTTPStatusError, Limits
from gitops_helm.api import HelmReleaseSpec
from gitops_helm.config import Settings


def url_destinations(settings: Settings) -> Destinations:
    """Which addresses a values URL may reach under ``settings`` (see the module docstring)."""
    if settings.allow_internal_urls:
        return Destinations(refuse_local=False, refuse_internal=False)
    return Destinations(refuse_local=True, refuse_internal=settings.lockdown)


class ObjectDataReader(Protocol):
    """Where ConfigMaps and Secrets are read: the Kubernetes adapter in the agent, the manifests
    of a directory in ``gitops-helm render`` (``release.manifest_objects``)."""

    def get_configmap_data(self, namespace: str, name: str) -> Mapping[str, str] | None: ...

    def get_secret_data(self, namespace: str, name: str) -> Mapping[str, bytes] | None: ...


def url_limits(settings: Settings) -> Limits:
    """The deadlines and size limit of one values URL download."""
    timeout = settings.values_url_timeout_s
    return Limits(timeout, timeout, settings.values_url_total_timeout_s, settings.values_url_max_bytes)


class ClusterValuesReader:
    """`values.ValuesSourceReader` over the Kubernetes API (or another :class:`ObjectDataReader`),
    HTTP and the fetched chart."""

    def __init__(
        self,
        kube: ObjectDataReader,
        chart_dir: Path | None,
        http: HTTPClient,
        url_limits: Limits,
        url_destinations: Destinations,
    ) -> None:
        self.kube = kube
        self.chart_dir = chart_dir
        self.http = http
        self.url_limits = url_limits
        self.url_destinations = url_destinations

    def configmap(self, namespace: str, name: str) -> Mapping[str, str] | None:
        return self.kube.get_configmap_data(namespace, name)

    def secret(self, namespace: str, name: str) -> Mapping[str, bytes] | None:
        return self.kube.get_secret_data(namespace, name)

    def url(self, url: str) -> bytes:
        """The body of a GET (redirects followed). 404: ``SourceNotFound``; any other failure
        raises (an ``HTTPError`` of the adapter, or ``OSError`` for a 2xx other than 200)."""
        try:
            resp = self.http.get(url, limits=self.url_limits, destinations=self.url_destinations)
        except HTTPStatusError as exc:
            if exc.status == 404:
                raise values_mod.SourceNotFound(url) from None
            raise
        if resp.status != 200:
            raise OSError(f"HTTP {resp.status}")
        return resp.body

    def chart_file(self, path: str) -> bytes:
        if self.chart_dir is None:
            raise values_mod.SourceNotFound(path)
        root = self.chart_dir.resolve()
        target = (root / path).resolve()
        if root != target and root not in target.parents:
            raise OSError(f"{path} leaves the chart directory")
        if not target.is_file():
            raise values_mod.SourceNotFound(path)
        return yamlio.read_file(target)  # bounded: a chart may be hostile


def values_spec(namespace: str, spec: HelmReleaseSpec) -> values_mod.ValuesSpec:
    """The value sources of a HelmRelease in ``namespace``, as values composition reads them."""
    return values_mod.ValuesSpec(
        namespace=namespace,
        values_from=spec.values_from,
        value_file_secrets=spec.value_file_secrets,
        values=spec.values,
    )
