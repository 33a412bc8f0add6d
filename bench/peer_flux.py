"""The peer, side by side: Flux's helm-controller and source-controller on the same cluster, chart and N.

  python -m bench.peer_flux --n 20 --workers 4

Both controllers run as local processes against the test environment's kubeconfig (built by
bench/build_flux.py into the cache outside the repository; leader election off, no webhooks, no
event forwarding, watching only the benchmark's own namespace). One HelmRepository points at the
same chart repository the agent uses (TESTENV_CHARTS) and N Flux v2 HelmReleases install the same
chart. Measured:

- time from creating the N HelmReleases until all N are Ready (observed by polling their status);
- peak RSS (VmHWM) and CPU seconds (utime + stime) of each controller, from /proc;
- the steady-state cost of one resync: every Flux object is asked to reconcile once with the
  ``reconcile.fluxcd.io/requestedAt`` annotation (nothing changed, so nothing should be done),
  and the CPU and Kubernetes API requests each controller spends until all have handled it.

API requests are counted on the client side, from each controller's own
``rest_client_requests_total`` (client-go's counter, served on its metrics endpoint): the
kube-apiserver's ``apiserver_request_total`` has no user-agent label, and the shared environment's
other users would blur a server-side count.

``measure_flux`` returns a flat dict of numbers whose keys carry their unit, for bench/ to tabulate.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from bench import build_flux

REPOSITORY_NAME = "bench-charts"
START_TIMEOUT_S = 120.0
SETTLE_QUIET_S = 3.0  # no API request for this long after the last object handled the request: settled
SETTLE_TIMEOUT_S = 120.0
POLL_INTERVAL_S = 0.5
STOP_TIMEOUT_S = 30.0
HTTP_TIMEOUT_S = 10.0
# Every kind of Flux object the benchmark creates, in the order a resync is requested.
FLUX_KINDS = (
    "helmrepositories.source.toolkit.fluxcd.io",
    "helmcharts.source.toolkit.fluxcd.io",
    "helmreleases.helm.toolkit.fluxcd.io",
)
NO_FINALIZERS = '{"metadata":{"finalizers":null}}'
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CLK_TCK = os.sysconf("SC_CLK_TCK")


class EnvLike(Protocol):
    """What is needed of the environment (tests.conftest.Env fits): its variables and a process env."""

    def __getitem__(self, key: str) -> str: ...

    def environ(self, extra: dict[str, str] | None = None) -> dict[str, str]: ...


class PeerError(RuntimeError):
    """The peer could not be run or did not converge; the message says where and shows the logs' tail."""


def _kubectl(env: EnvLike, *args: str, input_text: str | None = None, timeout: float = 120.0) -> str:
    argv = [env["KUBECTL_BIN"], f"--request-timeout={timeout:.0f}s", *args]
    try:
        done = subprocess.run(
            argv, input=input_text, capture_output=True, text=True, timeout=timeout + 10.0, env=env.environ()
        )
    except subprocess.TimeoutExpired as exc:
        raise PeerError(f"kubectl {' '.join(args[:3])}: no answer within {timeout:.0f}s") from exc
    if done.returncode != 0:
        raise PeerError(f"kubectl {' '.join(args[:4])} failed: {done.stderr.strip()[-1500:]}")
    return done.stdout


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- /proc and /metrics readings --------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": field 3 onwards
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def peak_rss_mib(pid: int) -> float:
    """The kernel's high-water mark of resident memory (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    raise PeerError(f"/proc/{pid}/status has no VmHWM")


_REQUESTS = re.compile(r"^rest_client_requests_total\{([^}]*)\}\s+([0-9.eE+]+)$", re.MULTILINE)
_METHOD = re.compile(r'method="([A-Z]+)"')


def parse_requests(metrics_text: str) -> dict[str, float]:
    """Sum client-go's ``rest_client_requests_total`` by HTTP method from a Prometheus text page."""
    by_method: dict[str, float] = {}
    for labels, value in _REQUESTS.findall(metrics_text):
        found = _METHOD.search(labels)
        method = found.group(1) if found else "OTHER"
        by_method[method] = by_method.get(method, 0.0) + float(value)
    return by_method


