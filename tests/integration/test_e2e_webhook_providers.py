"""The Git webhook with every provider the agent knows besides GitHub (that one is in
test_sync_webhook.py), end to end: one real `gitops-helm run` polling only once an hour; for
GitLab (token), Gitea (HMAC signature) and the generic format (HMAC signature), a commit is pushed
and the provider's delivery of it makes the sync happen. A delivery of each with a wrong secret
is refused."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from pathlib import Path
from typing import Any

from tests.conftest import Env
from tests.integration.syncfix import (
    AgentProcess,
    ConfigRepo,
    cm_data,
    configmap,
    start_webhook_agent,
    synced_revision,
    unique_name,
    wait_for,
)

SECRET = "webhook-provider-secret"


def _hex(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _gitlab(url: str, before: str, after: str, secret: str) -> tuple[bytes, dict[str, str]]:
    payload = {
        "object_kind": "push",
        "ref": "refs/heads/main",
        "before": before,
        "after": after,
        "checkout_sha": after,
        "project": {"git_http_url": url, "web_url": url.removesuffix(".git")},
        "repository": {"git_http_url": url},
    }
    body = json.dumps(payload).encode()
    return body, {"Content-Type": "application/json", "X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": secret}


def _gitea(url: str, before: str, after: str, secret: str) -> tuple[bytes, dict[str, str]]:
    payload = {"ref": "refs/heads/main", "before": before, "after": after, "repository": {"clone_url": url}}
    body = json.dumps(payload).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Gitea-Event": "push",
        "X-Gitea-Delivery": str(uuid.uuid4()),
        "X-Gitea-Signature": _hex(secret, body),
    }
    return body, headers


def _generic(url: str, before: str, after: str, secret: str) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"repository": url, "branch": "main", "after": after}).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Event": "push",
        "X-Signature": f"sha256={_hex(secret, body)}",
    }
    return body, headers


PROVIDERS: dict[str, Any] = {"gitlab": _gitlab, "gitea": _gitea, "generic": _generic}


def _deliver(agent: AgentProcess, delivery: tuple[bytes, dict[str, str]]) -> tuple[int, str]:
    body, headers = delivery
    return agent.request("POST", "/hooks/git", body, headers)


def test_gitlab_gitea_and_generic_deliveries_each_trigger_the_sync(
    env: Env, namespace: str, tmp_path: Path
) -> None:
    url = f"{env['TESTENV_GIT_HTTP']}/{unique_name('sync-providers')}.git"
    repo = ConfigRepo(tmp_path / "repo", url)
    before = repo.replace({"cm.yaml": configmap("hooked", {"value": "initial"})})
    agent = start_webhook_agent(env, tmp_path, namespace, url, SECRET)
    try:
        synced_revision(env, namespace, agent.sync_name, before)
        for provider, delivery in PROVIDERS.items():
            after = repo.replace({"cm.yaml": configmap("hooked", {"value": provider})})
            assert _deliver(agent, delivery(url, before, after, "not-the-secret"))[0] == 401, provider
            assert _deliver(agent, delivery(url, before, after, SECRET)) == (202, "sync triggered\n"), (
                provider
            )
            # the next poll is an hour away: only the delivery explains the new value
            wait_for(
                f"the commit delivered by {provider}",
                lambda p=provider: cm_data(env, namespace, "hooked") == {"value": p},
                timeout=60,
            )
            synced_revision(env, namespace, agent.sync_name, after)
            before = after
        log = agent.log()
        for provider in PROVIDERS:
            assert f"provider={provider}" in log, f"no webhook of {provider} in the log"
    finally:
        assert agent.stop() == 0, agent.log()
