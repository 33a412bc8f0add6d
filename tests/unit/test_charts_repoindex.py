"""Helm repository index: parsing, chart URLs, the credentials host rule, version resolution."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gitops_helm.charts.auth import RepositoryAuth
from gitops_helm.charts.errors import ChartNotFoundError, IndexFormatError, VersionConstraintError
from gitops_helm.charts.repoindex import (
    ChartVersion,
    RepoIndex,
    chart_url,
    index_limits,
    index_url,
    parse_index,
    resolve_in_index,
    sends_credentials,
)

REPO = "https://charts.example.com/stable"
DIGEST = "a" * 64
MAX = 1024 * 1024
INDEX_YAML = f"""
apiVersion: v1
entries:
  app:
  - version: 1.10.0
    urls: [app-1.10.0.tgz]
    digest: sha256:{DIGEST.upper()}
    created: "2024-01-02T03:04:05Z"
    description: dropped
    maintainers: [{{name: someone}}]
  - version: 1.9.0
    urls: [https://cdn.example.com/app-1.9.0.tgz]
  - version: 2.0.0
    urls: []
  - {{urls: [x.tgz]}}
  float:
  - version: 1.10
    urls: [float-1.10.tgz]
  broken: not-a-list
generated: "2024-01-02T03:04:05Z"
""".encode()


def test_parse_keeps_only_what_resolution_needs() -> None:
    index = parse_index(INDEX_YAML, source=REPO, max_bytes=MAX)
    assert set(index.entries) == {"app", "float"}  # entries without urls/version are skipped
    assert index.entries["app"] == (
        ChartVersion("1.10.0", ("app-1.10.0.tgz",), DIGEST, "2024-01-02T03:04:05Z"),
        ChartVersion("1.9.0", ("https://cdn.example.com/app-1.9.0.tgz",), None, None),
    )
    assert index.versions("float") == ("1.10",)  # not the float 1.1


def test_parse_json_index() -> None:
    body = json.dumps({"apiVersion": "v1", "entries": {"app": [{"version": "1.0.0", "urls": ["a.tgz"]}]}})
    assert parse_index(body.encode(), source=REPO, max_bytes=MAX).versions("app") == ("1.0.0",)


def test_parse_empty_repository() -> None:
    assert parse_index(b"apiVersion: v1\nentries:\n", source=REPO, max_bytes=MAX).entries == {}


@pytest.mark.parametrize(
    "body", [b"entries: [unclosed", b"- a\n- b\n", b"apiVersion: v1\n", b"<html></html>"]
)
def test_parse_rejects_what_is_not_an_index(body: bytes) -> None:
    with pytest.raises(IndexFormatError, match=r"index of https://charts\.example\.com/stable") as exc:
        parse_index(body, source=REPO, max_bytes=MAX)
    assert not exc.value.temporary


def _laughs() -> bytes:
    """Ten anchors, each a list of ten aliases of the previous one: 10**10 values expanded."""
    lines = ["apiVersion: v1", "entries:", "  a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(9):
        previous, name = chr(97 + i), chr(98 + i)
        lines.append(f"  {name}: &{name} [" + ", ".join([f"*{previous}"] * 10) + "]")
    return "\n".join(lines).encode()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{" + b'"a": [' * 100_000, "nested more than 400 levels deep"),  # json.loads recursed
        (b"[" * 100_000, "maximum nesting depth"),  # libyaml's own bound
        (_laughs(), "expands to more than"),
        (b"entries: {}\n" + b"#" * MAX, f"larger than the limit of {MAX} bytes"),
    ],
)
def test_a_hostile_index_is_a_classified_error(body: bytes, message: str) -> None:
    with pytest.raises(IndexFormatError, match=message):
        parse_index(body, source=REPO, max_bytes=MAX)


@settings(max_examples=300, deadline=None)
@given(body=st.one_of(st.binary(max_size=2048), st.text(max_size=2048).map(str.encode)))
def test_any_index_body_parses_or_is_an_index_format_error(body: bytes) -> None:
    with contextlib.suppress(IndexFormatError):
        parse_index(body, source=REPO, max_bytes=MAX)


@pytest.mark.parametrize(
    ("repo", "ref", "expected"),
    [
        (REPO, "app-1.0.0.tgz", f"{REPO}/app-1.0.0.tgz"),
        (REPO + "/", "app-1.0.0.tgz", f"{REPO}/app-1.0.0.tgz"),
        (REPO, "charts/app-1.0.0.tgz", f"{REPO}/charts/app-1.0.0.tgz"),
        (REPO, "/other/app.tgz", "https://charts.example.com/other/app.tgz"),
        (REPO, "https://cdn.example.com/app.tgz", "https://cdn.example.com/app.tgz"),
        (REPO + "?sig=abc", "app.tgz", f"{REPO}/app.tgz?sig=abc"),
        (REPO + "?sig=abc", "app.tgz?v=1", f"{REPO}/app.tgz?v=1"),
    ],
)
def test_chart_url(repo: str, ref: str, expected: str) -> None:
    assert chart_url(repo, ref) == expected


def test_index_url_keeps_query() -> None:
    assert index_url(REPO + "/?sig=abc") == f"{REPO}/index.yaml?sig=abc"


AUTH = RepositoryAuth(username="u", password="p")


@pytest.mark.parametrize(
    ("url", "auth", "expected"),
    [
        ("https://charts.example.com/stable/app.tgz", AUTH, True),
        ("https://CHARTS.example.com:443/other/app.tgz", AUTH, True),
        ("https://cdn.example.com/app.tgz", AUTH, False),
        ("https://charts.example.com:8443/app.tgz", AUTH, False),
        ("http://charts.example.com/stable/app.tgz", AUTH, False),  # no downgrade to plain HTTP
        (
            "https://cdn.example.com/app.tgz",
            RepositoryAuth(username="u", password="p", pass_credentials=True),
            True,
        ),
        ("https://charts.example.com/stable/app.tgz", None, False),
    ],
)
def test_credentials_go_only_to_the_repository_origin(
    url: str, auth: RepositoryAuth | None, expected: bool
) -> None:
    assert sends_credentials(REPO, url, auth) is expected


def _index(*versions: str) -> RepoIndex:
    return RepoIndex({"app": tuple(ChartVersion(v, (f"app-{v}.tgz",), None, None) for v in versions)})


def test_resolve_range_to_highest_match() -> None:
    chart = resolve_in_index(_index("1.0.0", "1.2.0", "2.0.0", "1.3.0-rc.1"), REPO, "app", "^1")
    assert (chart.version, chart.url, chart.digest) == ("1.2.0", f"{REPO}/app-1.2.0.tgz", None)
    assert resolve_in_index(_index("1.0.0", "1.2.0"), REPO, "app", "1.0.0").version == "1.0.0"


def test_missing_version_lists_available_versions_in_order() -> None:
    with pytest.raises(ChartNotFoundError) as exc:
        resolve_in_index(
            _index("0.2.0", "0.10.0", "0.1.0"), "https://u:pw@charts.example.com/x?t=1", "app", "^9"
        )
    assert str(exc.value) == (
        'chart "app" version "^9" not found in https://charts.example.com/x?...: '
        "available 0.1.0, 0.2.0, 0.10.0; check spec.chart.version"
    )
    assert not exc.value.temporary


def test_long_version_list_is_truncated_to_the_newest() -> None:
    with pytest.raises(
        ChartNotFoundError,
        match=r"available 0\.5\.0, .*, 0\.24\.0 \(and 5 older\); check spec\.chart\.version$",
    ):
        resolve_in_index(_index(*(f"0.{i}.0" for i in range(25))), REPO, "app", "9")


def test_missing_chart_and_invalid_constraint() -> None:
    with pytest.raises(ChartNotFoundError, match=f'^chart "nope" not found in {REPO}; check spec.chart.name'):
        resolve_in_index(_index("1.0.0"), REPO, "nope", "*")
    with pytest.raises(VersionConstraintError, match=r'chart "app" in .*>>1'):
        resolve_in_index(_index("1.0.0"), REPO, "app", ">>1")


def test_a_small_alias_bomb_is_refused_within_the_budget_of_its_own_size() -> None:
    """344 bytes expanding to 10^9 values: the bound on values follows the size of the index that
    came, not the largest index allowed (which let this one expand 21 million values, a minute of
    a worker's time, before it was refused)."""
    levels = ["a: &a [x,x,x,x,x,x,x,x,x,x]"]
    for i in range(1, 9):
        previous, name = chr(96 + i), chr(97 + i)
        levels.append(f"{name}: &{name} [" + ",".join([f"*{previous}"] * 10) + "]")
    body = ("\n".join(levels) + "\nentries: *i\n").encode()
    with pytest.raises(IndexFormatError) as caught:
        parse_index(body, source="https://charts.example", max_bytes=100 * 1024 * 1024)
    assert "expands to more than 1000000 values" in str(caught.value)


@given(size=st.integers(0, 100 * 1024 * 1024))
def test_the_values_budget_holds_the_densest_index_without_aliases(size: int) -> None:
    # every value takes two bytes at least ("x," or "-\n"): an index of `size` bytes without
    # aliases has at most size // 2 + 1 of them (the document's own value included)
    limits = index_limits(100 * 1024 * 1024, size)
    assert limits.max_nodes >= size // 2 + 1
    assert limits.max_nodes == max(1_000_000, size // 2 + 1)
