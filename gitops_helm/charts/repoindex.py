"""Helm repository index: parsing, chart URLs, the credentials host rule, version resolution.

Place in the data flow: `helmrepo.HelmRepoClient` downloads `<repository>/index.yaml` and hands
the body to `parse_index`, which keeps only what is needed (chart name -> versions with their
URLs, digest and creation time) so a large index costs little memory once parsed. The client
then calls `resolve_in_index` (which uses `semver.select_version`) to turn `chart.version`
into one concrete version, and `chart_url` / `sends_credentials` to download it.

Pure: no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

from gitops_helm import yamlio
from gitops_helm.charts import semver
from gitops_helm.charts.auth import RepositoryAuth, origin, redact_url
from gitops_helm.charts.errors import ChartNotFoundError, IndexFormatError, VersionConstraintError

__all__ = [
    "ChartVersion",
    "RepoIndex",
    "ResolvedChart",
    "chart_url",
    "index_url",
    "parse_index",
    "resolve_in_index",
    "sends_credentials",
]


@dataclass(frozen=True, slots=True)
class ChartVersion:
    """One chart version of an index: only what resolution and download need."""

    version: str
    urls: tuple[str, ...]
    digest: str | None  # hex sha256 as the index gives it ("sha256:" prefix removed)
    created: str | None


@dataclass(frozen=True)
class RepoIndex:
    """A reduced repository index: chart name -> versions, in index order."""

    entries: Mapping[str, tuple[ChartVersion, ...]]

    def versions(self, name: str) -> tuple[str, ...]:
        return tuple(v.version for v in self.entries.get(name, ()))


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def index_limits(max_bytes: int, size: int | None = None) -> yamlio.Limits:
    """The decoder's limits for an index of `size` bytes (at most `max_bytes`, helmrepo's
    `max_index_bytes`; the largest allowed when `size` is not known).

    An index may be far larger than manifests and values; the values bound grows with the index
    that came (a value takes at least two bytes of text, "x," or "-\n", unless an alias copies it),
    so a small index cannot expand to the bound of the largest one ("billion laughs").
    """
    text = max_bytes if size is None else min(size, max_bytes)
    return yamlio.Limits(max_bytes=max_bytes, max_nodes=max(yamlio.LIMITS.max_nodes, text // 2 + 1))


def _load_document(data: bytes, max_bytes: int) -> Any:
    if data[:64].lstrip()[:1] == b"{" and len(data) <= max_bytes:
        try:
            # `helm repo index --json`: about 10x faster than YAML; versions are cut as they are
            # read (a chart version is the one object with `urls`), as the YAML path does
            return json.loads(data, object_hook=_reduced_json_object)
        except (ValueError, RecursionError):
            pass  # the YAML decoder gives the error, with its position and depth bound
    # Every scalar stays a string: `version: 1.10` stays "1.10" (not 1.1). Helm keeps the last
    # of two equal keys.
    limits = index_limits(max_bytes, len(data))
    # each version of `entries: {name: [version, ...]}` is cut to what is kept as soon as it is
    # read, so a large index never exists in memory whole
    reduce_at = (3, _reduced_version)
    return yamlio.load(data, limits=limits, unique_keys=False, strings_only=True, reduce_at=reduce_at)


_KEPT = ("version", "urls", "digest", "created")


def _reduced_json_object(item: dict[str, Any]) -> Any:
    return _reduced_version(item) if "urls" in item and "entries" not in item else item


def _reduced_version(item: Any) -> Any:
    """An index entry's version with only the fields `parse_index` reads."""
    return {key: item[key] for key in _KEPT if key in item} if isinstance(item, dict) else item


