"""A stuck image pass (a registry that accepts connections and never answers): bounded by the
registry client's deadlines, never in the way of reconciles or the Git sync, and shown on
``/healthz`` (the ``image-automation`` heartbeat) once it is silent longer than allowed."""

from __future__ import annotations

import http.client
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gitops_helm.adapters.http import HTTPClient
from gitops_helm.config import GitSourceSettings, ImageScanSettings, LivenessSettings, SyncSettings
from gitops_helm.images.credentials import RegistryCredentials
from gitops_helm.images.registry import ImageRepository, RegistryClient, RegistryUnreachableError
from tests.conftest import Env
from tests.integration.syncfix import get_object
from tests.integration.test_git_mirror import Work
from tests.integration.test_image_automation import ConfigRepository


class SilentRegistry:
    """A TCP server on 127.0.0.1 that accepts every connection and never sends a byte, until
    :meth:`hang_up` closes them all. ``accepted`` counts connections."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.host = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.accepted = 0
        self.held: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                self.accepted += 1
                self.held.append(conn)

    def hang_up(self) -> None:
        with self.lock:
            for conn in self.held:
                conn.close()
            self.held.clear()

    def close(self) -> None:
        self.listener.close()
        self.hang_up()


@pytest.fixture
def silent() -> Iterator[SilentRegistry]:
    server = SilentRegistry()
    yield server
    server.close()


def get(agent: Any, path: str) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", agent.agent.server.port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def counter(metrics_text: str, name: str, labels: str) -> float:
    prefix = f"{name}{{{labels}}} "
    return sum(float(line[len(prefix) :]) for line in metrics_text.splitlines() if line.startswith(prefix))


def test_a_registry_that_never_answers_is_cut_off_by_the_scan_deadline(silent: SilentRegistry) -> None:
    settings = ImageScanSettings(timeout_s=1.0, total_timeout_s=2.0, rate_limit_retries=0)
    http = HTTPClient()
    try:
        client = RegistryClient(settings, http, RegistryCredentials(), plain_http_hosts=(silent.host,))
        repository = ImageRepository.parse(f"{silent.host}/team/app")
        scan = client.scan({repository})[repository]
    finally:
        http.close()
    assert silent.accepted >= 1  # it did connect: the wait was for an answer that never came
    assert isinstance(scan.error, RegistryUnreachableError), scan.error
    assert silent.host in str(scan.error)


def test_a_stuck_image_pass_blocks_neither_reconciles_nor_the_sync_and_shows_on_healthz(
    env: Env, tmp_path: Path, namespace: str, start_agent: Any, silent: SilentRegistry
) -> None:
    hr = f"""\
apiVersion: helm.fluxcd.io/v1
kind: HelmRelease
metadata:
  name: hello
  namespace: {namespace}
  annotations:
    fluxcd.io/automated: "true"
spec:
  releaseName: hello-{namespace[-6:]}
  chart:
    repository: {env["TESTENV_CHARTS"]}
    name: hello
    version: 0.1.0
  values:
    image:
      repository: {silent.host}/team/app
      tag: 1.0.0
"""
    repo = ConfigRepository(env, tmp_path, {"hello.yaml": hr})
    agent = start_agent(
        namespace,
        env["HELM_BIN"],
        reconcile_only=False,
        git=GitSourceSettings(url=repo.http, poll_interval_s=1.0),
        sync=SyncSettings(
            name=f"images-{namespace[-6:]}", state_namespace=namespace, default_namespace=namespace
        ),
        # an hour per registry exchange: the pass stays stuck until the server hangs up
        images=ImageScanSettings(
            automation=True, scan_interval_s=1.0, timeout_s=3600.0, total_timeout_s=3600.0
        ),
        # image-automation may be silent 1 s (interval) + 2 s + 1 s
        liveness=LivenessSettings(sync_s=2.0, margin_s=1.0),
        oci_plain_http_hosts=(env["TESTENV_REGISTRY"], silent.host),
    )
    agent.wait_for("the image pass to reach the silent registry", lambda: silent.accepted >= 1)
    before = counter(get(agent, "/metrics")[1], "gitops_helm_image_errors_total", 'reason="unreachable"')

    # while the registry holds the pass, the sync applies a new commit and the reconciler installs
    agent.wait_condition("hello", namespace, "Ready", timeout=120)
    pusher = Work(tmp_path / "pusher")
    pusher.git("fetch", "-q", repo.http, "main")
    pusher.git("checkout", "-q", "-B", "main", "FETCH_HEAD")
    configmap = f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: while-stuck, namespace: {namespace}}}\n"
    pusher.commit({"while-stuck.yaml": configmap}, "a ConfigMap")
    pusher.push(repo.http)
    agent.wait_for("the ConfigMap synced", lambda: get_object(env, "configmap", namespace, "while-stuck"))
    status, body = agent.wait_for(
        "/healthz to name the silent image loop",
        lambda: (r := get(agent, "/healthz"))[0] == 503 and "image-automation" in r[1] and r,
        timeout=60,
    )
    assert "not making progress" in body and status == 503
    assert silent.held  # the pass is still waiting on the registry: nothing has hung up yet

    silent.close()  # the registry hangs up and goes away: this pass and the next ones end in errors
    agent.wait_for(
        "the unreachable registry counted",
        lambda: (
            counter(get(agent, "/metrics")[1], "gitops_helm_image_errors_total", 'reason="unreachable"')
            > before
        ),
        timeout=60,
    )
    agent.wait_for(
        "the image loop to beat again",
        lambda: "image-automation" not in get(agent, "/healthz")[1],
        timeout=60,
    )
    metrics_text = get(agent, "/metrics")[1]
    assert counter(metrics_text, "gitops_helm_image_scans_total", 'result="error"') >= 1
    assert repo.commits_since_initial() == [pusher.git("rev-parse", "HEAD")]  # nothing written
