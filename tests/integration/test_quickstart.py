"""docs/quickstart.md works: its tested blocks run, in order, against the local cluster.

A block is tested when the line before its fence is ``<!-- quickstart: NAME -->``. The test changes
only what points outside this machine: the chart repository becomes the local one (chart ``hello``,
whose Deployment is named after the release like podinfo's), the namespace ``quickstart`` a fresh
one, and the steps a reader does in their own Git repository (push the HelmRelease, start
``gitops-helm run`` with the quick start's flags, push the value change) are done through the
fixtures, with the same content and flags.
"""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from pathlib import Path

from tests.conftest import Env, release_finalizers
from tests.integration.syncfix import GITOPS_HELM, ConfigRepo, start_agent, unique_name, wait_for

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "docs" / "quickstart.md"
BLOCK = re.compile(r"<!-- quickstart: (?P<name>[a-z-]+) -->\n```(?P<lang>\w+)\n(?P<body>.*?)```", re.DOTALL)


def quickstart_blocks() -> dict[str, str]:
    return {m["name"]: m["body"] for m in BLOCK.finditer(QUICKSTART.read_text(encoding="utf-8"))}


def localised(text: str, env: Env, namespace: str) -> str:
    text = text.replace("https://stefanprodan.github.io/podinfo", env["TESTENV_CHARTS"])
    text = text.replace("    name: podinfo\n", "    name: hello\n").replace(
        'version: "6.7.1"', 'version: "0.1.0"'
    )
    return text.replace("quickstart", namespace)


def tools_dir(env: Env, tmp: Path) -> Path:
    """kubectl, helm and gitops-helm on PATH under the names the quick start uses."""
    tools = tmp / "bin"
    tools.mkdir()
    for name, target in (
        ("kubectl", env["KUBECTL_BIN"]),
        ("helm", env["HELM_BIN"]),
        ("gitops-helm", GITOPS_HELM),
    ):
        (tools / name).symlink_to(target)
    return tools


def run_block(env: Env, tools: Path, script: str) -> str:
    environ = env.environ({"PATH": f"{tools}{os.pathsep}{os.environ['PATH']}"})
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, (
        f"quick start block failed:\n{script}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    )
    return done.stdout


def test_the_quick_start(env: Env, tmp_path: Path) -> None:
    blocks = quickstart_blocks()
    assert set(blocks) == {"helmrelease", "crd", "ready", "status", "upgraded"}
    namespace = f"quickstart-{uuid.uuid4().hex[:6]}"
    tools = tools_dir(env, tmp_path)
    url = f"{env['TESTENV_GIT_HTTP']}/{unique_name('quickstart')}.git"
    repo = ConfigRepo(tmp_path / "repo", url)
    helmrelease = localised(blocks["helmrelease"], env, namespace)
    repo.commit({"apps/podinfo.yaml": helmrelease}, "podinfo")
    agent = None
    try:
        run_block(env, tools, localised(blocks["crd"], env, namespace))
        agent = start_agent(
            env, tmp_path / "agent", namespace, url, "--git-path", "apps", sync_name=namespace
        )

        shown = run_block(env, tools, localised(blocks["ready"], env, namespace))
        assert re.search(rf"podinfo\s+{namespace}-podinfo\s+\w+\s+deployed", shown), shown
        status = run_block(env, tools, localised(blocks["status"], env, namespace))
        assert "podinfo" in status, status

        repo.commit({"apps/podinfo.yaml": helmrelease.replace("replicaCount: 1", "replicaCount: 2")}, "two")
        upgraded = localised(blocks["upgraded"], env, namespace)
        # The Deployment is scaled when helm starts the upgrade, before the revision is recorded
        # deployed (helm waits): the block is run again until its history shows the outcome.
        wait_for(
            "revision 2 deployed by an upgrade in the block's helm history",
            lambda: re.search(
                r"^2\s.*\sdeployed\s.*upgrading", run_block(env, tools, upgraded), re.MULTILINE
            ),
            timeout=300,
            interval=2,
        )
    finally:
        if agent is not None:
            assert agent.stop() == 0, agent.log()
        release_finalizers(env, namespace)
        env.kubectl("delete", "namespace", namespace, "--wait=false", "--ignore-not-found", check=False)
