"""``gitops-helm plan`` against a running agent (a real ``gitops-helm run`` subprocess syncing a
config repository on the environment's Git server).

Each test commits to the branch ``next`` (a pull request), plans it with ``plan --git-url URL
--ref next``, then pushes the same commit to ``main`` (the merge) and checks what the agent did
against the plan: the actions, versions and object diffs, and the fidelity guarantee (every
release's ``status.lastAppliedDigest`` equals its planned digest), for every chart source (Helm
repository, OCI, Git) and every values source (inline, ConfigMap, Secret, URL, chart file).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Env
from tests.integration.reconcile_helpers import GitRepo, publish, settled_ready
from tests.integration.syncfix import (
    AgentProcess,
    ConfigRepo,
    cli,
    configmap,
    fresh_namespace,
    start_agent,
    sync_flags,
    synced_revision,
    unique_name,
    wait_for,
)
from tests.localhttp import LocalServer

SECRET_MESSAGE = "s3cr3t-plan-message"  # set through a Secret: must never be printed


@dataclass
class Setup:
    env: Env
    namespace: str
    url: str
    repo: ConfigRepo
    agent: AgentProcess
    chart: str  # a copy of the test chart published at 0.1.0 and 0.2.0 to every repository
    git_chart: GitRepo
    values_url: str
    tmp: Path

    def chart_from(self, kind: str, name: str, version: str = "0.1.0") -> dict[str, Any]:
        if kind == "repo":
            return {"repository": self.env["TESTENV_CHARTS"], "name": self.chart, "version": version}
        if kind == "oci":
            return {"repository": self.env["TESTENV_OCI_CHARTS"], "name": self.chart, "version": version}
        return {"git": self.git_chart.http_url, "ref": "master", "path": "charts/hello"}

    def helmrelease(self, name: str, chart: dict[str, Any], **spec: Any) -> str:
        body = {
            "apiVersion": "helm.fluxcd.io/v1",
            "kind": "HelmRelease",
            "metadata": {"name": name, "namespace": self.namespace},
            "spec": {"releaseName": name, "chart": chart, **spec},
        }
        return json.dumps(body) + "\n"

    def propose(self, files: dict[str, str | None], message: str) -> str:
        """Commit on top of main and push it as the branch ``next`` only (a pull request)."""
        sha = self.repo.work.commit(files, message)
        self.repo.work.push(self.url, "HEAD:refs/heads/next", force=True)
        return sha

    def merge(self) -> None:
        """Push the proposed commit to main and wait until the agent's sync has applied it."""
        self.repo.work.push(self.url, "HEAD:refs/heads/main")
        self.synced()

    def synced(self) -> None:
        head = self.repo.work.git("rev-parse", "HEAD")
        synced_revision(self.env, self.namespace, self.agent.sync_name, head, timeout=120)

    def plan(self, *extra: str, ref: str = "next") -> subprocess.CompletedProcess[str]:
        return cli(
            self.env,
            "plan",
            *sync_flags(self.env, self.namespace, self.agent.sync_name),
            "--git-url",
            self.url,
            "--ref",
            ref,
            "--helm-bin",
            self.env["HELM_BIN"],
            "--work-dir",
            str(self.tmp / "plan-work"),
            # the agent's own sync and chart settings, as for ``diff``
            "--sync-garbage-collection",
            "--allow-internal-urls",
            "--oci-plain-http",
            self.env["TESTENV_REGISTRY"],
            *extra,
            timeout=300,
        )

    def plan_json(self, *extra: str, ref: str = "next") -> tuple[int, dict[str, Any]]:
        done = self.plan("-o", "json", *extra, ref=ref)
        assert done.returncode in (0, 1), done.stdout + done.stderr
        assert SECRET_MESSAGE not in done.stdout + done.stderr
        return done.returncode, json.loads(done.stdout)

    def applied_digest(self, name: str) -> str:
        """The lastAppliedDigest once the HelmRelease (as synced) is Ready for its generation."""
        st = wait_for(f"{name} Ready", lambda: settled_ready(self.env, self.namespace, name), timeout=180)
        return str(st["lastAppliedDigest"])


def by_name(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["helmRelease"].split("/", 1)[1]: r for r in doc["releases"]}


@pytest.fixture(scope="module")
def values_url() -> Iterator[str]:
    """A values file served over HTTP on 127.0.0.1 (tests/localhttp.py)."""
    with LocalServer(lambda _: (200, {}, b"message: from-url\n")) as server:
        yield f"{server.url}/values.yaml"


