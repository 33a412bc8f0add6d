"""``gitops-helm render PATH``: every HelmRelease under a directory rendered to manifests, offline.

Place in the flow: ``cli`` parses the flags and calls :func:`render`. Nothing here talks to a
Kubernetes API server: the HelmReleases and the ConfigMaps/Secrets their values name are read from
the manifests under PATH with the Git sync's own walk (``sync.discover``); charts come from the
agent's own chart sources (``charts.ChartResolver``: Helm repositories, OCI registries, Git, helm
downloader plugins, with their caches under ``--work-dir``); values are composed by the agent's
own pipeline (``values.compose_values`` over ``release.values_reader.ClusterValuesReader``, reading
objects through ``release.manifest_objects.ManifestObjects``); ``helm template`` renders
(``adapters.helm.Helm.template``).

A ``chart.git`` that names a remote of the git work tree PATH is in is taken from that work tree
on disk (its files as they are now, uncommitted changes included: a preview of what a commit
would deploy), so a chart kept beside its HelmRelease needs no fetch; any other ``chart.git`` is
fetched as the agent fetches it.

Output: one YAML stream on stdout, or one file per HelmRelease under ``--output-dir``
(``DIR/NAMESPACE/NAME.yaml``); every document starts with ``# Source: NAMESPACE/NAME: TEMPLATE``.
Problems go to stderr, each naming the HelmRelease (and its file) and the step. A HelmRelease
that fails does not stop the others; the exit status is 1 when any failed (or a manifest could
not be read), 0 otherwise, 2 for bad flags.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from gitops_helm import values as values_mod
from gitops_helm.adapters.git import GitSettings, WorkTree, find_work_tree, same_repository_url
from gitops_helm.adapters.helm import Helm, HelmError, HelmSettings, TemplateOptions
from gitops_helm.adapters.http import HTTPClient
from gitops_helm.agent import build_oneshot_resolver, prepare_work_dir
from gitops_helm.api import GitChartSource, HelmRelease, SpecError, parse_helmrelease
from gitops_helm.charts.artifact import FetchedChart
from gitops_helm.charts.errors import ChartError, ChartNotFoundError
from gitops_helm.charts.gitchart import (
    DependencyPathError,
    chart_version,
    local_dependency_paths,
)
from gitops_helm.charts.resolver import ChartResolver
from gitops_helm.config import ConfigError, Settings
from gitops_helm.errors import GitopsHelmError
from gitops_helm.release.identity import ReleaseRef
from gitops_helm.release.manifest_objects import DeclaredObject, ManifestObjects
from gitops_helm.release.values_reader import (
    ClusterValuesReader,
    ObjectDataReader,
    url_destinations,
    url_limits,
    values_spec,
)
from gitops_helm.sync.discover import discover
from gitops_helm.sync.model import Discovery, Manifest

__all__ = ["ReleaseRenderer", "RenderOptions", "label_sources", "render"]

_SOURCE_LINE = re.compile(r"^# Source: (?P<template>.*)$")
_MAX_LOCAL_DEPENDENCIES = 32
# A Kubernetes object name (DNS-1123 subdomain). The API server enforces it on a cluster; offline
# nothing does, and ``--output-dir`` makes the name a path (``../x`` would leave the directory).
_OBJECT_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


@dataclass(frozen=True)
class RenderOptions:
    """What ``render`` prints and how helm renders; the chart and values settings are in
    :class:`Settings` (the same as the agent's)."""

    path: Path
    output_dir: Path | None = None
    include_crds: bool = False
    kube_version: str | None = None
    api_versions: tuple[str, ...] = ()
    # progress lines on stderr only from this many HelmReleases on
    progress_from: int = 5


@dataclass
class _Outcome:
    rendered: int = 0
    failed: list[str] = field(default_factory=list)


def label_sources(rendered: str, release_key: str) -> str:
    """helm's output with every document's ``# Source: TEMPLATE`` comment turned into
    ``# Source: NAMESPACE/NAME: TEMPLATE`` (one is added to a document without any), documents
    separated by ``---``; empty documents are dropped."""
    documents: list[str] = []
    for chunk in re.split(r"(?m)^---[ \t]*$", rendered):
        lines = chunk.strip("\n").splitlines()
        if not any(line.strip() and not line.lstrip().startswith("#") for line in lines):
            continue
        for i, line in enumerate(lines):
            match = _SOURCE_LINE.match(line)
            if match:
                lines[i] = f"# Source: {release_key}: {match['template']}"
                break
        else:
            lines.insert(0, f"# Source: {release_key}: (unnamed)")
        documents.append("\n".join(lines) + "\n")
    return "".join(f"---\n{doc}" for doc in documents)


class _Progress:
    """A counter on a terminal, plain lines otherwise; nothing for a few HelmReleases."""

    def __init__(self, stream: TextIO, total: int, shown: bool) -> None:
        self.stream = stream
        self.total = total
        self.shown = shown
        self.terminal = shown and stream.isatty()
        self.done = 0

    def step(self, key: str) -> None:
        self.done += 1
        if not self.shown:
            return
        if self.terminal:
            self.stream.write(f"\r\x1b[Krendering {self.done}/{self.total}: {key}")
        else:
            self.stream.write(f"rendering {self.done}/{self.total}: {key}\n")
        self.stream.flush()

    def say(self, line: str) -> None:
        """A message line that must not be glued to the counter."""
        if self.terminal:
            self.stream.write("\r\x1b[K")
        self.stream.write(line + "\n")
        self.stream.flush()

    def finish(self) -> None:
        if self.terminal:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


def _discover(path: Path) -> tuple[Path, Discovery]:
    if path.is_file():
        return path.parent, discover(path.parent, [path.name])
    if not path.is_dir():
        raise ConfigError(f"render: {path}: no such file or directory")
    return path, discover(path)


def _in_work_tree(source: GitChartSource, worktree: WorkTree | None) -> bool:
    return worktree is not None and any(same_repository_url(source.git, u) for u in worktree.remote_urls)


class ReleaseRenderer:
    """Fetches a HelmRelease's chart, composes its values and renders it (``render``; ``preview``
    reuses it against the cluster, with the Kubernetes adapter as ``objects``)."""

    def __init__(self, settings: Settings, options: RenderOptions, objects: ObjectDataReader) -> None:
        self.settings = settings
        self.options = options
        self.objects = objects
        work = settings.work_dir
        prepare_work_dir(work)
        self.scratch = work / "render"
        self.helm = Helm(HelmSettings(binary=settings.helm_bin, home=work / "helm"))
        self.http = HTTPClient()
        self.limits = url_limits(settings)

    def build_resolver(self, releases: list[tuple[Manifest, HelmRelease]]) -> ChartResolver:
        return build_oneshot_resolver(
            self.settings, self.objects, self.helm, self.http, (hr for _manifest, hr in releases)
        )

    def close(self) -> None:
        self.http.close()

    # -- one HelmRelease --------------------------------------------------------------------------

    def chart(self, resolver: ChartResolver, hr: HelmRelease, worktree: WorkTree | None) -> FetchedChart:
        source = hr.spec.chart
        if isinstance(source, GitChartSource) and _in_work_tree(source, worktree):
            assert worktree is not None  # noqa: S101 - _in_work_tree says so
            return self._worktree_chart(worktree, source)
        return resolver.fetch(hr.namespace, hr.name, source, secrets=self.objects)

    def _worktree_chart(self, worktree: WorkTree, source: GitChartSource) -> FetchedChart:
        """``chart.path`` (and its ``file://`` dependencies) copied from the work tree, so that
        a dependency update never writes into the person's files."""
        path = source.path.strip("/")
        root = worktree.root.resolve()
        paths: list[str] = []
        todo = [path]
        while todo:
            current = todo.pop(0)
            if current in paths:
                continue
            directory = (root / current).resolve()
            if directory != root and root not in directory.parents:
                raise ChartNotFoundError(f"chart.path {current!r} leaves the work tree {root}")
            if not directory.is_dir():
                if current == path:
                    raise ChartNotFoundError(
                        f"chart.git {source.git}: chart.path {path!r}: no such directory in the work "
                        f"tree {root}"
                    )
                continue  # a missing dependency: helm dependency update names it
            paths.append(current)
            if len(paths) > _MAX_LOCAL_DEPENDENCIES:
                raise ChartNotFoundError(f"chart.path {path!r}: too many file:// dependencies")
            for name in ("Chart.yaml", "requirements.yaml"):
                meta = directory / name
                if meta.is_file():
                    try:
                        todo += local_dependency_paths(meta.read_bytes(), current, f"{current}/{name}")
                    except DependencyPathError as exc:
                        raise ChartNotFoundError(f"chart.git {source.git}: {exc}") from None
        key = hashlib.sha256("\0".join([str(root), *paths]).encode()).hexdigest()[:24]
        tree = self.scratch / key
        shutil.rmtree(tree, ignore_errors=True)
        for current in paths:
            shutil.copytree(root / current, tree / current, symlinks=True, dirs_exist_ok=True)
        chart_dir = tree / path
        if not (chart_dir / "Chart.yaml").is_file():
            raise ChartNotFoundError(f"chart.git {source.git}: no Chart.yaml under {path!r} in {root}")
        wants_deps = self.settings.update_chart_deps and not source.skip_dep_update
        if wants_deps and self.helm.dependency_build_needed(chart_dir):
            try:
                self.helm.dependency_update(chart_dir)
            except HelmError as exc:
                raise ChartNotFoundError(f"helm dependency update of {path}: {exc.message}") from None
        version = chart_version(chart_dir)
        return FetchedChart(
            name=chart_dir.name,
            version=version,
            revision=f"work tree {root}",
            digest="",
            path=chart_dir,
            chart_dir=chart_dir,
        )

    def values_reader(self, chart: FetchedChart) -> ClusterValuesReader:
        """Where values are read from for ``chart``: the objects, URLs, the chart's files."""
        return ClusterValuesReader(
            self.objects, chart.chart_dir, self.http, self.limits, url_destinations(self.settings)
        )

    def values(
        self, hr: HelmRelease, chart: FetchedChart, reader: values_mod.ValuesSourceReader | None = None
    ) -> values_mod.ComposedValues:
        return values_mod.compose_values(
            values_spec(hr.namespace, hr.spec),
            reader or self.values_reader(chart),
            allow_cross_namespace=self.settings.allow_cross_namespace_refs,
        )

    def template(
        self,
        hr: HelmRelease,
        chart: FetchedChart,
        note: Callable[[str], None],
        composed: values_mod.ComposedValues | None = None,
    ) -> str:
        """``hr`` rendered with ``composed`` (composed here when not given)."""
        composed = composed or self.values(hr, chart)
        for skipped in composed.skipped:
            note(f"note: HelmRelease {hr.key}: optional {skipped}: left out")
        ref = ReleaseRef.of(hr)
        options = TemplateOptions(
            include_crds=self.options.include_crds and not hr.spec.skip_crds,
            kube_version=self.options.kube_version,
            api_versions=self.options.api_versions,
        )
        out = self.helm.template(
            ref.release_name, ref.target_namespace, str(chart.path), composed.values, options
        )
        return label_sources(out, hr.key)


def _missing_hint(exc: values_mod.ValuesError) -> str:
    text = str(exc)
    if text.endswith(("ConfigMap not found", "Secret not found")):
        return (
            f"{text} among the manifests under PATH (render reads no cluster; declare it there, "
            "or mark the reference optional: true if it may be absent)"
        )
    return text


def _write_file(output_dir: Path, hr: HelmRelease, text: str | None) -> Path:
    target = output_dir / hr.namespace / f"{hr.name}.yaml"
    if target.resolve().parent != (output_dir / hr.namespace).resolve():  # names are checked before
        raise ConfigError(f"render: {hr.key}: {target} would leave {output_dir}")
    if text is None:  # failed: no stale file from an earlier run may pass for this one's output
        target.unlink(missing_ok=True)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(text)
    tmp.replace(target)
    return target


@contextmanager
def _closing(renderer: ReleaseRenderer) -> Iterator[ReleaseRenderer]:
    try:
        yield renderer
    finally:
        renderer.close()


def render(
    settings: Settings, options: RenderOptions, out: TextIO = sys.stdout, err: TextIO = sys.stderr
) -> int:
    """Render every HelmRelease under ``options.path`` (see the module docstring); the exit status."""
    root, found = _discover(options.path)
    failed_manifests = [str(e) for e in found.errors]
    for problem in failed_manifests:
        err.write(f"error: {problem}\n")
    default_ns = settings.sync.default_namespace
    objects = ManifestObjects(
        (DeclaredObject(m.body, str(m.origin)) for m in found.objects if not m.is_helmrelease), default_ns
    )
    outcome = _Outcome()
    releases: list[tuple[Manifest, HelmRelease]] = []
    for manifest in found.objects:
        if not manifest.is_helmrelease:
            continue
        try:
            hr = parse_helmrelease(manifest.body, default_namespace=default_ns)
        except SpecError as exc:
            outcome.failed.append(f"{manifest.origin}: HelmRelease {exc}")
            err.write(f"error: {manifest.origin}: HelmRelease {exc}\n")
            continue
        if len(hr.name) > 253 or not _OBJECT_NAME.fullmatch(hr.name):
            problem = (
                f"{manifest.origin}: HelmRelease name {hr.name!r} is not a valid Kubernetes object name "
                "(lowercase letters, digits, '-' and '.', at most 253 characters)"
            )
            outcome.failed.append(problem)
            err.write(f"error: {problem}\n")
            continue
        releases.append((manifest, hr))
    if not releases:
        if not outcome.failed:
            err.write(f"no HelmRelease found under {options.path}\n")
        return 1 if outcome.failed or failed_manifests else 0

    worktree = find_work_tree(root, GitSettings(timeout_s=settings.git.timeout_s))
    progress = _Progress(err, len(releases), len(releases) >= options.progress_from)
    with _closing(ReleaseRenderer(settings, options, objects)) as renderer:
        resolver = renderer.build_resolver(releases)
        for manifest, hr in releases:
            progress.step(hr.key)
            where = f"{manifest.origin}: HelmRelease {hr.key}"
            text: str | None = None
            try:
                chart = renderer.chart(resolver, hr, worktree)
                text = renderer.template(hr, chart, progress.say)
            except ChartError as exc:
                outcome.failed.append(f"{where}: chart: {exc}")
            except values_mod.ValuesError as exc:
                outcome.failed.append(f"{where}: values: {_missing_hint(exc)}")
            except HelmError as exc:
                outcome.failed.append(f"{where}: {exc}")
            except GitopsHelmError as exc:  # any other classified failure of this one release
                outcome.failed.append(f"{where}: {exc}")
            if text is None:
                progress.say(f"error: {outcome.failed[-1]}")
            else:
                outcome.rendered += 1
            if options.output_dir is not None:
                _write_file(options.output_dir, hr, text)
            elif text is not None:
                out.write(text)
                out.flush()
    progress.finish()
    if outcome.failed or failed_manifests:
        err.write(f"{outcome.rendered} rendered, {len(outcome.failed)} failed\n")
        return 1
    if options.output_dir is not None:
        err.write(f"{outcome.rendered} rendered into {options.output_dir}\n")
    return 0
