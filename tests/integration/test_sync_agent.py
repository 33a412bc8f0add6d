"""`gitops-helm run` against a repository on the environment's Git server over plain HTTP: it applies
a Namespace, ConfigMaps and a HelmRelease (which becomes Ready), and follows new commits by polling
(there is no webhook). One agent serves the whole module."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from gitops_helm.sync.plan import CHECKSUM_ANNOTATION, SOURCE_LABEL, checksum, source_id
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
    start_agent,
    status_flags,
    synced_revision,
    unblock_namespace,
    unique_name,
    wait_for,
)


@dataclass
class Setup:
    env: Env
    namespace: str
    extra_namespace: str
    repo: ConfigRepo
    agent: AgentProcess
    first: str

    def tree(self, greeting: str) -> dict[str, str]:
        return tree(self.env, self.extra_namespace, greeting)


def tree(env: Env, extra_namespace: str, greeting: str) -> dict[str, str]:
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": extra_namespace}}
    return {
        "cluster/namespace.yaml": json.dumps(namespace) + "\n",
        "cluster/placed.yaml": configmap("placed", {"in": "extra"}, namespace=extra_namespace),
        "app/settings.yaml": configmap("settings", {"greeting": greeting}),
        "app/web.yaml": helmrelease(env, "web", {"message": "from git"}),
    }


@pytest.fixture(scope="module")
def setup(testenv_session: Env, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    env = testenv_session
    tmp = tmp_path_factory.mktemp("sync-agent")
    with fresh_namespace(env, "sync-agent") as ns:
        extra = f"{ns}-extra"
        url = f"{env['TESTENV_GIT_HTTP']}/{unique_name('sync-agent')}.git"
        repo = ConfigRepo(tmp / "repo", url)
        first = repo.replace(tree(env, extra, "one"), "first")
        agent = start_agent(env, tmp / "agent", ns, url)
        try:
            yield Setup(env, ns, extra, repo, agent, first)
        finally:
            assert agent.stop() == 0, agent.log()
            unblock_namespace(env, ns)
            env.kubectl("delete", "namespace", extra, "--wait=false", "--ignore-not-found", check=False)


def test_http_repo_is_applied_and_the_helmrelease_becomes_ready(setup: Setup) -> None:
    env, ns, agent = setup.env, setup.namespace, setup.agent
    state = synced_revision(env, ns, agent.sync_name, setup.first)
    assert state["result"] == "ok", state
    assert json.loads(state["errors"]) == []

    # The Namespace is applied before the ConfigMap that lives in it (same commit).
    extra = get_object(env, "namespace", None, setup.extra_namespace)
    assert extra is not None
    assert cm_data(env, setup.extra_namespace, "placed") == {"in": "extra"}

    # Objects without a namespace go to --default-namespace; all carry the source and checksum.
    settings = get_object(env, "configmap", ns, "settings")
    assert settings is not None and settings["data"] == {"greeting": "one"}
    hr = get_object(env, "helmrelease", ns, "web")
    assert hr is not None and hr["spec"]["values"] == {"message": "from git"}
    for obj in (extra, settings, hr):
        meta = obj["metadata"]
        assert meta["labels"][SOURCE_LABEL] == source_id(agent.sync_name), meta
        assert len(meta["annotations"][CHECKSUM_ANNOTATION]) == 64, meta
    assert settings["metadata"]["annotations"][CHECKSUM_ANNOTATION] == checksum(
        json.loads(setup.tree("one")["app/settings.yaml"])
    )

    # The embedded reconciler installs the release. Ready is written as soon as helm returns;
    # releaseStatus (shown by `gitops-helm status`) and observedGeneration come with the run's
    # last status write: wait for that.
    def ready() -> bool:
        hr = get_object(env, "helmrelease", ns, "web") or {}
        status = hr.get("status", {})
        conds = status.get("conditions", [])
        assert any(c["type"] == "Ready" and c["status"] == "True" for c in conds), status
        assert status.get("observedGeneration") == hr["metadata"]["generation"], status
        return True

    wait_for("HelmRelease web Ready", ready, timeout=90, interval=0.5)
    assert cm_data(env, ns, "web-config") is not None, "the chart's own ConfigMap is installed"
    # /readyz and the sync counter follow the end of the first sync run, which ends just after
    # it writes the sync state: poll them rather than assume they are already there.
    wait_for("/readyz 200", lambda: agent.request("GET", "/readyz")[0] == 200)
    assert agent.request("GET", "/healthz")[0] == 200

    def sync_counted() -> bool:
        code, metrics = agent.request("GET", "/metrics")
        assert code == 200 and 'gitops_helm_sync_runs_total{result="ok"}' in metrics, metrics
        return True

    wait_for("the ok sync in /metrics", sync_counted)

    # `gitops-helm status` shows the release table and the synced revision.
    out = cli(env, "status", *status_flags(env, ns, agent.sync_name))
    assert out.returncode == 0, out.stderr
    header, *rows = out.stdout.splitlines()
    assert header.split()[:4] == ["NAME", "READY", "STATUS", "REVISION"], out.stdout
    web = next(r.split() for r in rows if r.split()[:1] == ["web"])
    assert (web[1], web[2], web[3]) == ("True", "Succeeded", "0.1.0"), out.stdout  # revision: the chart's
    assert f"git sync ({ns}/" in out.stdout and f"revision {setup.first[:12]}" in out.stdout, out.stdout

    # Without a webhook secret there is no webhook endpoint at all.
    status, _ = agent.webhook({"ref": "refs/heads/main"}, "guess")
    assert status == 404


def test_a_pushed_change_is_applied_by_the_poll(setup: Setup) -> None:
    """Nothing but the poll can bring the commit in (the module's agent has no webhook). How soon
    is a latency, not something to assert on a shared machine: the wait only bounds a hang."""
    env, ns, agent = setup.env, setup.namespace, setup.agent
    synced_revision(env, ns, agent.sync_name, setup.first)
    greeting = f"changed-{uuid.uuid4().hex[:8]}"
    sha = setup.repo.replace(setup.tree(greeting), "change the greeting")
    wait_for("the new greeting", lambda: (cm_data(env, ns, "settings") or {}).get("greeting") == greeting, 60)
    state = synced_revision(env, ns, agent.sync_name, sha)
    assert state["result"] == "ok"
    assert "new commit" in agent.log() and sha[:12] in agent.log()


def test_a_hand_edit_is_reverted_at_the_next_poll(setup: Setup) -> None:
    """Drift correction: every poll re-applies the commit, even without a new one."""
    env, ns, agent = setup.env, setup.namespace, setup.agent
    current = setup.repo.work.git("rev-parse", "HEAD")
    synced_revision(env, ns, agent.sync_name, current)
    want = cm_data(env, ns, "settings")
    assert want is not None
    log_start = len(agent.log())
    env.kubectl(
        "patch", "configmap", "settings", "-n", ns, "--type=merge", "-p", '{"data":{"greeting":"edited"}}'
    )
    patch = '{"spec":{"values":{"message":"edited by hand"}}}'
    env.kubectl("patch", "helmrelease", "web", "-n", ns, "--type=merge", "-p", patch)
    wait_for("the ConfigMap edit to be reverted", lambda: cm_data(env, ns, "settings") == want, 60)
    wait_for(
        "the HelmRelease edit to be reverted",
        lambda: (
            (get_object(env, "helmrelease", ns, "web") or {})["spec"]["values"] == {"message": "from git"}
        ),
        60,
    )
    # logged just after the apply that reverted the edit: wait for the line, do not assume it
    agent.wait_log(r"corrected drift", after=log_start)
