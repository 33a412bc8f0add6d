"""A helm that cannot be started (binary removed, fork refused) is a temporary error: the run is
retried with backoff, the HelmRelease counts no failure and nothing is remediated."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tests.conftest import Env
from tests.integration.reconcile_helpers import (
    apply,
    hr_manifest,
    latest_revision,
    repo_chart,
    status,
    wait_ready,
)


def test_a_helm_binary_that_cannot_be_started_is_retried_not_counted(
    env: Env, namespace: str, helm: str, start_agent: Any, tmp_path: Path
) -> None:
    wrapper = tmp_path / "bin" / "helm"
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/sh\nexec "{helm}" "$@"\n')
    wrapper.chmod(0o755)
    agent = start_agent(namespace, str(wrapper))  # helm version at start works
    away = wrapper.with_name("helm.away")
    wrapper.rename(away)  # now every helm call fails to start (FileNotFoundError)

    apply(env, hr_manifest("app", namespace, repo_chart(env), install={"remediation": {"retries": 5}}))
    agent.wait_for("two install attempts", lambda: agent.agent.helm.calls["install"] >= 2)
    time.sleep(1.5)
    st = status(agent, "app", namespace)
    assert not st.get("failures"), st
    assert not st.get("lastFailedDigest"), st
    assert latest_revision(env, namespace, "app") == (0, "")
    events = env.kubectl("get", "events", "-n", namespace, "-o", "jsonpath={.items[*].reason}").split()
    assert "InstallFailed" not in events, events
    assert not {"Uninstalled", "RolledBack"} & set(events), events

    away.rename(wrapper)  # helm is back: the retried run installs, and nothing was counted
    wait_ready(agent, "app", namespace)
    assert latest_revision(env, namespace, "app") == (1, "deployed")
    assert not status(agent, "app", namespace).get("failures")
