"""Image automation end to end on the environment's real registries, chart repositories and Git
server: ``gitops-helm images list`` / ``images update`` as a user runs them, and the loop inside
``gitops-helm run`` (scan, commit, sync, upgrade)."""

from __future__ import annotations

import base64
import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import Env
from tests.integration.images_helpers import Registry, unique_repo
from tests.integration.reconcile_helpers import publish, unique_name
from tests.integration.syncfix import cli, get_object, start_agent, wait_for
from tests.integration.test_git_mirror import IDENTITY, Work, unique

NOW = datetime.now(UTC)
OTHER = "kind: ConfigMap\napiVersion: v1\nmetadata: {name: other}\ndata:   {image: 'app:1.0.0'}\r\n"


def days_ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


class ConfigRepository:
    """A config repository on the Git server, seeded with ``files``, read back by cloning."""

    def __init__(self, env: Env, tmp_path: Path, files: dict[str, str]) -> None:
        self.env = env
        self.name = unique("image-config")
        self.http = f"{env['TESTENV_GIT_HTTP']}/{self.name}"
        self.ssh = f"{env['TESTENV_GIT_SSH']}/{self.name}"
        self.files = files
        self.seed = Work(tmp_path / "seed")
        self.initial = self.seed.commit(dict(files), "initial")
        self.seed.push(self.http)
        self.check = tmp_path / "check.git"
        subprocess.run(["git", "init", "-q", "--bare", str(self.check)], check=True, timeout=30)

    def git(self, *args: str) -> str:
        out = subprocess.run(
            ["git", f"--git-dir={self.check}", *args],
            capture_output=True,
            timeout=60,
            check=False,
            env={"PATH": "/usr/bin:/bin", **IDENTITY},
        )
        assert out.returncode == 0, f"git {' '.join(args)}: {out.stderr.decode()}"
        return out.stdout.decode()

    def head(self) -> str:
        self.git("fetch", "-q", "--prune", self.http, "+refs/heads/*:refs/heads/*")
        return self.git("rev-parse", "refs/heads/main").strip()

    def show(self, path: str, rev: str = "main") -> bytes:
        self.head()
        return subprocess.run(
            ["git", f"--git-dir={self.check}", "cat-file", "blob", f"{rev}:{path}"],
            capture_output=True,
            timeout=60,
            check=True,
        ).stdout

    def commits_since_initial(self) -> list[str]:
        return self.git("rev-list", f"{self.initial}..{self.head()}").split()


def images_cli(
    env: Env, tmp_path: Path, action: str, git_url: str, *extra: str
) -> subprocess.CompletedProcess[str]:
    return cli(
        env,
        "images",
        action,
        "--git-url",
        git_url,
        "--work-dir",
        str(tmp_path / "work"),
        "--oci-plain-http",
        env["TESTENV_REGISTRY"],
        "--oci-plain-http",
        env["TESTENV_REGISTRY_AUTH"],
        *extra,
    )


def semver_release(name: str, image: str, *, annotations: str = "") -> str:
    """A HelmRelease file with comments, odd spacing and both quote styles: every byte but the
    tag must survive an update."""
    return f"""\
# {name}: the front end   (kept by the image automation)
apiVersion: helm.fluxcd.io/v1
kind: HelmRelease
metadata:
  name: {name}
  annotations:
    fluxcd.io/automated: "true"
    # Helm semver: ~1.0 means 1.0.x; "1.x, not 2" is ^1.0 (or ~1)
    filter.fluxcd.io/chart-image: semver:^1.0{annotations}
spec:
  chart:
    repository: http://charts.example.invalid/
    name: web
    version: '0.1.0'
  values:
    image:   {image}:1.0.0     # the tag moves
    replicas:    3
    note: 'unchanged'
"""


@pytest.fixture(scope="module")
def registry(testenv_session: Env) -> Registry:
    return Registry(testenv_session["TESTENV_REGISTRY"])


@pytest.fixture(scope="module")
def semver_image(registry: Registry) -> str:
    repo = unique_repo("auto")
    for days, tag in ((9, "1.0.0"), (8, "1.1.0"), (7, "2.0.0-rc.1"), (6, "2.0.0")):
        registry.push_image(repo, tag, days_ago(days))
    return f"{registry.host}/{repo}"


