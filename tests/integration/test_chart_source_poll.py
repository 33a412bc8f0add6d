"""A changed chart source enqueues the HelmReleases that use it, long before the resync.

The resync is an hour away in every test here, so only the chart-source poll can explain an
upgrade: a new chart version in a Helm repository that a version range now resolves to; a commit
to a Git chart kept in the config repository, which the agent syncs (a webhook-triggered sync
polls the Git charts of that repository at once). A repository index that changed without
changing what a range resolves to (or did not change at all) enqueues nothing: no reconcile, no
helm call, no status write.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest import Env
from tests.integration import syncfix
from tests.integration.reconcile_helpers import (
    apply,
    chart_copy,
    config_message,
    hr_manifest,
    latest_revision,
    publish,
    repo_chart,
    status,
    unique_name,
    wait_ready,
    wait_revision,
)
from tests.integration.syncfix import ConfigRepo, wait_for

HOUR = 3600.0
SECRET = "chart-poll-webhook-secret"


def test_new_chart_version_in_range_upgrades_without_the_resync(
    env: Env, namespace: str, helm: str, start_agent: Any, tmp_path: Path
) -> None:
    name = publish(tmp_path, unique_name("polled"), "0.1.0", message="first")
    # the index is not even re-read by reconciles within the hour: only the poll looks at it
    agent = start_agent(
        namespace, helm, resync_interval_s=HOUR, chart_refresh_interval_s=HOUR, chart_poll_interval_s=1.0
    )
    apply(env, hr_manifest("ranged", namespace, repo_chart(env, name=name, version="^0.1.0")))
    wait_ready(agent, "ranged", namespace)
    assert status(agent, "ranged", namespace)["revision"] == "0.1.0"

    publish(tmp_path, name, "0.1.1", message="patched")
    # generous, and still far below the hour-long resync and index refresh
    wait_revision(agent, env, namespace, "ranged", 2)
    wait_ready(agent, "ranged", namespace)
    assert status(agent, "ranged", namespace)["revision"] == "0.1.1"
    assert config_message(env, namespace, "ranged") == "patched"
    assert agent.agent.helm.calls["upgrade"] == 1, dict(agent.agent.helm.calls)


def test_an_index_change_outside_the_range_and_an_unchanged_index_enqueue_nothing(
    env: Env, namespace: str, helm: str, start_agent: Any, tmp_path: Path
) -> None:
    name = publish(tmp_path, unique_name("steady"), "0.1.0")
    agent = start_agent(
        namespace, helm, resync_interval_s=HOUR, chart_refresh_interval_s=HOUR, chart_poll_interval_s=0.5
    )
    apply(env, hr_manifest("steady", namespace, repo_chart(env, name=name, version="~0.1.0")))
    wait_ready(agent, "steady", namespace)
    poll = agent.agent.resolver.repo_poll
    key = f"{namespace}/steady"
    # the install's run has finished (Ready above comes with its last status write)
    agent.wait_for("the install's reconcile to finish", lambda: agent.finished.get(key, 0) >= 1)
    started = dict(agent.started)
    version = agent.hr("steady", namespace)["metadata"]["resourceVersion"]
    helm_calls = agent.helm_calls()

    def polls_since(count: int, since: int) -> bool:
        return bool(poll.polls >= since + count)

    # the index changes (a version the range does not take) and then stays as it is
    publish(tmp_path, name, "0.2.0", message="minor")
    mark = poll.polls
    # two polls after the publish: at least one of them started after it and read the new index
    agent.wait_for("two polls after the publish", lambda: polls_since(2, mark))
    mark = poll.polls
    agent.wait_for("three more polls of the unchanged index", lambda: polls_since(3, mark))

    assert agent.started == started, "a poll enqueued a HelmRelease whose chart did not change"
    assert agent.helm_calls() == helm_calls, dict(agent.agent.helm.calls)
    assert latest_revision(env, namespace, "steady") == (1, "deployed")
    assert agent.hr("steady", namespace)["metadata"]["resourceVersion"] == version, "a status write"
    assert poll.uses()[key].version == "0.1.0"


def _chart_files(tmp_path: Path, message: str) -> dict[str, str | None]:
    chart = chart_copy(tmp_path / message, "app", "0.1.0", message=message)
    return {
        f"charts/app/{p.relative_to(chart).as_posix()}": p.read_text()
        for p in chart.rglob("*")
        if p.is_file()
    }


def test_a_chart_commit_in_the_synced_repository_upgrades_at_the_sync(
    env: Env, namespace: str, tmp_path: Path
) -> None:
    url = f"{env['TESTENV_GIT_HTTP']}/{unique_name('chart-in-config')}.git"
    repo = ConfigRepo(tmp_path / "repo", url)
    hr = hr_manifest("inrepo", namespace, {"git": url, "ref": "main", "path": "charts/app"})
    first = repo.commit({"deploy/hr.yaml": json.dumps(hr) + "\n", **_chart_files(tmp_path, "one")}, "v1")
    secret_file = tmp_path / "webhook-secret"
    secret_file.write_text(SECRET + "\n")
    # the Git poll, the Git chart poll (same interval) and the resync are an hour away: only
    # the webhook's sync, and the Git chart poll it causes, can bring the chart commit
    agent = syncfix.start_agent(
        env,
        tmp_path / "agent",
        namespace,
        url,
        "--git-path",
        "deploy",
        "--git-webhook-secret-file",
        str(secret_file),
        "--resync-interval",
        "1h",
        poll="1h",
    )
    try:
        wait_for(
            "the first install", lambda: latest_revision(env, namespace, "inrepo") == (1, "deployed"), 120
        )
        assert config_message(env, namespace, "inrepo") == "one"

        second = repo.commit(_chart_files(tmp_path, "two"), "chart v2")
        push = {
            "ref": "refs/heads/main",
            "before": first,
            "after": second,
            "repository": {"clone_url": url, "html_url": url.removesuffix(".git")},
        }
        assert agent.webhook(push, SECRET) == (202, "sync triggered\n")
        wait_for(
            "the upgrade to the new chart",
            lambda: latest_revision(env, namespace, "inrepo") == (2, "deployed"),
            120,
        )
        assert config_message(env, namespace, "inrepo") == "two"
        wait_for(
            "the status naming the new commit",
            lambda: (
                env.kube_json("helmrelease", "inrepo", "-n", namespace)["status"].get("revision") == second
            ),
            60,
        )
    finally:
        assert agent.stop() == 0, agent.log()
