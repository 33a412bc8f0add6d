"""Experiment 7: secrets never leak.

Injects: known secret values, in every place a user puts a secret, into one real ``gitops-helm
run`` at debug log level:

- ``values-secret``: a random marker in values read from a Secret (``valuesFrom.secretKeyRef``;
  the Secret itself is synced from Git, written with ``stringData``);
- ``chart-pull-password``: the password of the environment's HTTPS chart repository with basic
  auth (``TESTENV_CHARTS_PASSWORD``: it cannot be changed, so it is the real one), given in the
  HelmRelease's ``chartPullSecret``;
- ``git-password``: a random password of a Git HTTP server this experiment starts on 127.0.0.1
  (the environment's own Git password is a plain word that names other things too), given with
  ``--git-user``/``--git-password-file``; the agent syncs its configuration from there;
- ``ssh-private-key``: a line of the body of the SSH private key (``--git-ssh-key``) the agent
  uses to fetch a ``chart.git`` chart over SSH from the environment's Git server;
- ``webhook-secret``: a random webhook secret (``--git-webhook-secret-file``).

Each run drives the agent through an install (two HelmReleases: a repository chart and a Git
chart over SSH), an upgrade (a new commit, announced by a signed webhook delivery), and a failure
(an upgrade whose pods never become Ready, with a 20 s timeout and rollback on failure, also
announced by a webhook), while a sampler reads the command line of the agent and every
descendant process (``/proc/PID/cmdline``) every 50 ms. Count: one such run per trial set (quick
1, full 2, with new markers each time).

Checks: each marker (and the base64 form the Secret stores) occurs zero times in each place, one
trial per place: the agent's whole log, the Events of every namespace (``kubectl get events -A``),
the HelmReleases (whole objects, status included), the sync-state ConfigMap, ``/metrics``, and
every sampled argv. Not searched, on purpose: the Secrets the user wrote (they hold the values by
definition) and Helm's own release Secrets (``sh.helm.release.v1.*``: Helm storage keeps the
values of every revision; that is where Helm keeps them, not a leak).
"""

from __future__ import annotations

import base64
import contextlib
import json
import secrets
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from testenvlib.servers import start_git_server  # (scripts/ is on the path: tests.conftest puts it there)

from chaos.framework import Context, Outcome, Trial, experiment
from tests.conftest import CHARTS, Env
from tests.integration.syncfix import (
    AgentProcess,
    ConfigRepo,
    get_object,
    start_agent,
    sync_state,
    synced_revision,
    unblock_namespace,
    unique_name,
    wait_for,
)


class ArgvSampler:
    """Reads the argv of some processes and all their descendants every ``interval`` seconds."""

    def __init__(self, roots: list[int], interval: float = 0.05) -> None:
        self.roots = roots
        self.interval = interval
        self.samples = 0
        self.argvs: set[str] = set()
        self.pids: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="argv-sampler", daemon=True)

    def __enter__(self) -> ArgvSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _children(self) -> dict[int, list[int]]:
        tree: dict[int, list[int]] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError, ValueError, IndexError):
                stat = (entry / "stat").read_text()
                ppid = int(stat[stat.rindex(")") + 2 :].split()[1])  # the name may hold spaces
                tree.setdefault(ppid, []).append(int(entry.name))
        return tree

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            tree = self._children()
            todo = list(self.roots)
            while todo:
                pid = todo.pop()
                todo += tree.get(pid, [])
                with contextlib.suppress(OSError):
                    raw = Path(f"/proc/{pid}/cmdline").read_bytes()
                    if raw:
                        self.argvs.add(raw.replace(b"\0", b" ").decode("utf-8", "replace"))
                        self.pids.add(pid)
            self.samples += 1


def _marker(kind: str) -> str:
    return f"chaos7{kind}{secrets.token_hex(12)}"


def _key_line(key_file: str) -> str:
    """A line of the private key's body: 70 characters no other file holds."""
    lines = [ln for ln in Path(key_file).read_text().splitlines() if ln and not ln.startswith("-----")]
    return max(lines[1:-1] or lines, key=len)


def _hr(name: str, chart: dict[str, Any], **spec: Any) -> str:
    body = {
        "apiVersion": "helm.fluxcd.io/v1",
        "kind": "HelmRelease",
        "metadata": {"name": name},
        "spec": {"releaseName": name, "chart": chart, **spec},
    }
    return json.dumps(body) + "\n"


def _secret_doc(name: str, string_data: dict[str, str]) -> str:
    body = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": string_data}
    return json.dumps(body) + "\n"


def _ready_at(env: Env, namespace: str, name: str) -> bool:
    hr = get_object(env, "helmrelease", namespace, name) or {}
    status = hr.get("status") or {}
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
    return bool(
        ready.get("status") == "True" and status.get("observedGeneration") == hr["metadata"]["generation"]
    )


