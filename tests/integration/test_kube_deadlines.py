"""Nothing hangs on a dead API server connection: every Kubernetes call has a deadline.

A TCP proxy in front of the real API server stops forwarding bytes while keeping every connection
open, as when a network path dies silently. Each kind of call the Git sync and the reconciler
make through the dynamic client (discovery, get, server-side apply, delete) must then fail with a
temporary error instead of holding its thread forever, and work again once the path is back.
"""

from __future__ import annotations

import hashlib
import select
import socket
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from gitops_helm.adapters.kube import Kube, KubeError, KubeErrorKind, KubeSettings
from gitops_helm.config import FailureDiagnosisSettings
from gitops_helm.release.diagnose import Diagnoser, Diagnosis
from tests.conftest import Env

# How long a test waits for a call to come back. It bounds the test, it does not measure the
# agent: the calls below have a 2 s timeout, and a call that hangs never returns at all.
CALL_DEADLINE_S = 90.0


class FreezableProxy:
    """A TCP proxy on 127.0.0.1; :meth:`freeze` stops forwarding (connections stay open)."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.flowing = threading.Event()
        self.flowing.set()
        self.closed = threading.Event()
        self.sockets: list[socket.socket] = [self.listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def freeze(self) -> None:
        self.flowing.clear()

    def thaw(self) -> None:
        self.flowing.set()

    def close(self) -> None:
        self.closed.set()
        self.flowing.set()
        for s in self.sockets:
            s.close()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            self.sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        peers = {a: b, b: a}
        while not self.closed.is_set():
            if not self.flowing.wait(0.2):
                continue  # frozen: bytes wait in the kernel buffers, nothing moves
            try:
                readable, _, _ = select.select([a, b], [], [], 0.2)
                for s in readable:
                    data = s.recv(65536)
                    if not data:
                        return
                    peers[s].sendall(data)
            except OSError:
                return


@pytest.fixture
def proxied_kube(env: Env, tmp_path: Path) -> Iterator[tuple[FreezableProxy, Callable[[], Kube]]]:
    """A proxy in front of the API server and a factory of clients that talk through it."""
    config: dict[str, Any] = yaml.safe_load(Path(env["KUBECONFIG"]).read_text())
    server = urlsplit(config["clusters"][0]["cluster"]["server"])
    proxy = FreezableProxy((server.hostname or "127.0.0.1", server.port or 443))
    for cluster in config["clusters"]:
        cluster["cluster"]["server"] = f"{server.scheme}://127.0.0.1:{proxy.port}"
    kubeconfig = tmp_path / "kubeconfig-via-proxy"
    kubeconfig.write_text(yaml.safe_dump(config))

    def make() -> Kube:
        settings = KubeSettings(kubeconfig=str(kubeconfig), request_timeout_s=2.0, connect_timeout_s=2.0)
        return Kube(settings)

    yield proxy, make
    proxy.close()


def call_with_deadline(fn: Callable[[], Any]) -> BaseException | Any:
    """Run ``fn`` in a thread; its result or exception, or fail the test if it never returns."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(fn())
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(CALL_DEADLINE_S)
    assert not thread.is_alive(), "the call hung on a frozen API server connection"
    return outcome[0]


def configmap(namespace: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": {"k": "v"},
    }


CALLS: dict[str, Callable[[Kube, str], Any]] = {
    "get": lambda kube, ns: kube.get("v1", "ConfigMap", ns, "present"),
    "server-side apply": lambda kube, ns: kube.apply(configmap(ns, "applied"), "gitops-helm-test"),
    "delete": lambda kube, ns: kube.delete("v1", "ConfigMap", ns, "present"),
}


@pytest.mark.parametrize("call", list(CALLS))
def test_a_dynamic_call_on_a_frozen_connection_fails_temporarily_instead_of_hanging(
    env: Env, namespace: str, proxied_kube: tuple[FreezableProxy, Callable[[], Kube]], call: str
) -> None:
    proxy, make = proxied_kube
    kube = make()
    kube.apply(configmap(namespace, "present"), "gitops-helm-test")  # discovery done, connection open
    proxy.freeze()
    outcome = call_with_deadline(lambda: CALLS[call](kube, namespace))
    assert isinstance(outcome, KubeError), outcome
    assert outcome.kind is KubeErrorKind.TEMPORARY and outcome.temporary, outcome
    proxy.thaw()
    # the same client recovers once the path is back (the frozen request itself may still reach
    # the server after the thaw, so this looks at another object)
    call_with_deadline(lambda: kube.apply(configmap(namespace, "after"), "gitops-helm-test"))
    assert env.kube_json("configmap", "after", "-n", namespace)["data"] == {"k": "v"}


def test_api_discovery_on_a_frozen_connection_fails_temporarily_instead_of_hanging(
    env: Env, proxied_kube: tuple[FreezableProxy, Callable[[], Kube]]
) -> None:
    proxy, make = proxied_kube
    # The client caches discovery in a file named after the server URL; a port used by an earlier
    # proxy could have left one behind, and then nothing would be asked of the frozen server.
    host = f"https://127.0.0.1:{proxy.port}".encode()
    Path(tempfile.gettempdir(), f"osrcp-{hashlib.md5(host, usedforsecurity=False).hexdigest()}.json").unlink(
        missing_ok=True
    )
    proxy.freeze()
    kube = make()  # nothing discovered yet: the first use of a kind needs the discovery API
    outcome = call_with_deadline(lambda: kube.is_namespaced("v1", "ConfigMap"))
    assert isinstance(outcome, KubeError) and outcome.temporary, outcome
    proxy.thaw()
    assert call_with_deadline(lambda: kube.is_namespaced("v1", "ConfigMap")) is True


def test_connections_to_the_api_server_use_tcp_keepalive(env: Env, namespace: str) -> None:
    """An idle connection whose peer vanished (a NAT or load balancer dropped the flow) is noticed."""
    kube = Kube(KubeSettings(kubeconfig=env["KUBECONFIG"]))
    assert kube.get_configmap_data(namespace, "absent") is None  # opens a connection
    pools = kube.api.rest_client.pool_manager.pools  # urllib3's pools: the sockets live there
    keys = pools.keys()  # a RecentlyUsedContainer: it cannot be iterated directly
    sockets = [conn.sock for key in keys for conn in pools[key].pool.queue if conn and conn.sock]
    assert sockets, "no pooled connection to inspect"
    for sock in sockets:
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 30


def test_a_failure_diagnosis_on_a_frozen_connection_says_what_it_could_not_read(
    env: Env, namespace: str, proxied_kube: tuple[FreezableProxy, Callable[[], Kube]]
) -> None:
    """The reads after a failed helm action never hang a reconcile: each has its own deadline,
    and what could not be read is said instead."""
    proxy, make = proxied_kube
    kube = make()
    assert kube.get_workload("Deployment", namespace, "web") is None  # connection open
    record = {
        "manifest": "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n---\n"
        "apiVersion: batch/v1\nkind: Job\nmetadata: {name: migrate}\n"
    }
    diagnoser = Diagnoser(kube, FailureDiagnosisSettings(request_timeout_s=2.0, budget_s=30.0))
    proxy.freeze()
    outcome = call_with_deadline(lambda: diagnoser.diagnose(lambda: record, namespace, tests=False))
    assert isinstance(outcome, Diagnosis), outcome
    assert [f.split(":")[0] for f in outcome.findings] == [
        f"(could not read Deployment {namespace}/web",
        f"(could not read Job {namespace}/migrate",
    ], outcome.findings
    proxy.thaw()
    assert call_with_deadline(lambda: kube.get_workload("Job", namespace, "migrate")) is None
