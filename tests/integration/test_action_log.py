"""The one structured line per helm action (``action finished``: release, action, revision,
chart revision, duration, outcome), as a log search finds it in a real agent's JSON log."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest import Env
from tests.integration.reconcile_helpers import apply, hr_manifest, patch_spec, repo_chart
from tests.integration.syncfix import AgentProcess, start_agent, wait_for
from tests.integration.test_cli_reconcile import install_crd

WAIT = 120.0


def action_lines(agent: AgentProcess) -> list[dict[str, Any]]:
    """The agent's ``action finished`` records (every log line is one JSON object)."""
    records = [json.loads(line) for line in agent.log().splitlines() if line.startswith("{")]
    return [r for r in records if r.get("msg") == "action finished"]


def test_install_and_failed_upgrade_each_log_one_action_line(
    env: Env, namespace: str, tmp_path: Path
) -> None:
    install_crd(env)
    agent = start_agent(
        env, tmp_path / "agent", namespace, "file:///nonexistent", "--reconcile-only", "--log-format", "json"
    )
    try:
        apply(env, hr_manifest("app", namespace, repo_chart(env)))
        install = wait_for("the install's line", lambda: action_lines(agent), timeout=WAIT)[0]
        assert {k: install.get(k) for k in ("level", "release", "action", "revision", "outcome")} == {
            "level": "info",
            "release": f"{namespace}/app",
            "action": "install",
            "revision": 1,
            "outcome": "succeeded",
        }, install
        assert install["chart_revision"] == "0.1.0"
        assert isinstance(install["duration_s"], float | int) and install["duration_s"] >= 0

        # an upgrade whose pod never becomes Ready within the wait fails
        patch_spec(env, namespace, "app", {"wait": True, "timeout": 5, "values": {"unready": True}})
        upgrades = wait_for(
            "the failed upgrade's line",
            lambda: [r for r in action_lines(agent) if r.get("action") == "upgrade"],
            timeout=WAIT,
        )
        failed = upgrades[0]
        assert {k: failed.get(k) for k in ("release", "revision", "chart_revision", "outcome")} == {
            "release": f"{namespace}/app",
            "revision": 2,
            "chart_revision": "0.1.0",
            "outcome": "failed",
        }, failed
        assert failed["duration_s"] >= 0
    finally:
        agent.stop()
