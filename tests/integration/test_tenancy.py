"""Tenancy lockdown on the real environment: two tenant namespaces, each with a ServiceAccount
``deployer`` bound to the built-in ``admin`` ClusterRole in its own namespace only, and agents run
with ``--default-service-account deployer`` (one in-process agent per tenant namespace, with the
same settings: the fixture's agent watches one namespace, so the tests never see each other's
HelmReleases). Tenant A's own release works; tenant B cannot install into A's namespace, read A's
Secrets through any field, or adopt or uninstall A's release.

The last tests need no ServiceAccount: what the agent itself refuses to do for anybody (adopt an
unowned release outside the HelmRelease's namespace, uninstall a release it does not own, hand a
Secret of another namespace to a Git URL under --no-cross-namespace-refs).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gitops_helm.adapters.kube import Kube, KubeError, KubeErrorKind
from gitops_helm.config import GitSourceSettings
from tests.conftest import Env, release_finalizers
from tests.integration.reconcile_helpers import (
    GitRepo,
    apply,
    config_message,
    helm_cli,
    hr_manifest,
    latest_revision,
    release_secrets,
    repo_chart,
    wait_ready,
    wait_revision,
)
from tests.integration.test_kube_deadlines import (  # the fixture and its helper
    FreezableProxy,
    call_with_deadline,
    proxied_kube,  # noqa: F401
)

OWNER_LABEL = "gitops-helm.io/owner"
ACCOUNT = "deployer"
# the tenants' agents; the test environment's chart repositories and Git server are on loopback,
# which chart sources may reach in lockdown only with --allow-internal-urls
LOCKDOWN: dict[str, Any] = {"default_service_account": ACCOUNT, "allow_internal_urls": True}


def _namespace(env: Env, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    env.kubectl("create", "namespace", name)
    deadline = time.monotonic() + 30
    while env.kubectl("get", "serviceaccount", "default", "-n", name, check=False) == "":
        assert time.monotonic() < deadline, f"no default ServiceAccount in {name}"
        time.sleep(0.2)
    return name


def _drop(env: Env, namespace: str) -> None:
    release_finalizers(env, namespace)
    env.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


@pytest.fixture
def tenants(env: Env, request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """Namespaces A and B, each with ServiceAccount ``deployer`` = ``admin`` of its namespace only."""
    base = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:30].strip("-")
    made = [_namespace(env, f"{base}-a"), _namespace(env, f"{base}-b")]
    for ns in made:
        env.kubectl("create", "serviceaccount", ACCOUNT, "-n", ns)
        env.kubectl(
            "create", "rolebinding", f"{ACCOUNT}-admin", "-n", ns,
            "--clusterrole=admin", f"--serviceaccount={ns}:{ACCOUNT}",
        )  # fmt: skip
    yield made[0], made[1]
    for ns in made:
        _drop(env, ns)


@pytest.fixture
def other_namespace(env: Env, request: pytest.FixtureRequest) -> Iterator[str]:
    base = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:30].strip("-")
    name = _namespace(env, f"{base}-x")
    yield name
    _drop(env, name)


def _message(agent: Any, name: str, namespace: str, ctype: str = "Released") -> str:
    found = agent.condition(name, namespace, ctype)
    return str(found["message"]) if found and found["status"] == "False" else ""


def _wait_message(agent: Any, name: str, namespace: str, *needles: str, ctype: str = "Released") -> str:
    """Wait until condition ``ctype`` of the HelmRelease is False with every needle in its message."""
    return agent.wait_for(  # type: ignore[no-any-return]
        f"{namespace}/{name} {ctype}=False mentioning {needles}",
        lambda: (msg := _message(agent, name, namespace, ctype)) and all(n in msg for n in needles) and msg,
    )


def _install_by_hand(env: Env, helm: str, namespace: str, release: str) -> None:
    chart = f"{env['TESTENV_CHARTS']}/hello-0.1.0.tgz"
    helm_cli(env, helm, "install", release, chart, "-n", namespace, "--set", "message=by-hand", "--wait")


def _delete_helmrelease(env: Env, namespace: str, name: str) -> None:
    """Delete as a user would and wait until the agent has let it go (its finalizer removed)."""
    env.kubectl("delete", "helmrelease", name, "-n", namespace, "--timeout=90s")
    assert env.kubectl("get", "helmrelease", name, "-n", namespace, "--ignore-not-found") == ""


# -- two tenants, agents acting as each HelmRelease's ServiceAccount ----------------------------


def test_tenant_b_cannot_install_into_adopt_or_uninstall_in_tenant_as_namespace(
    env: Env, tenants: tuple[str, str], helm: str, start_agent: Any
) -> None:
    ns_a, ns_b = tenants
    agent_a = start_agent(ns_a, helm, **LOCKDOWN)
    agent_b = start_agent(ns_b, helm, **LOCKDOWN)

    # tenant A's own release works, as its ServiceAccount
    apply(env, hr_manifest("app", ns_a, repo_chart(env), values={"message": "tenant-a"}))
    wait_ready(agent_a, "app", ns_a)
    assert latest_revision(env, ns_a, "app") == (1, "deployed")
    assert release_secrets(env, ns_a, "app")[-1]["metadata"]["labels"][OWNER_LABEL] == f"{ns_a}.app"

    # tenant B installs into A's namespace: refused by RBAC, and the status says so
    apply(env, hr_manifest("intruder", ns_b, repo_chart(env), targetNamespace=ns_a))
    message = _wait_message(agent_b, "intruder", ns_b, "forbidden", f"ServiceAccount {ns_b}/{ACCOUNT}")
    assert f"system:serviceaccount:{ns_b}:{ACCOUNT}" in message
    # tenant B names A's release: neither taken over nor, when deleted, uninstalled
    apply(env, hr_manifest("app", ns_b, repo_chart(env), targetNamespace=ns_a, values={"message": "b"}))
    _wait_message(agent_b, "app", ns_b, "forbidden")
    _delete_helmrelease(env, ns_b, "app")
    _delete_helmrelease(env, ns_b, "intruder")

    assert release_secrets(env, ns_a, "intruder") == []
    assert latest_revision(env, ns_a, "app") == (1, "deployed")
    assert config_message(env, ns_a, "app") == "tenant-a"
    assert agent_b.agent.helm.calls["uninstall"] == 0


def test_tenant_b_cannot_read_tenant_as_secrets(
    env: Env, tenants: tuple[str, str], start_agent: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    ns_a, ns_b = tenants
    env.kubectl(
        "create", "secret", "generic", "values", "-n", ns_a,
        "--from-literal=values.yaml=message: secret-of-a",
    )  # fmt: skip
    env.kubectl(
        "create", "secret", "generic", "git-creds", "-n", ns_a,
        f"--from-literal=username={env['TESTENV_GIT_USER']}",
        f"--from-literal=password={env['TESTENV_GIT_PASSWORD']}",
    )  # fmt: skip
    repo = GitRepo(env, tmp_path)
    repo.add_chart("charts/hello")
    repo.commit_and_push("add chart")
    monkeypatch.setenv("GIT_SSL_CAINFO", env["TESTENV_CA_FILE"])  # the agent's git trusts this CA
    # cross-namespace references allowed: the ServiceAccount's RBAC is what stops tenant B here
    agent = start_agent(ns_b, env["HELM_BIN"], **LOCKDOWN)

    values_ref = [{"secretKeyRef": {"name": "values", "namespace": ns_a}}]
    apply(env, hr_manifest("by-values", ns_b, repo_chart(env), valuesFrom=values_ref))
    git_chart = {
        "git": f"{env['TESTENV_GIT_HTTPS']}/auth/{repo.name}.git",
        "ref": "master",
        "path": "charts/hello",
        "secretRef": {"name": "git-creds", "namespace": ns_a},
    }
    apply(env, hr_manifest("by-git", ns_b, git_chart))
    # chartPullSecret has no namespace field: it can only name a Secret of tenant B's namespace

    values_message = _wait_message(agent, "by-values", ns_b, "forbidden", f"{ns_a}/values")
    git_message = _wait_message(agent, "by-git", ns_b, "forbidden", f"{ns_a}/git-creds")
    for message in (values_message, git_message):
        assert f"system:serviceaccount:{ns_b}:{ACCOUNT}" in message
        assert "secret-of-a" not in message and env["TESTENV_GIT_PASSWORD"] not in message
    assert release_secrets(env, ns_b, "by-values") == []
    assert release_secrets(env, ns_b, "by-git") == []
    assert agent.condition("by-git", ns_b, "ChartFetched")["status"] == "False"  # type: ignore[index]


def test_spec_service_account_name_wins_and_helm_acts_as_it(
    env: Env, tenants: tuple[str, str], helm: str, start_agent: Any
) -> None:
    """A ServiceAccount that may manage Helm storage (Secrets) but no Deployments: the reads pass,
    and helm itself is refused by the API server, so helm too runs as the ServiceAccount."""
    _ns_a, ns_b = tenants
    env.kubectl("create", "serviceaccount", "storage-only", "-n", ns_b)
    env.kubectl(
        "create", "role", "storage-only", "-n", ns_b, "--verb=*", "--resource=secrets,configmaps,services",
    )  # fmt: skip
    env.kubectl(
        "create", "rolebinding", "storage-only", "-n", ns_b,
        "--role=storage-only", f"--serviceaccount={ns_b}:storage-only",
    )  # fmt: skip
    agent = start_agent(ns_b, helm, **LOCKDOWN)
    apply(env, hr_manifest("limited", ns_b, repo_chart(env), serviceAccountName="storage-only"))
    message = _wait_message(agent, "limited", ns_b, "deployments", "forbidden")
    assert f"system:serviceaccount:{ns_b}:storage-only" in message
    assert agent.agent.helm.calls["install"] >= 1
    assert env.kubectl("get", "deployment", "limited", "-n", ns_b, "--ignore-not-found") == ""


def test_an_impersonating_client_acts_as_the_account_with_the_agents_deadlines(
    env: Env,
    tenants: tuple[str, str],
    proxied_kube: tuple[FreezableProxy, Callable[[], Kube]],  # noqa: F811 - the imported fixture
) -> None:
    ns_a, ns_b = tenants
    env.kubectl("create", "secret", "generic", "private", "-n", ns_a, "--from-literal=k=v")
    proxy, make = proxied_kube
    agent = make()
    user = f"system:serviceaccount:{ns_b}:{ACCOUNT}"
    as_b = agent.impersonating(user)
    assert as_b is agent.impersonating(user)  # one client per identity ...
    assert as_b.api is not agent.api  # ... never the agent's connection pool or headers
    assert agent.impersonating(f"system:serviceaccount:{ns_a}:{ACCOUNT}").api is not as_b.api

    assert agent.get_secret_data(ns_a, "private") == {"k": b"v"}
    with pytest.raises(KubeError) as refused:
        as_b.get_secret_data(ns_a, "private")
    assert refused.value.kind is KubeErrorKind.FORBIDDEN and user in str(refused.value)
    assert as_b.get_secret_data(ns_b, "absent") is None  # its own namespace: allowed, not found

    proxy.freeze()
    outcome = call_with_deadline(lambda: as_b.get_secret_data(ns_b, "absent"))
    assert isinstance(outcome, KubeError) and outcome.kind is KubeErrorKind.TEMPORARY, outcome
    proxy.thaw()
    assert call_with_deadline(lambda: as_b.get_secret_data(ns_b, "absent")) is None


# -- what the agent refuses for anybody ---------------------------------------------------------


def test_deleting_a_helmrelease_whose_chart_never_fetched_leaves_an_unrelated_release(
    env: Env, namespace: str, start_agent: Any
) -> None:
    helm = env["HELM_BIN"]
    _install_by_hand(env, helm, namespace, "app")
    agent = start_agent(namespace, helm)
    missing = repo_chart(env, name="no-such-chart", version="9.9.9")
    apply(env, hr_manifest("app", namespace, missing))
    agent.wait_condition("app", namespace, "ChartFetched", "False")
    assert agent.hr("app", namespace)["metadata"]["finalizers"] == ["helm.fluxcd.io/finalizer"]

    _delete_helmrelease(env, namespace, "app")
    assert latest_revision(env, namespace, "app") == (1, "deployed")
    assert config_message(env, namespace, "app") == "by-hand"
    assert agent.agent.helm.calls["uninstall"] == 0


def test_an_unowned_release_outside_the_namespace_is_adopted_only_when_allowed(
    env: Env, namespace: str, other_namespace: str, start_agent: Any
) -> None:
    helm = env["HELM_BIN"]
    _install_by_hand(env, helm, other_namespace, "app")
    manifest = hr_manifest("app", namespace, repo_chart(env), targetNamespace=other_namespace)
    manifest["spec"]["values"] = {"message": "declared"}
    refusing = start_agent(namespace, helm)
    apply(env, manifest)
    message = _wait_message(refusing, "app", namespace, "no owner marker")
    assert "--allow-adoption-across-namespaces" in message
    assert latest_revision(env, other_namespace, "app") == (1, "deployed")
    assert refusing.agent.helm.calls["upgrade"] == 0
    refusing.agent.stop()

    allowing = start_agent(namespace, helm, allow_adoption_across_namespaces=True)
    wait_revision(allowing, env, other_namespace, "app", 2)
    wait_ready(allowing, "app", namespace)
    labels = release_secrets(env, other_namespace, "app")[-1]["metadata"]["labels"]
    assert labels[OWNER_LABEL] == f"{namespace}.app"
    assert config_message(env, other_namespace, "app") == "declared"


def test_a_chart_secret_ref_in_another_namespace_is_refused_without_cross_namespace_refs(
    env: Env, namespace: str, other_namespace: str, start_agent: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    """The Secret's credentials would open the repository: refused, they are never handed to git."""
    env.kubectl(
        "create", "secret", "generic", "git-creds", "-n", other_namespace,
        f"--from-literal=username={env['TESTENV_GIT_USER']}",
        f"--from-literal=password={env['TESTENV_GIT_PASSWORD']}",
    )  # fmt: skip
    repo = GitRepo(env, tmp_path)
    repo.add_chart("charts/hello")
    repo.commit_and_push("add chart")
    monkeypatch.setenv("GIT_SSL_CAINFO", env["TESTENV_CA_FILE"])
    # lockdown: the chart sources on loopback need --allow-internal-urls
    agent = start_agent(
        namespace, env["HELM_BIN"], allow_cross_namespace_refs=False, allow_internal_urls=True
    )
    chart = {
        "git": f"{env['TESTENV_GIT_HTTPS']}/auth/{repo.name}.git",
        "ref": "master",
        "path": "charts/hello",
        "secretRef": {"name": "git-creds", "namespace": other_namespace},
    }
    apply(env, hr_manifest("app", namespace, chart))
    message = _wait_message(agent, "app", namespace, "spec.chart.secretRef.namespace", other_namespace)
    assert "--no-cross-namespace-refs" in message
    stalled = agent.condition("app", namespace, "Stalled")
    assert stalled is not None and stalled["reason"] == "CrossNamespaceReference", json.dumps(stalled)
    assert agent.condition("app", namespace, "ChartFetched") is None
    assert release_secrets(env, namespace, "app") == []