@pytest.mark.parametrize("transport", ["http", "ssh"])
def test_semver_update_is_one_commit_changing_only_the_tag(
    env: Env, tmp_path: Path, semver_image: str, transport: str
) -> None:
    text = semver_release("web", semver_image)
    repo = ConfigRepository(env, tmp_path, {"apps/web.yaml": text, "apps/other.yaml": OTHER})
    if transport == "ssh":
        url, auth = (
            repo.ssh,
            ["--git-ssh-key", env["TESTENV_GIT_SSH_KEY"], "--git-known-hosts", env["TESTENV_KNOWN_HOSTS"]],
        )
    else:
        url, auth = repo.http, []

    done = images_cli(env, tmp_path, "update", url, *auth)
    assert done.returncode == 0, done.stderr
    assert "committed" in done.stdout

    commits = repo.commits_since_initial()
    assert len(commits) == 1
    assert repo.show("apps/web.yaml") == text.replace(":1.0.0 ", ":1.1.0 ").encode()
    assert repo.show("apps/other.yaml") == OTHER.encode()
    message = repo.git("log", "-1", "--format=%B", "main")
    assert f"web: {semver_image} 1.0.0 -> 1.1.0" in message

    again = images_cli(env, tmp_path, "update", url, *auth)
    assert again.returncode == 0, again.stderr
    assert "nothing to commit" in again.stdout
    assert repo.commits_since_initial() == commits  # no empty commit, no flapping


def test_glob_and_regex_pick_by_build_time_in_one_commit(
    env: Env, tmp_path: Path, registry: Registry
) -> None:
    glob_repo, regex_repo = unique_repo("glob"), unique_repo("regex")
    # glob main-*: the newest build is main-mmm, not the greatest name (main-zzz) nor other-x
    for tag, days in (("main-aaa", 30), ("main-zzz", 40), ("main-mmm", 10), ("other-x", 1)):
        registry.push_image(glob_repo, tag, days_ago(days))
    # regex ^rel-[0-9]+$: rel-2 is the newest build; rel-10 sorts higher, rel-3-debug is newer
    for tag, days in (("rel-1", 30), ("rel-2", 10), ("rel-10", 20), ("rel-3-debug", 1)):
        registry.push_image(regex_repo, tag, days_ago(days))
    text = f"""\
apiVersion: helm.fluxcd.io/v1
kind: HelmRelease
metadata:
  name: builds
  namespace: apps
  annotations:
    fluxcd.io/automated: "true"
    filter.fluxcd.io/front: glob:main-*
    filter.fluxcd.io/back: regex:^rel-[0-9]+$
spec:
  chart: {{repository: "http://charts.example.invalid/", name: web, version: 0.1.0}}
  values:
    front:
      image:
        repository: {registry.host}/{glob_repo}
        tag: main-aaa
    back:
      image: "{registry.host}/{regex_repo}:rel-1"
"""
    repo = ConfigRepository(env, tmp_path, {"builds.yaml": text})

    listing = images_cli(env, tmp_path, "list", repo.http)
    assert listing.returncode == 0, listing.stderr
    assert "update to main-mmm" in listing.stdout and "update to rel-2" in listing.stdout

    done = images_cli(env, tmp_path, "update", repo.http)
    assert done.returncode == 0, done.stderr
    assert len(repo.commits_since_initial()) == 1
    expected = text.replace("tag: main-aaa", "tag: main-mmm").replace(':rel-1"', ':rel-2"')
    assert repo.show("builds.yaml") == expected.encode()


