"""Helm repository chart source against the real chart repositories of scripts/testenv:
plain HTTP, and HTTPS with basic auth and a generated CA."""

from __future__ import annotations

import hashlib
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from testenvlib import env as testenv
from testenvlib.state import State

from gitops_helm.adapters.http import Exchange, HTTPClient
from gitops_helm.charts.auth import RepositoryAuth, auth_from_secret, load_repositories_file
from gitops_helm.charts.errors import (
    ChartNotFoundError,
    DigestMismatchError,
    RepositoryAuthError,
    RepositoryError,
)
from gitops_helm.charts.helmrepo import HelmRepoClient, HelmRepoSettings
from tests.conftest import CHARTS, Env


class CountingHTTP(HTTPClient):
    """Records (path, status) of every network request."""

    def __init__(self) -> None:
        super().__init__(on_exchange=self._record)
        self.calls: list[tuple[str, int]] = []

    def _record(self, exchange: Exchange) -> None:
        self.calls.append((urlsplit(exchange.url).path, exchange.status))


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


Made = tuple[HelmRepoClient, CountingHTTP, Clock]


@pytest.fixture
def make_client(tmp_path: Path) -> Iterator[Callable[..., Made]]:
    """A client on a fresh cache with a counting HTTP client and a fake clock; closed afterwards."""
    clients: list[HelmRepoClient] = []
    https: list[CountingHTTP] = []

    def make(**kwargs: Any) -> Made:
        http, clock = CountingHTTP(), Clock()
        client = HelmRepoClient(HelmRepoSettings(tmp_path / "cache"), http=http, clock=clock, **kwargs)
        clients.append(client)
        https.append(http)
        return client, http, clock

    yield make
    for client in clients:
        client.close()
    for http in https:
        http.close()


def _publish(tmp_path: Path, *versions: str, name: str | None = None) -> str:
    """Publish copies of tests/charts/hello under a unique name (or `name`) with these versions."""
    name = name or f"hello-{uuid.uuid4().hex[:8]}"
    dirs = []
    for version in versions:
        chart = tmp_path / "src" / version / name
        shutil.copytree(CHARTS / "hello", chart)
        text = (chart / "Chart.yaml").read_text()
        text = re.sub(r"(?m)^name: .*$", f"name: {name}", text)
        (chart / "Chart.yaml").write_text(re.sub(r"(?m)^version: .*$", f"version: {version}", text))
        dirs.append(str(chart))
    testenv.publish_chart(dirs)
    return name


def _secret(env: Env, *, password: str | None = None) -> dict[str, bytes]:
    return {
        "username": env["TESTENV_CHARTS_USER"].encode(),
        "password": (password or env["TESTENV_CHARTS_PASSWORD"]).encode(),
        "ca.crt": Path(env["TESTENV_CA_FILE"]).read_bytes(),
    }


def test_fetch_over_http_then_from_cache_and_extract(env: Env, make_client: Callable[..., Made]) -> None:
    client, http, _ = make_client()
    artifact = client.fetch(env["TESTENV_CHARTS"], "hello", "0.1.0")
    assert (artifact.name, artifact.version) == ("hello", "0.1.0")
    assert artifact.digest == "sha256:" + hashlib.sha256(artifact.path.read_bytes()).hexdigest()
    assert [path for path, _ in http.calls] == ["/index.yaml", "/hello-0.1.0.tgz"]

    assert client.fetch(env["TESTENV_CHARTS"], "hello", "0.1.0") == artifact
    assert len(http.calls) == 2  # index within the refresh interval, chart by digest

    chart_dir = client.cache.unpack(artifact.digest.removeprefix("sha256:"))
    assert chart_dir.name == "hello" and (chart_dir / "templates" / "deployment.yaml").is_file()


def test_https_with_basic_auth_and_ca(env: Env, make_client: Callable[..., Made]) -> None:
    repo = env["TESTENV_CHARTS_AUTH"]
    client, _, _ = make_client()
    artifact = client.fetch(repo, "hello", "~0.1", auth_from_secret(_secret(env), secret_ref="ns/creds"))
    assert artifact.version == "0.1.0" and artifact.path.is_file()

    ca_only = RepositoryAuth(ca=Path(env["TESTENV_CA_FILE"]))
    with pytest.raises(RepositoryAuthError) as exc:
        client.fetch(repo, "hello", "0.1.0", ca_only)
    assert not exc.value.temporary
    assert str(exc.value) == (
        f'chart "hello" version "0.1.0": index of Helm repository {repo}: HTTP 401; no credentials '
        "were given: set spec.chart.chartPullSecret (a Secret with username and password) or add "
        "the repository to the agent's --repositories-file"
    )

    wrong = auth_from_secret(_secret(env, password="not-the-password"))
    with pytest.raises(RepositoryAuthError, match=r"HTTP 401; the credentials were refused: check") as exc:
        client.fetch(repo, "hello", "0.1.0", wrong)
    assert "not-the-password" not in str(exc.value)


