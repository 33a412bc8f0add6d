"""Lifecycle (helm 3 and 4): a release left `pending-upgrade` by a crash is recovered when the agent
starts again, a `helm upgrade` still running is left alone until its grace has passed,
`dependsOn` holds a release back until its dependency is Ready, and bad input gets a clear status
without blocking the other HelmReleases of the namespace."""

from __future__ import annotations

import base64
import gzip
import json
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.conftest import CHARTS, Env
from tests.integration.reconcile_helpers import (
    apply,
    cond,
    config_message,
    hr_manifest,
    latest_revision,
    patch_spec,
    release_record,
    release_secrets,
    repo_chart,
    resync,
    status,
    wait_ready,
    wait_revision,
)


def _leave_pending_upgrade(env: Env, namespace: str, release: str) -> None:
    """What a SIGKILL during `helm upgrade` leaves behind, an hour ago: the latest revision's
    storage record and its `status` label say pending-upgrade."""
    secret = release_secrets(env, namespace, release)[-1]
    record = release_record(secret)
    record["info"]["status"] = "pending-upgrade"
    payload = base64.b64encode(gzip.compress(json.dumps(record).encode())).decode()
    an_hour_ago = str(int(time.time()) - 3600)
    patch = {
        "metadata": {
            "labels": {"status": "pending-upgrade", "modifiedAt": an_hour_ago, "createdAt": an_hour_ago}
        },
        "data": {"release": base64.b64encode(payload.encode()).decode()},
    }
    merge_patch_secret(env, namespace, secret["metadata"]["name"], patch)


def test_pending_upgrade_is_recovered_when_the_agent_starts(
    env: Env, namespace: str, helm: str, start_agent: Any
) -> None:
    first = start_agent(namespace, helm)
    apply(env, hr_manifest("app", namespace, repo_chart(env), values={"message": "declared"}))
    wait_ready(first, "app", namespace)
    first.agent.stop()

    _leave_pending_upgrade(env, namespace, "app")
    assert latest_revision(env, namespace, "app") == (1, "pending-upgrade")
    helm_status = json.loads(env.run([helm, "status", "app", "-n", namespace, "-o", "json"]).stdout)
    assert helm_status["info"]["status"] == "pending-upgrade"

    second = start_agent(namespace, helm)
    # revision 1 is unlocked (marked failed), then upgraded to revision 2
    wait_revision(second, env, namespace, "app", 2)
    # The first agent's Ready=True (same generation) is still there: wait for the status of
    # revision 2 (lastReleaseRevision comes with the upgrade, releaseStatus with the next write).
    second.wait_for(
        "the status of revision 2",
        lambda: (
            status(second, "app", namespace).get("lastReleaseRevision") == 2
            and status(second, "app", namespace).get("releaseStatus") == "deployed"
        ),
    )
    wait_ready(second, "app", namespace)
    assert [s["metadata"]["labels"]["status"] for s in release_secrets(env, namespace, "app")] == [
        "superseded",
        "deployed",
    ]
    events = env.kubectl(
        "get", "events", "-n", namespace, "--field-selector", "reason=PendingReleaseUnlocked", "-o", "name"
    )
    assert events.strip(), "no PendingReleaseUnlocked event"


def _storage(env: Env, namespace: str, release: str) -> list[tuple[int, str]]:
    """(revision, status) of every stored revision, oldest first."""
    return [
        (int(s["metadata"]["labels"]["version"]), s["metadata"]["labels"]["status"])
        for s in release_secrets(env, namespace, release)
    ]


def _deployed_an_hour_ago(env: Env, namespace: str, release: str) -> None:
    """Make the latest (deployed) revision look as it does when it was deployed an hour ago: helm
    stamps ``modifiedAt`` when it marks a revision deployed, and copies the labels of the last
    revision, ``modifiedAt`` included, onto the next one it creates."""
    secret = release_secrets(env, namespace, release)[-1]
    an_hour_ago = str(int(time.time()) - 3600)
    patch = {"metadata": {"labels": {"modifiedAt": an_hour_ago}}}
    merge_patch_secret(env, namespace, secret["metadata"]["name"], patch)


