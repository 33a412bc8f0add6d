"""The image registry client against the test environment's real registries (docker-registry
2.8): the open one (``TESTENV_REGISTRY``) and the one behind htpasswd (``TESTENV_REGISTRY_AUTH``),
with images pushed by ``images_helpers`` and credentials read from a real dockerconfigjson Secret
through the Kube adapter. Requests are counted with the HTTP adapter's ``on_exchange`` hook."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gitops_helm.adapters.http import Exchange, HTTPClient
from gitops_helm.adapters.kube import Kube, KubeSettings
from gitops_helm.config import ImageScanSettings
from gitops_helm.images.credentials import load_docker_config, read_pull_secrets
from gitops_helm.images.registry import (
    ImageInfo,
    ImageRepository,
    RegistryClient,
    RegistryUnauthorizedError,
)
from tests.conftest import Env
from tests.integration.images_helpers import Registry, unique_repo

CREATED = {
    "1.0.0": datetime(2026, 1, 10, 8, 0, tzinfo=UTC),
    "1.1.0": datetime(2026, 2, 10, 8, 0, tzinfo=UTC),
    "2.0.0-rc.1": datetime(2026, 3, 1, 8, 0, 0, 250000, tzinfo=UTC),
    "2.0.0": datetime(2026, 3, 20, 8, 0, tzinfo=UTC),
}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _push_release_tags(registry: Registry, repo: str) -> dict[str, str]:
    return {tag: registry.push_image(repo, tag, created)[0] for tag, created in CREATED.items()}


def _private(env: Env) -> Registry:
    return Registry(
        env["TESTENV_REGISTRY_AUTH"], env["TESTENV_REGISTRY_USER"], env["TESTENV_REGISTRY_PASSWORD"]
    )


@pytest.fixture(scope="module")
def private_repo(testenv_session: Env) -> tuple[Registry, str, dict[str, str]]:
    """The four release tags in one repository of the htpasswd registry, pushed once for the
    module (every request there pays a bcrypt check): (registry, path, digest by tag)."""
    private = _private(testenv_session)
    path = unique_repo("private")
    return private, path, _push_release_tags(private, path)


def _docker_config(host: str, user: str, password: str) -> str:
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    return json.dumps({"auths": {f"http://{host}/": {"auth": auth}}})


def test_tags_digests_and_build_times_from_the_open_registry(env: Env) -> None:
    registry = Registry(env["TESTENV_REGISTRY"])
    path = unique_repo("scan")
    digests = _push_release_tags(registry, path)
    with HTTPClient() as http:
        client = RegistryClient(ImageScanSettings(), http, plain_http_hosts=[registry.host])
        repo = ImageRepository.parse(f"{registry.host}/{path}")
        result = client.scan([repo, repo])[repo]
        assert result.error is None and result.tags is not None
        assert sorted(result.tags.tags) == sorted(CREATED)
        images = client.images(repo, ["1.1.0", "2.0.0"])
    assert images == {
        tag: ImageInfo(repo, tag, digests[tag], digests[tag], CREATED[tag]) for tag in ("1.1.0", "2.0.0")
    }


@pytest.mark.parametrize(("platform", "arch"), [("linux/amd64", "amd64"), ("linux/arm64", "arm64")])
def test_a_multi_platform_tag_gives_the_index_digest_and_the_chosen_platforms_build_time(
    env: Env, platform: str, arch: str
) -> None:
    registry = Registry(env["TESTENV_REGISTRY"])
    path = unique_repo("multi")
    created = {
        ("linux", "arm64"): datetime(2026, 4, 1, tzinfo=UTC),
        ("linux", "amd64"): datetime(2026, 4, 2, tzinfo=UTC),
    }
    index_digest = registry.push_multi_platform(path, "3.0.0", created)
    with HTTPClient() as http:
        client = RegistryClient(ImageScanSettings(platform=platform), http, plain_http_hosts=[registry.host])
        info = client.image(ImageRepository.parse(f"{registry.host}/{path}"), "3.0.0")
    assert info.digest == index_digest
    assert info.image_digest != index_digest
    assert info.created == created[("linux", arch)]


def test_the_private_registry_is_scanned_with_a_pull_secret_from_the_cluster(
    env: Env, namespace: str
) -> None:
    private = _private(env)
    path = unique_repo("private")
    digests = _push_release_tags(private, path)
    config = _docker_config(private.host, private.username or "", private.password or "")
    env.kubectl(
        "create", "secret", "generic", "regcred", "-n", namespace,
        "--type=kubernetes.io/dockerconfigjson", f"--from-literal=.dockerconfigjson={config}",
    )  # fmt: skip
    credentials = read_pull_secrets(
        Kube(KubeSettings(kubeconfig=env["KUBECONFIG"])), [(namespace, "regcred")]
    )
    repo = ImageRepository.parse(f"{private.host}/{path}")
    with HTTPClient() as http:
        client = RegistryClient(ImageScanSettings(), http, credentials, plain_http_hosts=[private.host])
        result = client.scan([repo])[repo]
        assert result.error is None and result.tags is not None
        assert sorted(result.tags.tags) == sorted(CREATED)
        assert client.image(repo, "2.0.0-rc.1").created == CREATED["2.0.0-rc.1"]
        assert client.image(repo, "2.0.0-rc.1").digest == digests["2.0.0-rc.1"]


def test_the_private_registry_without_or_with_wrong_credentials_is_a_clear_unauthorized_error(
    tmp_path: Path, private_repo: tuple[Registry, str, dict[str, str]]
) -> None:
    private, path, _ = private_repo
    repo = ImageRepository.parse(f"{private.host}/{path}")
    wrong = tmp_path / "config.json"
    wrong.write_text(_docker_config(private.host, private.username or "", "not-the-password"))
    with HTTPClient() as http:
        anonymous = RegistryClient(ImageScanSettings(), http, plain_http_hosts=[private.host])
        error = anonymous.scan([repo])[repo].error
        assert isinstance(error, RegistryUnauthorizedError)
        assert str(error) == (
            f"registry {private.host}, repository {path}: tag list: HTTP 401 unauthorized; "
            "no credentials for this registry (--image-docker-config, --image-pull-secrets)"
        )
        refused = RegistryClient(
            ImageScanSettings(), http, load_docker_config(wrong), plain_http_hosts=[private.host]
        )
        with pytest.raises(RegistryUnauthorizedError) as info:
            refused.list_tags(repo)
    assert str(info.value).endswith("HTTP 401 unauthorized; the credentials for this registry were refused")
    assert "not-the-password" not in str(info.value)


def test_an_unchanged_repository_costs_one_request_per_scan(env: Env) -> None:
    registry = Registry(env["TESTENV_REGISTRY"])
    path = unique_repo("cache")
    _push_release_tags(registry, path)
    exchanges: list[Exchange] = []
    clock = Clock()
    settings = ImageScanSettings(manifest_refresh_s=600)
    repo = ImageRepository.parse(f"{registry.host}/{path}")
    with HTTPClient(on_exchange=exchanges.append) as http:
        client = RegistryClient(settings, http, plain_http_hosts=[registry.host], clock=clock)

        def scan() -> tuple[bool, dict[str, datetime | None]]:
            listing = client.scan([repo])[repo].tags
            assert listing is not None
            candidates = client.images(repo, ["1.0.0", "1.1.0"])
            return listing.unchanged, {
                tag: i.created for tag, i in candidates.items() if isinstance(i, ImageInfo)
            }

        assert scan() == (False, {t: CREATED[t] for t in ("1.0.0", "1.1.0")})
        assert len(exchanges) == 1 + 2 * 2  # the tag list; per candidate a manifest and a config blob

        exchanges.clear()
        assert scan() == (True, {t: CREATED[t] for t in ("1.0.0", "1.1.0")})
        assert [(e.url.rsplit("/", 2)[-2:], e.status) for e in exchanges] == [(["tags", "list?..."], 200)]

        # past the refresh, a tag's image is asked for again, conditionally: 304, no config blob
        clock.now += 601
        exchanges.clear()
        assert scan() == (True, {t: CREATED[t] for t in ("1.0.0", "1.1.0")})
        assert [e.status for e in exchanges] == [200, 304, 304]

        # a moved tag and a new one are seen
        moved = datetime(2026, 5, 5, tzinfo=UTC)
        registry.push_image(path, "1.1.0", moved)
        registry.push_image(path, "1.2.0", moved)
        clock.now += 601
        exchanges.clear()
        unchanged, created = scan()
        assert (unchanged, created) == (False, {"1.0.0": CREATED["1.0.0"], "1.1.0": moved})
        assert [e.status for e in exchanges] == [200, 304, 200, 200]
        listing = client.list_tags(repo)
        assert "1.2.0" in listing.tags and listing.unchanged
