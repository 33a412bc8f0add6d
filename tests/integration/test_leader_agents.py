"""Two `gitops-helm run --leader-elect` replicas: one acts, the other takes over when it dies."""

from __future__ import annotations

import signal
import uuid
from pathlib import Path

from tests.conftest import Env
from tests.integration.syncfix import (
    ConfigRepo,
    cli,
    configmap,
    get_object,
    start_agent,
    status_flags,
    wait_for,
)


def test_only_the_leader_syncs_and_a_standby_takes_over(env: Env, namespace: str, tmp_path: Path) -> None:
    url = f"{env['TESTENV_GIT_HTTP']}/leader-{uuid.uuid4().hex[:8]}.git"
    repo = ConfigRepo(tmp_path / "repo", url)
    repo.commit({"cm.yaml": configmap("from-git", {"v": "1"}, namespace)}, "one")
    lease = f"lease-{uuid.uuid4().hex[:6]}"
    # The leader renews every third of the lease. With a very short lease, a leader stalled for a
    # few seconds on a busy machine loses it and the standby acts too: 10 s leaves room for that,
    # and the takeover below is waited for, not timed.
    flags = (
        "--leader-elect",
        "true",
        "--leader-election-id",
        lease,
        "--leader-election-lease-duration",
        "10s",
    )
    first = start_agent(env, tmp_path / "a", namespace, url, *flags, sync_name="leader")
    second = start_agent(env, tmp_path / "b", namespace, url, *flags, sync_name="leader")
    try:
        wait_for("one replica leads", lambda: "became leader" in first.log() + second.log(), timeout=60)
        leader, standby = (first, second) if "became leader" in first.log() else (second, first)
        wait_for("the ConfigMap", lambda: get_object(env, "configmap", namespace, "from-git"), timeout=60)
        assert "synced" not in standby.log()  # the standby neither syncs nor reconciles
        holder = env.kube_json("lease", lease, "-n", namespace)["spec"]["holderIdentity"]
        assert holder.endswith(f"-{leader.proc.pid}")

        leader.proc.send_signal(signal.SIGKILL)  # no goodbye: the lease must expire
        leader.proc.wait(10)
        wait_for("the standby takes over", lambda: "became leader" in standby.log(), timeout=90)
        repo.commit({"cm.yaml": configmap("from-git", {"v": "2"}, namespace)}, "two")
        wait_for(
            "the new leader syncs",
            lambda: (
                (get_object(env, "configmap", namespace, "from-git") or {}).get("data", {}).get("v") == "2"
            ),
            timeout=60,
        )
    finally:
        for agent in (first, second):
            if agent.proc.poll() is None:
                agent.stop()


SECRET = "handoff-secret"


def test_a_standby_is_ready_and_hands_a_webhook_to_the_leader(
    env: Env, namespace: str, tmp_path: Path
) -> None:
    """Readiness is "able to serve", not "is leader": both replicas of the shipped two-replica
    Deployment become Ready; a webhook that reaches the standby still lands (the poll is an hour
    away, so only the hand-over can explain the sync); leadership shows in metrics and status."""
    url = f"{env['TESTENV_GIT_HTTP']}/handoff-{uuid.uuid4().hex[:8]}.git"
    repo = ConfigRepo(tmp_path / "repo", url)
    first_commit = repo.replace({"cm.yaml": configmap("handed", {"v": "1"}, namespace)})
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n")
    lease = f"lease-{uuid.uuid4().hex[:6]}"
    flags = (
        "--leader-elect",
        "true",
        "--leader-election-id",
        lease,
        "--leader-election-lease-duration",
        "10s",
    )
    hook = ("--git-webhook-secret-file", str(secret_file))
    first = start_agent(env, tmp_path / "a", namespace, url, *flags, *hook, sync_name="handoff", poll="1h")
    second = start_agent(env, tmp_path / "b", namespace, url, *flags, *hook, sync_name="handoff", poll="1h")
    try:
        wait_for("one replica leads", lambda: "became leader" in first.log() + second.log(), timeout=60)
        leader, standby = (first, second) if "became leader" in first.log() else (second, first)
        wait_for("the ConfigMap", lambda: get_object(env, "configmap", namespace, "handed"), timeout=60)
        for replica in (leader, standby):
            wait_for(
                "both replicas Ready", lambda r=replica: r.request("GET", "/readyz")[0] == 200, timeout=60
            )
        assert "standby; leader: " in standby.request("GET", "/readyz")[1]
        assert "\ngitops_helm_leader 1.0" in leader.request("GET", "/metrics")[1]
        assert "\ngitops_helm_leader 0.0" in standby.request("GET", "/metrics")[1]
        out = cli(env, "status", *status_flags(env, namespace, "handoff"), "--leader-election-id", lease)
        assert out.returncode == 0, out.stderr
        assert f"leader ({namespace}/{lease}): " in out.stdout and f"-{leader.proc.pid}," in out.stdout, (
            out.stdout
        )

        second_commit = repo.replace({"cm.yaml": configmap("handed", {"v": "2"}, namespace)})
        push = {
            "ref": "refs/heads/main",
            "before": first_commit,
            "after": second_commit,
            "repository": {"clone_url": url, "html_url": url.removesuffix(".git")},
        }
        assert standby.webhook(push, SECRET) == (202, "sync triggered\n")
        wait_for(
            "the leader to sync the commit the standby was told about",
            lambda: (get_object(env, "configmap", namespace, "handed") or {}).get("data", {}).get("v") == "2",
            timeout=60,
        )
        assert "synced" not in standby.log()  # the standby still does nothing itself

        # a graceful stop gives the Lease up: the standby takes over without waiting for it to
        # expire (had it expired, the standby would say whom it took over from)
        assert leader.stop() == 0, leader.log()[-2000:]
        wait_for("the standby takes over", lambda: "became leader" in standby.log(), timeout=60)
        assert "took over from nobody" in standby.log(), standby.log()[-2000:]
    finally:
        for agent in (first, second):
            if agent.proc.poll() is None:
                agent.stop()