def _revision(env: Env, namespace: str, release: str) -> int:
    out = env.run([env["HELM_BIN"], "history", release, "-n", namespace, "-o", "json"], check=False)
    return int(json.loads(out.stdout)[-1]["revision"]) if out.returncode == 0 else 0


def _released_false(env: Env, namespace: str, name: str) -> bool:
    status = (get_object(env, "helmrelease", namespace, name) or {}).get("status") or {}
    return any(
        c.get("type") == "Released" and c.get("status") == "False" for c in status.get("conditions") or []
    )


def _push_delivery(agent: AgentProcess, secret: str, sha: str) -> None:
    status, body = agent.webhook({"ref": "refs/heads/main", "after": sha}, secret)
    if status >= 300:
        raise AssertionError(f"the signed webhook delivery was refused: {status} {body}")


@experiment(
    7,
    "secrets",
    "Secrets never leak",
    injects="known secrets in values Secrets, chart pull credentials, Git password, SSH key, webhook secret",
    quick=1,
    full=2,
    budget_seconds=900,
)
def secrets_never_leak(ctx: Context, count: int) -> Iterator[Trial]:
    for run in range(count):
        yield from _one_run(ctx, run)


def _one_run(ctx: Context, run: int) -> Iterator[Trial]:
    env = ctx.env
    work = ctx.scratch("secrets")
    markers = {
        "values-secret": _marker("values"),
        "chart-pull-password": env["TESTENV_CHARTS_PASSWORD"],
        "git-password": _marker("git"),
        "ssh-private-key": _key_line(env["TESTENV_GIT_SSH_KEY"]),
        "webhook-secret": _marker("hook"),
    }
    values_text = f"secretValue: {markers['values-secret']}\n"
    forms = dict(markers)
    forms["values-secret (base64, as the Secret stores it)"] = base64.b64encode(values_text.encode()).decode()
    password_file = work / "git-password"
    password_file.write_text(markers["git-password"] + "\n")
    hook_file = work / "webhook-secret"
    hook_file.write_text(markers["webhook-secret"] + "\n")
    git_root = work / "git"
    git_root.mkdir()
    git = start_git_server(git_root, user="chaos", password=markers["git-password"])
    agents: list[AgentProcess] = []
    with ctx.namespace("secrets") as namespace, ctx.namespace("secrets-http") as namespace_http:
        try:
            # agent A: its configuration over SSH (the key), charts from the HTTPS repository with
            # basic auth (the pull Secret) and from Git over SSH (the key again)
            repo_name = f"{unique_name('chaos-secrets')}.git"
            config = ConfigRepo(work / "config", f"{env['TESTENV_GIT_HTTP']}/{repo_name}")
            chart_repo_name = f"{unique_name('chaos-secrets-chart')}.git"
            charts = ConfigRepo(work / "charts", f"{env['TESTENV_GIT_HTTP']}/{chart_repo_name}")
            charts.replace(
                {f"charts/hello/{p.relative_to(CHARTS / 'hello')}": p.read_text()
                 for p in (CHARTS / "hello").rglob("*") if p.is_file()},
                "the chart",
            )  # fmt: skip
            env.kubectl(
                "create", "secret", "generic", "pull", "-n", namespace,
                f"--from-literal=username={env['TESTENV_CHARTS_USER']}",
                f"--from-literal=password={env['TESTENV_CHARTS_PASSWORD']}",
                f"--from-file=ca.crt={env['TESTENV_CA_FILE']}",
            )  # fmt: skip

            def tree(message: str, failing: bool = False) -> dict[str, str]:
                values_from = [{"secretKeyRef": {"name": "values", "key": "values.yaml"}}]
                repo_chart = {"repository": env["TESTENV_CHARTS_AUTH"], "name": "hello", "version": "0.1.0",
                              "chartPullSecret": {"name": "pull"}}  # fmt: skip
                git_chart = {"git": f"{env['TESTENV_GIT_SSH']}/{chart_repo_name}", "path": "charts/hello",
                             "ref": "main"}  # fmt: skip
                web_values: dict[str, Any] = {"message": message}
                extra: dict[str, Any] = {}
                if failing:
                    web_values["unready"] = True
                    extra = {"timeout": 20, "wait": True, "rollback": {"enable": True}}
                return {
                    "values-secret.yaml": _secret_doc("values", {"values.yaml": values_text}),
                    "web.yaml": _hr("web", repo_chart, valuesFrom=values_from, values=web_values, **extra),
                    "gitchart.yaml": _hr("gitchart", git_chart, valuesFrom=values_from),
                }

            first = config.replace(tree("one"), "install")
            agent = start_agent(
                env, work / "agent", namespace, f"{env['TESTENV_GIT_SSH']}/{repo_name}",
                "--log-level", "debug",
                "--git-webhook-secret-file", str(hook_file),
                "--git-ssh-key", env["TESTENV_GIT_SSH_KEY"], "--git-known-hosts", env["TESTENV_KNOWN_HOSTS"],
                poll="10m",  # only the first fetch and the webhook deliveries bring commits in
            )  # fmt: skip
            agents.append(agent)
            # agent B: its configuration from a Git HTTP server with basic auth (the password);
            # the agent takes an SSH key only with an SSH URL, so the two need two agents
            port = git.server_address[1]
            http_name = f"{unique_name('chaos-secrets-http')}.git"
            config_http = ConfigRepo(work / "config-http", f"http://127.0.0.1:{port}/{http_name}")
            first_http = config_http.replace({"settings.yaml": _settings("one")}, "settings")
            agent_http = start_agent(
                env, work / "agent-http", namespace_http, f"http://127.0.0.1:{port}/auth/{http_name}",
                "--log-level", "debug",
                "--git-user", "chaos", "--git-password-file", str(password_file),
                "--git-webhook-secret-file", str(hook_file),
                poll="10m",
            )  # fmt: skip
            agents.append(agent_http)
            with ArgvSampler([a.proc.pid for a in agents]) as sampler:
                synced_revision(env, namespace_http, agent_http.sync_name, first_http, timeout=120)
                synced_revision(env, namespace, agent.sync_name, first, timeout=120)
                for name in ("web", "gitchart"):
                    wait_for(f"{name} installed", lambda n=name: _ready_at(env, namespace, n), timeout=180)
                ctx.log(f"  [secrets] run {run + 1}: installed")

                second = config.replace(tree("two"), "upgrade")
                _push_delivery(agent, markers["webhook-secret"], second)
                second_http = config_http.replace({"settings.yaml": _settings("two")}, "settings two")
                _push_delivery(agent_http, markers["webhook-secret"], second_http)
                synced_revision(env, namespace, agent.sync_name, second, timeout=120)
                synced_revision(env, namespace_http, agent_http.sync_name, second_http, timeout=120)
                wait_for(
                    "web upgraded",
                    lambda: _revision(env, namespace, "web") >= 2 and _ready_at(env, namespace, "web"),
                    timeout=180,
                )
                ctx.log(f"  [secrets] run {run + 1}: upgraded")

                third = config.replace(tree("three", failing=True), "a failing upgrade")
                _push_delivery(agent, markers["webhook-secret"], third)
                synced_revision(env, namespace, agent.sync_name, third, timeout=120)
                wait_for("web's upgrade failed", lambda: _released_false(env, namespace, "web"), timeout=240)
                wait_for(
                    "web rolled back", lambda: _revision(env, namespace, "web") >= 4, timeout=180, interval=1
                )
                ctx.log(f"  [secrets] run {run + 1}: failed and rolled back")
                time.sleep(1)  # a last status write and Event of the rollback
            metrics = "\n".join(a.request("GET", "/metrics")[1] for a in agents)
            for a in agents:
                a.stop()

            states = [
                sync_state(env, ns, a.sync_name)
                for ns, a in ((namespace, agent), (namespace_http, agent_http))
            ]
            if not all(state.get("revision") for state in states):
                yield Trial("sync-state ConfigMaps", "error", f"a sync state is missing: {states}")
            places = {
                "agent logs (debug)": "\n".join(a.log() for a in agents),
                "Events (all namespaces)": env.kubectl("get", "events", "-A", "-o", "json"),
                "HelmRelease objects and status": env.kubectl(
                    "get", "helmreleases", "-n", namespace, "-o", "json"
                ),
                "sync-state ConfigMaps": json.dumps(states),
                "/metrics": metrics,
                "argv of the agents and their children": "\n".join(sorted(sampler.argvs)),
            }
            sampled = f"{sampler.samples} samples of {len(sampler.pids)} processes"
            if not sampler.samples or len(sampler.pids) < 4:
                yield Trial("argv sampling", "error", f"too few to tell anything: {sampled}")
            for place, text in places.items():
                found = [kind for kind, value in forms.items() if value and value in text]
                outcome: Outcome = "violated" if found else "survived"
                detail = f"found: {', '.join(found)}" if found else f"{len(text)} characters searched"
                if place.startswith("argv"):
                    detail += f" ({sampled})"
                yield Trial(place, outcome, detail, injected=len(markers))
        finally:
            for a in agents:
                a.stop()
            git.shutdown()
            git.server_close()
            for release in ("web", "gitchart"):
                env.run([env["HELM_BIN"], "uninstall", release, "-n", namespace, "--wait=false"], check=False)
            unblock_namespace(env, namespace)
            shutil.rmtree(work, ignore_errors=True)


def _settings(value: str) -> str:
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"v": value}}
    return json.dumps(body) + "\n"
