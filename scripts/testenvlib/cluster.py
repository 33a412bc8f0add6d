"""The control plane: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok, nodes."""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import urllib.request
from pathlib import Path

from .pki import make_pki
from .state import State, free_port, is_ours, process_alive, spawn, stop_process, wait_for

NODES = ("kwok-node-0", "kwok-node-1")
STAGES = Path(__file__).with_name("kwok-stages.yaml")


def _kubeconfig(path: Path, server: str, pki: Path) -> None:
    def b64(p: Path) -> str:
        import base64

        return base64.b64encode(p.read_bytes()).decode()

    cfg = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "testenv", "cluster": {
            "server": server, "certificate-authority-data": b64(pki / "ca.crt")}}],
        "users": [{"name": "testenv-admin", "user": {
            "client-certificate-data": b64(pki / "admin.crt"), "client-key-data": b64(pki / "admin.key")}}],
        "contexts": [{"name": "testenv", "context": {"cluster": "testenv", "user": "testenv-admin"}}],
        "current-context": "testenv",
    }
    path.write_text(json.dumps(cfg, indent=2))
    path.chmod(0o600)


def kubectl(state: State, *args: str, input_text: str | None = None, timeout: float = 60) -> str:
    out = subprocess.run(
        [state.env["KUBECTL_BIN"], "--kubeconfig", state.env["KUBECONFIG"], *args],
        input=input_text, capture_output=True, text=True, timeout=timeout,
    )
    if out.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)}: {out.stderr.strip()}")
    return out.stdout


def start(state: State, root: Path, bins: Path) -> None:
    logs = root / "logs"
    pki = root / "pki"
    make_pki(pki)
    etcd_port, etcd_peer, api_port = free_port(), free_port(), free_port()
    kwok_port = free_port()
    # On disk, not tmpfs: etcd 3.6 died at its first WAL segment cut on /dev/shm (the
    # preallocated 0.tmp vanished: "failed to save Raft hard state and entries").
    # --unsafe-no-fsync keeps it nearly as fast.
    etcd_data = root / "etcd"
    shutil.rmtree(etcd_data, ignore_errors=True)
    state.info["etcd_data"] = str(etcd_data)

    state.record("etcd", spawn("etcd", [
        str(bins / "etcd"), "--name=testenv", f"--data-dir={etcd_data}",
        f"--listen-client-urls=http://127.0.0.1:{etcd_port}",
        f"--advertise-client-urls=http://127.0.0.1:{etcd_port}",
        f"--listen-peer-urls=http://127.0.0.1:{etcd_peer}",
        f"--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}",
        f"--initial-cluster=testenv=http://127.0.0.1:{etcd_peer}",
        "--unsafe-no-fsync=true", "--quota-backend-bytes=4294967296", "--log-level=warn",
    ], logs))
    wait_for("etcd", lambda: b"true" in urllib.request.urlopen(
        f"http://127.0.0.1:{etcd_port}/health", timeout=2).read(), 60, logs / "etcd.log", state.pids["etcd"])

    apiserver_argv = [
        str(bins / "kube-apiserver"), f"--etcd-servers=http://127.0.0.1:{etcd_port}",
        "--bind-address=127.0.0.1", f"--secure-port={api_port}", "--advertise-address=127.0.0.1",
        "--endpoint-reconciler-type=none",
        f"--tls-cert-file={pki}/serving.crt", f"--tls-private-key-file={pki}/serving.key",
        f"--client-ca-file={pki}/ca.crt",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-account-key-file={pki}/sa.key", f"--service-account-signing-key-file={pki}/sa.key",
        "--service-cluster-ip-range=10.96.0.0/16", "--authorization-mode=Node,RBAC",
        "--allow-privileged=true", "--enable-priority-and-fairness=false",
        "--max-requests-inflight=0", "--max-mutating-requests-inflight=0", "--v=0",
    ]
    # Recorded, so `scripts/testenv restart-apiserver` starts it again exactly so.
    state.info["kube-apiserver-argv"] = json.dumps(apiserver_argv)
    state.record("kube-apiserver", spawn("kube-apiserver", apiserver_argv, logs))
    wait_apiserver_ready(state, pki, api_port, 180)

    kubeconfig = root / "kubeconfig"
    _kubeconfig(kubeconfig, f"https://127.0.0.1:{api_port}", pki)
    state.env["KUBECONFIG"] = str(kubeconfig)
    state.env["KUBECTL_BIN"] = str(bins / "kubectl")
    state.info["api_port"] = str(api_port)

    state.record("kube-controller-manager", spawn("kube-controller-manager", [
        str(bins / "kube-controller-manager"), f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}", f"--authorization-kubeconfig={kubeconfig}",
        "--leader-elect=false", "--bind-address=127.0.0.1", "--secure-port=0",
        f"--root-ca-file={pki}/ca.crt", f"--service-account-private-key-file={pki}/sa.key",
        "--use-service-account-credentials=false", "--kube-api-qps=500", "--kube-api-burst=1000",
        "--concurrent-deployment-syncs=10", "--concurrent-replicaset-syncs=10",
        "--node-monitor-grace-period=60s",
    ], logs))
    state.record("kube-scheduler", spawn("kube-scheduler", [
        str(bins / "kube-scheduler"), f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}", f"--authorization-kubeconfig={kubeconfig}",
        "--leader-elect=false", "--bind-address=127.0.0.1", "--secure-port=0",
        "--kube-api-qps=500", "--kube-api-burst=1000",
    ], logs))
    state.record("kwok", spawn("kwok", [
        str(bins / "kwok"), f"--kubeconfig={kubeconfig}", "--manage-all-nodes=true",
        f"--config={STAGES}", "--cidr=10.244.0.0/16", "--node-ip=127.0.0.1",
        f"--server-address=127.0.0.1:{kwok_port}", "--node-lease-duration-seconds=40",
    ], logs))
    state.save()

    nodes = [{
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": n, "annotations": {"kwok.x-k8s.io/node": "fake"},
                     "labels": {"type": "kwok", "kubernetes.io/hostname": n, "kubernetes.io/os": "linux"}},
        "spec": {},
    } for n in NODES]
    kubectl(state, "apply", "-f", "-", input_text=json.dumps({"apiVersion": "v1", "kind": "List", "items": nodes}))

    def nodes_ready() -> bool:
        items = json.loads(kubectl(state, "get", "nodes", "-o", "json"))["items"]
        ready = [i for i in items if any(c["type"] == "Ready" and c["status"] == "True"
                                         for c in i.get("status", {}).get("conditions", []))]
        return len(ready) == len(NODES)

    wait_for("kwok nodes Ready", nodes_ready, 90, logs / "kwok.log", state.pids["kwok"])

    def default_sa() -> bool:
        kubectl(state, "get", "serviceaccount", "default", "-n", "default")
        return True

    wait_for("controller-manager (default ServiceAccount)", default_sa, 90,
             logs / "kube-controller-manager.log", state.pids["kube-controller-manager"])


