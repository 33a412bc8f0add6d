"""A credential written into a HelmRelease URL is refused, and the refusal never repeats it:
a URL travels through logs, Events, status and helm's argv, a Secret reference does not."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gitops_helm.api import SpecError, parse_helmrelease
from tests.unit.test_api_examples import GIT_CHART, REPO_CHART, manifest

SECRET = "s3cr3t-t0ken"


def _problems(obj: Any) -> list[tuple[str, str]]:
    with pytest.raises(SpecError) as caught:
        parse_helmrelease(obj)
    return [(p.path, p.message) for p in caught.value.problems]


def _with_values_url(url: str) -> dict[str, Any]:
    obj = manifest(REPO_CHART)
    obj["spec"]["valuesFrom"] = [{"externalSourceRef": {"url": url}}]
    return obj


REPOSITORY, GIT = "spec.chart.repository", "spec.chart.git"
VALUES_URL = "spec.valuesFrom[0].externalSourceRef.url"

REFUSED: list[tuple[dict[str, Any], str]] = [
    (manifest({**REPO_CHART, "repository": f"https://user:{SECRET}@charts.example.com"}), REPOSITORY),
    (manifest({**REPO_CHART, "repository": f"https://{SECRET}@charts.example.com/"}), REPOSITORY),
    (manifest({**REPO_CHART, "repository": f"oci://robot:{SECRET}@registry.example.com/c"}), REPOSITORY),
    (manifest({**GIT_CHART, "git": f"https://x-access-token:{SECRET}@github.com/o/r"}), GIT),
    (manifest({**GIT_CHART, "git": f"https://{SECRET}@github.com/o/r.git"}), GIT),
    (manifest({**GIT_CHART, "git": f"ssh://git:{SECRET}@github.com/o/r.git"}), GIT),
    (_with_values_url(f"https://u:{SECRET}@values.example.com/v.yaml"), VALUES_URL),
]


@pytest.mark.parametrize(("obj", "path"), REFUSED)
def test_a_credential_in_a_url_is_refused_without_being_repeated(obj: dict[str, Any], path: str) -> None:
    found = _problems(obj)
    assert any(p == path and "must not carry credentials in the URL" in m for p, m in found), found
    assert all(SECRET not in m for _, m in found), found


@pytest.mark.parametrize(
    "git",
    [
        "git@github.com:org/charts.git",  # scp-like SSH: a user name, never a password
        "ssh://git@github.com/org/charts.git",
        "https://github.com/org/charts.git",
    ],
)
def test_urls_without_a_secret_are_accepted(git: str) -> None:
    hr = parse_helmrelease(manifest({**GIT_CHART, "git": git}))
    assert hr.spec.chart.git == git  # type: ignore[union-attr]


@given(user=st.text("abcdefghijklmnopqrstuvwxyz0123456789-_.~", min_size=1, max_size=20))
def test_any_user_part_of_an_https_repository_is_refused(user: str) -> None:
    obj = manifest({**REPO_CHART, "repository": f"https://{user}@charts.example.com"})
    found = _problems(obj)
    assert ("spec.chart.repository", next(m for p, m in found if p == "spec.chart.repository")) in found
    assert all(user not in m for _, m in found if len(user) > 3), found
