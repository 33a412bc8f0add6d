"""Shared fixtures. Integration tests (tests/integration) use ONE real environment per session.

If ``scripts/testenv up`` already ran, that environment is reused and left running; otherwise the
session starts one and stops it at the end. A test never skips because the environment is
missing: it fails, with the reason.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hypothesis
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from testenvlib import env as testenv  # noqa: E402
from testenvlib.state import State  # noqa: E402

CHARTS = ROOT / "tests" / "charts"

# CI runs the property tests with a fixed seed sequence, so a red CI always means a change broke
# something, never that the random search happened upon an old bug this time; local runs keep
# exploring (and keep what they find in .hypothesis/).
#
# Neither profile has a deadline per example: a timing limit is a timed assertion, and on a loaded
# 2-core machine it fails tests that are right (latency belongs in the benchmarks).
hypothesis.settings.register_profile("local", deadline=None)
hypothesis.settings.register_profile("ci", derandomize=True, database=None, deadline=None)
hypothesis.settings.load_profile("ci" if os.environ.get("CI") else "local")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.path).replace(os.sep, "/"):
            item.add_marker(pytest.mark.integration)


@dataclass
class Env:
    """The running environment: its exported variables and small helpers for tests."""

    vars: dict[str, str]
    helm_home: Path

    def __getitem__(self, key: str) -> str:
        return self.vars[key]

    def run(
        self,
        argv: list[str],
        *,
        check: bool = True,
        timeout: float = 120,
        env: dict[str, str] | None = None,
        input_text: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        out = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, env=self.environ(env), input=input_text
        )
        if check and out.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} exited {out.returncode}:\n{out.stdout}\n{out.stderr}")
        return out

    def environ(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """The process environment of the commands a test runs (``run``, or a ``Popen`` of its own)."""
        full = dict(
            os.environ,
            **self.vars,
            NO_COLOR="1",
            HELM_CACHE_HOME=str(self.helm_home / "cache"),
            HELM_CONFIG_HOME=str(self.helm_home / "config"),
            HELM_DATA_HOME=str(self.helm_home / "data"),
            GIT_TERMINAL_PROMPT="0",
        )
        full.update(extra or {})
        return full

    def kubectl(self, *args: str, check: bool = True, input_text: str | None = None) -> str:
        return self.run([self["KUBECTL_BIN"], *args], check=check, input_text=input_text).stdout

    def kube_json(self, *args: str) -> dict:  # type: ignore[type-arg]
        return json.loads(self.kubectl("get", *args, "-o", "json"))

    def git_ssh_env(self) -> dict[str, str]:
        return {
            "GIT_SSH_COMMAND": (
                f"ssh -i {self['TESTENV_GIT_SSH_KEY']} -o UserKnownHostsFile={self['TESTENV_KNOWN_HOSTS']} "
                "-o IdentitiesOnly=yes -o StrictHostKeyChecking=yes -o BatchMode=yes"
            )
        }


@pytest.fixture(scope="session")
def testenv_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    started_here = not testenv.is_up()
    state = testenv.up() if started_here else State.load()
    assert state is not None
    e = Env(vars=dict(state.env), helm_home=tmp_path_factory.mktemp("helm-home"))
    # The test chart is published once per session, to every chart repository.
    testenv.publish_chart([str(CHARTS / "hello")])
    yield e
    if started_here and not os.environ.get("TESTENV_KEEP"):
        testenv.down()


@pytest.fixture
def env(testenv_session: Env) -> Env:
    return testenv_session


@pytest.fixture
def namespace(env: Env, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace per test (with its default ServiceAccount), deleted afterwards."""
    base = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"{base}-{uuid.uuid4().hex[:5]}"
    env.kubectl("create", "namespace", name)
    deadline = time.monotonic() + 30
    while env.kubectl("get", "serviceaccount", "default", "-n", name, check=False) == "":
        assert time.monotonic() < deadline, f"no default ServiceAccount in {name}"
        time.sleep(0.2)
    yield name
    release_finalizers(env, name)
    env.kubectl("delete", "namespace", name, "--wait=false", check=False)


def release_finalizers(env: Env, namespace: str) -> None:
    """Drop the agent's finalizer from HelmReleases left in ``namespace``.

    A test's agent is stopped before its namespace is deleted; without this, the HelmReleases
    would keep the namespace Terminating for ever (nobody is left to finalize them).
    """
    out = env.kubectl("get", "helmreleases", "-n", namespace, "-o", "name", check=False)
    for ref in out.split():
        env.kubectl(
            "patch",
            ref,
            "-n",
            namespace,
            "--type",
            "merge",
            "-p",
            '{"metadata":{"finalizers":null}}',
            check=False,
        )


@pytest.fixture(params=["HELM_BIN", "HELM3_BIN"], ids=["helm4", "helm3"])
def helm(env: Env, request: pytest.FixtureRequest) -> str:
    """The helm binary under test; every test using it runs with helm 4 and helm 3."""
    return env[request.param]