def test_the_agents_ssh_key_serves_only_the_hosts_the_operator_lists(
    env: Env, namespace: str, start_agent: Any, tmp_path: Path
) -> None:
    repo = GitRepo(env, tmp_path)
    repo.add_chart("hello", message="from-git-ssh")
    repo.commit_and_push("add chart")
    key = {"ssh_key": env["TESTENV_GIT_SSH_KEY"], "known_hosts": env["TESTENV_KNOWN_HOSTS"]}
    # the synced repository lives elsewhere: by default the key is for its host only
    refusing = start_agent(
        namespace, env["HELM_BIN"], git=GitSourceSettings(url="ssh://git@config.example.invalid/c.git", **key)
    )
    apply(env, hr_manifest("app", namespace, {"git": repo.ssh_url, "ref": "master", "path": "hello"}))
    message = _wait_message(refusing, "app", namespace, "--git-ssh-key-hosts", "config.example.invalid")
    assert env["TESTENV_GIT_SSH_KEY"] not in message
    assert release_secrets(env, namespace, "app") == []
    refusing.agent.stop()

    host = repo.ssh_url.split("@", 1)[1].split("/", 1)[0]  # host:port of the environment's server
    allowing = start_agent(
        namespace, env["HELM_BIN"], git=GitSourceSettings(url=None, ssh_key_hosts=(host,), **key)
    )
    wait_ready(allowing, "app", namespace)
    assert config_message(env, namespace, "app") == "from-git-ssh"


