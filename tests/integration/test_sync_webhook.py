"""The Git webhook of `gitops-helm run`: a signed GitHub push delivery makes a new commit land
although the poll interval is one hour (so only the webhook can explain the apply); a bad
signature is refused and triggers nothing."""

from __future__ import annotations

import time
from pathlib import Path

from tests.conftest import Env
from tests.integration.syncfix import (
    ConfigRepo,
    cm_data,
    configmap,
    start_agent,
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
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n")
    agent = start_agent(
        env, tmp_path / "agent", namespace, url, "--git-webhook-secret-file", str(secret_file), poll="1h"
    )
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
