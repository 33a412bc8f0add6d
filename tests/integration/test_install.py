"""The install (issue #11): ``deploy/`` applied with one ``kubectl apply -k`` on the real API
server, its Pod admitted under the ``restricted`` Pod Security Standard, the real agent running
under the shipped ServiceAccount's RBAC with nothing forbidden, and the agent's Helm chart
rendering the same objects and installing."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import Env
from tests.integration.syncfix import (
    ConfigRepo,
    cli,
    free_port,
    get_object,
    helmrelease,
    process_env,
    start_agent,
    synced_revision,
    unblock_namespace,
    unique_name,
    wait_for,
)
from tests.unit.test_dockerfile import DOCKERFILE, parse_dockerfile

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
CHART = DEPLOY / "chart"
TENANT_ACCOUNT = "deployer"


def documents(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def overlay(tmp: Path, namespace: str, *, tenancy: bool) -> Path:
    """A kustomization over ``deploy/`` that renames everything after ``namespace`` (so tests never
    collide), labels the namespace ``restricted``, leaves out the CRD (shared by every test of the
    environment: the agent installs it) and, in tenancy mode, the release permissions."""
    tmp.mkdir(parents=True, exist_ok=True)
    patches: list[dict[str, Any]] = [
        {
            "target": {"kind": "CustomResourceDefinition"},
            "patch": "$patch: delete\napiVersion: apiextensions.k8s.io/v1\n"
            "kind: CustomResourceDefinition\nmetadata: {name: helmreleases.helm.fluxcd.io}\n",
        },
        {
            "target": {"kind": "Namespace"},
            "patch": "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: gitops-helm\n  labels:\n"
            "    pod-security.kubernetes.io/enforce: restricted\n"
            "    pod-security.kubernetes.io/warn: restricted\n",
        },
    ]
    if tenancy:
        patches.append(
            {
                "target": {"kind": "ClusterRoleBinding", "name": "gitops-helm-releases"},
                "patch": "$patch: delete\napiVersion: rbac.authorization.k8s.io/v1\n"
                "kind: ClusterRoleBinding\nmetadata: {name: gitops-helm-releases}\n",
            }
        )
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [os.path.relpath(DEPLOY, tmp)],
        "namespace": namespace,
        "namePrefix": f"{namespace}-",
        "patches": patches,
    }
    (tmp / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    return tmp


@dataclass
class Installed:
    namespace: str  # also the prefix of every name
    applied: subprocess.CompletedProcess[str]

    @property
    def account(self) -> str:
        return f"{self.namespace}-gitops-helm"


def delete_installed(env: Env, rendered: str) -> None:
    env.run(
        [env["KUBECTL_BIN"], "delete", "--wait=false", "--ignore-not-found", "-f", "-"],
        input_text=rendered,
        check=False,
    )


@pytest.fixture(scope="module")
def installed(testenv_session: Env, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    """``kubectl apply -k`` of deploy/ (tenancy mode: no release permissions for the agent)."""
    env = testenv_session
    namespace = unique_name("install")
    kdir = overlay(tmp_path_factory.mktemp("overlay"), namespace, tenancy=True)
    rendered = env.kubectl("kustomize", str(kdir))
    applied = env.run([env["KUBECTL_BIN"], "apply", "-k", str(kdir)])
    try:
        yield Installed(namespace, applied)
    finally:
        delete_installed(env, rendered)


def test_one_apply_on_an_empty_namespace_and_the_restricted_pod_runs(env: Env, installed: Installed) -> None:
    """The namespace is created by the same command as the objects in it (kustomize orders them),
    and the Pod is admitted under `restricted` Pod Security: the Deployment becomes Available."""
    assert "Warning" not in installed.applied.stderr, installed.applied.stderr
    deployment = f"{installed.namespace}-gitops-helm"
    env.kubectl(
        "wait",
        "--for=condition=Available",
        f"deployment/{deployment}",
        "-n",
        installed.namespace,
        "--timeout=120s",
    )
    pods = env.kube_json("pods", "-n", installed.namespace)["items"]
    assert len(pods) == 2
    container = pods[0]["spec"]["containers"][0]
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert not container["image"].endswith(":latest") and ":" in container["image"]
    # a server-side dry run of the whole kustomization now has nothing to warn about either
    dry = env.run(
        [
            env["KUBECTL_BIN"],
            "apply",
            "-k",
            str(DEPLOY),
            "--dry-run=server",
            "-n",
            installed.namespace,
            "--prune=false",
        ],
        check=False,
    )
    assert "PodSecurity" not in dry.stderr, dry.stderr


def test_the_agents_own_rules_grant_no_wildcard(env: Env) -> None:
    """RBAC part (a) (deploy/rbac.yaml): no `*` anywhere in a rule."""
    own = documents((DEPLOY / "rbac.yaml").read_text())
    roles = [d for d in own if d["kind"] in ("ClusterRole", "Role")]
    assert roles
    for role in roles:
        for rule in role["rules"]:
            for key in ("apiGroups", "resources", "verbs", "nonResourceURLs", "resourceNames"):
                assert "*" not in rule.get(key, []), f"{role['kind']} {role['metadata']['name']}: {rule}"


def kubeconfig_for(env: Env, account: str, namespace: str, path: Path) -> Path:
    """A kubeconfig for ``account`` with a token from the TokenRequest API of the real API server."""
    token = env.kubectl("create", "token", account, "-n", namespace, "--duration=1h").strip()
    admin = json.loads(env.kubectl("config", "view", "--raw", "--minify", "-o", "json"))
    cluster = admin["clusters"][0]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [{"name": "agent", "context": {"cluster": cluster["name"], "user": account}}],
        "current-context": "agent",
    }
    path.write_text(json.dumps(config))
    path.chmod(0o600)
    return path


def test_the_agent_works_under_the_shipped_rbac_with_nothing_forbidden(
    env: Env, installed: Installed, namespace: str, tmp_path: Path
) -> None:
    """The real agent, with the shipped ServiceAccount's token and only RBAC part (a) (tenancy mode:
    the release permissions belong to a ServiceAccount of the HelmRelease's namespace): the CRD
    install, leader election, the Git sync, the HelmRelease reconcile all succeed and no request
    was refused."""
    env.kubectl("create", "serviceaccount", TENANT_ACCOUNT, "-n", namespace)
    env.kubectl(
        "create",
        "rolebinding",
        f"{TENANT_ACCOUNT}-admin",
        "-n",
        namespace,
        "--clusterrole=admin",
        f"--serviceaccount={namespace}:{TENANT_ACCOUNT}",
    )
    kubeconfig = kubeconfig_for(env, installed.account, installed.namespace, tmp_path / "kubeconfig")
    url = f"{env['TESTENV_GIT_HTTP']}/{unique_name('install')}.git"
    repo = ConfigRepo(tmp_path / "repo", url)
    sha = repo.replace({"apps/web.yaml": helmrelease(env, "web", {"message": "under rbac"})}, "first")
    agent = start_agent(
        env,
        tmp_path / "agent",
        namespace,
        url,
        "--kubeconfig",
        str(kubeconfig),
        "--state-namespace",
        installed.namespace,
        "--leader-election-namespace",
        installed.namespace,
        "--leader-elect=true",
        "--default-service-account",
        TENANT_ACCOUNT,
        "--only-helmreleases=true",
        "--allow-internal-urls=true",
        "--sync-garbage-collection=true",
    )
    try:
        agent.wait_acting(timeout=90)
        synced_revision(env, installed.namespace, agent.sync_name, sha, timeout=90)

        def ready() -> bool:
            hr = get_object(env, "helmrelease", namespace, "web") or {}
            conditions = (hr.get("status") or {}).get("conditions") or []
            return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

        try:
            wait_for("HelmRelease web Ready under the shipped RBAC", ready, timeout=120)
        except AssertionError as exc:
            hr = get_object(env, "helmrelease", namespace, "web") or {}
            raise AssertionError(f"{exc}\nstatus: {hr.get('status')}\n{agent.log()[-4000:]}") from None
        lease = get_object(env, "lease", installed.namespace, "gitops-helm")
        assert lease is not None and lease["spec"].get("holderIdentity")
        release = env.run([env["HELM_BIN"], "status", "web", "-n", namespace, "-o", "json"])
        assert json.loads(release.stdout)["info"]["status"] == "deployed"
        # `gitops-helm check` agrees: the shipped ServiceAccount has every permission it lists
        account = f"system:serviceaccount:{installed.namespace}:{installed.account}"
        checked = cli(
            env, "check", "--kubeconfig", env["KUBECONFIG"], "--helm-bin", env["HELM_BIN"],
            "--as", account, "--leader-elect", "-n", installed.namespace,
        )  # fmt: skip
        assert checked.returncode == 0, checked.stdout + checked.stderr
    finally:
        code = agent.stop()
        unblock_namespace(env, namespace)
    log = agent.log()
    assert code == 0, log[-3000:]
    refused = [line for line in log.splitlines() if re.search(r"forbidden|\b403\b", line, re.IGNORECASE)]
    assert not refused, "\n".join(refused[:20])


# --- the agent's Helm chart --------------------------------------------------------------------


def objects_by_key(docs: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {(d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"]): d for d in docs}


def test_the_chart_renders_the_same_objects_as_the_kustomization(env: Env, helm: str) -> None:
    lint = env.run([helm, "lint", str(CHART), "--strict"])
    assert "0 chart(s) failed" in lint.stdout
    chart = objects_by_key(
        documents(
            env.run(
                [helm, "template", "gitops-helm", str(CHART), "-n", "gitops-helm", "--include-crds"]
            ).stdout
        )
    )
    kustomized = objects_by_key(documents(env.kubectl("kustomize", str(DEPLOY))))
    # the chart installs into the release's namespace instead of creating one
    kustomized = {k: v for k, v in kustomized.items() if k[0] != "Namespace"}
    assert sorted(chart) == sorted(kustomized)
    for key, expected in kustomized.items():
        got = chart[key]
        for field in ("rules", "roleRef", "subjects"):
            assert got.get(field) == expected.get(field), f"{key} {field}"
        if key[0] == "CustomResourceDefinition":
            assert got["spec"] == expected["spec"]
        if key[0] == "Deployment":
            want_pod, got_pod = expected["spec"]["template"]["spec"], got["spec"]["template"]["spec"]
            # the chart names its Lease and sync after the release (two installs in one namespace
            # stay apart); the kustomization is one install per namespace with the defaults
            args = got_pod["containers"][0]["args"]
            for derived in ("--leader-election-id=gitops-helm", "--sync-name=gitops-helm"):
                assert derived in args, args
                args.remove(derived)
            assert got_pod == want_pod
            assert got["spec"]["replicas"] == expected["spec"]["replicas"]


def test_each_shard_renders_a_deployment_with_its_own_lease(env: Env, helm: str) -> None:
    out = env.run(
        [
            helm,
            "template",
            "agents",
            str(CHART),
            "-n",
            "ops",
            "--set",
            "shards[0].name=a",
            "--set",
            "shards[1].name=b",
        ]
    ).stdout
    deployments = [d for d in documents(out) if d["kind"] == "Deployment"]
    names = [d["metadata"]["name"] for d in deployments]
    assert names == ["agents-gitops-helm", "agents-gitops-helm-a", "agents-gitops-helm-b"]
    main, *shards = deployments
    # the first runs the Git sync and serves the HelmReleases without a shard label
    main_args = main["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--watch-label-selector=!gitops-helm.io/shard" in main_args
    assert any(a.startswith("--git-url=") for a in main_args)
    for shard, deployment in zip("ab", shards, strict=True):
        args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        assert f"--shard={shard}" in args and "--reconcile-only=true" in args
        assert f"--leader-election-id=agents-gitops-helm-{shard}" in args
        assert not any(a.startswith("--git-url=") for a in args)  # one Git sync only
    # no Deployment's selector matches another's pods
    selectors = [d["spec"]["selector"]["matchLabels"]["app"] for d in deployments]
    assert len(set(selectors)) == 3
    nameless = env.run([helm, "template", "x", str(CHART), "--set", "shards[0].args={--a}"], check=False)
    assert nameless.returncode != 0 and "shards: every entry needs a name" in nameless.stderr


def run_args(rendered: str) -> dict[str, list[str]]:
    """Each Deployment's ``gitops-helm run`` arguments, by Deployment name."""
    return {
        d["metadata"]["name"]: d["spec"]["template"]["spec"]["containers"][0]["args"]
        for d in documents(rendered)
        if d["kind"] == "Deployment"
    }