def parse_index(data: bytes, *, source: str, max_bytes: int) -> RepoIndex:
    """Parse an `index.yaml` (or JSON) body, keeping name -> (version, urls, digest, created).

    Entries without a version or URLs are skipped (as Helm does); a body that is not a mapping
    with `entries` raises `IndexFormatError`. `source` names the repository in messages;
    `max_bytes` is the largest index accepted (the decoder's limits follow it).
    """
    try:
        doc = _load_document(data, max_bytes)
    except yamlio.YAMLError as exc:
        raise IndexFormatError(f"the index of {source} is not valid YAML: {exc}") from None
    raw = doc.get("entries") if isinstance(doc, dict) else None
    if raw == "" or (raw is None and isinstance(doc, dict) and "entries" in doc):
        raw = {}  # "entries:" with nothing under it: an empty repository
    if not isinstance(raw, dict):
        raise IndexFormatError(f"the index of {source} is not a Helm repository index (no 'entries')")
    entries: dict[str, tuple[ChartVersion, ...]] = {}
    for name, items in raw.items():
        versions = []
        for item in items if isinstance(items, list) else ():
            if not isinstance(item, dict):
                continue
            version = item.get("version")
            version = str(version) if isinstance(version, int | float) else _text(version)
            urls = tuple(u for u in item.get("urls") or () if _text(u))
            if version is None or not urls:
                continue
            digest = _text(item.get("digest"))
            if digest is not None:
                digest = digest.lower().removeprefix("sha256:")
            versions.append(ChartVersion(version, urls, digest, _text(item.get("created"))))
        if versions:
            entries[str(name)] = tuple(versions)
    return RepoIndex(entries)


def _with_path(url: str, path: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def index_url(repository: str) -> str:
    """`<repository>/index.yaml`, keeping the repository URL's query string."""
    return _with_path(repository, urlsplit(repository).path.rstrip("/") + "/index.yaml")


def chart_url(repository: str, ref: str) -> str:
    """The absolute URL of a chart from an index `urls` item.

    An absolute `ref` is used as is; a relative one is resolved against the repository URL
    (as a directory) and inherits its query string when it has none (Helm does the same, for
    signed-URL repositories).
    """
    if urlsplit(ref).scheme:
        return ref
    base = _with_path(repository, urlsplit(repository).path.rstrip("/") + "/")
    resolved = urljoin(urlunsplit(urlsplit(base)._replace(query="")), ref)
    query = urlsplit(repository).query
    return f"{resolved}?{query}" if query and not urlsplit(resolved).query else resolved


def sends_credentials(repository: str, url: str, auth: RepositoryAuth | None) -> bool:
    """Helm's rule: credentials go to the repository's own origin (scheme, host, port) only,
    unless `auth.pass_credentials` is set."""
    return auth is not None and (auth.pass_credentials or origin(url) == origin(repository))


@dataclass(frozen=True)
class ResolvedChart:
    """The concrete chart version a constraint resolved to."""

    repository: str
    name: str
    version: str
    url: str  # absolute download URL
    digest: str | None  # hex sha256 from the index, if it has one


def _available(versions: tuple[str, ...], shown: int = 20) -> str:
    """The versions for a "not found" message: ascending, the newest `shown` of them."""

    def order(text: str) -> tuple[bool, semver.Version, str]:
        try:
            return True, semver.parse_version(text), text
        except semver.VersionError:
            return False, semver.Version(0, 0, 0), text

    ordered = sorted(set(versions), key=order)
    if len(ordered) <= shown:
        return ", ".join(ordered)
    return f"{', '.join(ordered[-shown:])} (and {len(ordered) - shown} older)"


def resolve_in_index(index: RepoIndex, repository: str, name: str, constraint: str) -> ResolvedChart:
    """Pick the version of `name` that Helm would install for `constraint`."""
    where = redact_url(repository)
    versions = index.entries.get(name)
    if not versions:
        raise ChartNotFoundError(
            f'chart "{name}" not found in {where}; check spec.chart.name (and that this is the '
            "repository that publishes it)"
        )
    try:
        chosen = semver.select_version(constraint, (v.version for v in versions))
    except semver.ConstraintError as exc:
        raise VersionConstraintError(f'chart "{name}" in {where}: {exc}') from None
    if chosen is None:
        raise ChartNotFoundError(
            f'chart "{name}" version "{constraint}" not found in {where}: '
            f"available {_available(index.versions(name))}; check spec.chart.version"
        )
    entry = next(v for v in versions if v.version == chosen)
    return ResolvedChart(repository, name, chosen, chart_url(repository, entry.urls[0]), entry.digest)
