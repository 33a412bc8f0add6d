"""The agent killed during its remediation rollback: the remediation is finished, counted once.

Found by the fault-injection suite (chaos experiment 1, ``agent-killed``, trial "rollback"): the
agent and its helm were killed during the ``helm rollback`` that remediates a failed upgrade
(``rollback.enable``), leaving the rollback's revision ``pending-rollback``. After the pending
grace the agent marked it failed and then took it for a revision made outside the agent (plan
row 7): the remediation budget was used up, so the HelmRelease went Stalled with the release
``failed``. Now the agent recognises its own interrupted remediation (the revision right after
the failed one it recorded, helm's "Rollback to N" to the very revision the remediation targets),
deletes that pending revision so the failed one is the latest again, and runs the remediation
again, counted once; a rollback helm finished before the kill is recorded instead of being
mistaken for a manual change.

The kills are made exact with a helm wrapper: on ``rollback`` while ``armed`` exists it watches
the release's storage, runs the real helm, and as soon as helm has written the
``pending-rollback`` revision kills helm and its parent (the agent) with SIGKILL, as the end of a
pod would; while ``armed-after`` exists it kills the agent right after helm's rollback succeeded.
"""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Env
from tests.integration.reconcile_helpers import (
    FAIL_TIMEOUT,
    apply,
    config_message,
    hr_manifest,
    patch_spec,
    release_history,
    repo_chart,
    settled_ready,
    user_values,
)
from tests.integration.syncfix import get_object, wait_for
from tests.integration.test_reconcile_interrupted import Agents


def _helm_killed_mid_rollback(env: Env, namespace: str, tmp_path: Path, helm: str) -> tuple[str, Path]:
    """A helm that, while ``armed`` exists, kills itself and its caller during a rollback, once the
    rollback's pending revision is in storage (or helm ended first: then right after it)."""
    armed = tmp_path / "armed"
    seen = tmp_path / "pending-seen"
    wrapper = tmp_path / "helm-killed-mid-rollback"
    selector = "owner=helm,name=app,status=pending-rollback"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = rollback ] && [ -e "{armed}-after" ]; then\n'
        f'  "{helm}" "$@"; rc=$?; [ "$rc" -eq 0 ] && kill -9 "$PPID"; exit "$rc"\n'
        "fi\n"
        f'if [ "$1" != rollback ] || [ ! -e "{armed}" ]; then exec "{helm}" "$@"; fi\n'
        f'rm -f "{seen}"\n'
        f'"{env["KUBECTL_BIN"]}" --kubeconfig "{env["KUBECONFIG"]}" get secrets -n "{namespace}" '
        f'-l "{selector}" -o name --watch > "{seen}" 2>/dev/null &\n'
        "watcher=$!\n"
        "sleep 1\n"  # the watch is established before helm writes anything
        f'"{helm}" "$@" &\n'
        "child=$!\n"
        f'while [ ! -s "{seen}" ] && kill -0 "$child" 2>/dev/null; do sleep 0.01; done\n'
        'kill -9 "$child" "$watcher" 2>/dev/null\n'
        'kill -9 "$PPID"\n'
        "exit 137\n"
    )
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return str(wrapper), armed


@pytest.fixture
def agents(env: Env, namespace: str, tmp_path: Path, helm: str) -> Iterator[tuple[Agents, Path]]:
    wrapper, armed = _helm_killed_mid_rollback(env, namespace, tmp_path, helm)
    made = Agents(env, namespace, wrapper, tmp_path)
    yield made, armed
    made.kill()


def _status(env: Env, namespace: str) -> dict[str, Any]:
    return (get_object(env, "helmrelease", namespace, "app") or {}).get("status", {})


def _condition(st: dict[str, Any], ctype: str) -> str | None:
    found = next((c for c in st.get("conditions", []) if c["type"] == ctype), None)
    return found["status"] if found else None