#: spec.timeout of the HelmRelease below: the grace of a pending revision is this plus
#: the settings' retry.pending_grace_margin_s (60 s), far longer than the checks made while helm runs.
RUNNING_TIMEOUT_S = 5


def test_a_running_helm_upgrade_is_not_hijacked(
    env: Env, namespace: str, helm: str, start_agent: Any, tmp_path: Path
) -> None:
    """A person's `helm upgrade --wait` of a release deployed long ago is still running (its pod
    never becomes Ready): its revision is pending-upgrade. The agent reconciles meanwhile (a spec
    change, resyncs) and neither marks it failed nor upgrades; once the helm process is gone and
    the grace has passed, the agent unlocks the revision and upgrades to the spec."""
    agent = start_agent(namespace, helm)
    key = f"{namespace}/app"
    apply(
        env,
        hr_manifest(
            "app", namespace, repo_chart(env), values={"message": "declared"}, timeout=RUNNING_TIMEOUT_S
        ),
    )
    wait_ready(agent, "app", namespace)
    assert _storage(env, namespace, "app") == [(1, "deployed")]
    _deployed_an_hour_ago(env, namespace, "app")

    log = (tmp_path / "helm-upgrade.log").open("w")
    upgrade = subprocess.Popen(
        [
            helm, "upgrade", "app", str(CHARTS / "hello"), "-n", namespace,
            "--reuse-values", "--set", "unready=true", "--wait", "--timeout", "15m",
        ],
        env=env.environ(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:

        def still_helms() -> None:
            assert _storage(env, namespace, "app") == [(1, "deployed"), (2, "pending-upgrade")]
            assert agent.helm_calls() == calls, dict(agent.agent.helm.calls)
            assert upgrade.poll() is None, f"helm upgrade exited {upgrade.returncode}: see {log.name}"

        agent.wait_for(
            "helm's upgrade to write revision 2",
            lambda: latest_revision(env, namespace, "app")[0] >= 2,
        )
        calls = agent.helm_calls()
        still_helms()

        # a spec change: the agent plans for the new generation, and waits
        patch_spec(env, namespace, "app", {"values": {"message": "changed"}})
        generation = agent.hr("app", namespace)["metadata"]["generation"]
        agent.wait_for(
            f"the agent to plan for generation {generation}",
            lambda: status(agent, "app", namespace).get("observedGeneration") == generation,
        )
        still_helms()
        for _ in range(3):  # later reconciles (resyncs, a restarted worker) wait as well
            time.sleep(1.0)
            resync(agent, key)
            still_helms()
        waiting = cond(agent, "app", namespace, "Reconciling")
        assert waiting["reason"] == "RetryScheduled", waiting
        assert "revision 2 is pending-upgrade" in waiting["message"], waiting
    finally:
        upgrade.kill()  # SIGKILL: helm leaves revision 2 pending-upgrade, as a crash would
        upgrade.wait()
        log.close()
    assert latest_revision(env, namespace, "app") == (2, "pending-upgrade")

    # once the grace has passed, the agent takes over: unlock, then upgrade to the spec (helm 3
    # restores revision 1 first, so that the person's unready label does not stay: plan row 8f)
    final = 3 if agent.agent.helm.major >= 4 else 4
    agent.wait_for(
        "the agent to take over after the grace",
        lambda: latest_revision(env, namespace, "app") == (final, "deployed"),
        timeout=RUNNING_TIMEOUT_S + 60 + 120,
    )
    expected = [(1, "superseded"), (2, "failed"), (3, "deployed")]
    if final == 4:
        expected = [(1, "superseded"), (2, "failed"), (3, "superseded"), (4, "deployed")]
    assert _storage(env, namespace, "app") == expected
    deployment = env.kube_json("deployment", "app", "-n", namespace)
    assert "testenv.gitops-helm.io/unready" not in deployment["spec"]["template"]["metadata"].get(
        "labels", {}
    )
    wait_ready(agent, "app", namespace)
    assert config_message(env, namespace, "app") == "changed"
    events = env.kubectl(
        "get", "events", "-n", namespace, "--field-selector", "reason=PendingReleaseUnlocked", "-o", "name"
    )
    assert events.strip(), "no PendingReleaseUnlocked event"


def test_deleting_a_helmrelease_while_a_helm_upgrade_runs_waits_for_the_grace(
    env: Env, namespace: str, helm: str, start_agent: Any, tmp_path: Path
) -> None:
    """A person's `helm upgrade --wait` is running on the release (pending-upgrade) when its
    HelmRelease is deleted: the agent must not run `helm uninstall` beside it. Once that helm is
    gone and the pending grace has passed, the release is uninstalled and the finalizer removed."""
    from gitops_helm.config import RetrySettings

    margin_s = 15.0
    agent = start_agent(
        namespace, helm, retry=RetrySettings(base_s=1.0, max_s=5.0, pending_grace_margin_s=margin_s)
    )
    apply(
        env,
        hr_manifest(
            "app", namespace, repo_chart(env), values={"message": "declared"}, timeout=RUNNING_TIMEOUT_S
        ),
    )
    wait_ready(agent, "app", namespace)
    log = (tmp_path / "helm-upgrade.log").open("w")
    upgrade = subprocess.Popen(
        [
            helm, "upgrade", "app", str(CHARTS / "hello"), "-n", namespace,
            "--reuse-values", "--set", "unready=true", "--wait", "--timeout", "15m",
        ],
        env=env.environ(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        agent.wait_for(
            "helm's upgrade to write revision 2",
            lambda: latest_revision(env, namespace, "app") == (2, "pending-upgrade"),
        )
        calls = dict(agent.agent.helm.calls)
        env.kubectl("delete", "helmrelease", "app", "-n", namespace, "--wait=false")
        uninstalls = calls.get("uninstall", 0)
        agent.wait_for(
            "the agent to act on the deletion",
            lambda: (
                "another operation may be running" in _events_text(env, namespace, "UninstallDelayed")
                or agent.agent.helm.calls.get("uninstall", 0) > uninstalls
            ),
        )
        for _ in range(3):  # later attempts (requeues, resyncs) wait as well
            time.sleep(1.0)
            assert agent.agent.helm.calls.get("uninstall", 0) == uninstalls, (
                "uninstalled beside a running helm"
            )
            assert _storage(env, namespace, "app") == [(1, "deployed"), (2, "pending-upgrade")]
            assert upgrade.poll() is None, f"helm upgrade exited {upgrade.returncode}: see {log.name}"
    finally:
        upgrade.kill()  # SIGKILL: helm leaves revision 2 pending-upgrade
        upgrade.wait()
        log.close()

    # after the grace (timeout + margin from helm's revision 2), the release is uninstalled
    agent.wait_for(
        "the uninstall after the grace",
        lambda: not release_secrets(env, namespace, "app"),
        timeout=RUNNING_TIMEOUT_S + margin_s + 120,
    )
    agent.wait_for(
        "the HelmRelease to be gone",
        lambda: not env.kubectl("get", "helmrelease", "-n", namespace, "-o", "name").strip(),
    )


def _events_text(env: Env, namespace: str, reason: str) -> str:
    events = env.kube_json("events", "-n", namespace)["items"]
    return " ".join(e.get("message", "") for e in events if e.get("reason") == reason)


def test_depends_on_waits_until_the_dependency_is_ready(
    env: Env, namespace: str, helm: str, start_agent: Any
) -> None:
    agent = start_agent(namespace, helm)
    apply(env, hr_manifest("backend", namespace, repo_chart(env, version="9.9.9")))
    apply(env, hr_manifest("frontend", namespace, repo_chart(env), dependsOn=[{"name": "backend"}]))
    ready = agent.wait_condition("frontend", namespace, "Ready", "False")
    assert ready["reason"] == "DependencyNotReady", ready
    assert "backend" in ready["message"]
    time.sleep(1.5)
    assert release_secrets(env, namespace, "frontend") == []

    patch_spec(env, namespace, "backend", {"chart": {"version": "0.1.0"}})
    wait_ready(agent, "backend", namespace)
    wait_ready(agent, "frontend", namespace)
    assert latest_revision(env, namespace, "frontend") == (1, "deployed")
    first_deployed = {
        name: release_record(release_secrets(env, namespace, name)[0])["info"]["first_deployed"]
        for name in ("backend", "frontend")
    }
    assert first_deployed["backend"] < first_deployed["frontend"]


def test_bad_input_gets_a_clear_status_and_blocks_nothing(
    env: Env, namespace: str, helm: str, start_agent: Any
) -> None:
    agent = start_agent(namespace, helm)
    env.kubectl(
        "create", "configmap", "broken-values", "-n", namespace, "--from-literal=values.yaml=message: [oops"
    )
    apply(env, hr_manifest("nochart", namespace, {}))
    apply(env, hr_manifest("noversion", namespace, repo_chart(env, version="7.7.7")))
    apply(
        env,
        hr_manifest(
            "badyaml", namespace, repo_chart(env), valuesFrom=[{"configMapKeyRef": {"name": "broken-values"}}]
        ),
    )
    apply(env, hr_manifest("good", namespace, repo_chart(env)))
    wait_ready(agent, "good", namespace)

    invalid = agent.wait_condition("nochart", namespace, "Ready", "False")
    assert invalid["reason"] == "InvalidSpec", invalid
    assert "chart" in invalid["message"]

    fetched = agent.wait_condition("noversion", namespace, "ChartFetched", "False")
    assert "7.7.7" in fetched["message"], fetched
    assert cond(agent, "noversion", namespace, "Ready")["status"] == "False"

    released = agent.wait_condition("badyaml", namespace, "Released", "False")
    assert "broken-values" in released["message"] and "YAML" in released["message"], released

    for name in ("nochart", "noversion", "badyaml"):
        assert release_secrets(env, namespace, name) == []
    assert agent.agent.helm.calls["install"] == 1
    assert latest_revision(env, namespace, "good") == (1, "deployed")


def merge_patch_secret(env: Env, namespace: str, name: str, patch: dict[str, Any]) -> None:
    """Change a Helm storage Secret as a person (or a crashed helm) would have left it."""
    env.kubectl("patch", "secret", name, "-n", namespace, "--type=merge", "-p", json.dumps(patch))


def test_a_token_written_into_a_chart_url_is_refused_and_never_shown(
    env: Env, namespace: str, start_agent: Any, capfd: Any
) -> None:
    token = "ghp-" + "7" * 24
    agent = start_agent(namespace, env["HELM_BIN"])
    chart = repo_chart(env)
    chart["repository"] = chart["repository"].replace("://", f"://{token}@", 1)
    apply(env, hr_manifest("tokenurl", namespace, chart))
    invalid = agent.wait_condition("tokenurl", namespace, "Ready", "False")
    assert invalid["reason"] == "InvalidSpec", invalid
    assert "spec.chart.repository" in invalid["message"], invalid
    assert "must not carry credentials in the URL" in invalid["message"], invalid
    # what a tenant or an auditor can read: the status, the namespace's Events, the agent's log
    status = env.kubectl("get", "helmrelease", "tokenurl", "-n", namespace, "-o", "jsonpath={.status}")
    events = env.kubectl("get", "events", "-n", namespace, "-o", "json")
    assert "tokenurl" in events
    logged = capfd.readouterr()
    for seen in (status, events, logged.out, logged.err):
        assert token not in seen
    assert release_secrets(env, namespace, "tokenurl") == []
