"""Cache bounds: claims (charts.usage), the janitor (charts.evict), file:// dependency paths of
Git charts, the per-release maps that are pruned, and the size flag."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gitops_helm.adapters.kube import StoredRelease
from gitops_helm.charts.cache import ChartCache
from gitops_helm.charts.evict import EvictionSettings, Janitor
from gitops_helm.charts.gitchart import DependencyPathError, local_dependency_paths
from gitops_helm.charts.helmrepo import HelmRepoClient, HelmRepoSettings
from gitops_helm.charts.oci import OciClient, OciSettings
from gitops_helm.charts.usage import ChartUsage
from gitops_helm.config import ConfigError, Settings, parse_size
from gitops_helm.controller import Controller
from gitops_helm.release.observe import FirstSeen
from gitops_helm.release.reconcile import Outcome
from gitops_helm.values import WatchedObject

NOW = 1_000_000.0


def entry(root: Path, name: str, age_s: float, size: int = 10) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / name
    path.write_bytes(b"x" * size)
    os.utime(path, (NOW - age_s, NOW - age_s))
    return path


def janitor(tmp_path: Path, usage: ChartUsage, **limits: float) -> Janitor:
    return Janitor(
        usage,
        [tmp_path / "a", tmp_path / "b"],
        tmp_path / "trash",
        EvictionSettings(**limits),
        clock=lambda: NOW,
    )


def test_unused_entries_older_than_the_age_limit_go_and_claimed_ones_stay(tmp_path: Path) -> None:
    usage = ChartUsage(clock=lambda: NOW - 500)
    old_unused = entry(tmp_path / "a", "old", 100)
    young = entry(tmp_path / "a", "young", 5)
    old_claimed = entry(tmp_path / "b", "claimed", 100)
    usage.claim("ns/hr", old_claimed)
    os.utime(old_claimed, (NOW - 100, NOW - 100))
    sweep = janitor(tmp_path, usage, max_age_s=50).sweep()
    assert sweep.removed == (old_unused,)
    assert not old_unused.exists()
    assert young.exists() and old_claimed.exists()
    assert not list((tmp_path / "trash").iterdir())


def test_a_claim_counts_as_a_use_for_the_age(tmp_path: Path) -> None:
    usage = ChartUsage(clock=lambda: NOW - 10)
    path = entry(tmp_path / "a", "x", 100)
    with usage.fetching("ns/hr"):
        usage.claim("ns/hr", path)
    usage.retain(set(), since=float("inf"))  # the HelmRelease is gone: its claim with it
    assert janitor(tmp_path, usage, max_age_s=50).sweep().removed == ()
    assert path.exists()


def test_over_the_size_limit_the_least_recently_used_unclaimed_entries_go(tmp_path: Path) -> None:
    usage = ChartUsage()
    oldest = entry(tmp_path / "a", "oldest", 30, size=100)
    middle = entry(tmp_path / "a", "middle", 20, size=100)
    newest = entry(tmp_path / "b", "newest", 10, size=100)
    claimed = entry(tmp_path / "b", "claimed", 40, size=100)
    usage.claim("ns/hr", claimed)
    os.utime(claimed, (NOW - 40, NOW - 40))
    sweep = janitor(tmp_path, usage, max_age_s=3600, max_bytes=250).sweep()
    assert set(sweep.removed) == {oldest, middle}
    assert newest.exists() and claimed.exists()
    assert sweep.total_bytes == 200


def test_writers_temporary_entries_are_left_alone_until_stale(tmp_path: Path) -> None:
    fresh = entry(tmp_path / "a", ".tmp-fresh", 100)
    stale = entry(tmp_path / "a", ".tmp-stale", 2 * 24 * 3600)
    janitor(tmp_path, ChartUsage(), max_age_s=1).sweep()
    assert fresh.exists() and not stale.exists()


def test_a_successful_fetch_replaces_the_claims_a_failed_one_adds_to_them(tmp_path: Path) -> None:
    usage = ChartUsage()
    one, two, three = tmp_path / "1", tmp_path / "2", tmp_path / "3"
    with usage.fetching("ns/hr"):
        usage.claim("ns/hr", one)
    with usage.fetching("ns/hr"):
        usage.claim("ns/hr", two)
    assert usage.in_use() == {two}
    with pytest.raises(RuntimeError), usage.fetching("ns/hr"):
        usage.claim("ns/hr", three)
        raise RuntimeError("fetch failed")
    assert usage.in_use() == {two, three}


def test_retain_keeps_users_active_since_the_snapshot_and_those_fetching() -> None:
    times = iter([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0])
    usage = ChartUsage(monotonic=lambda: next(times))
    usage.claim("ns/old", Path("/x"))  # active at 1
    usage.claim("ns/new", Path("/y"))  # active at 2
    with usage.fetching("ns/busy"):  # active at 3
        assert usage.retain({"ns/kept"}, since=1.5) == ["ns/old"]
    assert usage.users() == {"ns/new", "ns/busy"}


def test_take_unused_refuses_a_claimed_path(tmp_path: Path) -> None:
    usage = ChartUsage()
    path = entry(tmp_path / "a", "x", 1)
    usage.claim("ns/hr", path)
    assert usage.take_unused(path, tmp_path / "trash") is None
    assert path.exists()
    usage.retain(set(), since=float("inf"))
    moved = usage.take_unused(path, tmp_path / "trash")
    assert moved is not None and moved.exists() and not path.exists()


# -- file:// dependencies of Git charts --------------------------------------------------------


def test_local_dependencies_are_resolved_against_the_chart_path() -> None:
    meta = b"""
