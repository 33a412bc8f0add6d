"""`status.history` and `gitops-helm history` on the real environment: an upgrade, a failed
upgrade and its rollback (helm 3 and 4), a failed test and the rollback it caused, the limit, and
the Git commit each attempt came from when the agent's own Git sync applied the HelmRelease (a
commit that leaves the HelmRelease as it was does not rewrite it)."""

from __future__ import annotations

import hashlib
import json
import urllib.request
from pathlib import Path
from typing import Any

from tests.conftest import Env
from tests.integration.reconcile_helpers import (
    FAIL_TIMEOUT,
    apply,
    assert_quiet_resync,
    hr_manifest,
    patch_spec,
    release_history,
    repo_chart,
    settled_ready,
    status,
    wait_ready,
)
from tests.integration.syncfix import (
    ConfigRepo,
    cli,
    configmap,
    get_object,
    helmrelease,
    synced_revision,
    unblock_namespace,
    unique_name,
    wait_for,
)
from tests.integration.syncfix import start_agent as start_agent_process

# what the Git sync records on each object it applies: the commit its text was applied from
COMMIT_ANNOTATION = "gitops-helm.io/commit"


def _history(agent: Any, name: str, namespace: str) -> list[dict[str, Any]]:
    return list(status(agent, name, namespace).get("history") or [])


def _chart_digest(env: Env) -> str:
    """What a user would compare: the sha256 of the chart archive the repository serves."""
    url = f"{env['TESTENV_CHARTS']}/hello-0.1.0.tgz"
    with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - the environment's URL
        return "sha256:" + hashlib.sha256(response.read()).hexdigest()


def _history_cli(env: Env, namespace: str, name: str, *extra: str) -> str:
    done = cli(env, "history", name, "-n", namespace, "--kubeconfig", env["KUBECONFIG"], *extra)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_history_of_an_upgrade_a_failed_upgrade_and_its_rollback(
    env: Env, namespace: str, helm: str, start_agent: Any
) -> None:
    agent = start_agent(namespace, helm)
    apply(
        env,
        hr_manifest("app", namespace, repo_chart(env), rollback={"enable": True}, values={"message": "one"}),
    )
    wait_ready(agent, "app", namespace)
    patch_spec(env, namespace, "app", {"values": {"message": "two"}})
    agent.wait_for("the upgrade's entry", lambda: len(_history(agent, "app", namespace)) == 2)
    wait_ready(agent, "app", namespace)

    # pods that never become Ready: the upgrade (revision 3) fails, the rollback (4) restores 2
    patch_spec(
        env, namespace, "app", {"timeout": FAIL_TIMEOUT, "values": {"message": "bad", "unready": True}}
    )
    agent.wait_for(
        "the rollback's entry",
        lambda: [e["action"] for e in _history(agent, "app", namespace)][:1] == ["rollback"],
    )
    history = _history(agent, "app", namespace)
    # what Helm storage holds, revision by revision
    assert release_history(env, namespace, "app") == [
        (1, "superseded"),
        (2, "superseded"),
        (3, "failed"),
        (4, "deployed"),
    ]
    assert [(e["action"], e["outcome"], e.get("helmRevision")) for e in history] == [
        ("rollback", "succeeded", 4),
        ("upgrade", "failed", 3),
        ("upgrade", "succeeded", 2),
        ("install", "succeeded", 1),
    ]
    rollback, failed, upgrade, install = history
    assert rollback["rolledBackTo"] == 2
    digest = _chart_digest(env)
    for entry in history:
        assert (entry["chartName"], entry["chartVersion"], entry["chartDigest"]) == ("hello", "0.1.0", digest)
        assert entry["startedAt"] <= entry["finishedAt"]
        assert "testResult" not in entry  # tests are not enabled
        assert "gitCommit" not in entry  # applied with kubectl, not by the agent's Git sync
    # each values change has its own digest (keyed, never a plain sha256 of the values); the
    # rollback restored revision 2's values and says so
    assert len({install["valuesDigest"], upgrade["valuesDigest"], failed["valuesDigest"]}) == 3
    assert all(e["valuesDigest"].startswith("h1-") for e in history)
    assert rollback["valuesDigest"] == upgrade["valuesDigest"]
    assert install["startedAt"] <= upgrade["startedAt"] <= failed["startedAt"] <= rollback["startedAt"]

    # the verb: oldest first, the Helm revision beside the commit, and what is live
    agent.wait_for(
        "releaseStatus deployed", lambda: status(agent, "app", namespace).get("releaseStatus") == "deployed"
    )
    lines = _history_cli(env, namespace, "app").splitlines()
    assert lines[0].split() == [
        "REVISION", "COMMIT", "ACTION", "OUTCOME", "TEST", "CHART", "VALUES", "STARTED", "FINISHED"
    ]  # fmt: skip
    rows = [line.split() for line in lines[1:5]]
    assert [row[:4] for row in rows[:3]] == [
        ["1", "-", "install", "succeeded"],
        ["2", "-", "upgrade", "succeeded"],
        ["3", "-", "upgrade", "failed"],
    ]
    assert rows[3][:6] == ["4", "-", "rollback", "to", "2", "succeeded"]
    assert lines[5] == "live: Helm revision 4 (deployed), commit -, chart hello@0.1.0"
    data = json.loads(_history_cli(env, namespace, "app", "-o", "json"))
    assert data["history"] == history
    assert (data["lastReleaseRevision"], data["releaseStatus"]) == (4, "deployed")


