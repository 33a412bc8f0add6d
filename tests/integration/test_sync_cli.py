"""The one-shot commands: `gitops-helm sync --once` (exit status tells whether every object
applied), `gitops-helm diff` (a preview that changes nothing), and the selection switches
(`--only-helmreleases`, `fluxcd.io/ignore`) with file:// and local-path repositories."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from gitops_helm.sync.apply import state_configmap_name
from tests.conftest import Env
from tests.integration.syncfix import (
    ConfigRepo,
    cli,
    cm_data,
    configmap,
    get_object,
    helmrelease,
    start_agent,
    status_flags,
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
    assert out.returncode == 1, out.stdout + out.stderr  # there are differences (as kubectl diff)
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


def test_a_foreign_repository_under_the_same_sync_name_deletes_nothing(
    env: Env, namespace: str, tmp_path: Path
) -> None:
    """Issue #8.1: the inventory belongs to one source (URL, branch, paths); another repository
    synced under the same --sync-name applies, collects nothing and fails naming both."""
    gc = ("--sync-garbage-collection", "true")
    first, first_url = http_repo(env, tmp_path, "sync-owner")
    other, other_url = http_repo(env, tmp_path, "sync-intruder")
    first.replace({"a.yaml": configmap("first-a", {"v": "1"}), "b.yaml": configmap("first-b", {"v": "1"})})
    assert sync_once(env, namespace, "shared", first_url, *gc).returncode == 0
    other.replace({"c.yaml": configmap("other-c", {"v": "1"})})

    out = cli(env, "diff", *sync_flags(env, namespace, "shared"), "--git-url", other_url, *gc)
    assert out.returncode == 2, out.stdout + out.stderr  # an error, not "differences"
    assert not [line for line in out.stdout.splitlines() if line.startswith("delete")], out.stdout
    assert first_url in out.stderr and other_url in out.stderr, out.stderr
    assert "--sync-take-over-inventory" in out.stderr, out.stderr

    out = sync_once(env, namespace, "shared", other_url, *gc)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "0 deleted" in out.stdout, out.stdout
    assert first_url in out.stderr and other_url in out.stderr, out.stderr
    assert "--sync-name" in out.stderr and "--sync-take-over-inventory" in out.stderr, out.stderr
    assert cm_data(env, namespace, "first-a") == {"v": "1"}, (
        "another repository deleted the first one's objects"
    )
    assert cm_data(env, namespace, "first-b") == {"v": "1"}
    assert cm_data(env, namespace, "other-c") == {"v": "1"}, "the foreign source's objects were not applied"
    state = sync_state(env, namespace, "shared")
    assert state["result"] == "error" and state["gcSkipped"], state
    assert json.loads(state["source"])["url"] == first_url, state
    status = cli(env, "status", *status_flags(env, namespace, "shared"))
    assert status.returncode == 0, status.stderr
    assert f"source: {first_url}" in status.stdout and other_url in status.stdout, status.stdout

    # The owner still collects what left its repository, and nothing of the foreign sync.
    first.replace({"a.yaml": configmap("first-a", {"v": "1"})})
    out = sync_once(env, namespace, "shared", first_url, *gc)
    assert out.returncode == 0, out.stdout + out.stderr
    assert cm_data(env, namespace, "first-b") is None
    assert cm_data(env, namespace, "other-c") == {"v": "1"}, "an object the owner never applied was deleted"

    # Taking the inventory over, on purpose: the new owner collects what it does not declare.
    out = sync_once(env, namespace, "shared", other_url, *gc, "--sync-take-over-inventory", "true")
    assert out.returncode == 0, out.stdout + out.stderr
    assert cm_data(env, namespace, "first-a") is None
    assert cm_data(env, namespace, "other-c") == {"v": "1"}
    assert json.loads(sync_state(env, namespace, "shared")["source"])["url"] == other_url


def test_an_inventory_of_an_older_version_is_adopted_by_its_source(
    env: Env, namespace: str, tmp_path: Path
) -> None:
    """An inventory written before identities were recorded keeps collecting for the source that
    finds it (the upgrade rule), which becomes its recorded owner."""
    gc = ("--sync-garbage-collection", "true")
    repo, url = http_repo(env, tmp_path, "sync-upgrade")
    repo.replace({"a.yaml": configmap("old-a", {"v": "1"}), "b.yaml": configmap("old-b", {"v": "1"})})
    assert sync_once(env, namespace, "upgrade", url, *gc).returncode == 0
    name = state_configmap_name("upgrade")
    env.kubectl(
        "patch",
        "configmap",
        name,
        "-n",
        namespace,
        "--type=json",
        "-p",
        '[{"op":"remove","path":"/data/source"}]',
        check=False,
    )
    assert "source" not in sync_state(env, namespace, "upgrade")

    repo.replace({"a.yaml": configmap("old-a", {"v": "1"})})
    out = sync_once(env, namespace, "upgrade", url, *gc)
    assert out.returncode == 0, out.stdout + out.stderr
    assert cm_data(env, namespace, "old-b") is None, "an inventory without identity stopped collecting"
    assert json.loads(sync_state(env, namespace, "upgrade")["source"])["url"] == url


def test_switching_on_only_helmreleases_deletes_nothing_it_stopped_looking_at(
    env: Env, namespace: str, tmp_path: Path
) -> None:
    """Issue #8.2: objects of kinds the current mode does not sync are never garbage; they stay
    in the inventory, so switching the mode back still collects them once they leave Git."""
    gc = ("--sync-garbage-collection", "true")
    only = ("--only-helmreleases", "true")
    repo, url = http_repo(env, tmp_path, "sync-mode")
    repo.replace({"cm.yaml": configmap("plain", {"v": "1"}), "web.yaml": helmrelease(env, "moded")})
    assert sync_once(env, namespace, "mode", url, *gc).returncode == 0
    assert cm_data(env, namespace, "plain") == {"v": "1"}

    out = sync_once(env, namespace, "mode", url, *gc, *only)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 deleted" in out.stdout, out.stdout
    assert cm_data(env, namespace, "plain") == {"v": "1"}, "--only-helmreleases deleted a ConfigMap"
    assert get_object(env, "helmrelease", namespace, "moded") is not None

    # Gone from Git while the mode ignores ConfigMaps: still kept...
    repo.replace({"web.yaml": helmrelease(env, "moded")})
    out = sync_once(env, namespace, "mode", url, *gc, *only)
    assert out.returncode == 0, out.stdout + out.stderr
    assert cm_data(env, namespace, "plain") == {"v": "1"}
    # ...and collected once the mode syncs everything again: the source still owns it.
    out = sync_once(env, namespace, "mode", url, *gc)
    assert out.returncode == 0, out.stdout + out.stderr
    assert cm_data(env, namespace, "plain") is None, "the retained object was not collected"
    assert get_object(env, "helmrelease", namespace, "moded") is not None


def test_an_object_larger_than_the_api_server_accepts_is_named_with_its_size(
    env: Env, namespace: str, tmp_path: Path
) -> None:
    """A 4 MiB ConfigMap: the API server refuses a request body over 3 MiB, and may close the
    connection before the client reads its 413 (the agent, on a reused connection under load,
    reported a urllib3 MaxRetryError/SSLEOFError). The sync names the file, the object, its size
    and the limit instead, sends nothing for it, and applies the rest."""
    repo, url = http_repo(env, tmp_path, "sync-huge")
    big = configmap("huge", {"blob": "x" * (4 * 1024 * 1024)})
    repo.replace({"big.yaml": big, "small.yaml": configmap("small", {"v": "1"})})
    out = sync_once(env, namespace, "huge", url)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "big.yaml:1: ConfigMap huge: the object is 4194" in out.stderr, out.stderr
    assert "larger than the 3145728 bytes the Kubernetes API server accepts" in out.stderr, out.stderr
    assert "MaxRetryError" not in out.stderr, out.stderr
    assert cm_data(env, namespace, "small") == {"v": "1"}
    assert get_object(env, "configmap", namespace, "huge") is None

    out = cli(env, "diff", *sync_flags(env, namespace, "huge"), "--git-url", url)
    shown = out.stdout + out.stderr
    assert "big.yaml:1: ConfigMap huge: the object is 4194" in shown, shown