@pytest.fixture(scope="module")
def setup(testenv_session: Env, tmp_path_factory: pytest.TempPathFactory, values_url: str) -> Iterator[Setup]:
    env = testenv_session
    tmp = tmp_path_factory.mktemp("plan")
    chart = unique_name("planchart")
    publish(tmp, chart, "0.1.0")
    publish(tmp, chart, "0.2.0")
    git_chart = GitRepo(env, tmp)
    git_chart.add_chart("charts/hello")
    git_chart.write("charts/hello/extra-values.yaml", "message: from-chart-file\n")
    git_chart.commit_and_push("chart")
    with fresh_namespace(env, "plan") as ns:
        url = f"{env['TESTENV_GIT_HTTP']}/{unique_name('plan')}.git"
        repo = ConfigRepo(tmp / "repo", url)
        repo.replace({"base/settings.yaml": configmap("settings", {"a": "b"}, namespace=ns)}, "first")
        agent = start_agent(
            env,
            tmp / "agent",
            ns,
            url,
            "--sync-garbage-collection",
            "--allow-internal-urls",
            "--oci-plain-http",
            env["TESTENV_REGISTRY"],
        )
        try:
            agent.wait_acting()
            yield Setup(env, ns, url, repo, agent, chart, git_chart, values_url, tmp)
        finally:
            assert agent.stop() == 0, agent.log()[-3000:]


def test_plan_of_new_releases_matches_the_digests_the_agent_records_for_every_source(setup: Setup) -> None:
    ns = setup.namespace
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "a-secret-values", "namespace": ns},
        "stringData": {"values.yaml": f"message: {SECRET_MESSAGE}\n"},
    }
    setup.propose(
        {
            "a/values.yaml": configmap("a-values", {"values.yaml": "replicaCount: 1\n"}, namespace=ns),
            "a/secret.yaml": json.dumps(secret) + "\n",
            "a/repo.yaml": setup.helmrelease(
                "a-repo",
                setup.chart_from("repo", "a-repo"),
                valuesFrom=[
                    {"configMapKeyRef": {"name": "a-values", "key": "values.yaml"}},
                    {"secretKeyRef": {"name": "a-secret-values", "key": "values.yaml"}},
                ],
            ),
            "a/oci.yaml": setup.helmrelease(
                "a-oci",
                setup.chart_from("oci", "a-oci"),
                valuesFrom=[{"externalSourceRef": {"url": setup.values_url}}],
                values={"replicaCount": 1},
            ),
            "a/git.yaml": setup.helmrelease(
                "a-git",
                setup.chart_from("git", "a-git"),
                valuesFrom=[{"chartFileRef": {"path": "extra-values.yaml"}}],
            ),
        },
        "three new releases",
    )
    code, doc = setup.plan_json()
    assert code == 1, doc
    planned = by_name(doc)
    assert set(planned) == {"a-repo", "a-oci", "a-git"}, doc
    for name, release in planned.items():
        assert release["action"] == "install", release
        assert release["versionFrom"] is None and release["versionTo"] == "0.1.0", release
        assert release["objects"] == {"created": 3, "changed": 0, "deleted": 0}, release
        assert str(release["plannedDigest"]).startswith("h1-"), release
        assert release["helmReleaseChange"] == "create", (name, release)
    kinds = {name: {(i["kind"], i["name"]) for i in r["inputs"]} for name, r in planned.items()}
    assert {("ConfigMap", f"{ns}/a-values"), ("Secret", f"{ns}/a-secret-values")} <= kinds["a-repo"]
    assert ("URL", setup.values_url) in kinds["a-oci"]
    assert ("chart file", "extra-values.yaml") in kinds["a-git"]
    assert all(any(kind == "chart" for kind, _ in inputs) for inputs in kinds.values())
    # the Secret's value reached a rendered ConfigMap: shown redacted, never in clear
    config_diff = next(d["diff"] for d in planned["a-repo"]["diffs"] if d["object"].startswith("ConfigMap/"))
    assert "message: (redacted)" in config_diff, config_diff
    manifests = {m["object"]: m["change"] for m in doc["manifests"]}
    assert manifests[f"ConfigMap {ns}/a-values"] == "create", manifests

    setup.merge()
    for name, release in planned.items():
        assert setup.applied_digest(name) == release["plannedDigest"], name

    code, doc = setup.plan_json(ref="main")
    assert (code, doc["releases"]) == (0, []), doc


