"""Garbage collection and error reporting of `gitops-helm run --sync-garbage-collection true`.

What left Git is deleted (a HelmRelease's release is uninstalled), what the source did not
apply survives; a malformed file is reported with file:line (log, sync-state ConfigMap,
`gitops-helm status`) and blocks every deletion while it is there; an invalid HelmRelease and
duplicate objects are reported and not applied. One agent serves the module's first tests."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import Env
from tests.integration.syncfix import (
    AgentProcess,
    ConfigRepo,
    cli,
    cm_data,
    configmap,
    fresh_namespace,
    get_object,
    helmrelease,
    release_exists,
    start_agent,
    status_flags,
    sync_state,
    synced_revision,
    unique_name,
    wait_for,
)


@dataclass
class GC:
    env: Env
    namespace: str
    repo: ConfigRepo
    agent: AgentProcess

    def push(self, files: dict[str, str], message: str = "change") -> dict[str, str]:
        """Make the repository exactly ``files`` and wait until the agent synced that commit."""
        sha = self.repo.replace(files, message)
        return synced_revision(self.env, self.namespace, self.agent.sync_name, sha)

    def cm(self, name: str) -> dict[str, str] | None:
        return cm_data(self.env, self.namespace, name)


@pytest.fixture(scope="module")
def gc(testenv_session: Env, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GC]:
    env = testenv_session
    tmp = tmp_path_factory.mktemp("sync-gc")
    with fresh_namespace(env, "sync-gc") as ns:
        url = f"{env['TESTENV_GIT_HTTP']}/{unique_name('sync-gc')}.git"
        repo = ConfigRepo(tmp / "repo", url)
        repo.replace({"README.md": "empty for now\n"})
        agent = start_agent(env, tmp / "agent", ns, url, "--sync-garbage-collection", "true")
        try:
            yield GC(env, ns, repo, agent)
        finally:
            assert agent.stop() == 0, agent.log()


def test_what_left_git_is_deleted_and_nothing_else(gc: GC) -> None:
    env, ns = gc.env, gc.namespace
    state = gc.push(
        {
            "keep.yaml": configmap("keep", {"a": "1"}),
            "gone.yaml": configmap("gone", {"a": "1"}),
            "release.yaml": helmrelease(env, "gcweb"),
        }
    )
    assert state["result"] == "ok", state
    wait_for("release gcweb installed", lambda: release_exists(env, ns, "gcweb"), timeout=90, interval=0.5)
    env.kubectl("create", "configmap", "by-hand", "-n", ns, "--from-literal=a=1")

    state = gc.push({"keep.yaml": configmap("keep", {"a": "1"})}, "remove gone and gcweb")
    assert state["result"] == "ok", state
    assert gc.cm("gone") is None
    assert gc.cm("keep") == {"a": "1"}
    assert gc.cm("by-hand") == {"a": "1"}, "an object made by hand was garbage collected"
    assert sorted(json.loads(state["deleted"])) == [
        f"ConfigMap {ns}/gone",
        f"HelmRelease.helm.fluxcd.io {ns}/gcweb",
    ]
    wait_for("HelmRelease gcweb gone", lambda: get_object(env, "helmrelease", ns, "gcweb") is None, 60)
    assert not release_exists(env, ns, "gcweb"), "the release of a deleted HelmRelease is still installed"
    assert "garbage collected" in gc.agent.log()


BAD_YAML = """apiVersion: v1
kind: ConfigMap
metadata:
  name: broken
data:
  key: value: with a colon
