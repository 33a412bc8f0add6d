"""Errors that say what to do next, against the real Git server, chart repositories and agent.

Each failure a user can cause (a wrong password or SSH key, a host key missing from known_hosts,
a host that does not resolve, a closed port, a missing branch, a repository URL that serves no
index, a certificate from an unknown CA) must name the object, the step and the flag, field or
file to check, wherever the user looks: the sync state (``gitops-helm status``), the agent's log,
and a HelmRelease's Ready condition.
"""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

from gitops_helm.adapters.git import (
    GitAuthError,
    GitConnectionRefusedError,
    GitHostKeyError,
    GitHostNotFoundError,
    GitRefNotFound,
    HTTPAuth,
    Mirror,
    Remote,
    SSHAuth,
)
from gitops_helm.agent import SYNC_GIT_NAMES
from gitops_helm.charts.auth import RepositoryAuth
from gitops_helm.charts.errors import RepositoryAuthError, RepositoryError, RepositoryUnavailableError
from gitops_helm.charts.helmrepo import HelmRepoClient, HelmRepoSettings
from tests.conftest import Env
from tests.integration.images_helpers import Registry, unique_repo
from tests.integration.reconcile_helpers import GitRepo, apply, hr_manifest
from tests.integration.syncfix import cli, start_agent, status_flags, sync_state, wait_for
from tests.integration.test_git_mirror import Work, unique


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then closed: refused until someone takes it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def pushed_repository(env: Env, tmp_path: Path) -> str:
    work = Work(tmp_path / "work")
    work.commit({"a.yaml": "a: 1\n"}, "one")
    name = unique("hints")
    work.push(f"{env['TESTENV_GIT_HTTP']}/{name}")
    return name


def sync_remote(url: str, auth: HTTPAuth | SSHAuth | None = None) -> Remote:
    return Remote(url, auth, SYNC_GIT_NAMES)


# -- Git: the adapter's errors, with the sync source's flags ------------------------------------


def test_a_wrong_http_password_names_the_credential_flags(env: Env, tmp_path: Path) -> None:
    url = f"{env['TESTENV_GIT_HTTP_AUTH']}/{pushed_repository(env, tmp_path)}"
    wrong = "wrong-" + env["TESTENV_GIT_PASSWORD"]
    mirror = Mirror(tmp_path / "m", sync_remote(url, HTTPAuth(env["TESTENV_GIT_USER"], wrong)))
    with pytest.raises(GitAuthError) as info:
        mirror.ensure_mirror()
    message = str(info.value)
    assert (
        "refused the user name and password (or token): check --git-user and --git-password-file" in message
    )
    assert url in message and wrong not in message

    with pytest.raises(GitAuthError, match="none were given: set --git-user and --git-password-file"):
        Mirror(tmp_path / "anon", sync_remote(url)).ensure_mirror()


def test_ssh_wrong_key_and_unknown_host_key_name_the_key_and_known_hosts(env: Env, tmp_path: Path) -> None:
    url = f"{env['TESTENV_GIT_SSH']}/{pushed_repository(env, tmp_path)}"
    port = url.split("@127.0.0.1:", 1)[1].split("/", 1)[0]
    other_key = tmp_path / "other_key"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other_key)], check=True, timeout=30
    )
    wrong_key = SSHAuth(other_key, Path(env["TESTENV_KNOWN_HOSTS"]))
    with pytest.raises(GitAuthError, match="refused the SSH key: check that --git-ssh-key is a private key"):
        Mirror(tmp_path / "wrong-key", sync_remote(url, wrong_key)).ensure_mirror()

    empty = tmp_path / "known_hosts"
    empty.write_text("")
    stranger = SSHAuth(Path(env["TESTENV_GIT_SSH_KEY"]), empty)
    with pytest.raises(GitHostKeyError) as info:
        Mirror(tmp_path / "stranger", sync_remote(url, stranger)).ensure_mirror()
    assert f"--git-known-hosts holds no matching key for 127.0.0.1:{port}" in str(info.value)
    assert f"'ssh-keyscan -p {port} 127.0.0.1'" in str(info.value)


def test_an_unresolvable_host_and_a_closed_port_name_the_host_and_port(tmp_path: Path) -> None:
    with pytest.raises(GitHostNotFoundError) as info:
        Mirror(tmp_path / "dns", sync_remote("http://no-such-host.invalid/repo.git")).ensure_mirror()
    assert "the host name 'no-such-host.invalid' does not resolve: check the host in --git-url" in str(
        info.value
    )
    assert info.value.temporary

    port = closed_port()
    with pytest.raises(GitConnectionRefusedError) as refused:
        Mirror(tmp_path / "closed", sync_remote(f"http://127.0.0.1:{port}/repo.git")).ensure_mirror()
    assert f"nothing accepts connections on 127.0.0.1:{port}: check the host and port in --git-url" in str(
        refused.value
    )


