#!/usr/bin/env python3
"""`make demo`: the whole product on this machine, for real.

1. brings up the local environment (scripts/testenv up: Kubernetes control plane with kwok
   nodes, helm, Git server, chart repository, OCI registry);
2. publishes the example chart to the chart repository;
3. pushes examples/repo (URLs pointed at the local servers) to the local Git server;
4. runs `gitops-helm run` against that repository until every HelmRelease in it is Ready;
5. prints `gitops-helm status` and `helm list`, then stops the agent (the environment stays up:
   `make testenv-down` stops it).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from testenvlib import env as testenv  # noqa: E402

EXAMPLE = ROOT / "examples" / "repo"
GITOPS_HELM = ROOT / ".venv" / "bin" / "gitops-helm"
TIMEOUT_S = 300


def say(msg: str) -> None:
    print(f"\n==> {msg}", flush=True)


def run(argv: list[str], env: dict[str, str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, env=env, text=True, check=True, timeout=300, **kw)  # type: ignore[call-overload]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> int:
    t0 = time.monotonic()
    say("bringing up the local environment (the first time builds Kubernetes and helm: ~10 minutes)")
    state = testenv.up()
    env = dict(os.environ, **state.env, NO_COLOR="1")
    kubectl = [env["KUBECTL_BIN"], "--kubeconfig", env["KUBECONFIG"]]

    say("publishing the example chart 'hello' to the local chart repository")
    testenv.publish_chart([str(ROOT / "tests" / "charts" / "hello")])

    say("pushing examples/repo to the local Git server")
    repo_url = f"{env['TESTENV_GIT_HTTP']}/demo-config.git"
    with tempfile.TemporaryDirectory(prefix="gitops-helm-demo-") as tmp:
        work = Path(tmp) / "repo"
        shutil.copytree(EXAMPLE, work)
        for path in work.rglob("*.yaml"):
            text = path.read_text()
            text = text.replace("https://charts.example.invalid", env["TESTENV_CHARTS"])
            text = text.replace("https://git.example.invalid/config.git", repo_url)
            path.write_text(text)
        git = ["git", "-C", str(work), "-c", "user.name=demo", "-c", "user.email=demo@example.invalid"]
        run(["git", "init", "-q", "-b", "main", str(work)], env)
        run([*git, "add", "-A"], env)
        run([*git, "commit", "-q", "-m", "gitops-helm demo"], env)
        run([*git, "push", "-q", "--force", repo_url, "main"], env)
    print(f"    {repo_url}")

    say("running gitops-helm against it (logs: .demo/agent.log)")
    logs = ROOT / ".demo"
    logs.mkdir(exist_ok=True)
    port = free_port()
    argv = [
        str(GITOPS_HELM), "run",
        "--kubeconfig", env["KUBECONFIG"],
        "--helm-bin", env["HELM_BIN"],
        "--git-url", repo_url,
        "--git-poll-interval", "10s",
        "--sync-garbage-collection", "true",
        "--work-dir", str(logs / "work"),
        "--listen", f"127.0.0.1:{port}",
    ]  # fmt: skip
    with open(logs / "agent.log", "w") as log:
        agent = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wanted = ["hello", "greeter"]
        deadline = time.monotonic() + TIMEOUT_S
        ready: set[str] = set()
        while time.monotonic() < deadline and ready != set(wanted):
            if agent.poll() is not None:
                print((logs / "agent.log").read_text()[-3000:])
                print(f"gitops-helm exited with {agent.returncode}", file=sys.stderr)
                return 1
            out = subprocess.run([*kubectl, "get", "helmreleases", "-n", "demo", "-o", "json"], env=env,
                                 capture_output=True, text=True, timeout=30)
            if out.returncode == 0:
                for item in json.loads(out.stdout)["items"]:
                    conds = item.get("status", {}).get("conditions", [])
                    if any(c["type"] == "Ready" and c["status"] == "True" for c in conds):
                        if item["metadata"]["name"] not in ready:
                            print(f"    {item['metadata']['name']}: Ready ({time.monotonic() - t0:.0f}s)")
                        ready.add(item["metadata"]["name"])
            time.sleep(1)
        say("gitops-helm status")
        subprocess.run([str(GITOPS_HELM), "status", "--kubeconfig", env["KUBECONFIG"], "--namespace", "demo"],
                       env=env, timeout=60,
                       check=False)
        say("helm list -n demo")
        subprocess.run([env["HELM_BIN"], "list", "-n", "demo"], env=env, timeout=60, check=False)
        say("pods in namespace demo")
        subprocess.run([*kubectl, "get", "pods", "-n", "demo"], env=env, timeout=60, check=False)
        if ready != set(wanted):
            print(f"\nnot Ready within {TIMEOUT_S}s: {sorted(set(wanted) - ready)}; see .demo/agent.log",
                  file=sys.stderr)
            return 1
        print(f"\ndemo done in {time.monotonic() - t0:.0f}s. The environment is still up: "
              "`eval \"$(scripts/testenv env)\"` to use it, `make testenv-down` to stop it.")
        return 0
    finally:
        agent.send_signal(signal.SIGTERM)
        try:
            agent.wait(timeout=60)
        except subprocess.TimeoutExpired:
            agent.kill()


if __name__ == "__main__":
    sys.exit(main())
