"""The chart-source poll of Helm repositories (``charts.repopoll``): which HelmReleases a new
index upgrades, one request per repository and identity, and ``--chart-poll-interval``; and the
Git URL comparison that ties a Git chart to the synced config repository."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gitops_helm.api import RepoChartSource
from gitops_helm.charts.auth import RepositoryAuth
from gitops_helm.charts.cache import ChartCache
from gitops_helm.charts.errors import AuthConfigError, RepositoryUnavailableError
from gitops_helm.charts.gitchart import same_repository
from gitops_helm.charts.repoindex import ChartVersion, RepoIndex
from gitops_helm.charts.repopoll import RepositoryPoll, RepoUse, changed_uses
from gitops_helm.charts.resolver import ChartResolver
from gitops_helm.config import Settings, add_common_flags, add_run_flags, settings_from_args

REPO = "https://charts.example.test/stable"
HEX = {v: f"{i:064x}" for i, v in enumerate(["1.0.0", "1.0.1", "1.1.0", "2.0.0"], start=1)}


def index(*versions: str, digests: dict[str, str | None] | None = None) -> RepoIndex:
    digests = HEX if digests is None else digests
    return RepoIndex(
        {"app": tuple(ChartVersion(v, (f"app-{v}.tgz",), digests.get(v), None) for v in versions)}
    )


def use(constraint: str, version: str, auth: RepositoryAuth | None = None) -> RepoUse:
    return RepoUse(REPO, "app", constraint, version, f"sha256:{HEX[version]}", auth)


def test_a_range_that_now_resolves_to_a_newer_version_is_named_with_its_new_use() -> None:
    uses = {"ns/a": use("~1.0.0", "1.0.0"), "ns/b": use("^2", "2.0.0"), "ns/c": use("1.0.0", "1.0.0")}
    changed = changed_uses(uses, index("1.0.0", "1.0.1", "2.0.0"))
    assert changed == {"ns/a": use("~1.0.0", "1.0.1")}


def test_a_version_outside_the_range_or_an_unchanged_index_names_nothing() -> None:
    uses = {"ns/a": use("~1.0.0", "1.0.0")}
    assert changed_uses(uses, index("1.0.0")) == {}
    assert changed_uses(uses, index("1.0.0", "1.1.0", "2.0.0")) == {}


def test_a_republished_version_with_another_digest_is_a_change() -> None:
    uses = {"ns/a": use("1.0.0", "1.0.0")}
    republished = index("1.0.0", digests={"1.0.0": "f" * 64})
    assert changed_uses(uses, republished)["ns/a"].digest == "sha256:" + "f" * 64
    # an index without digests cannot tell a republished archive: the version decides
    assert changed_uses(uses, index("1.0.0", digests={})) == {}


def test_a_removed_chart_or_version_is_not_a_change() -> None:
    uses = {"ns/a": use("~1.0.0", "1.0.1"), "ns/b": use("1.0.0", "1.0.0")}
    assert changed_uses(uses, index("2.0.0")) == {}
    assert changed_uses(uses, RepoIndex({})) == {}


@given(
    published=st.sets(st.sampled_from(sorted(HEX)), min_size=1),
    constraint=st.sampled_from(["~1.0.0", "^1", ">=1.0.1 <2", "1.1.0", "*", "^2"]),
)
def test_a_use_resolved_against_the_same_index_never_changes(published: set[str], constraint: str) -> None:
    """Whatever a fetch got from an index, polling that same index names nothing; polling again
    with the use as the poll left it names nothing either (each change is named once)."""
    idx = index(*sorted(published))
    anything = {"ns/x": use(constraint, next(iter(HEX)))}
    after = {**anything, **changed_uses(anything, idx)}
    assert changed_uses(after, idx) == {}


class Indexes:
    """The index side of ``HelmRepoClient`` over in-memory indexes: which requests were made."""

    def __init__(self, indexes: dict[str, RepoIndex]) -> None:
        self.indexes = indexes
        self.requests: list[tuple[str, str]] = []
        self.down: set[str] = set()

    def identity_key(self, repository: str, auth: RepositoryAuth | None = None) -> str:
        return f"{repository} as {auth.username if auth else None}"

    def index(
        self, repository: str, auth: RepositoryAuth | None = None, *, refresh: bool = False
    ) -> RepoIndex:
        assert refresh, "a poll must not use the index as the last reconcile left it"
        self.requests.append((repository, auth.username if auth else ""))
        if repository in self.down:
            raise RepositoryUnavailableError(f"{repository}: HTTP 503")
        return self.indexes[repository]


def test_one_request_per_repository_and_identity_and_each_change_named_once() -> None:
    other = "https://other.example.test/charts"
    alice = RepositoryAuth(username="alice", password="pw")
    indexes = Indexes({REPO: index("1.0.0"), other: RepoIndex({})})
    poll = RepositoryPoll(indexes)
    poll.record("ns/a", use("~1.0.0", "1.0.0"))
    poll.record("ns/b", use("~1.0.0", "1.0.0"))
    poll.record("ns/c", use("~1.0.0", "1.0.0", alice))
    poll.record("ns/d", RepoUse(other, "app", "*", "1.0.0", "sha256:" + HEX["1.0.0"]))
    keys = {"ns/a", "ns/b", "ns/c", "ns/d"}

    assert poll.poll(keys) == []
    assert sorted(indexes.requests) == [(REPO, ""), (REPO, "alice"), (other, "")]

    indexes.indexes[REPO] = index("1.0.0", "1.0.1")
    assert poll.poll(keys) == ["ns/a", "ns/b", "ns/c"]
    assert poll.poll(keys) == [], "a change is named once, not at every poll until the reconcile"
    assert poll.polls == 3


def test_deleted_releases_are_forgotten_and_a_failed_request_names_nothing() -> None:
    indexes = Indexes({REPO: index("1.0.0", "1.0.1")})
    poll = RepositoryPoll(indexes)
    poll.record("ns/a", use("~1.0.0", "1.0.0"))
    poll.record("ns/gone", use("~1.0.0", "1.0.0"))
    indexes.down.add(REPO)
    assert poll.poll({"ns/a"}) == []
    assert set(poll.uses()) == {"ns/a"}
    indexes.down.clear()
    assert poll.poll({"ns/a"}) == ["ns/a"]
    poll.drop("ns/a")  # its chart source is now Git or OCI
    assert poll.poll({"ns/a"}) == []


def test_a_reconcile_that_fetched_meanwhile_wins_over_the_poll() -> None:
    indexes = Indexes({REPO: index("1.0.0", "1.0.1")})
    poll = RepositoryPoll(indexes)
    poll.record("ns/a", use("~1.0.0", "1.0.0"))
    real_index = indexes.index

    def index_while_reconciling(
        repository: str, auth: RepositoryAuth | None = None, *, refresh: bool = False
    ) -> RepoIndex:
        poll.record("ns/a", use("~1.0.0", "1.0.1"))  # a reconcile fetched the new chart
        return real_index(repository, auth, refresh=refresh)

    indexes.index = index_while_reconciling  # type: ignore[method-assign]
    assert poll.poll({"ns/a"}) == []


def settings(*argv: str, environ: dict[str, str] | None = None) -> Settings:
    parser = argparse.ArgumentParser()
    add_common_flags(parser)
    add_run_flags(parser)
    return settings_from_args(parser.parse_args(list(argv)), environ or {})


def test_chart_poll_interval_flag_environment_and_off() -> None:
    assert settings().chart_poll_interval_s == 60.0
    assert settings("--chart-poll-interval", "15s").chart_poll_interval_s == 15.0
    assert settings(environ={"GITOPS_HELM_CHART_POLL_INTERVAL": "2m"}).chart_poll_interval_s == 120.0
    assert settings("--chart-poll-interval", "0s").chart_poll_interval_s == 0.0


def test_same_repository_ignores_what_does_not_name_another_repository() -> None:
    url = "https://Git.Example.test/team/config.git"
    assert same_repository(url, "https://git.example.test/team/config")
    assert same_repository(url, "https://git.example.test/team/config.git/")
    assert not same_repository(url, "https://git.example.test/team/other.git")
    assert not same_repository(url, "https://git.example.test/Team/config.git")  # paths keep case
    assert not same_repository(url, "ssh://git@git.example.test/team/config.git")
    assert same_repository("git@host:team/config.git", "git@host:team/config")


class NoSecrets:
    """A HelmRelease's identity that can no longer read its chartPullSecret (deleted or refused)."""

    def get_secret_data(self, namespace: str, name: str) -> None:
        return None


def test_a_failed_fetch_forgets_the_last_use_and_its_credentials(tmp_path: Path) -> None:
    """The poll must not go on sending a Secret's credentials after the HelmRelease's own
    identity could no longer read it (nor enqueue it on what they show)."""
    alice = RepositoryAuth(username="alice", password="pw")
    indexes: Any = Indexes({REPO: index("1.0.0", "1.0.1")})
    helm: Any = object()
    resolver = ChartResolver(NoSecrets(), helm, indexes, object(), ChartCache(tmp_path))  # type: ignore[arg-type]
    resolver.repo_poll.record("ns/a", use("~1.0.0", "1.0.0", alice))
    source = RepoChartSource(REPO, "app", "~1.0.0", chart_pull_secret="creds")
    with pytest.raises(AuthConfigError):
        resolver.fetch("ns", "a", source)
    assert resolver.repo_poll.uses() == {}
    assert resolver.repo_poll.poll({"ns/a"}) == []
    assert indexes.requests == [], "a request with the credentials of a Secret it cannot read"
