"""A Git commit that changes no object costs no write request per object, and drift is still undone.

The agent counts its Kubernetes requests by verb (``gitops_helm_kube_requests_total`` on
``/metrics``). Twenty ConfigMaps are synced; a commit that only changes a README is then announced
by webhook (the poll is an hour away): the sync that records it must send no patch per object
(records of the sync itself are the only writes), where it used to server-side apply every unchanged
object again. A hand edit of one ConfigMap must still be undone by the next sync.
"""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Env
from tests.integration.syncfix import (
    AgentProcess,
    ConfigRepo,
    cm_data,
    configmap,
    start_webhook_agent,
    synced_revision,
    unique_name,
)

SECRET = "unchanged-writes-secret"
OBJECTS = 20


def kube_requests(agent: AgentProcess, verb: str) -> float:
    status, text = agent.request("GET", "/metrics")
    assert status == 200, text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "gitops_helm_kube_requests_total" and sample.labels.get("verb") == verb
    )


def announce(agent: AgentProcess, url: str, sha: str) -> None:
    push = {"ref": "refs/heads/main", "after": sha, "repository": {"clone_url": url}}
    assert agent.webhook(push, SECRET) == (202, "sync triggered\n")


def test_an_unchanged_commit_writes_no_object_and_drift_is_still_undone(
    env: Env, namespace: str, tmp_path: Path
) -> None:
    url = f"{env['TESTENV_GIT_HTTP']}/{unique_name('sync-unchanged')}.git"
    repo = ConfigRepo(tmp_path / "repo", url)
    files = {f"cm-{i}.yaml": configmap(f"cm-{i}", {"value": str(i)}) for i in range(OBJECTS)}
    first = repo.replace(files, "twenty ConfigMaps")
    agent = start_webhook_agent(env, tmp_path, namespace, url, SECRET)
    try:
        synced_revision(env, namespace, agent.sync_name, first)
        # a second sync of the same objects first, so the agent has applied each of them itself
        second = repo.commit({"README.md": "one\n"}, "readme")
        announce(agent, url, second)
        synced_revision(env, namespace, agent.sync_name, second)

        patches = kube_requests(agent, "patch")
        third = repo.commit({"README.md": "two\n"}, "readme again")
        announce(agent, url, third)
        synced_revision(env, namespace, agent.sync_name, third)
        written = kube_requests(agent, "patch") - patches
        # records of the sync itself (the sync state, the source's fetch, the webhook delivery)
        # are the only writes: never one per object
        assert written <= 3, f"{written:.0f} patch requests for a commit that changes no object"

        env.kubectl(
            "patch",
            "configmap",
            "cm-3",
            "-n",
            namespace,
            "--type",
            "merge",
            "-p",
            '{"data":{"value":"hand"}}',
        )
        fourth = repo.commit({"README.md": "three\n"}, "readme once more")
        announce(agent, url, fourth)
        synced_revision(env, namespace, agent.sync_name, fourth)
        assert cm_data(env, namespace, "cm-3") == {"value": "3"}
        assert cm_data(env, namespace, "cm-4") == {"value": "4"}
    finally:
        agent.stop()