def test_a_missing_branch_names_the_branch_flag(env: Env, tmp_path: Path) -> None:
    url = f"{env['TESTENV_GIT_HTTP']}/{pushed_repository(env, tmp_path)}"
    mirror = Mirror(tmp_path / "m", sync_remote(url))
    mirror.ensure_mirror()
    with pytest.raises(GitRefNotFound) as info:
        mirror.resolve("refs/heads/master")
    assert "set --git-branch (the default is main; Flux v1's was master) to an existing branch" in str(
        info.value
    )
    assert "branches: main" in str(info.value)


# -- Git: where the user sees it ----------------------------------------------------------------


def test_the_sync_status_and_log_say_which_credentials_to_check(
    env: Env, namespace: str, tmp_path: Path
) -> None:
    url = f"{env['TESTENV_GIT_HTTP_AUTH']}/{pushed_repository(env, tmp_path)}"
    password_file = tmp_path / "password"
    password_file.write_text("wrong-" + env["TESTENV_GIT_PASSWORD"])
    agent = start_agent(
        env,
        tmp_path / "agent",
        namespace,
        url,
        "--git-user",
        env["TESTENV_GIT_USER"],
        "--git-password-file",
        str(password_file),
    )
    try:
        hint = "check --git-user and --git-password-file"
        state = wait_for(
            "the fetch error in the sync state",
            lambda: hint in (s := sync_state(env, namespace, agent.sync_name)).get("fetchError", "") and s,
            timeout=60,
        )
        assert "authentication failed" in state["fetchError"]
        out = cli(env, "status", *status_flags(env, namespace, agent.sync_name))
        assert out.returncode == 0, out.stderr
        assert hint in out.stdout, out.stdout
        agent.wait_log(r"source attempt failed.*check --git-user and --git-password-file")
        assert password_file.read_text() not in agent.log()
    finally:
        agent.stop()


def ready_message(agent: Any, name: str, namespace: str, needle: str) -> str:
    def check() -> str | None:
        found = agent.condition(name, namespace, "Ready")
        message = str((found or {}).get("message", ""))
        return message if found and found["status"] == "False" and needle in message else None

    try:
        return str(agent.wait_for(f"{namespace}/{name} Ready=False naming {needle!r}", check, timeout=90))
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nstatus: {agent.hr(name, namespace).get('status')}") from None