def test_min_age_waits_and_a_locked_release_is_untouched(
    env: Env, tmp_path: Path, registry: Registry
) -> None:
    image = f"{registry.host}/{unique_repo('soak')}"
    repo_path = image.split("/", 1)[1]
    registry.push_image(repo_path, "1.0.0", days_ago(10))
    registry.push_image(repo_path, "1.0.5", days_ago(1))
    registry.push_image(repo_path, "1.1.0", NOW - timedelta(minutes=10))  # younger than 2h
    soak = semver_release("soak", image, annotations="\n    gitops-helm.io/min-age: 2h")
    locked = semver_release(
        "frozen", image, annotations='\n    fluxcd.io/locked: "true"\n    fluxcd.io/locked_msg: incident 42'
    )
    repo = ConfigRepository(env, tmp_path, {"soak.yaml": soak, "locked.yaml": locked})

    listing = images_cli(env, tmp_path, "list", repo.http)
    assert listing.returncode == 0, listing.stderr
    assert "update to 1.0.5" in listing.stdout  # the newest old-enough tag, 1.1.0 waits
    assert "locked: locked (fluxcd.io/locked): incident 42" in listing.stdout

    done = images_cli(env, tmp_path, "update", repo.http)
    assert done.returncode == 0, done.stderr
    assert len(repo.commits_since_initial()) == 1
    assert repo.show("soak.yaml") == soak.replace(":1.0.0 ", ":1.0.5 ").encode()
    assert repo.show("locked.yaml") == locked.encode()

    waiting = images_cli(env, tmp_path, "list", repo.http)
    assert "wait: 1.1.0 is younger than min-age 2h" in waiting.stdout


def test_an_image_behind_basic_auth_is_scanned_with_a_pull_secret(
    env: Env, tmp_path: Path, namespace: str
) -> None:
    user, password = env["TESTENV_REGISTRY_USER"], env["TESTENV_REGISTRY_PASSWORD"]
    private = Registry(env["TESTENV_REGISTRY_AUTH"], user, password)
    repo_path = unique_repo("private")
    private.push_image(repo_path, "1.0.0", days_ago(3))
    private.push_image(repo_path, "1.1.0", days_ago(2))
    image = f"{private.host}/{repo_path}"
    text = semver_release("private", image)
    repo = ConfigRepository(env, tmp_path, {"private.yaml": text})

    refused = images_cli(env, tmp_path, "update", repo.http)
    assert refused.returncode == 1
    assert "unauthorized" in refused.stdout and "error:" in refused.stderr
    assert repo.commits_since_initial() == []  # nothing written for the failing image

    login = base64.b64encode(f"{user}:{password}".encode()).decode()
    config = {"auths": {private.host: {"auth": login}}}
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "registry-login", "namespace": namespace},
        "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": base64.b64encode(json.dumps(config).encode()).decode()},
    }
    env.kubectl("apply", "-f", "-", input_text=json.dumps(secret))
    flags = ["--kubeconfig", env["KUBECONFIG"], "--image-pull-secrets", f"{namespace}/registry-login"]
    done = images_cli(env, tmp_path, "update", repo.http, *flags)
    assert done.returncode == 0, done.stderr
    assert password not in done.stdout + done.stderr
    assert repo.show("private.yaml") == text.replace(":1.0.0 ", ":1.1.0 ").encode()


@pytest.mark.parametrize("kind", ["helm-repository", "oci"])
def test_a_chart_version_bump_is_committed(env: Env, tmp_path: Path, kind: str) -> None:
    chart = unique_name("bump")
    publish(tmp_path, chart, "0.1.0")
    publish(tmp_path, chart, "0.1.1")
    publish(tmp_path, chart, "0.2.0")
    repository = env["TESTENV_CHARTS"] if kind == "helm-repository" else env["TESTENV_OCI_CHARTS"]
    text = f"""\
apiVersion: helm.fluxcd.io/v1
kind: HelmRelease
metadata:
  name: charted
  annotations:
    gitops-helm.io/chart-version: semver:^0.1  # 0.1.x here
spec:
  chart:
    repository: {repository}
    name: {chart}
    version: "0.1.0"
"""
    repo = ConfigRepository(env, tmp_path, {"charted.yaml": text})
    done = images_cli(env, tmp_path, "update", repo.http)
    assert done.returncode == 0, done.stderr
    assert repo.show("charted.yaml") == text.replace('"0.1.0"', '"0.1.1"').encode()
    assert f"charted: chart {chart} 0.1.0 -> 0.1.1" in repo.git("log", "-1", "--format=%B", "main")