def test_history_of_a_failed_test_and_the_rollback_it_caused(
    env: Env, namespace: str, start_agent: Any
) -> None:
    agent = start_agent(namespace, env["HELM_BIN"])
    spec = {"rollback": {"enable": True}, "test": {"enable": True}, "values": {"message": "good"}}
    apply(env, hr_manifest("app", namespace, repo_chart(env), **spec))
    wait_ready(agent, "app", namespace)
    patch_spec(env, namespace, "app", {"values": {"message": "bad", "testOutcome": "fail"}})
    agent.wait_for(
        "the rollback's entry",
        lambda: [e["action"] for e in _history(agent, "app", namespace)][:1] == ["rollback"],
    )
    history = _history(agent, "app", namespace)
    # the test completes the entry of the revision it tested: one line says "tested, failed"
    assert [(e["action"], e["outcome"], e.get("helmRevision"), e.get("testResult")) for e in history] == [
        ("rollback", "succeeded", 3, None),
        ("upgrade", "failed", 2, "failed"),
        ("install", "succeeded", 1, "passed"),
    ]
    assert history[0]["rolledBackTo"] == 1
    assert history[0]["valuesDigest"] == history[2]["valuesDigest"] != history[1]["valuesDigest"]
    assert release_history(env, namespace, "app") == [(1, "superseded"), (2, "superseded"), (3, "deployed")]
    rows = [line.split() for line in _history_cli(env, namespace, "app").splitlines()[1:4]]
    assert [(row[0], row[2], row[3], row[4]) for row in rows[:2]] == [
        ("1", "install", "succeeded", "passed"),
        ("2", "upgrade", "failed", "failed"),
    ]


def test_history_keeps_the_newest_entries_up_to_the_limit(env: Env, namespace: str, start_agent: Any) -> None:
    agent = start_agent(namespace, env["HELM_BIN"], status_history_limit=2)
    apply(env, hr_manifest("app", namespace, repo_chart(env), values={"message": "v1"}))
    wait_ready(agent, "app", namespace)
    for n in (2, 3):
        patch_spec(env, namespace, "app", {"values": {"message": f"v{n}"}})
        agent.wait_for(
            f"revision {n}'s entry",
            lambda n=n: [e.get("helmRevision") for e in _history(agent, "app", namespace)][:1] == [n],
        )
    wait_ready(agent, "app", namespace)
    assert [(e["action"], e.get("helmRevision")) for e in _history(agent, "app", namespace)] == [
        ("upgrade", 3),
        ("upgrade", 2),
    ]
    # an unchanged release: no helm call and no status write (the history is not rewritten)
    assert_quiet_resync(agent, "app", namespace)


def test_history_names_the_git_commit_and_an_unrelated_commit_does_not_rewrite_the_helmrelease(
    env: Env, namespace: str, tmp_path: Path
) -> None:
    url = f"{env['TESTENV_GIT_HTTP']}/{unique_name('history')}.git"
    repo = ConfigRepo(tmp_path / "repo", url)
    first = repo.commit(
        {
            "app/web.yaml": helmrelease(env, "web", {"message": "one"}),
            "app/other.yaml": configmap("other", {"n": "1"}),
        },
        "first",
    )
    agent = start_agent_process(env, tmp_path / "agent", namespace, url)
    try:
        wait_for(
            "the install's entry",
            lambda: (
                [
                    e.get("gitCommit")
                    for e in (get_object(env, "helmrelease", namespace, "web") or {})
                    .get("status", {})
                    .get("history", [])
                ]
                == [first]
            ),
            120,
        )
        web = wait_for(
            "the release settled",
            lambda: settled_ready(env, namespace, "web") and get_object(env, "helmrelease", namespace, "web"),
            60,
        )
        assert web["metadata"]["annotations"][COMMIT_ANNOTATION] == first

        # a commit that changes another object only: the HelmRelease is not written at all (its
        # release is settled, so nothing else writes it either)
        second = repo.commit({"app/other.yaml": configmap("other", {"n": "2"})}, "other only")
        synced_revision(env, namespace, agent.sync_name, second)
        assert (get_object(env, "configmap", namespace, "other") or {})["data"] == {"n": "2"}
        after = get_object(env, "helmrelease", namespace, "web") or {}
        assert after["metadata"]["resourceVersion"] == web["metadata"]["resourceVersion"]
        assert after["metadata"]["annotations"][COMMIT_ANNOTATION] == first
        other = get_object(env, "configmap", namespace, "other") or {}
        assert other["metadata"]["annotations"][COMMIT_ANNOTATION] == second

        # a commit that changes the HelmRelease: the upgrade's entry names it
        third = repo.commit({"app/web.yaml": helmrelease(env, "web", {"message": "two"})}, "web two")

        def commits() -> list[str | None]:
            hr = get_object(env, "helmrelease", namespace, "web") or {}
            return [e.get("gitCommit") for e in hr.get("status", {}).get("history", [])]

        wait_for("the upgrade's entry", lambda: commits() == [third, first], 120)
        lines = cli(
            env, "history", "web", "-n", namespace, "--kubeconfig", env["KUBECONFIG"]
        ).stdout.splitlines()
        assert [line.split()[:3] for line in lines[1:3]] == [
            ["1", first[:12], "install"],
            ["2", third[:12], "upgrade"],
        ]
        assert lines[3].startswith(f"live: Helm revision 2 (deployed), commit {third}")
    finally:
        assert agent.stop() == 0, agent.log()[-3000:]
        unblock_namespace(env, namespace)
