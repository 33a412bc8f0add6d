"""Where the environment keeps its binaries, runtime state and recorded processes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "scripts" / "testenv-build"


def state_dir() -> Path:
    """Runtime state (logs, PKI, repositories, pids). One environment per machine user."""
    default = Path("/tmp") / f"gitops-helm-testenv-{os.getuid()}"
    return Path(os.environ.get("GITOPS_HELM_TESTENV_STATE", str(default)))


def bin_dir(build: bool = True) -> Path:
    """Directory of the built binaries; builds what is missing when ``build`` is true."""
    if build:
        out = subprocess.run(
            [str(BUILD_SCRIPT)], check=True, stdout=subprocess.PIPE, text=True, timeout=3 * 3600
        )
        return Path(out.stdout.strip().splitlines()[-1])
    out = subprocess.run(
        [str(BUILD_SCRIPT), "--print-dir"], check=True, stdout=subprocess.PIPE, text=True, timeout=30
    )
    return Path(out.stdout.strip())


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class State:
    """What ``up`` started: ports, paths, exported variables and process ids."""

    env: dict[str, str] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)
    info: dict[str, str] = field(default_factory=dict)
    starts: dict[str, str] = field(default_factory=dict)

    def record(self, name: str, pid: int) -> None:
        self.pids[name] = pid
        self.starts[name] = start_time(pid)

    @staticmethod
    def path() -> Path:
        return state_dir() / "state.json"

    @classmethod
    def load(cls) -> State | None:
        try:
            data = json.loads(cls.path().read_text())
        except (OSError, ValueError):
            return None
        return cls(env=data.get("env", {}), pids=data.get("pids", {}), info=data.get("info", {}),
                   starts=data.get("starts", {}))

    def save(self) -> None:
        self.path().parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path().with_suffix(".tmp")
        tmp.write_text(json.dumps(
            {"env": self.env, "pids": self.pids, "info": self.info, "starts": self.starts}, indent=2))
        tmp.replace(self.path())


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is not alive for our purposes.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def start_time(pid: int) -> str:
    """The kernel's start time of ``pid`` (clock ticks since boot), or "" when it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def is_ours(pid: int, started: str) -> bool:
    """True when ``pid`` is still the process we started (same start time: guards against pid reuse)."""
    return bool(started) and start_time(pid) == started


def stop_process(pid: int, started: str, name: str, grace: float = 10.0) -> None:
    """Stop a process group we started: SIGTERM, then SIGKILL after ``grace`` seconds."""
    child = _CHILDREN.pop(pid, None)
    try:
        _stop(pid, started, name, grace)
    finally:
        if child is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=5)


def _stop(pid: int, started: str, name: str, grace: float) -> None:
    if not process_alive(pid) or not is_ours(pid, started):
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not process_alive(pid):
                return
            time.sleep(0.1)
    raise RuntimeError(f"{name} (pid {pid}) did not stop")


# Children started by this process, kept referenced (a collected Popen of a running child warns)
# and reaped when stopped.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def spawn(name: str, argv: list[str], log_dir: Path, env: dict[str, str] | None = None) -> int:
    """Start ``argv`` in its own session with output to ``log_dir/<name>.log``; returns the pid."""
    log_dir.mkdir(parents=True, exist_ok=True)
    full_env = dict(os.environ if env is None else env)
    with open(log_dir / f"{name}.log", "ab") as log:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            env=full_env, start_new_session=True,
        )
    _CHILDREN[proc.pid] = proc
    return proc.pid


def wait_for(what: str, check: object, timeout: float, log: Path | None = None, pid: int | None = None) -> None:
    """Poll ``check()`` until it returns true; fail with the log tail when it does not in time."""
    deadline = time.monotonic() + timeout
    last_error = ""
    while time.monotonic() < deadline:
        if pid is not None and not process_alive(pid):
            break
        try:
            if check():  # type: ignore[operator]
                return
        except Exception as exc:
            last_error = f"{type(exc).__name__}: {exc}"
        time.sleep(0.2)
    tail = ""
    if log is not None and log.exists():
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
    state = "exited" if pid is not None and not process_alive(pid) else f"not ready after {timeout:.0f}s"
    raise RuntimeError(f"{what} {state} (last check: {last_error or 'false'})\n--- {log} ---\n{tail}")
