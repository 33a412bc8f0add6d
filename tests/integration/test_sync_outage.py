"""`gitops-helm run` while its Git server is down: the agent keeps running and healthy, the fetch
error is visible, nothing is deleted; once the server is back, the new commit is applied."""

from __future__ import annotations

import json
import time
from pathlib import Path

from testenvlib.servers import start_git_server

from tests.conftest import Env
from tests.integration.syncfix import (
    ConfigRepo,
    cli,
    cm_data,
    configmap,
    start_agent,
    status_flags,
    sync_state,
    synced_revision,
    wait_for,
)


def test_agent_rides_out_a_git_server_outage(env: Env, namespace: str, tmp_path: Path) -> None:
    root = tmp_path / "srv"
    root.mkdir()
    server = start_git_server(root)
    port = server.server_address[1]
    url = f"http://127.0.0.1:{port}/config.git"
    repo = ConfigRepo(tmp_path / "repo", url)
    first = repo.replace({"a.yaml": configmap("a", {"v": "1"}), "b.yaml": configmap("b", {"v": "1"})})
    agent = start_agent(env, tmp_path / "agent", namespace, url, "--sync-garbage-collection", "true")
    try:
        synced_revision(env, namespace, agent.sync_name, first)

        server.shutdown()
        server.server_close()
        # The repository moves on while its server is away: b leaves Git, a changes.
        repo.push_url = str(root / "config.git")
        second = repo.replace({"a.yaml": configmap("a", {"v": "2"})}, "while the server is down")

        state = wait_for(
            "the fetch error in the sync state",
            lambda: (s := sync_state(env, namespace, agent.sync_name)).get("fetchError") and s,
            timeout=60,
        )
        assert url in state["fetchError"] and "unreachable" in state["fetchError"], state
        assert state["revision"] == first
        out = cli(env, "status", *status_flags(env, namespace, agent.sync_name))
        assert out.returncode == 0, out.stderr
        assert f"fetch error: git fetch of {url} failed" in out.stdout, out.stdout
        # A retried fetch fails too (wait for it: when it runs depends on the backoff, not on
        # this test's sleeps); the agent stays healthy meanwhile.
        agent.wait_log(r"msg=\"source attempt failed\" attempt=2 ")
        for _ in range(3):  # a few more failed polls (and resyncs of the last good commit)
            assert agent.request("GET", "/healthz")[0] == 200
            time.sleep(1)
        agent.assert_running()
        assert cm_data(env, namespace, "a") == {"v": "1"}
        assert cm_data(env, namespace, "b") == {"v": "1"}, "an object was deleted during the outage"

        server = start_git_server(root, port=port)
        state = synced_revision(env, namespace, agent.sync_name, second)
        assert state["result"] == "ok", state
        assert json.loads(state["deleted"]) == [f"ConfigMap {namespace}/b"]
        assert cm_data(env, namespace, "a") == {"v": "2"}
        assert cm_data(env, namespace, "b") is None
        wait_for(
            "the fetch error to clear",
            lambda: sync_state(env, namespace, agent.sync_name)["fetchError"] == "",
        )
    finally:
        assert agent.stop() == 0, agent.log()
        server.shutdown()
        server.server_close()


def test_a_failed_fetch_shows_at_once_even_with_a_long_poll_interval(
    env: Env, namespace: str, tmp_path: Path
) -> None:
    """With a one-hour poll and a webhook, the failed fetch a push asked for is visible long before
    the next poll would run, and the fetch is retried (backoff) until the server is back. The
    deadlines below only bound a hang: they are minutes shorter than the poll interval."""
    root = tmp_path / "srv"
    root.mkdir()
    server = start_git_server(root)
    port = server.server_address[1]
    url = f"http://127.0.0.1:{port}/config.git"
    repo = ConfigRepo(tmp_path / "repo", url)
    first = repo.replace({"a.yaml": configmap("a", {"v": "1"})})
    (tmp_path / "secret").write_text("s3cret\n")
    flags = ("--git-webhook-secret-file", str(tmp_path / "secret"))
    agent = start_agent(env, tmp_path / "agent", namespace, url, *flags, poll="1h")
    try:
        synced_revision(env, namespace, agent.sync_name, first)
        assert sync_state(env, namespace, agent.sync_name).get("fetchError") == ""
        server.shutdown()
        server.server_close()
        repo.push_url = str(root / "config.git")
        second = repo.replace({"a.yaml": configmap("a", {"v": "2"})}, "pushed while the server is down")
        push = {"ref": "refs/heads/main", "after": second, "repository": {"clone_url": url}}
        assert agent.webhook(push, "s3cret") == (202, "sync triggered\n")
        wait_for(
            "the fetch error in the sync state",
            lambda: "unreachable" in sync_state(env, namespace, agent.sync_name).get("fetchError", ""),
            timeout=60,
        )
        server = start_git_server(root, port=port)
        synced_revision(env, namespace, agent.sync_name, second, timeout=60)
        assert cm_data(env, namespace, "a") == {"v": "2"}
        wait_for(
            "the fetch error to clear",
            lambda: sync_state(env, namespace, agent.sync_name)["fetchError"] == "",
            60,
        )
    finally:
        assert agent.stop() == 0, agent.log()
        server.shutdown()
        server.server_close()