"""


def test_a_malformed_file_is_reported_and_blocks_garbage_collection(gc: GC) -> None:
    env, ns, agent = gc.env, gc.namespace, gc.agent
    gc.push({"good.yaml": configmap("good", {"v": "1"}), "doomed.yaml": configmap("doomed", {"v": "1"})})
    assert gc.cm("doomed") == {"v": "1"}

    log_start = len(agent.log())
    state = gc.push({"good.yaml": configmap("good", {"v": "2"}), "sub/bad.yaml": BAD_YAML}, "break")
    assert state["result"] == "error"
    errors = json.loads(state["errors"])
    assert len(errors) == 1 and errors[0].startswith("sub/bad.yaml:6: invalid YAML"), errors
    assert gc.cm("good") == {"v": "2"}, "a valid file beside the broken one was not applied"
    assert gc.cm("doomed") == {"v": "1"}, "something was garbage collected while a file is broken"
    assert gc.cm("broken") is None
    assert state["gcSkipped"]
    agent.wait_log(r"sync error.*sub/bad\.yaml:6", after=log_start)
    out = cli(env, "status", *status_flags(env, ns, agent.sync_name))
    assert out.returncode == 0, out.stderr
    assert "\n  error: sub/bad.yaml:6: invalid YAML" in out.stdout, out.stdout

    # Another sync of the same broken commit (drift correction) still deletes nothing.
    wait_for("a resync", lambda: sync_state(env, ns, agent.sync_name)["time"] != state["time"], 60)
    assert gc.cm("doomed") == {"v": "1"}

    fixed = BAD_YAML.replace("value: with a colon", '"value: with a colon"')
    state = gc.push({"good.yaml": configmap("good", {"v": "2"}), "sub/bad.yaml": fixed}, "fix")
    assert state["result"] == "ok", state
    assert gc.cm("broken") == {"key": "value: with a colon"}
    assert gc.cm("doomed") is None, "the object that left Git was not collected once the file was fixed"


INVALID_HR = """apiVersion: v1
kind: ConfigMap
metadata:
  name: beside-the-release
data:
  a: "1"
---
apiVersion: helm.fluxcd.io/v1
kind: HelmRelease
metadata:
  name: invalid
spec:
  releaseName: invalid
  chart:
    repository: {repo}
    version: 0.1.0
  values: [not, a, mapping]
"""


def test_an_invalid_helmrelease_and_duplicates_are_reported_not_applied(gc: GC) -> None:
    env, ns, agent = gc.env, gc.namespace, gc.agent
    log_start = len(agent.log())
    state = gc.push(
        {
            "apps.yaml": INVALID_HR.format(repo=env["TESTENV_CHARTS"]),
            "dup-a.yaml": configmap("twin", {"from": "a"}),
            "more/dup-b.yaml": configmap("twin", {"from": "b"}),
        },
        "invalid and duplicates",
    )
    assert state["result"] == "error"
    errors = json.loads(state["errors"])
    invalid = [e for e in errors if e.startswith("apps.yaml:8: ")]
    assert invalid and "chart" in invalid[0] and "values" in invalid[0], errors
    assert "dup-a.yaml:1: duplicate object ConfigMap twin (also defined at more/dup-b.yaml:1)" in errors
    assert "more/dup-b.yaml:1: duplicate object ConfigMap twin (also defined at dup-a.yaml:1)" in errors
    assert len(errors) == 3, errors
    assert get_object(env, "helmrelease", ns, "invalid") is None
    assert gc.cm("twin") is None
    assert gc.cm("beside-the-release") == {"a": "1"}
    # "sync error" lines are logged after the sync state is written: wait for them.
    agent.wait_log(r"sync error.*apps\.yaml:8", after=log_start)
    agent.wait_log(r"sync error.*dup-a\.yaml:1", after=log_start)


def test_dry_run_only_reports(env: Env, namespace: str, tmp_path: Path) -> None:
    url = f"{env['TESTENV_GIT_HTTP']}/{unique_name('sync-gc-dry')}.git"
    repo = ConfigRepo(tmp_path / "repo", url)
    first = repo.replace({"a.yaml": configmap("a", {"v": "1"}), "b.yaml": configmap("b", {"v": "1"})})
    agent = start_agent(env, tmp_path / "agent", namespace, url, "--sync-garbage-collection-dry-run", "true")
    try:
        synced_revision(env, namespace, agent.sync_name, first)
        second = repo.replace({"a.yaml": configmap("a", {"v": "1"})}, "remove b")
        state = synced_revision(env, namespace, agent.sync_name, second)
        assert state["result"] == "ok", state
        assert json.loads(state["deleted"]) == []
        assert json.loads(state["wouldDelete"]) == [f"ConfigMap {namespace}/b"], state
        agent.wait_log(rf"would delete\" object=\"ConfigMap {namespace}/b\"")
        assert cm_data(env, namespace, "b") == {"v": "1"}
        out = cli(env, "status", *status_flags(env, namespace, agent.sync_name))
        assert f"would delete (dry run): ConfigMap {namespace}/b" in out.stdout, out.stdout
    finally:
        assert agent.stop() == 0, agent.log()
    assert cm_data(env, namespace, "b") == {"v": "1"}