def test_repositories_yaml_supplies_credentials(
    env: Env, tmp_path: Path, make_client: Callable[..., Made]
) -> None:
    path = tmp_path / "repositories.yaml"
    path.write_text(
        "repositories:\n"
        f"- name: auth\n  url: {env['TESTENV_CHARTS_AUTH'].upper()}/\n"
        f"  username: {env['TESTENV_CHARTS_USER']}\n  password: {env['TESTENV_CHARTS_PASSWORD']}\n"
        f"  caFile: {env['TESTENV_CA_FILE']}\n"
    )
    client, _, _ = make_client(repositories=load_repositories_file(path))
    assert client.fetch(env["TESTENV_CHARTS_AUTH"], "hello", "0.1.0").path.is_file()


def test_refresh_interval_then_one_conditional_request(
    env: Env, tmp_path: Path, make_client: Callable[..., Made]
) -> None:
    name = _publish(tmp_path, "0.1.0")
    time.sleep(1.1)  # Last-Modified has 1 s granularity; it is only trusted once that second is over
    client, http, clock = make_client()
    repo = env["TESTENV_CHARTS"]
    assert client.resolve(repo, name, "0.1.0").version == "0.1.0"
    assert client.resolve(repo, name, "0.1.0").version == "0.1.0"
    assert http.calls == [("/index.yaml", 200)]
    clock.now += client.settings.min_refresh_interval + 1
    assert client.resolve(repo, name, "0.1.0").version == "0.1.0"
    assert http.calls == [("/index.yaml", 200), ("/index.yaml", 304)]


def test_range_picks_highest_and_sees_a_new_version_after_refresh(
    env: Env, tmp_path: Path, make_client: Callable[..., Made]
) -> None:
    repo = env["TESTENV_CHARTS"]
    name = _publish(tmp_path, "0.1.0", "0.2.0", "1.0.0")
    client, http, clock = make_client()
    assert client.resolve(repo, name, "<1").version == "0.2.0"
    _publish(tmp_path / "later", "0.3.0", name=name)
    assert client.resolve(repo, name, "<1").version == "0.2.0"  # same version within the interval
    assert len(http.calls) == 1
    clock.now += client.settings.min_refresh_interval + 1
    artifact = client.fetch(repo, name, "<1")
    assert (artifact.name, artifact.version) == (name, "0.3.0")


def test_digest_mismatch_is_refused(env: Env, tmp_path: Path, make_client: Callable[..., Made]) -> None:
    name = _publish(tmp_path, "0.1.0")
    state = State.load()
    assert state is not None
    published = Path(state.info["chart_dir"]) / f"{name}-0.1.0.tgz"
    original = published.read_bytes()
    # A valid chart with the same name and version but other content, behind the index's back.
    (tmp_path / "src" / "0.1.0" / name / "values.yaml").write_text("tampered: true\n")
    env.run([env["HELM_BIN"], "package", str(tmp_path / "src" / "0.1.0" / name), "-d", str(tmp_path / "pkg")])
    client, _, _ = make_client()
    try:
        shutil.copyfile(tmp_path / "pkg" / published.name, published)
        with pytest.raises(
            DigestMismatchError, match=f'chart "{name}" version "0.1.0" from .*: digest mismatch'
        ):
            client.fetch(env["TESTENV_CHARTS"], name, "0.1.0")
    finally:
        published.write_bytes(original)
    assert list(client.cache.root.glob("charts/sha256/*")) == []


def test_missing_version_and_missing_repository(
    env: Env, tmp_path: Path, make_client: Callable[..., Made]
) -> None:
    repo = env["TESTENV_CHARTS"]
    name = _publish(tmp_path, "0.1.0", "0.2.0")
    client, _, _ = make_client()
    with pytest.raises(ChartNotFoundError) as exc:
        client.fetch(repo, name, "^9")
    assert str(exc.value) == (
        f'chart "{name}" version "^9" not found in {repo}: available 0.1.0, 0.2.0; check spec.chart.version'
    )
    assert not exc.value.temporary
    with pytest.raises(RepositoryError, match=r"index of Helm repository .*/nope: not found \(HTTP 404\)"):
        client.fetch(repo + "/nope", name, "0.1.0")