@dataclass
class RunningAgent:
    """An agent (gitops_helm.agent.Agent) running in this test process, scoped to one namespace."""

    agent: Any
    settings: Any
    env: Env
    # Reconciles started and finished, per HelmRelease key (counted by the fixture's wrapper).
    started: dict[str, int] = field(default_factory=dict)
    finished: dict[str, int] = field(default_factory=dict)
    counts_lock: threading.Lock = field(default_factory=threading.Lock)

    def count_reconciles(self) -> None:
        """Wrap the controller's reconcile function to count runs per key (before start)."""
        inner = self.agent.controller.reconcile_fn

        def counted(obj: dict[str, Any]) -> Any:
            meta = obj.get("metadata", {})
            key = f"{meta.get('namespace')}/{meta.get('name')}"
            with self.counts_lock:
                self.started[key] = self.started.get(key, 0) + 1
            try:
                return inner(obj)
            finally:
                with self.counts_lock:
                    self.finished[key] = self.finished.get(key, 0) + 1

        self.agent.controller.reconcile_fn = counted

    def resync(self, key: str) -> None:
        """Queue a reconcile of ``key`` and wait until a reconcile that started after this call
        has finished (a run already under way when it is called does not count).

        The work queue runs one reconcile per key at a time, so the run numbered one more than
        those started so far is one that started after now.
        """
        with self.counts_lock:
            target = self.started.get(key, 0) + 1
        self.agent.controller.queue.add(key)
        self.wait_for(f"a reconcile of {key}", lambda: self.finished.get(key, 0) >= target)

    def hr(self, name: str, namespace: str) -> dict[str, Any]:
        return self.env.kube_json("helmrelease", name, "-n", namespace)

    def wait_for(self, what: str, check: Any, timeout: float = 90.0, interval: float = 0.25) -> Any:
        """Poll ``check()`` until it returns a truthy value; fail naming ``what`` on timeout."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            try:
                last = check()
            except (AssertionError, KeyError, json.JSONDecodeError) as exc:
                last = exc
            else:
                if last:
                    return last
            time.sleep(interval)
        raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}")

    def condition(self, name: str, namespace: str, ctype: str) -> dict[str, Any] | None:
        conds = self.hr(name, namespace).get("status", {}).get("conditions", [])
        return next((c for c in conds if c["type"] == ctype), None)

    def wait_condition(
        self, name: str, namespace: str, ctype: str, status: str = "True", timeout: float = 90.0
    ) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            c = self.condition(name, namespace, ctype)
            return c if c and c["status"] == status else None

        return self.wait_for(f"{namespace}/{name} {ctype}={status}", check, timeout)  # type: ignore[no-any-return]

    def helm_calls(self) -> int:
        return sum(self.agent.helm.calls.values())


@pytest.fixture
def start_agent(env: Env, tmp_path: Path) -> Iterator[Any]:
    """Factory: ``start_agent(namespace, helm_bin, **settings_overrides) -> RunningAgent``.

    The agent watches only ``namespace`` (so tests and the helm 3/helm 4 variants never see each
    other's HelmReleases), reconciles with short retry delays, and is stopped after the test.

    ``chart_sources_of=<RunningAgent>`` makes the new agent fetch charts through the chart
    clients (HTTP sessions, index, token and digest caches, archive store) of a running one: two
    tenant namespaces served by what is, for the chart step, one agent process.
    """
    from gitops_helm import log as gh_log
    from gitops_helm.agent import Agent
    from gitops_helm.config import RetrySettings, Settings

    gh_log.setup("text", "info")
    started: list[Any] = []

    def factory(
        namespace: str, helm_bin: str, *, chart_sources_of: RunningAgent | None = None, **overrides: Any
    ) -> RunningAgent:
        base: dict[str, Any] = {
            "kubeconfig": env["KUBECONFIG"],
            "namespace": namespace,
            "helm_bin": helm_bin,
            "work_dir": tmp_path / f"agent-{len(started)}",
            "listen": "127.0.0.1:0",
            "workers": 2,
            "resync_interval_s": 30.0,
            "reconcile_only": True,
            "retry": RetrySettings(base_s=1.0, max_s=5.0),
            "oci_plain_http_hosts": (env["TESTENV_REGISTRY"],),
        }
        base.update(overrides)
        settings = Settings(**base)
        agent = Agent(settings)
        if chart_sources_of is not None:
            shared = chart_sources_of.agent
            agent.resolver.repos, agent.resolver.oci = shared.repos, shared.oci
            agent.resolver.cache, agent.cache = shared.cache, shared.cache
        running = RunningAgent(agent=agent, settings=settings, env=env)
        running.count_reconciles()
        agent.start()
        started.append(agent)
        return running

    yield factory
    for agent in started:
        agent.stop()