# --- the two controllers ----------------------------------------------------------------------


@dataclass
class Controller:
    name: str
    process: subprocess.Popen[bytes]
    log: Path
    metrics_url: str
    health_url: str

    @property
    def pid(self) -> int:
        return self.process.pid

    def requests(self) -> dict[str, float]:
        with urllib.request.urlopen(self.metrics_url, timeout=HTTP_TIMEOUT_S) as resp:  # noqa: S310 (loopback)
            return parse_requests(resp.read().decode())

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT_S)


def _start(name: str, argv: list[str], env: EnvLike, namespace: str, workdir: Path) -> Controller:
    metrics, health = _free_port(), _free_port()
    log = workdir / f"{name}.log"
    full = [
        *argv,
        f"--metrics-addr=127.0.0.1:{metrics}",
        f"--health-addr=127.0.0.1:{health}",
        "--enable-leader-election=false",
        "--watch-all-namespaces=false",
        "--log-encoding=console",
    ]
    # RUNTIME_NAMESPACE with --watch-all-namespaces=false: the controller watches only our namespace.
    proc_env = env.environ({"RUNTIME_NAMESPACE": namespace})
    with log.open("wb") as out:
        process = subprocess.Popen(full, stdout=out, stderr=subprocess.STDOUT, env=proc_env, cwd=workdir)
    ctl = Controller(
        name, process, log, f"http://127.0.0.1:{metrics}/metrics", f"http://127.0.0.1:{health}/readyz"
    )
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if not ctl.alive():
            raise PeerError(f"{name} exited with {process.returncode} at start:\n{ctl.log_tail()}")
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(ctl.health_url, timeout=HTTP_TIMEOUT_S) as resp,  # noqa: S310
        ):
            if resp.status == 200:
                return ctl
        if time.monotonic() > deadline:
            ctl.stop()
            raise PeerError(f"{name} not ready within {START_TIMEOUT_S:.0f}s:\n{ctl.log_tail()}")
        time.sleep(POLL_INTERVAL_S)


@contextlib.contextmanager
def running_controllers(
    env: EnvLike, namespace: str, workers: int, workdir: Path
) -> Iterator[tuple[Controller, Controller]]:
    bins = build_flux.build_all()
    storage_port = _free_port()
    storage = workdir / "storage"
    storage.mkdir()
    source = _start(
        "source-controller",
        [
            str(bins["source-controller"]),
            f"--storage-path={storage}",
            f"--storage-addr=127.0.0.1:{storage_port}",
            f"--storage-adv-addr=127.0.0.1:{storage_port}",
            f"--concurrent={workers}",
        ],
        env,
        namespace,
        workdir,
    )
    try:
        helm = _start(
            "helm-controller",
            [str(bins["helm-controller"]), f"--concurrent={workers}", "--graceful-shutdown-timeout=10s"],
            env,
            namespace,
            workdir,
        )
        try:
            yield source, helm
        finally:
            helm.stop()
    finally:
        source.stop()


# --- objects ----------------------------------------------------------------------------------


def _manifests(namespace: str, n: int, chart: str, version: str, charts_url: str) -> str:
    items: list[dict[str, Any]] = [
        {
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": "HelmRepository",
            "metadata": {"name": REPOSITORY_NAME, "namespace": namespace},
            "spec": {"url": charts_url, "interval": "1h"},
        }
    ]
    for i in range(n):
        items.append(
            {
                "apiVersion": "helm.toolkit.fluxcd.io/v2",
                "kind": "HelmRelease",
                "metadata": {"name": f"r{i:04d}", "namespace": namespace},
                "spec": {
                    # Long intervals: nothing reconciles on its own while the forced resync is measured.
                    "interval": "1h",
                    "chart": {
                        "spec": {
                            "chart": chart,
                            "version": version,
                            "interval": "1h",
                            "sourceRef": {"kind": "HelmRepository", "name": REPOSITORY_NAME},
                        }
                    },
                },
            }
        )
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": items})


def _list(env: EnvLike, kind: str, namespace: str) -> list[dict[str, Any]]:
    out = _kubectl(env, "get", kind, "-n", namespace, "-o", "json")
    items: list[dict[str, Any]] = json.loads(out)["items"]
    return items


