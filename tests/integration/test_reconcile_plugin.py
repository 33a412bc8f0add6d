"""A chart served through a helm downloader plugin (a `testenv://` scheme), helm 3 and helm 4."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Env
from tests.integration.reconcile_helpers import apply, hr_manifest, wait_ready

PLUGIN_YAML = """\
name: "testenv-getter"
version: "0.1.0"
usage: "fetch charts over testenv://"
description: "downloader plugin for the testenv:// scheme (tests only)"
downloaders:
- command: "fetch.sh"
  protocols: ["testenv"]
"""

# helm runs: fetch.sh CERT KEY CA URL, and reads the file from stdout.
FETCH_SH = """\
#!/bin/sh
url=$(echo "$4" | sed 's#^testenv://#http://#')
exec curl -sSf --max-time 20 "$url"
"""


def install_plugin(helm_data_home: Path) -> None:
    plugin = helm_data_home / "plugins" / "testenv-getter"
    plugin.mkdir(parents=True)
    (plugin / "plugin.yaml").write_text(PLUGIN_YAML)
    (plugin / "fetch.sh").write_text(FETCH_SH)
    (plugin / "fetch.sh").chmod(0o755)


def test_chart_from_a_downloader_plugin(
    env: Env, namespace: str, helm: str, start_agent: object, tmp_path: Path
) -> None:
    # The fixture's first agent lives in tmp_path/agent-0; helm's data home is helm/data there.
    install_plugin(tmp_path / "agent-0" / "helm" / "data")
    agent = start_agent(namespace, helm)  # type: ignore[operator]
    repository = env["TESTENV_CHARTS"].replace("http://", "testenv://")
    apply(
        env,
        hr_manifest("plugged", namespace, {"repository": repository, "name": "hello", "version": "0.1.0"}),
    )
    # Not only Ready: releaseStatus is written by the run's last status write, after Ready.
    wait_ready(agent, "plugged", namespace)
    status = agent.hr("plugged", namespace)["status"]
    assert status["releaseStatus"] == "deployed"
    assert status["revision"] == "0.1.0"
    assert agent.agent.helm.calls["pull"] == 1

    # An exact version from a plugin is fetched once: a resync costs no helm call at all.
    calls = agent.helm_calls()
    agent.resync(f"{namespace}/plugged")
    assert agent.helm_calls() == calls