apiVersion: v2
name: app
version: 1.0.0
dependencies:
  - name: lib
    repository: file://../lib
  - name: sub
    repository: "file://sub"
  - name: redis
    repository: https://charts.example.com
"""
    assert local_dependency_paths(meta, "charts/app", "charts/app/Chart.yaml") == [
        "charts/lib",
        "charts/app/sub",
    ]


def test_a_dependency_leaving_the_repository_is_refused_naming_the_file() -> None:
    meta = b"dependencies:\n- name: x\n  repository: file://../../outside\n"
    with pytest.raises(
        DependencyPathError, match=r"charts/Chart.yaml: dependencies\[0\].repository .* leaves"
    ):
        local_dependency_paths(meta, "charts", "charts/Chart.yaml")
    with pytest.raises(DependencyPathError, match="absolute"):
        local_dependency_paths(b"dependencies:\n- repository: file:///etc\n", "c", "c/requirements.yaml")


def test_a_chart_yaml_that_is_not_yaml_is_a_clear_error() -> None:
    with pytest.raises(DependencyPathError, match=r"app/Chart\.yaml"):
        local_dependency_paths(b"dependencies: [", "app", "app/Chart.yaml")


@given(
    st.lists(st.sampled_from(["..", ".", "a", "b", "c/d"]), min_size=1, max_size=6),
    st.sampled_from(["", "x", "x/y"]),
)
def test_accepted_dependency_paths_stay_inside_the_repository(parts: list[str], chart: str) -> None:
    meta = f"dependencies:\n- repository: file://{'/'.join(parts)}\n".encode()
    try:
        paths = local_dependency_paths(meta, chart, "Chart.yaml")
    except DependencyPathError:
        return
    assert all(not p.startswith("..") and not p.startswith("/") for p in paths)


# -- per-release maps ------------------------------------------------------------------------


def test_the_controller_forgets_results_failures_and_value_refs_of_deleted_helmreleases() -> None:
    controller = Controller(kube=None, reconcile=lambda obj: Outcome(), settings=Settings())  # type: ignore[arg-type]
    for key in ("ns/a", "ns/b"):
        controller.last_results[key] = Outcome()
        controller._failures[key] = 2
        controller.on_refs(key, (WatchedObject("ConfigMap", "ns", f"values-{key[-1]}"),))
    controller.forget({"ns/a"})
    assert set(controller.last_results) == {"ns/a"}
    assert set(controller._failures) == {"ns/a"}
    assert controller.refs.keys() == {"ns/a"}
    assert controller.refs.keys_for("ConfigMap", "ns", "values-b") == set()
    assert ("ConfigMap", "ns", "values-b") not in controller.refs.by_ref


def test_first_seen_forgets_a_release() -> None:
    seen = FirstSeen(lambda: NOW)
    stored = StoredRelease(
        name="r", namespace="ns", revision=1, status="pending-install", labels={}, secret_name="sh.helm.r.v1"
    )
    seen.since(stored)
    assert len(seen) == 1
    seen.forget_release("ns", "r")
    assert len(seen) == 0


def test_cache_size_flag() -> None:
    assert parse_size("4Gi") == 4 * 1024**3
    assert parse_size("500M") == 500_000_000
    assert parse_size("1024") == 1024
    with pytest.raises(ConfigError, match="--cache-max-size"):
        parse_size("lots", "--cache-max-size")


def test_repository_state_idle_longer_than_the_limit_is_forgotten(tmp_path: Path) -> None:
    now = [100.0]
    client = HelmRepoClient(HelmRepoSettings(cache_dir=tmp_path), clock=lambda: now[0])
    client._state("busy").checked_at = 100.0
    client._state("idle").checked_at = 10.0
    client._url_digests[("id", "https://h/c.tgz")] = "0" * 64  # its archive is not cached
    now[0] = 150.0
    client.forget_idle(60.0)
    assert list(client._states) == ["busy"]
    assert client._url_digests == {}
    client.close()


def test_oci_tag_digests_and_tokens_idle_longer_than_the_limit_are_forgotten(tmp_path: Path) -> None:
    oci = OciClient(OciSettings(), ChartCache(tmp_path))
    oci._digests[("h", "r", "1.0.0", "anon")] = (time.monotonic() - 1000, "sha256:" + "0" * 64)
    oci._digests[("h", "s", "1.0.0", "anon")] = (time.monotonic(), "sha256:" + "1" * 64)
    oci._tokens[("h", "r", "anon")] = "t1"
    oci._tokens[("h", "s", "anon")] = "t2"
    oci.forget_idle(500.0)
    assert list(oci._digests) == [("h", "s", "1.0.0", "anon")]
    assert list(oci._tokens) == [("h", "s", "anon")]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(st.tuples(st.integers(0, 500), st.integers(1, 50), st.booleans()), min_size=1, max_size=8),
    st.integers(0, 300),
    st.integers(0, 400),
)
def test_a_sweep_never_removes_a_claimed_entry_and_keeps_within_its_limits(
    tmp_path: Path, spec: list[tuple[int, int, bool]], max_bytes: int, max_age: int
) -> None:
    root = tmp_path / f"case-{len(list(tmp_path.iterdir()))}"
    usage = ChartUsage(clock=lambda: 0.0)  # claims stamp a time far in the past
    paths = []
    for i, (age, size, claimed) in enumerate(spec):
        path = entry(root / "a", f"e{i}", age, size)
        if claimed:
            usage.claim("ns/hr", path)
        paths.append((path, age, size, claimed))
    j = Janitor(
        usage,
        [root / "a"],
        root / "trash",
        EvictionSettings(max_age_s=max_age, max_bytes=max_bytes),
        clock=lambda: NOW,
    )
    sweep = j.sweep()
    for path, age, _size, claimed in paths:
        if claimed:
            assert path.exists()
        elif age > max_age:
            assert not path.exists()
    left = sum(size for path, _age, size, _c in paths if path.exists())
    claimed_bytes = sum(size for _p, _a, size, claimed in paths if claimed)
    assert left == sweep.total_bytes
    assert left <= max(max_bytes, claimed_bytes)
