"""The agent killed after helm finished, before it recorded the outcome: one change, one revision.

Found by the fault-injection suite (chaos experiment 1, ``agent-killed``): a kill -9 that lands
after ``helm install``/``upgrade`` returned but before the agent wrote the HelmRelease status left
a deployed revision with the agent's owner and digest labels that the status did not name. On
restart the planner took it for a manual change (row 7) and upgraded again to the state the
release already held: two revisions for one change. Now the agent recognises its own revision
(the description it gives helm, kept per revision) and records it, with an Event saying so.

The kill is made exact with a helm wrapper: it runs the real helm and, once an install or upgrade
succeeded, kills its parent (the agent) with SIGKILL before handing helm's answer back.
"""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Env
from tests.integration.reconcile_helpers import (
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


def _killing_helm(tmp_path: Path, helm: str) -> tuple[str, Path]:
    """A helm that kills its caller after a successful install or upgrade while ``armed`` exists."""
    armed = tmp_path / "armed"
    wrapper = tmp_path / "helm-then-kill"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'"{helm}" "$@"\n'
        "rc=$?\n"
        'case "$1" in install|upgrade)\n'
        f'  if [ "$rc" -eq 0 ] && [ -e "{armed}" ]; then kill -9 "$PPID"; fi ;;\n'
        "esac\n"
        'exit "$rc"\n'
    )
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return str(wrapper), armed


@pytest.fixture
def agents(env: Env, namespace: str, tmp_path: Path, helm: str) -> Iterator[tuple[Agents, Path]]:
    wrapper, armed = _killing_helm(tmp_path, helm)
    made = Agents(env, namespace, wrapper, tmp_path)
    yield made, armed
    made.kill()


def _killed_after_helm(run: Agents, armed: Path) -> None:
    """Wait until the wrapper killed the agent after helm's success, then disarm it."""
    agent = run.running
    assert agent is not None
    wait_for("helm to finish and the agent to be killed", lambda: agent.proc.poll() is not None, timeout=120)
    run.running = None
    armed.unlink()


def test_a_kill_after_helm_succeeded_applies_one_change_once(
    env: Env, namespace: str, helm: str, agents: tuple[Agents, Path]
) -> None:
    run, armed = agents
    run.start()

    # install: helm succeeds, the agent dies before writing the status
    armed.touch()
    spec = {"values": {"message": "one"}, "wait": True, "timeout": 30}
    apply(env, hr_manifest("app", namespace, repo_chart(env), **spec))
    _killed_after_helm(run, armed)
    assert release_history(env, namespace, "app") == [(1, "deployed")]
    run.start()
    st = wait_for("Ready after the restart", lambda: settled_ready(env, namespace, "app"), timeout=120)
    assert release_history(env, namespace, "app") == [(1, "deployed")], (
        "the install was applied a second time"
    )
    assert (st.get("lastReleaseRevision"), st.get("failures", 0)) == (1, 0), st
    assert user_values(env, helm, namespace, "app") == {"message": "one"}

    # upgrade: the same
    armed.touch()
    patch_spec(env, namespace, "app", {"values": {"message": "two"}})
    _killed_after_helm(run, armed)
    assert release_history(env, namespace, "app") == [(1, "superseded"), (2, "deployed")]
    run.start()
    try:
        wait_for(
            "Ready for the new values",
            lambda: (st := settled_ready(env, namespace, "app")) and st.get("lastReleaseRevision") == 2,
            timeout=120,
        )
    except AssertionError as exc:
        hr = get_object(env, "helmrelease", namespace, "app") or {}
        raise AssertionError(f"{exc}\n{hr.get('metadata')}\n{hr.get('status')}\n{run.log_tail()}") from None
    assert release_history(env, namespace, "app") == [(1, "superseded"), (2, "deployed")], (
        "the upgrade was applied twice"
    )
    assert config_message(env, namespace, "app") == "two"
    events = env.kube_json("events", "-n", namespace)["items"]
    recorded = [e["message"] for e in events if e["reason"] == "ReleaseRecorded"]
    assert any("revision 1" in m and "install" in m for m in recorded), recorded
    assert any("revision 2" in m and "upgrade" in m for m in recorded), recorded


def test_a_manual_upgrade_carrying_the_agents_labels_is_still_corrected(
    env: Env, namespace: str, helm: str, agents: tuple[Agents, Path]
) -> None:
    # helm copies a release's labels (owner, digest) onto the next revision: a person's upgrade
    # looks like the agent's own by its labels; its description tells them apart
    run, _ = agents
    run.start()
    apply(env, hr_manifest("app", namespace, repo_chart(env), values={"message": "one"}))
    wait_for("Ready", lambda: settled_ready(env, namespace, "app"), timeout=120)
    run.kill()
    env.run([helm, "upgrade", "app", repo_chart(env)["name"], "--repo", env["TESTENV_CHARTS"],
             "-n", namespace, "--reuse-values", "--set", "message=manual"])  # fmt: skip
    run.start()
    wait_for(
        "the manual upgrade corrected",
        lambda: (
            release_history(env, namespace, "app")[-1] == (3, "deployed")
            and settled_ready(env, namespace, "app")
        ),
        timeout=120,
    )
    assert config_message(env, namespace, "app") == "one"
