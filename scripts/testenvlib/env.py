"""``up``, ``down``, ``env``, ``new-repo`` and ``publish-chart``: the contract of scripts/testenv."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from . import cluster, services
from .servers import init_bare
from .state import State, bin_dir, is_ours, process_alive, state_dir, stop_process

# Stop order: the things that talk to the API server first, etcd last.
_STOP_ORDER = ("kwok", "kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd",
               "http-servers", "sshd", "registry", "registry-auth")


@contextmanager
def _lock() -> Iterator[None]:
    root = state_dir()
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def _log(msg: str) -> None:
    print(f"[testenv] {msg}", flush=True)


def is_up(state: State | None = None) -> bool:
    state = state or State.load()
    if not state or not state.pids:
        return False
    return all(
        n in state.pids and process_alive(state.pids[n]) and is_ours(state.pids[n], state.starts.get(n, ""))
        for n in _STOP_ORDER
    )


def up() -> State:
    """Build what is missing, start everything, wait until ready. Idempotent."""
    with _lock():
        existing = State.load()
        if existing and is_up(existing):
            _log("already up")
            return existing
        if existing:
            _down_locked(existing)
        t0 = time.monotonic()
        bins = bin_dir(build=True)
        t_build = time.monotonic() - t0
        root = state_dir()
        state = State()
        state.info["bin_dir"] = str(bins)
        state.env.update({
            "HELM_BIN": str(bins / "helm4"), "HELM3_BIN": str(bins / "helm3"),
            "KUBECTL_BIN": str(bins / "kubectl"), "TESTENV_STATE": str(root),
        })
        try:
            t1 = time.monotonic()
            cluster.start(state, root, bins)
            state.save()
            _log(f"control plane ready in {time.monotonic() - t1:.1f}s")
            services.start_http(state, root)
            state.save()
            services.start_sshd(state, root)
            state.save()
            services.start_registry(state, root)
            state.save()
        except BaseException:
            state.save()
            _down_locked(state)
            raise
        _log(f"up in {time.monotonic() - t0:.1f}s (build/check {t_build:.1f}s); `scripts/testenv env` prints the variables")
        return state


def _down_locked(state: State) -> None:
    for name in _STOP_ORDER:
        pid = state.pids.get(name)
        if pid:
            stop_process(pid, state.starts.get(name, ""), name)
    etcd_data = state.info.get("etcd_data")
    if etcd_data:
        shutil.rmtree(etcd_data, ignore_errors=True)
    root = state_dir()
    for sub in ("git", "charts", "registry", "registry-auth", "helm"):
        shutil.rmtree(root / sub, ignore_errors=True)
    State.path().unlink(missing_ok=True)


def down() -> None:
    """Stop every process ``up`` started (recorded pids, checked to be ours) and forget the state."""
    with _lock():
        state = State.load()
        if state:
            _down_locked(state)
    _log("down")


def stop_apiserver() -> None:
    """Stop kube-apiserver only (etcd and the rest keep running); :func:`start_apiserver` brings
    it back. For experiments that restart the API server under a running agent."""
    with _lock():
        state = require_up()
        cluster.stop_apiserver(state)
    _log("kube-apiserver stopped")


def start_apiserver() -> None:
    """Start the stopped kube-apiserver again with the same arguments and port; wait for /readyz."""
    with _lock():
        state = State.load()
        if state is None:
            raise SystemExit("the test environment is not up: run `scripts/testenv up`")
        cluster.start_apiserver(state, state_dir())
    _log(f"kube-apiserver ready again (pid {state.pids['kube-apiserver']})")


def restart_apiserver(down_seconds: float = 0.0) -> None:
    """Stop kube-apiserver, keep it down ``down_seconds``, start it again and wait until ready."""
    stop_apiserver()
    time.sleep(max(down_seconds, 0.0))
    start_apiserver()


def env_lines(state: State) -> list[str]:
    return [f"export {k}={_quote(v)}" for k, v in sorted(state.env.items())]


def _quote(v: str) -> str:
    return "'" + v.replace("'", "'\"'\"'") + "'"


def require_up() -> State:
    state = State.load()
    if not state or not is_up(state):
        raise SystemExit("the test environment is not up: run `scripts/testenv up`")
    return state


def new_repo(name: str) -> str:
    state = require_up()
    if not name.endswith(".git"):
        name += ".git"
    path = Path(state.info["git_root"]) / name
    if ".." in Path(name).parts or path.exists():
        raise SystemExit(f"repository {name} exists or is not a plain name")
    init_bare(path)
    return f"{state.env['TESTENV_GIT_HTTP']}/{name}"


def helm_env(state: State) -> dict[str, str]:
    """Environment for helm calls made by the test environment itself (its own helm home)."""
    home = state_dir() / "helm"
    return dict(os.environ, HELM_CACHE_HOME=str(home / "cache"), HELM_CONFIG_HOME=str(home / "config"),
                HELM_DATA_HOME=str(home / "data"), NO_COLOR="1", KUBECONFIG=state.env["KUBECONFIG"])


def _login_private_registry(helm: str, state: State, env: dict[str, str]) -> None:
    """Store the private registry's credentials in the environment's own helm home (idempotent)."""
    out = subprocess.run(
        [helm, "registry", "login", state.env["TESTENV_REGISTRY_AUTH"], "--plain-http",
         "--username", state.env["TESTENV_REGISTRY_USER"], "--password-stdin"],
        input=state.env["TESTENV_REGISTRY_PASSWORD"], env=env, capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise SystemExit(f"helm registry login {state.env['TESTENV_REGISTRY_AUTH']}: {out.stderr.strip()}")


def publish_chart(dirs: list[str]) -> list[str]:
    """Package chart directories into the chart repositories (HTTP, HTTPS+auth, OCI, OCI+auth); returns tgz names."""
    state = require_up()
    helm = state.env["HELM_BIN"]
    chart_dir = Path(state.info["chart_dir"])
    env = helm_env(state)
    published = []
    with _lock(), tempfile.TemporaryDirectory() as tmp:
        _login_private_registry(helm, state, env)
        for d in dirs:
            out = subprocess.run([helm, "package", d, "-d", tmp], env=env, capture_output=True, text=True,
                                 timeout=120)
            if out.returncode != 0:
                raise SystemExit(f"helm package {d}: {out.stderr.strip()}")
        for pkg in sorted(Path(tmp).glob("*.tgz")):
            shutil.copy2(pkg, chart_dir / pkg.name)
            for oci in (state.env["TESTENV_OCI_CHARTS"], state.env["TESTENV_OCI_CHARTS_AUTH"]):
                out = subprocess.run([helm, "push", str(pkg), oci, "--plain-http"],
                                     env=env, capture_output=True, text=True, timeout=120)
                if out.returncode != 0:
                    raise SystemExit(f"helm push {pkg.name} to {oci}: {out.stderr.strip()}")
            published.append(pkg.name)
        out = subprocess.run([helm, "repo", "index", str(chart_dir)], env=env, capture_output=True, text=True,
                             timeout=120)
        if out.returncode != 0:
            raise SystemExit(f"helm repo index: {out.stderr.strip()}")
    return published