def test_images_list_explains_skips_and_a_dry_run_commits_nothing(
    env: Env, tmp_path: Path, semver_image: str
) -> None:
    text = semver_release("web", semver_image)
    numeric = """\
apiVersion: helm.fluxcd.io/v1
kind: HelmRelease
metadata:
  name: numeric
  annotations: {fluxcd.io/automated: "true"}
spec:
  values:
    image:
      repository: registry.example.invalid/app
      tag: 1.10
"""
    repo = ConfigRepository(env, tmp_path, {"apps/web.yaml": text, "apps/numeric.yaml": numeric})

    listing = images_cli(env, tmp_path, "list", repo.http)
    lines = listing.stdout.splitlines()
    web = next(line for line in lines if line.startswith("apps/web.yaml:"))
    assert "HelmRelease web  chart-image" in web and f"{semver_image}:1.0.0" in web
    assert "policy semver:^1.0" in web and "update to 1.1.0" in web
    skip = next(line for line in lines if "apps/numeric.yaml" in line)
    assert 'quote it: "1.10"' in skip
    assert listing.returncode == 1  # the unquoted numeric tag is an error the user must fix
    assert "error: apps/numeric.yaml" in listing.stderr

    dry = images_cli(env, tmp_path, "update", repo.http, "--git-path", "apps/web.yaml", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "--- a/apps/web.yaml\n+++ b/apps/web.yaml\n" in dry.stdout
    assert f"-    image:   {semver_image}:1.0.0     # the tag moves\n" in dry.stdout
    assert f"+    image:   {semver_image}:1.1.0     # the tag moves\n" in dry.stdout
    assert "numeric" not in dry.stdout  # --git-path limits the pass like the sync
    assert repo.commits_since_initial() == []


def test_the_loop_in_run_commits_and_the_release_is_upgraded(
    env: Env, tmp_path: Path, namespace: str, semver_image: str
) -> None:
    text = f"""\
apiVersion: helm.fluxcd.io/v1
kind: HelmRelease
metadata:
  name: looped
  namespace: {namespace}
  annotations:
    fluxcd.io/automated: "true"
    filter.fluxcd.io/chart-image: semver:^1.0
spec:
  releaseName: looped
  chart:
    repository: {env["TESTENV_CHARTS"]}
    name: hello
    version: 0.1.0
  values:
    image:
      repository: {semver_image}
      tag: 1.0.0
"""
    repo = ConfigRepository(env, tmp_path, {"looped.yaml": text})
    agent = start_agent(
        env,
        tmp_path,
        namespace,
        repo.http,
        "--image-automation",
        "--image-scan-interval",
        "1s",
        "--oci-plain-http",
        env["TESTENV_REGISTRY"],
        poll="30s",  # the commit itself triggers the fetch: no waiting for the poll
    )
    try:
        wait_for("the update commit", lambda: len(repo.commits_since_initial()) == 1, timeout=90)
        assert repo.show("looped.yaml") == text.replace("tag: 1.0.0", "tag: 1.1.0").encode()

        def upgraded() -> bool:
            hr = get_object(env, "helmrelease", namespace, "looped") or {}
            ready = [c for c in (hr.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"]
            deploy = get_object(env, "deployment", namespace, "looped") or {}
            containers = (
                ((deploy.get("spec") or {}).get("template") or {}).get("spec", {}).get("containers", [])
            )
            return bool(
                ready
                and ready[0].get("status") == "True"
                and hr["spec"]["values"]["image"]["tag"] == "1.1.0"
                and hr["status"].get("observedGeneration") == hr["metadata"]["generation"]
                and containers
                and containers[0]["image"] == f"{semver_image}:1.1.0"
            )

        wait_for("the HelmRelease Ready with the new image", upgraded, timeout=180, interval=1)
        assert len(repo.commits_since_initial()) == 1  # later passes find nothing to change
        metrics = agent.request("GET", "/metrics")[1].splitlines()
        assert 'gitops_helm_image_updates_total{kind="image"} 1.0' in metrics
        scans = [line for line in metrics if line.startswith('gitops_helm_image_scans_total{result="ok"} ')]
        assert scans and float(scans[0].split()[-1]) >= 1  # the committing pass at least
        assert not [line for line in metrics if line.startswith("gitops_helm_image_errors_total{")]
        agent.assert_running()
    finally:
        agent.stop()
