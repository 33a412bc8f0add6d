"""Which HelmReleases a changed Helm repository index upgrades: the chart-source poll.

Place in the flow: ``charts.resolver`` records here, after every chart it fetches from a Helm
repository, what the HelmRelease asked for (repository, chart name, version or range), with which
credentials, and what it got (version and archive digest): a :class:`RepoUse`. The agent calls
:meth:`RepositoryPoll.poll` every ``--chart-poll-interval``; it asks each repository once per
credential identity for its index (``HelmRepoClient.index(refresh=True)``: a conditional request,
so an unchanged index costs one 304 and no parse) and :func:`changed_uses` (pure) names the
HelmReleases whose version constraint now resolves to another chart. Only those are enqueued, and
the reconcile that follows finds the index fresh (no second request).

Tenancy: a use is polled with the credentials of that HelmRelease's own last fetch (its
``chartPullSecret``, read as its identity, or the operator's repositories file), and the index
client keys its state per repository *and* credentials, so no HelmRelease is enqueued on what
another identity's credentials let the agent see. A poll that fails (the repository is down, the
credentials were refused) enqueues nothing: the resync still covers the release, and its
reconcile reports the error.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Protocol

from gitops_helm import log as logging
from gitops_helm.charts.auth import RepositoryAuth, redact_url
from gitops_helm.charts.errors import ChartError
from gitops_helm.charts.repoindex import RepoIndex, resolve_in_index

__all__ = ["RepoUse", "RepositoryPoll", "changed_uses"]

log = logging.get(__name__)


@dataclass(frozen=True)
class RepoUse:
    """What one HelmRelease's last fetch from a Helm repository asked for and got."""

    repository: str
    name: str
    constraint: str  # spec.chart.version: exact or a semver range
    version: str  # the version it resolved to
    digest: str  # "sha256:<hex>" of the archive it got
    auth: RepositoryAuth | None = None  # the credentials it was fetched with


class RepositoryIndexes(Protocol):
    def index(
        self, repository: str, auth: RepositoryAuth | None = None, *, refresh: bool = False
    ) -> RepoIndex: ...

    def identity_key(self, repository: str, auth: RepositoryAuth | None = None) -> str: ...


def changed_uses(uses: Mapping[str, RepoUse], index: RepoIndex) -> dict[str, RepoUse]:
    """The HelmReleases (key -> their use as it is now) whose constraint resolves in ``index`` to
    another chart than their last fetch got: another version, or the same version with another
    digest (republished). A constraint that resolves to nothing (the chart or version was removed)
    is not a change: the release keeps running what it has, and the next resync reports it."""
    changed: dict[str, RepoUse] = {}
    for key, use in uses.items():
        try:
            chosen = resolve_in_index(index, use.repository, use.name, use.constraint)
        except ChartError:
            continue
        digest = f"sha256:{chosen.digest}" if chosen.digest else None
        if chosen.version != use.version or (digest is not None and digest != use.digest):
            changed[key] = replace(use, version=chosen.version, digest=digest or use.digest)
    return changed


class RepositoryPoll:
    """The Helm repository uses of the HelmReleases, and the poll over them. Thread-safe."""

    def __init__(self, indexes: RepositoryIndexes) -> None:
        self._indexes = indexes
        self._lock = threading.Lock()
        self._uses: dict[str, RepoUse] = {}  # HelmRelease key -> its last fetch
        self.polls = 0  # completed polls (for tests and benchmarks: "a poll ran since")

    def record(self, key: str, use: RepoUse) -> None:
        with self._lock:
            self._uses[key] = use

    def drop(self, key: str) -> None:
        """``key`` no longer fetches from a Helm repository (its chart source changed kind)."""
        with self._lock:
            self._uses.pop(key, None)

    def uses(self) -> dict[str, RepoUse]:
        with self._lock:
            return dict(self._uses)

    def forget(self, keys: Iterable[str]) -> None:
        """Keep only the uses of the HelmReleases ``keys`` (the others were deleted or moved)."""
        keep = set(keys)
        with self._lock:
            for gone in set(self._uses) - keep:
                del self._uses[gone]

    def poll(self, keys: Iterable[str]) -> list[str]:
        """One conditional index request per repository and identity used by ``keys``; the keys
        whose chart would change, each named once per change (its use is updated at once, so the
        next poll does not name it again before its reconcile has run)."""
        self.forget(keys)
        groups: dict[str, dict[str, RepoUse]] = {}
        for key, use in self.uses().items():
            try:
                identity = self._indexes.identity_key(use.repository, use.auth)
            except ChartError:
                continue
            groups.setdefault(identity, {})[key] = use
        changed: list[str] = []
        for uses in groups.values():
            first = next(iter(uses.values()))
            try:
                index = self._indexes.index(first.repository, first.auth, refresh=True)
            except ChartError as exc:
                shown = redact_url(first.repository)
                log.debug("chart repository poll failed", repository=shown, error=str(exc))
                continue
            for key, new in changed_uses(uses, index).items():
                with self._lock:
                    if self._uses.get(key) != uses[key]:
                        continue  # a reconcile fetched meanwhile: it has the chart already
                    self._uses[key] = new
                changed.append(key)
        with self._lock:
            self.polls += 1
        return sorted(changed)
