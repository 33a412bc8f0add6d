"""Helpers of the Git sync tests (tests/integration/test_sync_*.py): a config repository to push
to, and the real ``gitops-helm`` command run as a subprocess, each with a sync name, state
namespace and default namespace of its own so tests never see each other's state."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitops_helm.sync.apply import state_configmap_name
from tests.conftest import Env
from tests.integration.test_git_mirror import Work

GITOPS_HELM = str(Path(sys.executable).with_name("gitops-helm"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(what: str, check: Callable[[], Any], timeout: float = 30.0, interval: float = 0.2) -> Any:
    """Poll ``check()`` until it returns something truthy; fail naming ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = check()
        except (AssertionError, KeyError, ValueError) as exc:
            last = exc
        else:
            if last:
                return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}")
        time.sleep(interval)


def process_env(env: Env) -> dict[str, str]:
    """The environment of a ``gitops-helm`` process: no GITOPS_HELM_* settings of the caller."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("GITOPS_HELM_")}
    return dict(
        inherited,
        **env.vars,
        NO_COLOR="1",
        GIT_TERMINAL_PROMPT="0",
        HELM_CACHE_HOME=str(env.helm_home / "cache"),
        HELM_CONFIG_HOME=str(env.helm_home / "config"),
        HELM_DATA_HOME=str(env.helm_home / "data"),
    )


def unique_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# --- the config repository -----------------------------------------------------------------------


class ConfigRepo:
    """A working repository whose ``main`` is pushed to ``push_url`` after every commit."""

    def __init__(self, path: Path, push_url: str, push_env: dict[str, str] | None = None) -> None:
        self.work = Work(path)
        self.path = path
        self.push_url = push_url
        self.push_env = push_env

    def commit(self, files: dict[str, str | None], message: str = "change") -> str:
        """Add, change (text) or remove (None) files, commit and push; the new commit id."""
        sha = self.work.commit(files, message)
        self.work.push(self.push_url, env=self.push_env)
        return sha

    def replace(self, files: dict[str, str], message: str = "replace") -> str:
        """Make the tree exactly ``files``, commit and push."""
        tracked = self.work.git("ls-files").splitlines()
        removed: dict[str, str | None] = {name: None for name in tracked if name not in files}
        return self.commit({**removed, **files}, message)


def configmap(name: str, data: dict[str, str], namespace: str | None = None, **meta: Any) -> str:
    metadata: dict[str, Any] = {"name": name, **meta}
    if namespace:
        metadata["namespace"] = namespace
    return json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data}) + "\n"


def helmrelease(env: Env, name: str, values: dict[str, Any] | None = None, **spec: Any) -> str:
    body = {
        "apiVersion": "helm.fluxcd.io/v1",
        "kind": "HelmRelease",
        "metadata": {"name": name},
        "spec": {
            "releaseName": name,
            "chart": {"repository": env["TESTENV_CHARTS"], "name": "hello", "version": "0.1.0"},
            "values": values or {},
            **spec,
        },
    }
    return json.dumps(body) + "\n"


# --- cluster reads ------------------------------------------------------------------------------


def get_object(env: Env, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
    args = ["get", kind, name, "-o", "json", "--ignore-not-found"]
    if namespace:
        args += ["-n", namespace]
    out = env.kubectl(*args)
    return json.loads(out) if out.strip() else None


def cm_data(env: Env, namespace: str, name: str) -> dict[str, str] | None:
    obj = get_object(env, "configmap", namespace, name)
    return None if obj is None else dict(obj.get("data") or {})


def sync_state(env: Env, namespace: str, sync_name: str) -> dict[str, str]:
    return cm_data(env, namespace, state_configmap_name(sync_name)) or {}


def synced_revision(
    env: Env, namespace: str, sync_name: str, sha: str, timeout: float = 60.0
) -> dict[str, str]:
    """Wait until the sync state records ``sha`` as synced; returns the state."""

    def check() -> dict[str, str] | None:
        state = sync_state(env, namespace, sync_name)
        return state if state.get("revision") == sha else None

    return wait_for(f"sync of {sha[:12]} by {sync_name}", check, timeout)  # type: ignore[no-any-return]


def release_exists(env: Env, namespace: str, release: str) -> bool:
    out = env.run([env["HELM_BIN"], "status", release, "-n", namespace], check=False)
    if out.returncode != 0 and "not found" not in out.stderr:
        raise AssertionError(f"helm status {release}: {out.stderr}")
    return out.returncode == 0


def unblock_namespace(env: Env, namespace: str) -> None:
    """Drop the reconciler's finalizers from the HelmReleases left in ``namespace`` (the agent is
    stopped), so deleting the namespace is not blocked."""
    out = env.kubectl("get", "helmreleases", "-n", namespace, "-o", "name", check=False)
    for ref in out.split():
        patch = '{"metadata":{"finalizers":null}}'
        env.kubectl("patch", ref, "-n", namespace, "--type=merge", "-p", patch, check=False)


# --- the gitops-helm command ---------------------------------------------------------------------


def cli(env: Env, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``gitops-helm ARGS`` to the end (never raises on a non-zero exit)."""
    return subprocess.run(
        [GITOPS_HELM, *args], capture_output=True, text=True, timeout=timeout, env=process_env(env)
    )