def test_a_chart_git_on_the_agents_disk_is_refused_unless_allowed(
    env: Env, namespace: str, start_agent: Any, tmp_path: Path
) -> None:
    repo = GitRepo(env, tmp_path)
    repo.add_chart("hello", message="from-disk")
    repo.commit_and_push("add chart")
    refusing = start_agent(namespace, env["HELM_BIN"])
    chart = {"git": f"file://{repo.dir}", "ref": "master", "path": "hello"}
    apply(env, hr_manifest("app", namespace, chart))
    _wait_message(refusing, "app", namespace, "--allow-local-chart-git", "chart.git")
    assert release_secrets(env, namespace, "app") == []
    refusing.agent.stop()

    allowing = start_agent(namespace, env["HELM_BIN"], allow_local_chart_git=True)
    wait_ready(allowing, "app", namespace)
    assert config_message(env, namespace, "app") == "from-disk"


# -- dependsOn is read as the ServiceAccount ------------------------------------------------------


def _grant_helmrelease_reads(env: Env, namespace: str, account_namespace: str) -> None:
    """Let ``account_namespace``'s deployer read HelmReleases of ``namespace`` (what the
    aggregated ClusterRole ``gitops-helm-view`` of deploy/rbac.yaml gives ``admin``)."""
    role = f"helmrelease-reader-{account_namespace}"[:63]
    if env.kubectl("get", "role", role, "-n", namespace, "--ignore-not-found") == "":
        env.kubectl(
            "create", "role", role, "-n", namespace,
            "--verb=get,list,watch", "--resource=helmreleases.helm.fluxcd.io",
        )  # fmt: skip
    env.kubectl(
        "create", "rolebinding", role, "-n", namespace,
        f"--role={role}", f"--serviceaccount={account_namespace}:{ACCOUNT}",
    )  # fmt: skip