def flag(args: list[str], name: str) -> str:
    (value,) = [a.split("=", 1)[1] for a in args if a.startswith(f"--{name}=")]
    return value


def test_two_installs_in_one_namespace_have_their_own_lease_and_sync(env: Env, helm: str) -> None:
    first = run_args(env.run([helm, "template", "team-a", str(CHART), "-n", "ops"]).stdout)
    second = run_args(
        env.run([helm, "template", "team-b", str(CHART), "-n", "ops", "--set", "shards[0].name=x"]).stdout
    )
    a, b, b_shard = first["team-a-gitops-helm"], second["team-b-gitops-helm"], second["team-b-gitops-helm-x"]
    assert flag(a, "leader-election-id") == "team-a-gitops-helm"
    assert flag(a, "sync-name") == "team-a-gitops-helm"
    assert flag(b, "leader-election-id") == "team-b-gitops-helm"
    assert flag(b, "sync-name") == "team-b-gitops-helm"
    assert flag(b_shard, "leader-election-id") == "team-b-gitops-helm-x"
    # values name them explicitly (e.g. to keep an older install's Lease and sync state)
    kept = run_args(
        env.run(
            [
                helm, "template", "team-a", str(CHART), "-n", "ops", "--set", "leaderElectionId=gitops-helm",
                "--set", "syncName=default", "--set", "shards[0].name=x",
            ]
        ).stdout
    )  # fmt: skip
    assert flag(kept["team-a-gitops-helm"], "leader-election-id") == "gitops-helm"
    assert flag(kept["team-a-gitops-helm"], "sync-name") == "default"
    assert flag(kept["team-a-gitops-helm-x"], "leader-election-id") == "gitops-helm-x"


