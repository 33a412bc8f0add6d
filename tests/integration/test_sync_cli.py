"""The one-shot commands: `gitops-helm sync --once` (exit status tells whether every object
applied), `gitops-helm diff` (a preview that changes nothing), and the selection switches
(`--only-helmreleases`, `fluxcd.io/ignore`) with file:// and local-path repositories."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from tests.conftest import Env
from tests.integration.syncfix import (
    ConfigRepo,
    cli,
    cm_data,
    configmap,
    get_object,
    helmrelease,
    start_agent,
    sync_flags,
    sync_state,
    synced_revision,
    unique_name,
    wait_for,
)

WIDGET = """apiVersion: example.com/v1
kind: Widget
metadata:
  name: gadget
"""


def http_repo(env: Env, tmp_path: Path, name: str) -> tuple[ConfigRepo, str]:
    url = f"{env['TESTENV_GIT_HTTP']}/{unique_name(name)}.git"
    return ConfigRepo(tmp_path / name, url), url


def sync_once(
    env: Env, namespace: str, sync_name: str, url: str, *extra: str
) -> subprocess.CompletedProcess[str]:
    return cli(env, "sync", "--once", *sync_flags(env, namespace, sync_name), "--git-url", url, *extra)


def test_sync_once_exit_status(env: Env, namespace: str, tmp_path: Path) -> None:
    repo, url = http_repo(env, tmp_path, "sync-once")
    sha = repo.replace({"cm.yaml": configmap("once", {"v": "1"})})
    out = sync_once(env, namespace, "once", url)
    assert out.returncode == 0, out.stderr
    assert f"synced {sha[:12]}: 1 applied, 0 unchanged, 0 deleted, 0 errors" in out.stdout
    assert cm_data(env, namespace, "once") == {"v": "1"}
    assert sync_state(env, namespace, "once")["revision"] == sha

    # An object of a kind the cluster does not serve: the rest applies, the exit status is 1.
    repo.replace({"cm.yaml": configmap("once", {"v": "2"}), "widget.yaml": WIDGET})
    out = sync_once(env, namespace, "once", url)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "widget.yaml:1: Widget.example.com gadget" in out.stderr, out.stderr
    assert cm_data(env, namespace, "once") == {"v": "2"}

    # A malformed file: the exit status is 1 and the error names the file and line.
    repo.replace({"cm.yaml": configmap("once", {"v": "3"}), "bad.yaml": "a: [1, 2\nb: 3\n"})
    out = sync_once(env, namespace, "once", url)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "error: bad.yaml:2: invalid YAML" in out.stderr, out.stderr
    assert cm_data(env, namespace, "once") == {"v": "3"}


def test_diff_previews_and_changes_nothing(env: Env, namespace: str, tmp_path: Path) -> None:
    repo, url = http_repo(env, tmp_path, "sync-diff")
    gc = ("--sync-garbage-collection", "true")
    repo.replace({"a.yaml": configmap("a", {"v": "1"}), "b.yaml": configmap("b", {"v": "1"})})
    assert sync_once(env, namespace, "diff", url, *gc).returncode == 0
    repo.replace(
        {
            "a.yaml": configmap("a", {"v": "2"}),
            "c.yaml": configmap("c", {"v": "1"}),
            "web.yaml": helmrelease(env, "previewed"),
        }
    )
    out = cli(env, "diff", *sync_flags(env, namespace, "diff"), "--git-url", url, *gc)
    assert out.returncode == 0, out.stderr
    lines = [" ".join(line.split()) for line in out.stdout.splitlines()]
    assert "update ConfigMap a (a.yaml:1)" in lines, out.stdout
    assert "create ConfigMap c (c.yaml:1)" in lines, out.stdout
    assert "create HelmRelease.helm.fluxcd.io previewed (web.yaml:1)" in lines, out.stdout
    assert f"delete ConfigMap {namespace}/b" in lines, out.stdout
    assert cm_data(env, namespace, "a") == {"v": "1"}, "diff changed the cluster"
    assert cm_data(env, namespace, "b") == {"v": "1"}
    assert cm_data(env, namespace, "c") is None
    assert get_object(env, "helmrelease", namespace, "previewed") is None


def test_garbage_collection_spares_an_object_another_source_took_over(
    env: Env, namespace: str, tmp_path: Path
) -> None:
    gc = ("--sync-garbage-collection", "true")
    mine, mine_url = http_repo(env, tmp_path, "sync-mine")
    theirs, theirs_url = http_repo(env, tmp_path, "sync-theirs")
    mine.replace({"x.yaml": configmap("x", {"by": "mine"}), "y.yaml": configmap("y", {"by": "mine"})})
    assert sync_once(env, namespace, "mine", mine_url, *gc).returncode == 0
    theirs.replace({"x.yaml": configmap("x", {"by": "theirs"})})
    assert sync_once(env, namespace, "theirs", theirs_url, *gc).returncode == 0

    mine.replace({"y.yaml": configmap("y", {"by": "mine"})})
    out = sync_once(env, namespace, "mine", mine_url, *gc)
    assert out.returncode == 0, out.stderr
    assert "0 deleted" in out.stdout
    assert cm_data(env, namespace, "x") == {"by": "theirs"}, "an object of another source was deleted"

    mine.replace({"README.md": "nothing\n"})
    out = sync_once(env, namespace, "mine", mine_url, *gc)
    assert out.returncode == 0, out.stderr
    assert cm_data(env, namespace, "y") is None
    assert cm_data(env, namespace, "x") == {"by": "theirs"}


def ignored(name: str) -> str:
    return configmap(name, {"v": "1"}, annotations={"fluxcd.io/ignore": "true"})


def test_only_helmreleases_over_a_file_url(env: Env, namespace: str, tmp_path: Path) -> None:
    bare = tmp_path / "config.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
    repo = ConfigRepo(tmp_path / "work", str(bare))
    repo.replace(
        {
            "cm.yaml": configmap("not-a-release", {"v": "1"}),
            "web.yaml": helmrelease(env, "only"),
            "skip.yaml": helmrelease(env, "skipped").replace(
                '"metadata": {"name": "skipped"}',
                '"metadata": {"name": "skipped", "annotations": {"fluxcd.io/ignore": "true"}}',
            ),
        }
    )
    out = sync_once(env, namespace, "only", bare.as_uri(), "--only-helmreleases", "true")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 applied" in out.stdout
    assert get_object(env, "helmrelease", namespace, "only") is not None
    assert get_object(env, "helmrelease", namespace, "skipped") is None
    assert cm_data(env, namespace, "not-a-release") is None


def test_agent_follows_a_local_repository_path(env: Env, namespace: str, tmp_path: Path) -> None:
    repo = ConfigRepo(tmp_path / "local", "")
    repo.work.commit(
        {"plain.yaml": configmap("plain", {"v": "1"}), "ignored.yaml": ignored("ignored")}, "one"
    )
    agent = start_agent(env, tmp_path / "agent", namespace, str(repo.path), poll="1h")
    try:
        wait_for("ConfigMap plain", lambda: cm_data(env, namespace, "plain") == {"v": "1"}, 60)
        assert cm_data(env, namespace, "ignored") is None
        # An edit not committed yet is not applied...
        (repo.path / "plain.yaml").write_text(configmap("plain", {"v": "2"}))
        time.sleep(2)
        assert cm_data(env, namespace, "plain") == {"v": "1"}
        # ...the commit is, without a push and with no poll for an hour (the deadline only
        # bounds a hang). The sync state is written after the objects: wait for it too.
        sha = repo.work.commit({}, "two")
        wait_for("the local commit", lambda: cm_data(env, namespace, "plain") == {"v": "2"}, 60)
        state = synced_revision(env, namespace, agent.sync_name, sha)
        assert json.loads(state["errors"]) == []
        assert cm_data(env, namespace, "ignored") is None
    finally:
        assert agent.stop() == 0, agent.log()