def test_a_helmrelease_with_a_git_chart_names_its_fields(
    env: Env, namespace: str, tmp_path: Path, start_agent: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GIT_SSL_CAINFO", env["TESTENV_CA_FILE"])  # the agent's git trusts this CA
    agent = start_agent(namespace, env["HELM_BIN"])
    repo = GitRepo(env, tmp_path)
    repo.add_chart("charts/hello")
    repo.commit_and_push("chart")
    branch = {"git": repo.http_url, "ref": "no-such-branch", "path": "charts/hello"}
    apply(env, hr_manifest("badref", namespace, branch))
    env.kubectl(
        "create", "secret", "generic", "wrong-creds", "-n", namespace,
        f"--from-literal=username={env['TESTENV_GIT_USER']}", "--from-literal=password=wrong",
    )  # fmt: skip
    auth_url = f"{env['TESTENV_GIT_HTTPS']}/auth/{repo.name}.git"  # secretRef is sent over https only
    creds = {"git": auth_url, "ref": "master", "path": "charts/hello", "secretRef": {"name": "wrong-creds"}}
    apply(env, hr_manifest("badcreds", namespace, creds))
    dns = {"git": "http://no-such-host.invalid/charts.git", "ref": "master", "path": "charts/hello"}
    apply(env, hr_manifest("badhost", namespace, dns))

    message = ready_message(agent, "badref", namespace, "set spec.chart.ref")
    assert "'no-such-branch'" in message and "branches: master" in message
    message = ready_message(agent, "badcreds", namespace, "check spec.chart.secretRef")
    assert "authentication failed; the server refused the user name and password" in message
    message = ready_message(agent, "badhost", namespace, "check the host name in spec.chart.git")
    assert "no-such-host.invalid" in message


# -- Helm repositories ---------------------------------------------------------------------------


def test_a_helmrelease_says_which_credentials_and_ca_to_check(
    env: Env, namespace: str, start_agent: Any
) -> None:
    agent = start_agent(namespace, env["HELM_BIN"])
    env.kubectl(
        "create", "secret", "generic", "wrong-pass", "-n", namespace,
        f"--from-literal=username={env['TESTENV_CHARTS_USER']}", "--from-literal=password=wrong",
        f"--from-file=ca.crt={env['TESTENV_CA_FILE']}",
    )  # fmt: skip
    chart = {"repository": env["TESTENV_CHARTS_AUTH"], "name": "hello", "version": "0.1.0"}
    apply(env, hr_manifest("wrongpass", namespace, {**chart, "chartPullSecret": {"name": "wrong-pass"}}))
    apply(env, hr_manifest("noca", namespace, chart))

    message = ready_message(agent, "wrongpass", namespace, "the credentials were refused")
    assert f'Secret "{namespace}/wrong-pass"' in message and "HTTP 401" in message
    message = ready_message(agent, "noca", namespace, "could not be verified")
    assert "ca.crt in spec.chart.chartPullSecret or as caFile in the agent's --repositories-file" in message


def test_repository_connection_failures_name_the_host_port_and_field(env: Env, tmp_path: Path) -> None:
    client = HelmRepoClient(HelmRepoSettings(tmp_path, retry_delays=()))
    with pytest.raises(RepositoryUnavailableError) as dns:
        client.fetch("http://no-such-host.invalid/charts", "hello", "0.1.0")
    assert (
        "the host 'no-such-host.invalid' was not found (DNS); check the host name in spec.chart.repository"
        in (str(dns.value))
    )
    port = closed_port()
    with pytest.raises(RepositoryUnavailableError) as refused:
        client.fetch(f"http://127.0.0.1:{port}/charts", "hello", "0.1.0")
    assert f"connection refused by 127.0.0.1:{port}; check the host and port in spec.chart.repository" in str(
        refused.value
    )
    # the Git server answers 404 for index.yaml: a URL that is no Helm repository
    with pytest.raises(RepositoryError) as not_a_repo:
        client.fetch(f"{env['TESTENV_GIT_HTTP']}/nothing-here", "hello", "0.1.0")
    assert "not found (HTTP 404)" in str(not_a_repo.value)
    assert "is this a Helm repository?" in str(not_a_repo.value)
    with pytest.raises(
        RepositoryAuthError, match=r"no credentials were given: set spec\.chart\.chartPullSecret"
    ):
        trusted_anonymous = RepositoryAuth(ca=Path(env["TESTENV_CA_FILE"]))
        client.fetch(env["TESTENV_CHARTS_AUTH"], "hello", "0.1.0", trusted_anonymous)


# -- gitops_helm_registry_requests_total ---------------------------------------------------------


def registry_requests(metrics_text: str, kind: str, host: str, outcome: str = "ok") -> float:
    prefix = f'gitops_helm_registry_requests_total{{host="{host}",kind="{kind}",outcome="{outcome}"}} '
    return sum(float(line[len(prefix) :]) for line in metrics_text.splitlines() if line.startswith(prefix))


def test_registry_requests_count_helm_repositories_and_image_scans(
    env: Env, namespace: str, tmp_path: Path
) -> None:
    registry = Registry(env["TESTENV_REGISTRY"])
    image = f"{registry.host}/{unique_repo('metrics')}"
    registry.push_image(image.split("/", 1)[1], "1.0.0", None)
    release = f"""\
apiVersion: helm.fluxcd.io/v1
kind: HelmRelease
metadata:
  name: counted
  namespace: {namespace}
  annotations:
    fluxcd.io/automated: "true"
    filter.fluxcd.io/chart-image: semver:^1.0
spec:
  releaseName: counted
  chart:
    repository: {env["TESTENV_CHARTS"]}
    name: hello
    version: 0.1.0
  values:
    image:
      repository: {image}
      tag: 1.0.0
"""
    work = Work(tmp_path / "config")
    work.commit({"counted.yaml": release}, "a release")
    url = f"{env['TESTENV_GIT_HTTP']}/{unique('metrics')}"
    work.push(url)
    agent = start_agent(
        env,
        tmp_path / "agent",
        namespace,
        url,
        "--image-automation",
        "--image-scan-interval",
        "1s",
        "--oci-plain-http",
        env["TESTENV_REGISTRY"],
    )
    charts_host = env["TESTENV_CHARTS"].split("://", 1)[1]
    try:

        def counted() -> str | None:
            text = agent.request("GET", "/metrics")[1]
            wanted = (
                registry_requests(text, "helm-index", charts_host) >= 1
                and registry_requests(text, "helm-chart", charts_host) >= 1
                and registry_requests(text, "image", registry.host) >= 1
            )
            return text if wanted else None

        text = wait_for("registry requests of each kind in /metrics", counted, timeout=120)
        # labels stay bounded: a host, never a path or a repository name
        for line in text.splitlines():
            if line.startswith("gitops_helm_registry_requests_total{"):
                assert "/" not in line.split("}", 1)[0], line
        agent.assert_running()
    finally:
        agent.stop()
