"""Disk and memory stay bounded (issue #8 item 10), on the real environment.

* Commits outside a Git chart's path reuse its export: 50 of them leave one export on disk and
  the release is not upgraded.
* The caches of a deleted HelmRelease (Git mirror and export, chart archive, unpacked chart,
  repository index) are removed after the age limit, while those a current HelmRelease uses
  stay, and the agent forgets the deleted HelmRelease in its in-memory maps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gitops_helm.adapters.helm import Helm, HelmSettings
from gitops_helm.api import GitChartSource
from gitops_helm.charts.errors import ChartNotFoundError
from gitops_helm.charts.gitchart import GitCharts, GitChartSettings
from gitops_helm.config import CacheSettings, GitSourceSettings
from tests.conftest import Env
from tests.integration.reconcile_helpers import (
    GitRepo,
    apply,
    hr_manifest,
    latest_revision,
    publish,
    release_secrets,
    status,
    unique_name,
    wait_ready,
)


def entries(directory: Path) -> list[str]:
    """What a cache directory holds (writers' temporary names start with a dot)."""
    if not directory.is_dir():
        return []
    return sorted(p.name for p in directory.iterdir() if not p.name.startswith("."))


def commit(repo: GitRepo, path: str, text: str) -> None:
    repo.write(path, text)
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", f"docs: {text}")


def push(repo: GitRepo) -> str:
    repo.git("push", "-q", repo.http_url, "HEAD:refs/heads/master")
    return repo.git("rev-parse", "HEAD").strip()


def test_fifty_commits_outside_the_chart_path_leave_one_export(
    env: Env, namespace: str, start_agent: Any, tmp_path: Path
) -> None:
    # The mirror is fetched again on every reconcile (refresh interval below the test's pace).
    agent = start_agent(namespace, env["HELM_BIN"], git=GitSourceSettings(poll_interval_s=0.2))
    repo = GitRepo(env, tmp_path)
    repo.add_chart("charts/hello", message="one-export")
    repo.write("docs/notes.txt", "start")
    first = repo.commit_and_push("chart")
    apply(
        env,
        hr_manifest("bounded", namespace, {"git": repo.http_url, "ref": "master", "path": "charts/hello"}),
    )
    wait_ready(agent, "bounded", namespace)
    assert status(agent, "bounded", namespace)["revision"] == first
    key = f"{namespace}/bounded"

    # 50 commits outside the chart path, pushed 5 at a time; the agent reconciles each push.
    for batch in range(10):
        for i in range(5):
            commit(repo, "docs/notes.txt", f"note {batch}.{i}")
        head = push(repo)

        def at_head(head: str = head) -> bool:
            agent.resync(key)
            return bool(status(agent, "bounded", namespace).get("revision") == head)

        agent.wait_for(f"the agent to fetch {head[:12]}", at_head)

    exports = entries(agent.settings.work_dir / "gitcharts" / "exports")
    assert len(exports) == 1, exports
    assert latest_revision(env, namespace, "bounded") == (1, "deployed")
    assert len(release_secrets(env, namespace, "bounded")) == 1


def test_caches_of_a_deleted_helmrelease_are_evicted_and_those_in_use_kept(
    env: Env, namespace: str, start_agent: Any, tmp_path: Path
) -> None:
    agent = start_agent(
        namespace,
        env["HELM_BIN"],
        cache=CacheSettings(max_age_s=1.0, sweep_interval_s=0.5),
        git=GitSourceSettings(poll_interval_s=0.5),
    )
    work = agent.settings.work_dir
    gone_repo, kept_repo = GitRepo(env, tmp_path), GitRepo(env, tmp_path)
    for repo in (gone_repo, kept_repo):
        repo.add_chart("hello", message=repo.name)
        repo.commit_and_push("chart")
    chart_name = publish(tmp_path, unique_name("evict"))
    apply(
        env, hr_manifest("gone-git", namespace, {"git": gone_repo.http_url, "ref": "master", "path": "hello"})
    )
    apply(
        env, hr_manifest("kept-git", namespace, {"git": kept_repo.http_url, "ref": "master", "path": "hello"})
    )
    chart = {"repository": env["TESTENV_CHARTS"], "name": chart_name, "version": "0.1.0"}
    apply(env, hr_manifest("gone-repo", namespace, chart))
    for name in ("gone-git", "kept-git", "gone-repo"):
        wait_ready(agent, name, namespace)
    assert len(entries(work / "gitcharts" / "mirrors")) == 2
    assert len(entries(work / "gitcharts" / "exports")) == 2
    assert len(entries(work / "cache" / "charts" / "sha256")) == 1
    assert len(entries(work / "cache" / "charts" / "unpacked")) == 1
    assert entries(work / "cache" / "index")
    # In use for much longer than the age limit: nothing is removed.
    agent.wait_for("three sweeps", lambda: agent.agent.janitor_sweeps >= 3)
    assert len(entries(work / "gitcharts" / "exports")) == 2
    assert len(entries(work / "cache" / "charts" / "sha256")) == 1

    exports = work / "gitcharts" / "exports"
    kept_export = next(
        e for e in entries(exports) if kept_repo.name in (exports / e / "tree/hello/values.yaml").read_text()
    )
    env.kubectl("delete", "helmrelease", "gone-git", "gone-repo", "-n", namespace, "--timeout=90s")

    def evicted() -> bool:
        return (
            len(entries(work / "gitcharts" / "mirrors")) == 1
            and entries(work / "gitcharts" / "exports") == [kept_export]
            and not entries(work / "cache" / "charts" / "sha256")
            and not entries(work / "cache" / "charts" / "unpacked")
            and not entries(work / "cache" / "index")
        )

    agent.wait_for("the deleted HelmReleases' caches to be evicted", evicted)
    # The release still using its export and mirror is unaffected: a reconcile needs no new export.
    agent.resync(f"{namespace}/kept-git")
    assert entries(work / "gitcharts" / "exports") == [kept_export]
    assert latest_revision(env, namespace, "kept-git") == (1, "deployed")

    # The in-memory maps forgot the deleted HelmReleases.
    running = agent.agent
    for name in ("gone-git", "gone-repo"):
        key = f"{namespace}/{name}"
        assert key not in running.usage.users()
        assert key not in running.controller.last_results
        assert key not in running.git_charts.users()
    assert f"{namespace}/kept-git" in running.git_charts.users()
    assert f"{namespace}/kept-git" in running.usage.users()


def git_charts(env: Env, tmp_path: Path) -> GitCharts:
    helm = Helm(HelmSettings(binary=env["HELM_BIN"], home=tmp_path / "helm"))
    settings = GitChartSettings(work_dir=tmp_path / "gitcharts", refresh_s=0.0)
    return GitCharts(settings, kube=None, helm=helm)  # type: ignore[arg-type] # no secretRef: no Secret read


def test_a_git_chart_export_holds_the_chart_and_its_file_dependencies_only(env: Env, tmp_path: Path) -> None:
    repo = GitRepo(env, tmp_path)
    repo.add_chart("charts/lib")
    repo.write("charts/lib/Chart.yaml", "apiVersion: v2\nname: lib\nversion: 0.1.0\n")
    repo.add_chart("charts/app")
    repo.write(
        "charts/app/Chart.yaml",
        "apiVersion: v2\nname: app\nversion: 1.0.0\n"
        "dependencies:\n- name: lib\n  version: 0.1.0\n  repository: file://../lib\n",
    )
    repo.add_chart("charts/other")
    repo.write("docs/notes.md", "one\n")
    first = repo.commit_and_push("charts")
    charts = git_charts(env, tmp_path)
    source = GitChartSource(git=repo.http_url, ref="master", path="charts/app")

    fetched = charts.fetch("ns/app", source)
    export = fetched.path.parents[2]
    assert sorted(p.name for p in (export / "tree" / "charts").iterdir()) == ["app", "lib"]
    assert not (export / "tree" / "docs").exists()
    assert [p.name for p in (fetched.path / "charts").iterdir()] == [
        "lib-0.1.0.tgz"
    ]  # helm dependency update
    assert (fetched.revision, fetched.version) == (first, "1.0.0")

    repo.write("docs/notes.md", "two\n")
    repo.write("charts/other/values.yaml", "message: elsewhere\n")
    second = repo.commit_and_push("outside the chart and its dependency")
    again = charts.fetch("ns/app", source)
    assert (again.revision, again.path, again.digest) == (second, fetched.path, fetched.digest)
    assert entries(tmp_path / "gitcharts" / "exports") == [export.name]

    repo.write("charts/lib/values.yaml", "message: from-lib\n")
    third = repo.commit_and_push("the dependency changed")
    changed = charts.fetch("ns/app", source)
    assert changed.revision == third
    assert changed.digest != fetched.digest and changed.path != fetched.path


def test_a_file_dependency_outside_the_repository_is_refused(env: Env, tmp_path: Path) -> None:
    repo = GitRepo(env, tmp_path)
    repo.add_chart("app")
    repo.write(
        "app/Chart.yaml",
        "apiVersion: v2\nname: app\nversion: 1.0.0\n"
        "dependencies:\n- name: x\n  version: 0.1.0\n  repository: file://../../x\n",
    )
    repo.commit_and_push("escape")
    source = GitChartSource(git=repo.http_url, ref="master", path="app")
    with pytest.raises(ChartNotFoundError) as info:
        git_charts(env, tmp_path).fetch("ns/app", source)
    message = str(info.value)
    assert "chart.path 'app'" in message and "app/Chart.yaml: dependencies[0].repository" in message
    assert "leaves the repository" in message
