"""``gitops-helm explain values NS/NAME [KEY.PATH]``: where each value of a release comes from.

Place in the flow: ``cli`` parses the flags (``verbs.flags``) and builds the settings, then calls
:func:`explain_values`. The HelmRelease, and the ConfigMaps and Secrets its values name, are read
from the cluster (with the caller's own credentials), or with ``--path DIR`` from the manifests
under DIR with the Git sync's own walk, as ``render`` reads them (no cluster at all). The chart is
fetched through the agent's own chart sources and cache (``agent.build_oneshot_resolver``), URLs
and chart files are read by the agent's values reader (``release.values_reader``), and the values
are composed by the agent's own pipeline (``values.explain_values``: the same layers and merge as
``compose_values``, with the chart's ``values.yaml`` under them). Output: ``verbs.values_view``.

Exit status: 0 shown; 1 the release's values cannot be explained (no such HelmRelease, an invalid
spec, a chart or values source that cannot be read: the message names it), or KEY.PATH names no
value; 2 bad flags or an unusable kubeconfig.
"""

from __future__ import annotations

import argparse
import sys
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from gitops_helm import values as values_mod
from gitops_helm.adapters.helm import Helm, HelmSettings
from gitops_helm.adapters.http import HTTPClient
from gitops_helm.adapters.kube import Kube, KubeError
from gitops_helm.agent import build_oneshot_resolver, prepare_work_dir
from gitops_helm.api import HelmRelease, SpecError, parse_helmrelease
from gitops_helm.charts.errors import ChartError
from gitops_helm.config import ConfigError, Settings
from gitops_helm.errors import GitopsHelmError
from gitops_helm.release.manifest_objects import DeclaredObject, ManifestObjects
from gitops_helm.release.values_reader import (
    ClusterValuesReader,
    ObjectDataReader,
    url_destinations,
    url_limits,
    values_spec,
)
from gitops_helm.sync.discover import discover
from gitops_helm.verbs.session import Session
from gitops_helm.verbs.values_view import (
    ExplainHeader,
    KeyPathError,
    narrow,
    parse_key_path,
    to_json,
    to_text,
)

__all__ = ["explain_values"]


class ExplainError(GitopsHelmError):
    """The values of the release cannot be explained; the message names the object or field."""


@dataclass(frozen=True)
class _Found:
    hr: HelmRelease
    objects: ObjectDataReader  # where its ConfigMaps and Secrets are read
    origin: str


def _release_key(text: str, namespace: str) -> tuple[str, str]:
    ns, sep, name = text.partition("/")
    if not sep:
        return namespace, text
    if not ns or not name or "/" in name:
        raise ConfigError(f"explain values: {text!r} is not NAMESPACE/NAME (or NAME with -n)")
    return ns, name


def _from_directory(directory: Path, namespace: str, name: str, default_ns: str) -> _Found:
    if directory.is_file():
        found = discover(directory.parent, [directory.name])
    elif directory.is_dir():
        found = discover(directory)
    else:
        raise ConfigError(f"explain values: --path {directory}: no such file or directory")
    objects = ManifestObjects(
        (DeclaredObject(m.body, str(m.origin)) for m in found.objects if not m.is_helmrelease), default_ns
    )
    for manifest in found.objects:
        if not manifest.is_helmrelease:
            continue
        metadata = manifest.body.get("metadata") or {}
        if metadata.get("name") != name or (metadata.get("namespace") or default_ns) != namespace:
            continue
        try:
            hr = parse_helmrelease(manifest.body, default_namespace=default_ns)
        except SpecError as exc:
            raise ExplainError(f"{manifest.origin}: HelmRelease {namespace}/{name}: {exc}") from None
        return _Found(hr, objects, str(directory))
    problems = "".join(f"; {error}" for error in found.errors)
    raise ExplainError(f"no HelmRelease {namespace}/{name} among the manifests under {directory}{problems}")


def _from_cluster(kube: Kube, namespace: str, name: str) -> _Found:
    try:
        body = kube.get_helmrelease(namespace, name)
    except KubeError as exc:
        raise ExplainError(f"HelmRelease {namespace}/{name}: {exc}") from None
    if body is None:
        raise ExplainError(f"HelmRelease {namespace}/{name} not found")
    try:
        hr = parse_helmrelease(body)
    except SpecError as exc:
        raise ExplainError(f"HelmRelease {namespace}/{name}: {exc}") from None
    return _Found(hr, kube, "cluster")


def _explain(settings: Settings, found: _Found) -> tuple[str, values_mod.ValuesExplanation]:
    hr = found.hr
    work = settings.work_dir
    prepare_work_dir(work)
    helm = Helm(HelmSettings(binary=settings.helm_bin, home=work / "helm"))
    http = HTTPClient()
    try:
        resolver = build_oneshot_resolver(settings, found.objects, helm, http, [hr])
        try:
            chart = resolver.fetch(hr.namespace, hr.name, hr.spec.chart, secrets=found.objects)
        except ChartError as exc:
            raise ExplainError(f"HelmRelease {hr.key}: chart: {exc}") from None
        reader = ClusterValuesReader(
            found.objects, chart.chart_dir, http, url_limits(settings), url_destinations(settings)
        )
        chart_name = f"{chart.name} {chart.version}"
        try:
            explained = values_mod.explain_values(
                values_spec(hr.namespace, hr.spec),
                reader,
                chart=chart_name,
                allow_cross_namespace=settings.allow_cross_namespace_refs,
            )
        except values_mod.ValuesError as exc:
            raise ExplainError(f"HelmRelease {hr.key}: values: {exc}") from None
        return chart_name, explained
    finally:
        http.close()


def explain_values(
    args: argparse.Namespace, settings: Settings, out: TextIO = sys.stdout, err: TextIO = sys.stderr
) -> int:
    """Explain the values of ``args.release`` (see the module docstring); the exit status."""
    try:
        key_path = parse_key_path(args.key) if args.key is not None else None
    except KeyPathError as exc:
        err.write(f"gitops-helm: explain values: {exc}\n")
        return 2
    try:
        if args.path is not None:
            default_ns = settings.sync.default_namespace
            namespace, name = _release_key(args.release, args.namespace or default_ns)
            found = _from_directory(Path(args.path), namespace, name, default_ns)
            chart, explained = _explain(settings, found)
            origin = found.origin
        else:
            try:
                with closing(Session(args)) as session:
                    namespace, name = _release_key(args.release, session.namespace)
                    chart, explained = _explain(settings, _from_cluster(session.kube, namespace, name))
                origin = "cluster"
            except KubeError as exc:  # the kubeconfig itself is unusable
                err.write(f"gitops-helm: {exc}\n")
                return 2
    except ConfigError as exc:
        err.write(f"gitops-helm: {exc}\n")
        return 2
    except GitopsHelmError as exc:
        err.write(f"gitops-helm: explain values: {exc}\n")
        return 1
    header = ExplainHeader(f"{namespace}/{name}", chart, origin)
    if key_path is not None and not narrow(explained, key_path):
        err.write(
            f"gitops-helm: explain values: HelmRelease {namespace}/{name} has no value at {args.key!r}\n"
        )
        return 1
    view = to_json if args.output == "json" else to_text
    out.write(view(header, explained, key_path))
    return 0
