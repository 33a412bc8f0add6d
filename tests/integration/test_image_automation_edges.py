"""Image automation's edges on the environment's real registries and Git server: bad input per
image (every other update still made), a file that changed shape between the scan and the
commit, Flux v2 setter markers with ``--image-policy-file``, and ``images list -o json``."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from gitops_helm.adapters.http import HTTPClient
from gitops_helm.agent import (
    build_chart_clients,
    build_image_automation,
    build_image_committer,
    helmrelease_files,
)
from gitops_helm.config import GitSourceSettings, ImageCommitSettings, Settings
from gitops_helm.images.credentials import RegistryCredentials
from tests.conftest import Env
from tests.integration.images_helpers import Registry, unique_repo
from tests.integration.test_git_mirror import Work
from tests.integration.test_image_automation import (
    ConfigRepository,
    days_ago,
    images_cli,
    semver_release,
)


@pytest.fixture(scope="module")
def registry(testenv_session: Env) -> Registry:
    return Registry(testenv_session["TESTENV_REGISTRY"])


@pytest.fixture(scope="module")
def semver_image(registry: Registry) -> str:
    repo = unique_repo("edges")
    for days, tag in ((9, "1.0.0"), (8, "1.1.0"), (7, "2.0.0-rc.1"), (6, "2.0.0")):
        registry.push_image(repo, tag, days_ago(days))
    return f"{registry.host}/{repo}"


def release(name: str, image: str, annotations: str) -> str:
    return f"""\
apiVersion: helm.fluxcd.io/v1
kind: HelmRelease
metadata:
  name: {name}
  annotations:
    fluxcd.io/automated: "true"
{annotations}
spec:
  chart: {{repository: "http://charts.example.invalid/", name: web, version: 0.1.0}}
  values:
    image: "{image}:1.0.0"
"""


def listed(document: dict[str, Any], release: str) -> dict[str, Any]:
    return next(item for item in document["images"] if item["release"] == release)


def skipped(document: dict[str, Any], release: str) -> dict[str, Any]:
    return next(item for item in document["skipped"] if item["release"] == release)


def test_each_bad_image_is_reported_and_every_other_update_is_made(
    env: Env, tmp_path: Path, semver_image: str
) -> None:
    private = env["TESTENV_REGISTRY_AUTH"]
    wrong_login = base64.b64encode(f"{env['TESTENV_REGISTRY_USER']}:not-the-password".encode()).decode()
    docker_config = tmp_path / "docker-config.json"
    docker_config.write_text(json.dumps({"auths": {private: {"auth": wrong_login}}}))
    files = {
        "good.yaml": release("good", semver_image, "    filter.fluxcd.io/chart-image: semver:^1.0"),
        # nothing listens on port 1: connection refused, at once
        "unreachable.yaml": release("unreachable", "127.0.0.1:1/team/app", ""),
        "refused.yaml": release("refused", f"{private}/{unique_repo('nope')}", ""),
        "range.yaml": release("range", semver_image, "    filter.fluxcd.io/chart-image: semver:>=1.0 <<2"),
        "regex.yaml": release("regex", semver_image, "    filter.fluxcd.io/chart-image: regex:^rel-[0-9+$"),
        "twice.yaml": release(
            "twice",
            semver_image,
            "    filter.fluxcd.io/chart-image: semver:^1.0\n    fluxcd.io/tag.chart-image: glob:1.*",
        ),
    }
    repo = ConfigRepository(env, tmp_path, files)
    flags = ["--image-docker-config", str(docker_config), "--oci-plain-http", "127.0.0.1:1"]

    listing = images_cli(env, tmp_path, "list", repo.http, *flags, "-o", "json")
    assert listing.returncode == 1, listing.stderr  # errors: exit 1, the document still printed
    document = json.loads(listing.stdout)
    assert document["source"] == {"url": repo.http, "revision": repo.initial}
    good = listed(document, "good")
    assert (good["action"], good["newTag"], good["error"]) == ("update", "1.1.0", None)
    assert listed(document, "unreachable")["errorReason"] == "unreachable"
    refused = listed(document, "refused")
    assert refused["action"] == "error" and refused["errorReason"] == "unauthorized"
    assert "not-the-password" not in listing.stdout + listing.stderr
    for name, text in (
        ("range", "filter.fluxcd.io/chart-image"),
        ("regex", "filter.fluxcd.io/chart-image"),
        ("twice", "two policies for one image"),
    ):
        skip = skipped(document, name)
        assert skip["error"] is True and text in skip["reason"], skip
        assert skip["file"] == f"{name}.yaml" and skip["line"]
    assert len(document["errors"]) == 5, document["errors"]
    assert all(
        line.startswith(f"{n}.yaml:")
        for line, n in zip(
            sorted(document["errors"]), ("range", "refused", "regex", "twice", "unreachable"), strict=True
        )
    )

    table = images_cli(env, tmp_path, "list", repo.http, *flags)
    assert table.returncode == 1
    assert "5 error(s):" in table.stderr
    assert "HelmRelease unreachable" in table.stdout and "-> error (unreachable)" in table.stdout
    assert "-> error (unauthorized)" in table.stdout

    done = images_cli(env, tmp_path, "update", repo.http, *flags)
    assert done.returncode == 1  # the pass reports its errors ...
    assert "committed" in done.stdout  # ... and still makes the one good update
    assert len(repo.commits_since_initial()) == 1
    assert repo.show("good.yaml") == files["good.yaml"].replace(":1.0.0", ":1.1.0").encode()
    for name, text in files.items():
        if name != "good.yaml":
            assert repo.show(name) == text.encode(), name


def test_a_file_that_changed_shape_since_the_scan_is_dropped_and_the_other_lands(
    env: Env, tmp_path: Path, semver_image: str
) -> None:
    web = semver_release("web", semver_image)
    api = release("api", semver_image, "    filter.fluxcd.io/chart-image: semver:^1.0")
    repo = ConfigRepository(env, tmp_path, {"web.yaml": web, "api.yaml": api})
    settings = Settings(
        git=GitSourceSettings(url=repo.http),
        work_dir=tmp_path / "work",
        oci_plain_http_hosts=(env["TESTENV_REGISTRY"],),
        image_commit=ImageCommitSettings(author_name="Image Bot", author_email="bot@example.invalid"),
    )
    http = HTTPClient()
    try:
        automation = build_image_automation(
            settings, http, build_chart_clients(settings, http), RegistryCredentials()
        )
        checkout = tmp_path / "scanned"
        scanned = Work(checkout)
        scanned.git("fetch", "-q", repo.http, "main")
        scanned.git("checkout", "-q", "-B", "main", "FETCH_HEAD")
        plan = automation.plan(checkout, helmrelease_files(checkout, ()))
        assert sorted(u.release for u in plan.updates) == ["api", "web"]

        # between the scan and the commit, someone turns api's image into a mapping
        other = Work(tmp_path / "other")
        other.git("fetch", "-q", repo.http, "main")
        other.git("checkout", "-q", "-B", "main", "FETCH_HEAD")
        reshaped = api.replace(
            f'    image: "{semver_image}:1.0.0"\n',
            f"    image:\n      repository: {semver_image}\n      tag: 1.0.0\n",
        )
        concurrent = other.commit({"api.yaml": reshaped}, "api: image as a mapping")
        other.push(repo.http)

        result = automation.apply(plan, build_image_committer(settings))
    finally:
        http.close()

    assert result.commit is not None and [u.release for u in result.committed] == ["web"]
    api_report = next(r for r in result.plan.reports if str(r.automation.image.release) == "api")
    assert api_report.reason == "changed-shape" and api_report.error
    assert "api.yaml" in api_report.error
    assert any("api.yaml" in line for line in result.errors)
    assert repo.commits_since_initial() == [result.commit, concurrent]
    assert repo.show("api.yaml") == reshaped.encode()  # the other writer's change, untouched
    assert repo.show("web.yaml") == web.replace(":1.0.0 ", ":1.1.0 ").encode()


def test_flux_v2_setter_markers_with_a_policy_file_in_one_commit(
    env: Env, tmp_path: Path, semver_image: str
) -> None:
    policies = tmp_path / "policies.yaml"
    policies.write_text(
        f"""\