def test_the_chart_installs_and_its_pod_becomes_ready(env: Env, helm: str, namespace: str) -> None:
    env.kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    release = unique_name("gitops-helm")
    install = env.run(
        [
            helm,
            "install",
            release,
            str(CHART),
            "-n",
            namespace,
            "--skip-crds",
            "--set",
            "rbac.releasesClusterRole=",
            "--set",
            "replicas=1",
        ],
        check=False,
    )
    try:
        assert install.returncode == 0, install.stderr
        env.kubectl(
            "wait", "--for=condition=Available", f"deployment/{release}", "-n", namespace, "--timeout=120s"
        )
        pods = env.kube_json("pods", "-n", namespace, "-l", f"app={release}")["items"]
        assert [p["status"]["phase"] for p in pods] == ["Running"]
    finally:
        env.run([helm, "uninstall", release, "-n", namespace, "--wait=false"], check=False)


# --- the image's entrypoint, run from a local install ------------------------------------------


def local_argv(argv: list[str]) -> list[str]:
    """The image's command line without its init (tini only execs the rest) and with the venv's
    ``python`` and ``gitops-helm``."""
    assert argv[:2] == ["/usr/bin/tini", "--"], argv
    rest = argv[2:]
    local = {"gitops-helm": str(Path(sys.executable).with_name("gitops-helm")), "python": sys.executable}
    return [local.get(rest[0], rest[0]), *rest[1:]]