def test_plan_of_a_values_change_a_chart_version_change_and_a_removal(setup: Setup) -> None:
    ns = setup.namespace
    files: dict[str, str | None] = {
        "b/values.yaml": setup.helmrelease(
            "b-values", setup.chart_from("repo", "b-values"), values={"message": "one"}
        ),
        "b/version.yaml": setup.helmrelease("b-version", setup.chart_from("oci", "b-version")),
        "b/gone.yaml": setup.helmrelease("b-gone", setup.chart_from("git", "b-gone")),
    }
    setup.repo.commit(files, "three releases")
    setup.synced()
    for name in ("b-values", "b-version", "b-gone"):
        setup.applied_digest(name)
    setup.propose(
        {
            "b/values.yaml": setup.helmrelease(
                "b-values", setup.chart_from("repo", "b-values"), values={"message": "two"}
            ),
            "b/version.yaml": setup.helmrelease("b-version", setup.chart_from("oci", "b-version", "0.2.0")),
            "b/gone.yaml": None,
        },
        "change values, bump a chart, remove a release",
    )
    code, doc = setup.plan_json()
    assert code == 1, doc
    planned = by_name(doc)
    assert set(planned) == {"b-values", "b-version", "b-gone"}, doc

    values = planned["b-values"]
    assert values["action"] == "upgrade" and values["versionTo"] == "0.1.0", values
    assert values["objects"] == {"created": 0, "changed": 2, "deleted": 0}, values  # ConfigMap + checksum
    config_diff = next(d["diff"] for d in values["diffs"] if d["object"] == f"ConfigMap/{ns}/b-values-config")
    assert "-  message: one\n" in config_diff and "+  message: two\n" in config_diff, config_diff

    version = planned["b-version"]
    assert (version["action"], version["versionFrom"], version["versionTo"]) == ("upgrade", "0.1.0", "0.2.0")

    gone = planned["b-gone"]
    assert gone["action"] == "uninstall" and gone["helmReleaseChange"] == "delete", gone
    assert gone["objects"] == {"created": 0, "changed": 0, "deleted": 3}, gone

    markdown = setup.plan("-o", "markdown")
    assert markdown.returncode == 1, markdown.stderr
    assert f"| {ns}/b-gone | uninstall | hello | 0.1.0 -> (none) | 0 | 0 | 3 |" in markdown.stdout, (
        markdown.stdout
    )
    assert f"| {ns}/b-version | upgrade | {setup.chart} | 0.1.0 -> 0.2.0 | 0 |" in markdown.stdout, (
        markdown.stdout
    )

    setup.merge()
    assert setup.applied_digest("b-values") == values["plannedDigest"]
    assert setup.applied_digest("b-version") == version["plannedDigest"]
    wait_for(
        "b-gone's release uninstalled",
        lambda: not setup.env.kube_json("secrets", "-n", ns, "-l", "owner=helm,name=b-gone")["items"],
        timeout=180,
    )


def test_a_configmap_changed_after_the_plan_is_named_as_the_cause_of_the_other_digest(setup: Setup) -> None:
    env, ns = setup.env, setup.namespace
    env.kubectl("create", "configmap", "c-outside", "-n", ns, "--from-literal=values.yaml=message: before")
    setup.propose(
        {
            "c/app.yaml": setup.helmrelease(
                "c-app",
                setup.chart_from("repo", "c-app"),
                valuesFrom=[{"configMapKeyRef": {"name": "c-outside", "key": "values.yaml"}}],
            )
        },
        "a release reading a ConfigMap outside Git",
    )
    code, doc = setup.plan_json()
    assert code == 1, doc
    saved = setup.tmp / "c-plan.json"
    saved.write_text(json.dumps(doc))
    before = by_name(doc)["c-app"]
    assert before["action"] == "install", before

    env.kubectl(
        "patch",
        "configmap",
        "c-outside",
        "-n",
        ns,
        "--type=merge",
        "-p",
        json.dumps({"data": {"values.yaml": "message: after"}}),
    )
    setup.merge()
    applied = setup.applied_digest("c-app")
    assert applied != before["plannedDigest"]

    code, doc = setup.plan_json("--all", "--since", str(saved), ref="main")
    now = by_name(doc)["c-app"]
    assert now["plannedDigest"] == applied, now
    assert now["action"] == "no change", now
    explained = [line for line in doc["sinceSaved"] if line.startswith(f"{ns}/c-app:")]
    assert len(explained) == 1, doc["sinceSaved"]
    old_print = next(i["fingerprint"] for i in before["inputs"] if i["name"] == f"{ns}/c-outside")
    new_print = next(i["fingerprint"] for i in now["inputs"] if i["name"] == f"{ns}/c-outside")
    assert old_print != new_print
    assert f"ConfigMap {ns}/c-outside: {old_print} -> {new_print}" in explained[0], explained
    # nothing else is blamed: the chart and the HelmRelease did not change
    assert explained[0].count(" -> ") == 2, explained  # the digests, then the one input


def test_a_release_that_cannot_be_planned_is_named_with_its_chart_and_the_exit_status_is_2(
    setup: Setup,
) -> None:
    setup.propose(
        {"d/missing.yaml": setup.helmrelease("d-missing", setup.chart_from("repo", "d-missing", "9.9.9"))},
        "a chart version nobody published",
    )
    try:
        done = setup.plan("-o", "json")
        assert done.returncode == 2, done.stdout + done.stderr
        assert "Traceback" not in done.stderr
        (release,) = [
            r for r in json.loads(done.stdout)["releases"] if r["helmRelease"].endswith("/d-missing")
        ]
        assert release["action"] == "error", release
        assert setup.chart in release["error"] and "9.9.9" in release["error"], release
    finally:
        setup.repo.work.git("reset", "-q", "--hard", "HEAD~1")  # never merged
