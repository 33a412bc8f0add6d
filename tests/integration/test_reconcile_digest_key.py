"""The desired-state digest recorded in status and on Helm storage is keyed with the
installation's secret (HMAC), so reading it does not let anyone test guesses of Secret values
offline; releases recorded by an earlier, unkeyed version are not upgraded for it."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from gitops_helm.api import parse_helmrelease
from gitops_helm.config import SyncSettings
from gitops_helm.release import desired as desired_mod
from gitops_helm.release.digest_key import KEY_SECRET
from gitops_helm.values import values_digest
from tests.conftest import Env
from tests.integration.reconcile_helpers import (
    apply,
    assert_quiet_resync,
    hr_manifest,
    latest_revision,
    release_secrets,
    repo_chart,
    status,
    wait_ready,
)

DIGEST_LABEL = "gitops-helm.io/digest"


def _key(env: Env, namespace: str) -> bytes:
    secret = env.kube_json("secret", KEY_SECRET, "-n", namespace)
    return base64.b64decode(secret["data"]["key"])


def test_the_recorded_digest_is_keyed_with_the_installations_secret(
    env: Env, namespace: str, start_agent: Any
) -> None:
    # the key lives in the state namespace: this test's own, so no other test shares it
    agent = start_agent(namespace, env["HELM_BIN"], sync=SyncSettings(state_namespace=namespace))
    values = {"message": "hunter2"}  # stands for a value from a Secret
    hr = hr_manifest("app", namespace, repo_chart(env), values=values)
    apply(env, hr)
    wait_ready(agent, "app", namespace)

    key = _key(env, namespace)
    assert len(key) == 32
    recorded = status(agent, "app", namespace)["lastAppliedDigest"]
    (stored,) = release_secrets(env, namespace, "app")
    assert stored["metadata"]["labels"][DIGEST_LABEL] == recorded

    # what a reader of the status could compute from a guess of the values, and what it cannot
    policy = parse_helmrelease(hr).policy
    chart = agent.agent.resolver.fetch(namespace, "app", parse_helmrelease(hr).spec.chart)
    guessable = desired_mod.unkeyed_digest(policy, chart.digest, values_digest(values))
    assert recorded != guessable
    assert recorded == desired_mod.desired_digest(policy, chart.digest, values_digest(values), key)

    # a second agent (a restart, another replica) reads the same key: nothing to do
    agent.agent.stop()
    again = start_agent(namespace, env["HELM_BIN"], sync=SyncSettings(state_namespace=namespace))
    assert_quiet_resync(again, "app", namespace)
    assert _key(env, namespace) == key
    assert latest_revision(env, namespace, "app") == (1, "deployed")


def test_a_release_recorded_by_an_unkeyed_version_is_rekeyed_not_upgraded(
    env: Env, namespace: str, start_agent: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # the earlier version: the same agent, with the digest computed as it used to be
    keyed = desired_mod.desired_digest
    with monkeypatch.context() as old_version:
        old_version.setattr(desired_mod, "desired_digest", lambda p, c, v, key: keyed(p, c, v, None))
        old = start_agent(namespace, env["HELM_BIN"], sync=SyncSettings(state_namespace=namespace))
        apply(env, hr_manifest("app", namespace, repo_chart(env), values={"message": "one"}))
        wait_ready(old, "app", namespace)
        unkeyed = status(old, "app", namespace)["lastAppliedDigest"]
        old.agent.stop()
    assert not unkeyed.startswith("h1-")

    # the new version recognises the same desired state: no helm call; the guessable digest is
    # replaced by the keyed one on the latest revision and in the status
    new = start_agent(namespace, env["HELM_BIN"], sync=SyncSettings(state_namespace=namespace))
    rekeyed = new.wait_for(
        "the keyed digest in the status",
        lambda: (d := status(new, "app", namespace).get("lastAppliedDigest", "")).startswith("h1-") and d,
    )
    (stored,) = release_secrets(env, namespace, "app")
    assert stored["metadata"]["labels"][DIGEST_LABEL] == rekeyed
    assert unkeyed not in json.dumps(stored["metadata"]) + json.dumps(status(new, "app", namespace))
    calls = dict(new.agent.helm.calls)
    assert set(calls) <= {"version"}, calls  # asked its version at start; nothing else
    assert_quiet_resync(new, "app", namespace)
    assert latest_revision(env, namespace, "app") == (1, "deployed")

    # the next change records the keyed digest
    apply(env, hr_manifest("app", namespace, repo_chart(env), values={"message": "two"}))
    new.wait_for("revision 2", lambda: latest_revision(env, namespace, "app") == (2, "deployed"))
    wait_ready(new, "app", namespace)
    assert status(new, "app", namespace)["lastAppliedDigest"].startswith("h1-")