def test_a_remediation_rollback_killed_midway_is_finished_as_the_same_remediation(
    env: Env, namespace: str, helm: str, agents: tuple[Agents, Path]
) -> None:
    run, armed = agents
    run.start()
    spec = {
        "values": {"message": "good"},
        "wait": True,
        "timeout": 30,
        "rollback": {"enable": True, "wait": True, "timeout": 30},
    }
    apply(env, hr_manifest("app", namespace, repo_chart(env), **spec))
    wait_for("Ready", lambda: settled_ready(env, namespace, "app"), timeout=120)
    assert release_history(env, namespace, "app") == [(1, "deployed")]

    # an upgrade whose pods never get Ready fails its --wait; the remediation's rollback is killed
    armed.touch()
    patch_spec(
        env, namespace, "app", {"timeout": FAIL_TIMEOUT, "values": {"message": "bad", "unready": True}}
    )
    agent = run.running
    assert agent is not None
    wait_for("the agent killed during its rollback", lambda: agent.proc.poll() is not None, timeout=120)
    run.running = None
    armed.unlink()
    killed_at = release_history(env, namespace, "app")
    assert killed_at[:2] == [(1, "deployed"), (2, "failed")], killed_at

    # restarted: the remediation is carried through (after the pending grace), not a new one
    run.start()

    def remediated() -> dict[str, Any] | None:
        st = _status(env, namespace)
        history = release_history(env, namespace, "app")
        done = (
            history[-1][1] == "deployed"
            and history[-1][0] > 2
            and _condition(st, "RolledBack") == "True"
            and _condition(st, "Reconciling") is None
        )
        return st if done else None

    try:
        st = wait_for("the remediation finished", remediated, timeout=180)
    except AssertionError as exc:
        raise AssertionError(
            f"{exc}\nhistory {release_history(env, namespace, 'app')} (at the kill: {killed_at})\n"
            f"{_status(env, namespace)}\n{run.log_tail()}"
        ) from None
    assert st.get("rollbackCount") == 1, st  # one remediation, though helm rollback ran twice
    assert _condition(st, "Ready") == "False", st
    assert _condition(st, "Released") == "False", st
    assert user_values(env, helm, namespace, "app") == {"message": "good"}
    assert config_message(env, namespace, "app") == "good"
    history = release_history(env, namespace, "app")
    assert not [h for h in history if h[1].startswith("pending")], history
    assert next(h for h in history if h[1] == "failed") == (2, "failed"), history

    # the user fixes the values: Ready, with no failure left over
    patch_spec(env, namespace, "app", {"timeout": 30, "values": {"message": "fixed", "unready": None}})
    st = wait_for(
        "Ready for the fixed values",
        lambda: (
            (s := settled_ready(env, namespace, "app"))
            and config_message(env, namespace, "app") == "fixed"
            and s
        ),
        timeout=120,
    )
    assert st.get("failures", 0) == 0, st
    assert release_history(env, namespace, "app")[-1][1] == "deployed"


def test_a_remediation_rollback_finished_before_the_kill_is_recorded_not_redone(
    env: Env, namespace: str, helm: str, agents: tuple[Agents, Path]
) -> None:
    run, armed = agents
    run.start()
    spec = {"values": {"message": "good"}, "wait": True, "timeout": 30, "rollback": {"enable": True}}
    apply(env, hr_manifest("app", namespace, repo_chart(env), **spec))
    wait_for("Ready", lambda: settled_ready(env, namespace, "app"), timeout=120)

    after = armed.with_name(armed.name + "-after")
    after.touch()
    patch_spec(
        env, namespace, "app", {"timeout": FAIL_TIMEOUT, "values": {"message": "bad", "unready": True}}
    )
    agent = run.running
    assert agent is not None
    wait_for("the agent killed after its rollback", lambda: agent.proc.poll() is not None, timeout=120)
    run.running = None
    after.unlink()
    assert release_history(env, namespace, "app") == [(1, "superseded"), (2, "failed"), (3, "deployed")]

    run.start()
    try:
        st = wait_for(
            "the rollback recorded",
            lambda: (
                (s := _status(env, namespace)).get("lastReleaseRevision") == 3
                and _condition(s, "Reconciling") is None
                and s
            ),
            timeout=120,
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{_status(env, namespace)}\n{run.log_tail()}") from None
    assert (st.get("rollbackCount"), _condition(st, "RolledBack"), _condition(st, "Ready")) == (
        1,
        "True",
        "False",
    )
    assert release_history(env, namespace, "app") == [(1, "superseded"), (2, "failed"), (3, "deployed")]
    assert config_message(env, namespace, "app") == "good"
