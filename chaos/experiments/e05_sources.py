"""Experiment 5: chart repository and OCI registry failing.

Injects: a fault in a loopback proxy of our own (``chaos.faultyhttp``) in front of the test
environment's Helm repository (``TESTENV_CHARTS``) and OCI registry (``TESTENV_REGISTRY``), through
which two HelmReleases of a real ``gitops-helm run`` subprocess (``--chart-timeout 3s``) get a chart
published for this run (a unique name, one version per trial). Scenarios, ``count`` each (full 5,
quick 1): chart repository ``500``; chart repository ``timeout`` (answers nothing for longer than
the agent's timeout); ``corrupt archive`` (the ``.tgz`` truncated: its digest no longer matches the
index); ``corrupt index`` (``index.yaml`` not YAML); ``OCI registry down`` (the proxy stops
listening).

Each trial deploys first, switches the fault on, and asks for the next chart version (a change that
needs the source: the index, the archive, the registry). Checks:

- the HelmRelease gets ``Ready=False`` with a reason naming the failed step and a message naming
  the source host (the proxy's ``127.0.0.1:PORT``) and the kind of failure, without a traceback;
- nothing deployed is touched: the release's Helm revision and its objects' resourceVersions are
  the same after the fault as before it (``lost`` otherwise);
- recovery is automatic: with the proxy back to ``forward`` and no manual action, the new version
  is deployed and Ready within a bounded time (``violated`` otherwise).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from typing import Any

from testenvlib import env as testenv

from chaos.faultyhttp import FaultyHTTP, Mode
from chaos.framework import Context, Trial, experiment
from tests.integration.reconcile_helpers import (
    apply,
    chart_copy,
    hr_manifest,
    latest_revision,
    release_record,
    release_secrets,
)
from tests.integration.syncfix import AgentProcess, ConfigRepo, configmap, start_agent, unique_name

CHART_TIMEOUT = "3s"
FAULT_WAIT_S = 120.0  # for the condition to show the fault (retries of a hung source included)
RECOVERY_WAIT_S = 180.0  # for the change to land once the source is back


Scenario = tuple[str, str, Mode, str]  # (name, which release, proxy mode, what the message must say)
SCENARIOS: list[Scenario] = [
    ("chart repository 500", "repo", "error500", r"500"),
    ("chart repository timeout", "repo", "slow", r"time|deadline"),
    ("corrupt archive", "repo", "corrupt", r"digest|archive|corrupt|gzip|truncat"),
    ("corrupt index", "repo", "corrupt-index", r"index"),
    ("OCI registry down", "oci", "down", r"connect|refused|unavailable|unreachable"),
]


@experiment(
    5,
    "sources",
    "Chart repository and OCI registry failing: clear condition, nothing touched, automatic recovery",
    injects="chart repository 500, timeout, corrupt archive, corrupt index; OCI registry down",
    quick=1,
    full=5,
    budget_seconds=2400,
)
def run(ctx: Context, count: int) -> Iterator[Trial]:
    env = ctx.env
    work = ctx.scratch("sources")
    chart = unique_name("csrc").replace("-", "")
    versions = [f"0.{n}.0" for n in range(1, len(SCENARIOS) * count + 2)]  # a release moves one a trial
    testenv.publish_chart([str(chart_copy(work, chart, v, message=f"v{v}")) for v in versions])
    repo_proxy = FaultyHTTP(env["TESTENV_CHARTS"], slow_s=60.0)
    oci_proxy = FaultyHTTP(f"http://{env['TESTENV_REGISTRY']}", slow_s=60.0)
    url = f"{env['TESTENV_GIT_HTTP']}/{unique_name('chaos-sources')}.git"
    ConfigRepo(work / "repo", url).replace({"empty.yaml": configmap("chaos-sources", {"a": "b"})})
    try:
        with ctx.namespace("sources") as namespace:
            agent = start_agent(
                env, work / "agent", namespace, url,
                "--chart-timeout", CHART_TIMEOUT,
                "--chart-refresh-interval", "1s",
                "--oci-plain-http", oci_proxy.address,
                poll="1h",
            )  # fmt: skip
            try:
                agent.wait_acting()
                oci_repo = f"oci://{oci_proxy.address}/charts"
                sources: dict[str, tuple[FaultyHTTP, Callable[[str], dict[str, Any]]]] = {
                    "repo": (
                        repo_proxy,
                        lambda v: {"repository": repo_proxy.url, "name": chart, "version": v},
                    ),
                    "oci": (oci_proxy, lambda v: {"repository": oci_repo, "name": chart, "version": v}),
                }
                at = {"repo": 0, "oci": 0}
                for which, (_, spec) in sources.items():
                    apply(env, hr_manifest(f"src-{which}", namespace, spec(versions[0])))
                for which in sources:
                    if not _wait(
                        lambda w=which: _ready(env, namespace, f"src-{w}", versions[0]), RECOVERY_WAIT_S
                    ):
                        yield Trial(
                            "(setup)",
                            "error",
                            f"src-{which} not deployed: {_ready_text(env, namespace, f'src-{which}')}",
                        )
                        return
                for _ in range(count):
                    for name, which, mode, kind in SCENARIOS:
                        proxy, spec = sources[which]
                        at[which] += 1
                        started = time.monotonic()
                        yield _trial(
                            env,
                            agent,
                            namespace,
                            name,
                            which,
                            mode,
                            kind,
                            proxy,
                            spec,
                            versions[at[which]],
                            started,
                        )
            finally:
                agent.stop()
    finally:
        repo_proxy.close()
        oci_proxy.close()


def _trial(
    env: Any, agent: AgentProcess, namespace: str, name: str, which: str, mode: Mode, kind: str,
    proxy: FaultyHTTP, spec: Callable[[str], dict[str, Any]], version: str, started: float,
) -> Trial:  # fmt: skip
    release = f"src-{which}"
    before = _deployed(env, namespace, release)
    hr = env.kube_json("helmrelease", release, "-n", namespace)
    generation = hr["metadata"].get("generation", 0)
    proxy.mode = mode
    try:
        apply(env, hr_manifest(release, namespace, spec(version)))
        failed = _wait(lambda: _failed(env, namespace, release, generation), FAULT_WAIT_S)
        during = _deployed(env, namespace, release)
    finally:
        proxy.mode = "forward"
    problems: list[str] = []
    if not failed:
        why = f"no Ready=False for the fault: {_ready_text(env, namespace, release)}"
        return Trial(name, "violated", why, seconds=time.monotonic() - started)
    reason, message = failed
    if "Traceback" in message or "Traceback" in agent.log():
        problems.append("a traceback")
    if proxy.address not in message:
        problems.append(f"the message does not name the source {proxy.address}")
    if not re.search(kind, message, re.IGNORECASE):
        problems.append(f"the message does not say /{kind}/")
    if during != before:
        return Trial(name, "lost", f"the deployed release changed during the fault: {before} -> {during}",
                     seconds=time.monotonic() - started)  # fmt: skip
    if not _wait(lambda: _ready(env, namespace, release, version), RECOVERY_WAIT_S):
        problems.append(f"not recovered: {_ready_text(env, namespace, release)}")
    outcome = "violated" if problems else "survived"
    detail = "; ".join(problems) or f"{reason}: {message[:200]}"
    return Trial(name, outcome, detail, seconds=time.monotonic() - started)


def _wait(check: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def _ready_condition(env: Any, namespace: str, release: str) -> tuple[dict[str, Any], dict[str, Any]]:
    hr = env.kube_json("helmrelease", release, "-n", namespace)
    conditions = (hr.get("status") or {}).get("conditions") or []
    ready = next((c for c in conditions if c.get("type") == "Ready"), {})
    return hr, ready


def _ready_text(env: Any, namespace: str, release: str) -> str:
    _, ready = _ready_condition(env, namespace, release)
    return f"Ready={ready.get('status')} {ready.get('reason')}: {str(ready.get('message'))[:300]}"


def _failed(env: Any, namespace: str, release: str, generation: int) -> tuple[str, str] | None:
    """(reason, message) once Ready is False for a generation after ``generation``."""
    hr, ready = _ready_condition(env, namespace, release)
    observed = (hr.get("status") or {}).get("observedGeneration", 0)
    if ready.get("status") == "False" and observed > generation:
        return str(ready.get("reason")), str(ready.get("message"))
    return None


def _ready(env: Any, namespace: str, release: str, version: str) -> bool:
    hr, ready = _ready_condition(env, namespace, release)
    if ready.get("status") != "True" or (hr.get("status") or {}).get("observedGeneration") != hr[
        "metadata"
    ].get("generation"):
        return False
    secrets = release_secrets(env, namespace, release)
    if not secrets:
        return False
    record = release_record(secrets[-1])
    return bool(record["chart"]["metadata"]["version"] == version and record["info"]["status"] == "deployed")


def _deployed(env: Any, namespace: str, release: str) -> tuple[tuple[int, str], dict[str, str]]:
    """The release's latest revision and the resourceVersion of each of its objects."""
    objects = env.kube_json("deployments,services,configmaps", "-n", namespace, "-l",
                            f"app.kubernetes.io/instance={release}")  # fmt: skip
    versions = {
        f"{o['kind']}/{o['metadata']['name']}": o["metadata"]["resourceVersion"] for o in objects["items"]
    }
    return latest_revision(env, namespace, release), versions