def test_depends_on_is_read_as_the_service_account(
    env: Env, tenants: tuple[str, str], start_agent: Any
) -> None:
    ns_a, ns_b = tenants
    helm = env["HELM_BIN"]
    agent_a = start_agent(ns_a, helm, **LOCKDOWN)
    agent_b = start_agent(ns_b, helm, **LOCKDOWN)
    apply(env, hr_manifest("db", ns_a, repo_chart(env)))
    wait_ready(agent_a, "db", ns_a)

    # tenant B waits on A's HelmRelease: B's ServiceAccount may not read it, so B learns nothing
    # of it (not even that it is Ready) and installs nothing
    apply(env, hr_manifest("app", ns_b, repo_chart(env), dependsOn=[{"name": "db", "namespace": ns_a}]))
    message = _wait_message(agent_b, "app", ns_b, f"{ns_a}/db", "forbidden", ctype="Ready")
    assert f"ServiceAccount {ns_b}/{ACCOUNT} may not get it" in message
    assert "waiting for dependencies" in message
    assert release_secrets(env, ns_b, "app") == []

    # once A lets B's ServiceAccount read its HelmReleases, B sees db Ready and installs
    _grant_helmrelease_reads(env, ns_a, ns_b)
    wait_ready(agent_b, "app", ns_b)
    assert latest_revision(env, ns_b, "app") == (1, "deployed")
