"""A resync of a HelmRelease in sync sends no write request at all; a new one is reconciled once.

The agent counts its Kubernetes requests by verb (``gitops_helm_kube_requests_total``). A status
patch that changes nothing leaves the resourceVersion alone, so only that count shows it: the
status report compared what it was about to send (unset fields as ``null``, to clear them on the
server) with the status it read (unset fields left out), found them always different, and sent a
status patch on every resync of every HelmRelease.
"""

from __future__ import annotations

import time
from typing import Any

from gitops_helm import metrics
from gitops_helm.release.identity import FINALIZER
from tests.conftest import Env
from tests.integration.reconcile_helpers import apply, hr_manifest, repo_chart, resync, wait_ready


def writes() -> float:
    """Write requests the agents of this process have sent so far."""
    return sum(
        sample.value
        for family in metrics.REGISTRY.collect()
        for sample in family.samples
        if sample.name == "gitops_helm_kube_requests_total"
        and sample.labels.get("verb") in ("create", "update", "patch", "delete")
    )


def test_a_resync_in_sync_writes_nothing(env: Env, namespace: str, start_agent: Any) -> None:
    agent = start_agent(namespace, env["HELM_BIN"])
    apply(env, hr_manifest("quiet", namespace, repo_chart(env)))
    wait_ready(agent, "quiet", namespace)
    resync(agent, f"{namespace}/quiet")  # settles anything the install's last run left to record
    calls, written = agent.helm_calls(), writes()
    for _ in range(3):
        resync(agent, f"{namespace}/quiet")
    assert agent.helm_calls() == calls, dict(agent.agent.helm.calls)
    assert writes() == written, f"{writes() - written:.0f} write requests for three resyncs in sync"


def test_a_new_helmrelease_is_reconciled_once_by_its_install(
    env: Env, namespace: str, start_agent: Any
) -> None:
    """The install's run adds the finalizer itself and goes on: the watch event of that write
    queued a second, idle reconcile of every new HelmRelease (a GET, the chart step and a
    storage list each, on a worker that a rollout of many releases needs)."""
    # no periodic resync within the test, however slow the machine (it would be a second run)
    agent = start_agent(namespace, env["HELM_BIN"], resync_interval_s=3600.0)
    apply(env, hr_manifest("once", namespace, repo_chart(env)))
    wait_ready(agent, "once", namespace)
    time.sleep(2.0)  # the events of the run's own writes have arrived and been judged
    key = f"{namespace}/once"
    assert agent.started.get(key) == 1, f"{agent.started.get(key)} reconciles of one new HelmRelease"
    assert agent.hr("once", namespace)["metadata"]["finalizers"] == [FINALIZER]
