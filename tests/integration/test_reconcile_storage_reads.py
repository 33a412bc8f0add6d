"""A resync of a HelmRelease in sync reads no Helm storage record.

Helm keeps each revision of a release in a Secret whose data is the whole release (chart, values,
manifest; base64 gzip) and whose labels say the revision, its status and the agent's marks. A
resync in sync needs the labels only. The agent listed the release's storage Secrets whole, every
revision's record included, on every resync of every HelmRelease: most of the agent's CPU and of
its traffic with the API server in steady state. It now lists their metadata only and fetches one
record when a step needs it; ``gitops_helm_helm_storage_read_bytes_total`` shows what it read.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from gitops_helm import metrics
from tests.conftest import Env
from tests.integration.reconcile_helpers import (
    apply,
    hr_manifest,
    patch_spec,
    publish,
    release_secrets,
    repo_chart,
    resync,
    unique_name,
    wait_ready,
    wait_revision,
)


def storage_bytes(read: str) -> float:
    """Bytes of Helm storage the agents of this process have read so far (``list`` or ``record``)."""
    value = metrics.REGISTRY.get_sample_value("gitops_helm_helm_storage_read_bytes_total", {"read": read})
    return value or 0.0


def test_a_resync_in_sync_reads_no_storage_record(
    env: Env, namespace: str, start_agent: Any, tmp_path: Path
) -> None:
    # a chart whose default values hold 64 KB of random text: every record of its releases is large
    chart = publish(tmp_path, unique_name("bulky"), padding=secrets.token_hex(32 * 1024))
    agent = start_agent(namespace, env["HELM_BIN"])
    apply(env, hr_manifest("bulky", namespace, repo_chart(env, chart)))
    wait_ready(agent, "bulky", namespace)
    patch_spec(env, namespace, "bulky", {"values": {"message": "second revision"}})
    wait_revision(agent, env, namespace, "bulky", 2)
    wait_ready(agent, "bulky", namespace)
    resync(agent, f"{namespace}/bulky")  # settles anything the upgrade's last run left to record

    stored = release_secrets(env, namespace, "bulky")
    assert [s["metadata"]["labels"]["status"] for s in stored] == ["superseded", "deployed"]
    smallest_record = min(len(s["data"]["release"]) for s in stored)
    calls = agent.helm_calls()
    listed, records = storage_bytes("list"), storage_bytes("record")
    for _ in range(3):
        resync(agent, f"{namespace}/bulky")

    assert agent.helm_calls() == calls, dict(agent.agent.helm.calls)
    assert storage_bytes("record") == records, "a resync in sync fetched a storage record"
    listed = storage_bytes("list") - listed
    assert 0 < listed < smallest_record, (
        f"three resyncs listed {listed:.0f} bytes of Helm storage; one record alone is {smallest_record}"
    )
