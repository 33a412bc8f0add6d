"""The Git webhook of `gitops-helm run`: a signed GitHub push delivery makes a new commit land
although the poll interval is one hour (so only the webhook can explain the apply); a bad
signature is refused and triggers nothing."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from pathlib import Path

from tests.conftest import Env
from tests.integration.syncfix import (
    AgentProcess,
    ConfigRepo,
    cm_data,
    configmap,
    start_webhook_agent,
    sync_state,
    synced_revision,
    unique_name,
    wait_for,
)

SECRET = "webhook-shared-secret"


def test_signed_push_lands_at_once_and_a_bad_signature_triggers_nothing(
    env: Env, namespace: str, tmp_path: Path
) -> None:
    url = f"{env['TESTENV_GIT_HTTP']}/{unique_name('sync-webhook')}.git"
    repo = ConfigRepo(tmp_path / "repo", url)
    first = repo.replace({"cm.yaml": configmap("hooked", {"value": "one"})})
    agent = start_webhook_agent(env, tmp_path, namespace, url, SECRET)
    try:
        synced_revision(env, namespace, agent.sync_name, first)
        second = repo.replace({"cm.yaml": configmap("hooked", {"value": "two"})})
        push = {
            "ref": "refs/heads/main",
            "before": first,
            "after": second,
            "repository": {"clone_url": url, "html_url": url.removesuffix(".git")},
        }

        assert agent.webhook(push, "not-the-secret")[0] == 401
        unsigned = agent.request(
            "POST", "/hooks/git", b"{}", {"X-GitHub-Event": "push", "Content-Type": "application/json"}
        )
        assert unsigned[0] == 401
        other_repo = {**push, "repository": {"clone_url": f"{env['TESTENV_GIT_HTTP']}/other.git"}}
        assert agent.webhook(other_repo, SECRET) == (202, "ignored\n")
        other_branch = {**push, "ref": "refs/heads/feature"}
        assert agent.webhook(other_branch, SECRET) == (202, "ignored\n")
        time.sleep(2.5)
        assert cm_data(env, namespace, "hooked") == {"value": "one"}, "a refused delivery triggered a sync"
        assert sync_state(env, namespace, agent.sync_name)["revision"] == first

        assert agent.webhook(push, SECRET) == (202, "sync triggered\n")
        # The next poll is an hour away: the commit can only land because of the delivery. The
        # deadline only bounds a hang (latency is not asserted on a shared machine).
        wait_for("the pushed value", lambda: cm_data(env, namespace, "hooked") == {"value": "two"}, 60)
        synced_revision(env, namespace, agent.sync_name, second)
        assert "webhook refused" in agent.log()
    finally:
        assert agent.stop() == 0, agent.log()


def git_fetches(agent: AgentProcess) -> float:
    """The agent's fetches of its Git repository so far, from its metrics."""
    text = agent.request("GET", "/metrics")[1]
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("gitops_helm_git_fetches_total{")
    )


def signed_push(payload: dict[str, object], delivery: str) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload).encode()
    return body, {
        "Content-Type": "application/json",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest(),
    }


def test_a_replayed_signed_push_triggers_no_fetch(env: Env, namespace: str, tmp_path: Path) -> None:
    """GitHub signs the body only: anyone who saw a delivery can send it again. A replay (same
    delivery id, or the same commit under a new id) once made the agent fetch every time."""
    url = f"{env['TESTENV_GIT_HTTP']}/{unique_name('sync-webhook-replay')}.git"
    repo = ConfigRepo(tmp_path / "repo", url)
    first = repo.replace({"cm.yaml": configmap("replayed", {"value": "one"})})
    agent = start_webhook_agent(env, tmp_path, namespace, url, SECRET)
    try:
        synced_revision(env, namespace, agent.sync_name, first)
        second = repo.replace({"cm.yaml": configmap("replayed", {"value": "two"})})
        push = {"ref": "refs/heads/main", "after": second, "repository": {"clone_url": url}}
        body, headers = signed_push(push, "delivery-1")
        assert agent.request("POST", "/hooks/git", body, headers) == (202, "sync triggered\n")
        synced_revision(env, namespace, agent.sync_name, second)
        fetches = wait_for("the fetch to be counted", lambda: git_fetches(agent) >= 2 and git_fetches(agent))

        assert agent.request("POST", "/hooks/git", body, headers)[0] == 409
        _, renamed = signed_push(push, "delivery-2")
        assert agent.request("POST", "/hooks/git", body, renamed) == (202, "already synced: no fetch\n")
        # a delivery that was acted on is logged "fetching now"; give a wrongly triggered fetch
        # time to be counted before comparing
        time.sleep(2.5)
        assert git_fetches(agent) == fetches, "a replayed delivery made the agent fetch"
        assert agent.log().count("webhook: fetching now") == 1
    finally:
        assert agent.stop() == 0, agent.log()
