"""Observability on the real environment: conditions `kubectl wait` can trust, one Event per
repeated failure, errors that name the fix, and the metrics a running agent serves."""

from __future__ import annotations

import subprocess
import urllib.request
from typing import Any

from tests.conftest import Env
from tests.integration.reconcile_helpers import apply, hr_manifest, patch_spec, repo_chart, unique_name


def kubectl_wait_ready(
    env: Env, namespace: str, name: str, timeout_s: int
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            env["KUBECTL_BIN"],
            "wait",
            "--for=condition=Ready",
            f"--timeout={timeout_s}s",
            "-n",
            namespace,
            f"helmrelease/{name}",
        ],
        capture_output=True,
        text=True,
        timeout=timeout_s + 60,
        env={"KUBECONFIG": env["KUBECONFIG"]},
    )


def scrape(agent: Any) -> str:
    port = agent.agent.server.port
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as resp:
        return resp.read().decode()


def events_of(env: Env, namespace: str, name: str, reason: str) -> list[dict[str, Any]]:
    import json

    out = env.kubectl(
        "get",
        "events",
        "-n",
        namespace,
        "-o",
        "json",
        f"--field-selector=involvedObject.name={name},reason={reason}",
    )
    return list(json.loads(out)["items"])


def test_failing_release_is_not_ready_with_the_step_and_one_event_counts_the_retries(
    env: Env, namespace: str, start_agent: Any
) -> None:
    agent = start_agent(namespace, env["HELM_BIN"])
    name = unique_name("missing")
    apply(env, hr_manifest(name, namespace, repo_chart(env, version="9.9.9")))
    agent.wait_for(
        "three chart fetch failures counted on one Event",
        lambda: (
            [e.get("count", 1) for e in events_of(env, namespace, name, "ChartFetchFailed")]
            in ([n] for n in range(3, 1000))
        ),
        timeout=120,
    )
    events = events_of(env, namespace, name, "ChartFetchFailed")
    assert len(events) == 1 and events[0]["count"] >= 3, events

    waited = kubectl_wait_ready(env, namespace, name, 5)
    assert waited.returncode != 0, waited.stdout
    ready = agent.condition(name, namespace, "Ready")
    assert ready is not None and ready["status"] == "False" and ready["reason"] == "ChartFetchFailed", ready
    hr = agent.hr(name, namespace)
    assert hr["status"]["observedGeneration"] == hr["metadata"]["generation"]

    metrics = scrape(agent)
    series = (
        f'gitops_helm_release_condition_info{{condition="Ready",name="{name}",'
        f'namespace="{namespace}",status="False"}} -1.0'
    )
    assert series in metrics, metrics
    assert "gitops_helm_queue_depth " in metrics and "process_cpu_seconds_total" in metrics
    env.kubectl("delete", "helmrelease", name, "-n", namespace, "--wait=true")
    agent.wait_for(
        "the deleted HelmRelease's condition series gone",
        lambda: f'name="{name}"' not in scrape(agent),
    )


def test_plain_http_registry_error_names_the_fix_and_plain_http_field_installs(
    env: Env, namespace: str, start_agent: Any
) -> None:
    agent = start_agent(namespace, env["HELM_BIN"], oci_plain_http_hosts=())
    name = unique_name("plain")
    chart = {"repository": env["TESTENV_OCI_CHARTS"], "name": "hello", "version": "0.1.0"}
    apply(env, hr_manifest(name, namespace, chart))

    def told() -> bool:
        ready = agent.condition(name, namespace, "Ready")
        return bool(ready and ready["status"] == "False" and "plainHTTP" in ready["message"])

    agent.wait_for("Ready=False naming spec.chart.plainHTTP", told)
    message = agent.condition(name, namespace, "Ready")["message"]
    assert "does not speak TLS" in message and f"--oci-plain-http {env['TESTENV_REGISTRY']}" in message

    patch_spec(env, namespace, name, {"chart": {"plainHTTP": True}})
    waited = kubectl_wait_ready(env, namespace, name, 180)
    assert waited.returncode == 0, waited.stderr
    metrics = scrape(agent)
    assert 'gitops_helm_helm_calls_total{outcome="ok",verb="install"}' in metrics, metrics
    assert 'gitops_helm_reconcile_duration_seconds_count{action="install",outcome="ok"}' in metrics