policies:
  - name: apps:web
    image: {semver_image}
    filter: semver:^1.0
  - name: apps:side
    image: {semver_image}
    filter: semver:>=1.0.0
"""
    )
    text = f"""\
apiVersion: helm.fluxcd.io/v1
kind: HelmRelease
metadata:
  name: marked   # no fluxcd.io/automated: the markers are the policy (Flux v2 habit)
  namespace: apps
spec:
  chart:
    repository: http://charts.example.invalid/
    name: web
    version: 0.1.0
  values:
    image: {semver_image}:1.0.0 # {{"$imagepolicy": "apps:web"}}
    sidecar:
      repository: "{semver_image}"  # {{"$imagepolicy": "apps:side:name"}}
      tag: '1.0.0'  # {{"$imagepolicy": "apps:side:tag"}}
    untouched: {semver_image}:1.0.0
"""
    repo = ConfigRepository(env, tmp_path, {"marked.yaml": text})
    flags = ["--image-policy-file", str(policies)]

    listing = images_cli(env, tmp_path, "list", repo.http, *flags, "-o", "json")
    assert listing.returncode == 0, listing.stderr
    found = {item["name"]: item for item in json.loads(listing.stdout)["images"]}
    assert found["apps:web"]["newTag"] == "1.1.0"
    assert found["apps:side"]["newTag"] == "2.0.0"  # >=1.0.0 takes 2.0.0, never the rc

    done = images_cli(env, tmp_path, "update", repo.http, *flags)
    assert done.returncode == 0, done.stderr
    assert len(repo.commits_since_initial()) == 1
    expected = text.replace(f"image: {semver_image}:1.0.0 #", f"image: {semver_image}:1.1.0 #").replace(
        "tag: '1.0.0'", "tag: '2.0.0'"
    )
    assert repo.show("marked.yaml") == expected.encode()