def test_the_images_entrypoint_and_healthcheck_work_from_a_local_install(
    env: Env, namespace: str, tmp_path: Path
) -> None:
    image = parse_dockerfile(DOCKERFILE.read_text())[-1]
    entrypoint = local_argv(image.exec_form("ENTRYPOINT"))
    healthcheck = image.exec_form("HEALTHCHECK")
    probe = [sys.executable if healthcheck[0] == "python" else healthcheck[0], *healthcheck[1:]]
    port = free_port()
    environ = dict(process_env(env), GITOPS_HELM_LISTEN=f"127.0.0.1:{port}", HOME=str(tmp_path))
    # no agent: the health check fails
    assert subprocess.run(probe, env=environ, capture_output=True, timeout=30).returncode != 0
    default = subprocess.run(
        [*entrypoint, *image.exec_form("CMD")], env=environ, capture_output=True, text=True, timeout=60
    )
    assert default.returncode == 0 and "--git-url" in default.stdout, default.stderr
    argv = [
        *entrypoint,
        "run",
        "--reconcile-only",
        "--install-crd=false",
        "--kubeconfig",
        env["KUBECONFIG"],
        "--namespace",
        namespace,
        "--helm-bin",
        env["HELM_BIN"],
        "--work-dir",
        str(tmp_path / "work"),
    ]
    with open(tmp_path / "agent.log", "wb") as log:
        agent = subprocess.Popen(argv, env=environ, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(
            "the image's HEALTHCHECK to pass",
            lambda: subprocess.run(probe, env=environ, capture_output=True, timeout=30).returncode == 0,
            timeout=60,
        )
    finally:
        agent.terminate()
        agent.wait(60)
    assert agent.returncode == 0, (tmp_path / "agent.log").read_text()[-3000:]