def _is_ready(obj: dict[str, Any]) -> bool:
    status = obj.get("status") or {}
    if status.get("observedGeneration") != obj["metadata"].get("generation"):
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])


def _not_ready_summary(items: list[dict[str, Any]], limit: int = 3) -> str:
    lines = []
    for obj in [o for o in items if not _is_ready(o)][:limit]:
        conds = (obj.get("status") or {}).get("conditions") or []
        ready: dict[str, Any] = next((c for c in conds if c.get("type") == "Ready"), {})
        lines.append(
            f"{obj['metadata']['name']}: {ready.get('reason', '-')}: {ready.get('message', '')[:200]}"
        )
    return "\n".join(lines)


def _wait(
    what: str, done: Callable[[], tuple[bool, str]], timeout: float, controllers: tuple[Controller, ...]
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        ok, detail = done()
        if ok:
            return
        for ctl in controllers:
            if not ctl.alive():
                raise PeerError(f"{ctl.name} exited while waiting for {what}:\n{ctl.log_tail()}")
        if time.monotonic() > deadline:
            raise PeerError(f"{what}: not within {timeout:.0f}s\n{detail}")
        time.sleep(POLL_INTERVAL_S)


def _settle(controllers: tuple[Controller, ...], timeout: float = SETTLE_TIMEOUT_S) -> None:
    """Wait until no controller has made an API request for SETTLE_QUIET_S (work queues drained)."""
    deadline = time.monotonic() + timeout
    last = [sum(c.requests().values()) for c in controllers]
    quiet_since = time.monotonic()
    while time.monotonic() - quiet_since < SETTLE_QUIET_S:
        if time.monotonic() > deadline:
            return  # a controller that never goes quiet: measure anyway, the figures will show it
        time.sleep(POLL_INTERVAL_S)
        now = [sum(c.requests().values()) for c in controllers]
        if now != last:
            last, quiet_since = now, time.monotonic()


@dataclass
class _Snapshot:
    cpu_s: dict[str, float]
    requests: dict[str, dict[str, float]]

    @classmethod
    def take(cls, controllers: tuple[Controller, ...]) -> _Snapshot:
        return cls(
            {c.name: cpu_seconds(c.pid) for c in controllers}, {c.name: c.requests() for c in controllers}
        )


def _delta(before: _Snapshot, after: _Snapshot, prefix: str, n: int) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, cpu in after.cpu_s.items():
        key = name.replace("-controller", "")  # "helm", "source"
        cpu_delta = cpu - before.cpu_s[name]
        old, new = before.requests[name], after.requests[name]
        total = sum(new.values()) - sum(old.values())
        writes = sum(v - old.get(m, 0.0) for m, v in new.items() if m in WRITE_METHODS)
        out[f"{prefix}_{key}_cpu_s"] = round(cpu_delta, 3)
        out[f"{prefix}_{key}_api_requests"] = total
        out[f"{prefix}_{key}_api_writes"] = writes
        out[f"{prefix}_{key}_cpu_ms_per_release"] = round(1000.0 * cpu_delta / n, 3)
        out[f"{prefix}_{key}_api_requests_per_release"] = round(total / n, 3)
    return out


def _force_resync(env: EnvLike, namespace: str, n: int, controllers: tuple[Controller, ...]) -> None:
    token = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    request = f"reconcile.fluxcd.io/requestedAt={token}"
    for kind in FLUX_KINDS:
        _kubectl(env, "annotate", kind, "--all", "-n", namespace, "--overwrite", request)

    def handled() -> tuple[bool, str]:
        pending = []
        for kind in FLUX_KINDS:
            for obj in _list(env, kind, namespace):
                if (obj.get("status") or {}).get("lastHandledReconcileAt") != token:
                    pending.append(f"{kind.split('.')[0]}/{obj['metadata']['name']}")
        return not pending, f"{len(pending)} not handled yet, e.g. {pending[:3]}"

    _wait("the forced resync", handled, 60.0 + 3.0 * n, controllers)


def measure_flux(
    env: EnvLike,
    n: int,
    workers: int,
    *,
    chart: str = "hello",
    version: str = "0.1.0",
    keep_crds: bool = False,
) -> dict[str, float]:
    """Install N HelmReleases with Flux at ``workers`` concurrency and measure it; see the module doc."""
    if n < 1 or workers < 1:
        raise PeerError(f"n and workers must be at least 1 (got n={n}, workers={workers})")
    namespace = f"bench-flux-{uuid.uuid4().hex[:6]}"
    build_flux.install_crds(env.environ())
    _kubectl(env, "create", "namespace", namespace)
    result: dict[str, float] = {"n": n, "workers": workers}
    try:
        with (
            tempfile.TemporaryDirectory(prefix="bench-flux-") as tmp,
            running_controllers(env, namespace, workers, Path(tmp)) as (source, helm),
        ):
            both = (source, helm)
            before = _Snapshot.take(both)
            t0 = time.monotonic()
            _kubectl(
                env,
                "apply",
                "-f",
                "-",
                input_text=_manifests(namespace, n, chart, version, env["TESTENV_CHARTS"]),
            )

            def all_ready() -> tuple[bool, str]:
                items = _list(env, FLUX_KINDS[2], namespace)
                ready = sum(1 for o in items if _is_ready(o))
                return ready == n, f"{ready}/{n} Ready\n{_not_ready_summary(items)}"

            _wait(f"{n} Flux HelmReleases Ready", all_ready, 120.0 + 10.0 * n / workers + 5.0 * n, both)
            result["install_all_ready_s"] = round(time.monotonic() - t0, 2)
            result["install_releases_per_min"] = round(60.0 * n / result["install_all_ready_s"], 1)
            _settle(both)
            after_install = _Snapshot.take(both)
            result.update(_delta(before, after_install, "install", n))

            _force_resync(env, namespace, n, both)
            _settle(both)
            after_resync = _Snapshot.take(both)
            result.update(_delta(after_install, after_resync, "resync", n))
            for ctl in both:
                key = ctl.name.replace("-controller", "")
                result[f"{key}_peak_rss_mib"] = round(peak_rss_mib(ctl.pid), 1)
                result[f"{key}_cpu_s_total"] = round(cpu_seconds(ctl.pid), 3)
    finally:
        cleanup(env, namespace)
        if not keep_crds:
            build_flux.remove_crds(env.environ())
    return result


def cleanup(env: EnvLike, namespace: str) -> None:
    """Drop Flux's finalizers (its controllers are stopped by now) and delete the namespace."""
    for kind in reversed(FLUX_KINDS):
        with contextlib.suppress(PeerError):
            for name in _kubectl(env, "get", kind, "-n", namespace, "-o", "name").split():
                _kubectl(env, "patch", name, "-n", namespace, "--type=merge", "-p", NO_FINALIZERS)
    with contextlib.suppress(PeerError):
        _kubectl(env, "delete", "namespace", namespace, "--wait=false", "--ignore-not-found")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.peer_flux", description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=20, help="HelmReleases to install (default 20)")
    parser.add_argument("--workers", type=int, default=4, help="--concurrent of both controllers (default 4)")
    parser.add_argument("--keep-crds", action="store_true", help="leave Flux's CRDs in the cluster")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args(argv)

    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root / "scripts"))
    from testenvlib import env as testenv
    from testenvlib.state import State

    from tests.conftest import CHARTS, Env

    if not testenv.is_up():
        print('bench-flux: the test environment is down: run "scripts/testenv up" first', file=sys.stderr)
        return 2
    state = State.load()
    assert state is not None
    testenv.publish_chart([str(CHARTS / "hello")])
    with tempfile.TemporaryDirectory() as tmp:
        env = Env(vars=dict(state.env), helm_home=Path(tmp) / "helm-home")
        try:
            figures = measure_flux(env, args.n, args.workers, keep_crds=args.keep_crds)
        except (PeerError, build_flux.BuildError) as exc:
            print(f"bench-flux: {exc}", file=sys.stderr)
            return 1
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        width = max(len(k) for k in figures)
        for key, value in figures.items():
            print(f"{key:<{width}}  {value:g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