def wait_apiserver_ready(state: State, pki: Path, api_port: int, timeout: float) -> None:
    """Wait until kube-apiserver answers /readyz with 200 (fails early when it exits)."""
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    logs = pki.parent / "logs"
    wait_for("kube-apiserver", lambda: urllib.request.urlopen(
        f"https://127.0.0.1:{api_port}/readyz", timeout=5, context=ctx).status == 200,
        timeout, logs / "kube-apiserver.log", state.pids["kube-apiserver"])


def apiserver_argv(state: State) -> list[str]:
    """The argv kube-apiserver was started with: as recorded by `up`, or (an environment started
    before that was recorded) read from the running process."""
    recorded = state.info.get("kube-apiserver-argv")
    if recorded:
        return list(json.loads(recorded))
    pid = state.pids.get("kube-apiserver")
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, TypeError):
        raw = b""
    argv = [part.decode() for part in raw.split(b"\0") if part]
    if not argv:
        raise RuntimeError("kube-apiserver's arguments were not recorded and it is not running: "
                           "run `scripts/testenv down` and `up` once")
    return argv


def stop_apiserver(state: State) -> None:
    """Stop the recorded kube-apiserver (etcd and everything else keep running); remembers its
    arguments first, so :func:`start_apiserver` can start it again."""
    state.info["kube-apiserver-argv"] = json.dumps(apiserver_argv(state))
    pid = state.pids.get("kube-apiserver")
    if pid:
        stop_process(pid, state.starts.get("kube-apiserver", ""), "kube-apiserver")
    state.save()


def start_apiserver(state: State, root: Path, timeout: float = 180) -> None:
    """Start kube-apiserver again with its recorded arguments (same port), record the new pid,
    and wait until it is ready."""
    pid = state.pids.get("kube-apiserver")
    if pid and process_alive(pid) and is_ours(pid, state.starts.get("kube-apiserver", "")):
        raise RuntimeError(f"kube-apiserver is running (pid {pid}): stop it first")
    state.record("kube-apiserver", spawn("kube-apiserver", apiserver_argv(state), root / "logs"))
    state.save()
    wait_apiserver_ready(state, root / "pki", int(state.info["api_port"]), timeout)