def status_flags(env: Env, namespace: str, sync_name: str) -> list[str]:
    """Flags of ``gitops-helm status`` for one test's sync source."""
    return [
        "--kubeconfig",
        env["KUBECONFIG"],
        "--namespace",
        namespace,
        "--sync-name",
        sync_name,
        "--state-namespace",
        namespace,
    ]


def sync_flags(env: Env, namespace: str, sync_name: str) -> list[str]:
    """Flags of ``run``, ``sync --once`` and ``diff`` keeping one test's sync source apart."""
    return [
        "--kubeconfig",
        env["KUBECONFIG"],
        "--namespace",
        namespace,
        "--sync-name",
        sync_name,
        "--state-namespace",
        namespace,
        "--default-namespace",
        namespace,
    ]


@dataclass
class AgentProcess:
    """``gitops-helm run`` as a subprocess; its output goes to ``log_path``."""

    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    sync_name: str
    namespace: str
    argv: list[str] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_log(self, pattern: str, timeout: float = 60.0, after: int = 0) -> re.Match[str]:
        """Wait for a log line matching ``pattern`` at or after character ``after``."""
        regex = re.compile(pattern)
        return wait_for(  # type: ignore[no-any-return]
            f"log line /{pattern}/", lambda: regex.search(self.log()[after:]), timeout
        )

    def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, str]:
        url = self.base + path  # always http://127.0.0.1
        data = body if method == "POST" else None
        req = urllib.request.Request(url, data=data, method=method, headers=headers or {})  # noqa: S310
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - loopback URL
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()

    def webhook(self, payload: dict[str, Any], secret: str) -> tuple[int, str]:
        """POST a GitHub push delivery to /hooks/git, signed with ``secret``."""
        body = json.dumps(payload).encode()
        signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        headers = {
            "Content-Type": "application/json",
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": str(uuid.uuid4()),
            "X-Hub-Signature-256": signature,
        }
        return self.request("POST", "/hooks/git", body, headers)

    def wait_acting(self, timeout: float = 60.0) -> None:
        """Wait until the agent leads and acts: its CRD is installed, its loops started. Before
        that, a HelmRelease applied with kubectl may find no CRD on a fresh cluster."""

        def acting() -> bool:
            self.assert_running()
            try:
                return "\ngitops_helm_leader 1.0" in self.request("GET", "/metrics")[1]
            except OSError:
                return False

        wait_for("the agent to lead and act", acting, timeout)

    def assert_running(self) -> None:
        assert self.proc.poll() is None, f"the agent exited with {self.proc.returncode}:\n{self.log()}"

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                raise AssertionError(f"the agent did not stop on SIGTERM:\n{self.log()[-3000:]}") from None
        return self.proc.returncode


def start_agent(
    env: Env,
    work_dir: Path,
    namespace: str,
    git_url: str,
    *extra: str,
    sync_name: str | None = None,
    poll: str = "2s",
) -> AgentProcess:
    """Start ``gitops-helm run`` for ``git_url``, scoped to ``namespace``; wait for /healthz."""
    sync_name = sync_name or unique_name("sync")
    port = free_port()
    work_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        GITOPS_HELM,
        "run",
        *sync_flags(env, namespace, sync_name),
        "--git-url",
        git_url,
        "--git-poll-interval",
        poll,
        "--listen",
        f"127.0.0.1:{port}",
        "--helm-bin",
        env["HELM_BIN"],
        "--work-dir",
        str(work_dir / "work"),
        "--retry-base",
        "1s",
        "--retry-max",
        "3s",
        "--workers",
        "2",
        *extra,
    ]
    log_path = work_dir / "agent.log"
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=process_env(env))
    agent = AgentProcess(proc, port, log_path, sync_name, namespace, argv)

    def healthy() -> bool:
        agent.assert_running()
        try:
            return agent.request("GET", "/healthz")[0] == 200
        except OSError:
            return False

    try:
        wait_for("the agent's /healthz", healthy, timeout=120)  # a loaded machine imports slowly
    except BaseException:
        agent.stop()
        raise
    return agent


def start_webhook_agent(env: Env, work_dir: Path, namespace: str, git_url: str, secret: str) -> AgentProcess:
    """An agent whose Git poll is an hour away, so only a webhook (secret ``secret``) fetches."""
    secret_file = work_dir / "webhook-secret"
    work_dir.mkdir(parents=True, exist_ok=True)
    secret_file.write_text(secret + "\n")
    return start_agent(
        env, work_dir / "agent", namespace, git_url, "--git-webhook-secret-file", str(secret_file), poll="1h"
    )


@contextlib.contextmanager
def fresh_namespace(env: Env, prefix: str) -> Iterator[str]:
    """A new namespace (for the tests of a module sharing one agent), deleted afterwards."""
    name = unique_name(re.sub(r"[^a-z0-9]+", "-", prefix.lower()).strip("-")[:40])
    env.kubectl("create", "namespace", name)
    try:
        yield name
    finally:
        unblock_namespace(env, name)
        env.kubectl("delete", "namespace", name, "--wait=false", check=False)
