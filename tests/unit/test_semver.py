"""Chart version selection follows Helm (Masterminds semver v3) constraint rules."""

from __future__ import annotations

import pytest
import semantic_version
from hypothesis import given
from hypothesis import strategies as st

from gitops_helm.charts.semver import (
    ConstraintError,
    Version,
    VersionError,
    is_exact,
    parse_constraint,
    parse_version,
    select_version,
)

INDEX = ["0.9.0", "1.0.0", "1.2.0", "1.2.3", "1.2.9", "1.3.0-rc.1", "1.3.0", "2.0.0-beta.1", "2.0.0", "2.1.0"]


@pytest.mark.parametrize(
    ("constraint", "expected"),
    [
        ("1.2.3", "1.2.3"),
        ("v1.2.3", "1.2.3"),
        ("=1.2.3", "1.2.3"),
        ("~1.2", "1.2.9"),
        ("~1.2.3", "1.2.9"),
        ("~1", "1.3.0"),
        ("~> 1.2", "1.2.9"),
        ("^1", "1.3.0"),
        ("^1.2.3", "1.3.0"),
        ("^2", "2.1.0"),
        ("^0.9", "0.9.0"),
        (">=1.0 <2", "1.3.0"),
        (">=1.0, <2", "1.3.0"),
        (">= 1.0 , < 2", "1.3.0"),
        ("1.2.x", "1.2.9"),
        ("1.2", "1.2.9"),
        ("1.x", "1.3.0"),
        ("*", "2.1.0"),
        ("", "2.1.0"),
        ("x", "2.1.0"),
        ("<2 || >=2.1", "2.1.0"),
        ("<1.1 || ~1.2", "1.2.9"),
        ("1.0.0 - 1.2.3", "1.2.3"),
        ("1.0 - 1.2", "1.2.9"),
        (">1.2", "2.1.0"),
        (">1", "2.1.0"),
        ("<=1.2.x", "1.2.9"),
        ("<=1", "1.3.0"),
        ("!=2.1.0", "2.0.0"),
        ("=> 1.0, =< 1.2.3", "1.2.3"),
        ("3.x", None),
        ("~1.1", None),
    ],
)
def test_select_highest_match(constraint: str, expected: str | None) -> None:
    assert select_version(constraint, INDEX) == expected


@pytest.mark.parametrize(
    ("constraint", "expected"),
    [
        ("*", "2.1.0"),  # a constraint without pre-release excludes every pre-release
        (">=2.0.0-0", "2.1.0"),  # highest overall, pre-releases allowed in this group
        # "<2.0.0" admits 2.0.0's own pre-releases once the group allows pre-releases
        (">=1.3.0-0 <2.0.0", "2.0.0-beta.1"),
        (">=1.3.0-0 <2.0.0-0", "1.3.0"),
        ("<1.3.0-rc.2 >1.2.9", "1.3.0-rc.1"),
        ("1.3.0-rc.1", "1.3.0-rc.1"),
        ("2.0.0-beta.1", "2.0.0-beta.1"),
        ("~1.3.0-0", "1.3.0"),
        ("^2.0.0-0 <2.0.0", "2.0.0-beta.1"),
        # one pre-release comparator opens the whole AND group, even for another x.y.z
        (">=1.2.0-0 <1.9.0", "1.3.0"),
        (">=1.2.0-0 <1.3.0", "1.3.0-rc.1"),
        # ... but not another OR group
        (">=0.1.0-0 <0.2.0 || >=1.2.10 <1.3.0", None),
    ],
)
def test_prerelease_rules(constraint: str, expected: str | None) -> None:
    assert select_version(constraint, INDEX) == expected


def test_prerelease_only_index_needs_a_prerelease_constraint() -> None:
    assert select_version("*", ["1.0.0-alpha", "1.0.0-beta"]) is None
    assert select_version("^1.0.0-0", ["1.0.0-alpha", "1.0.0-beta"]) == "1.0.0-beta"
    assert select_version(">=1.0.0-alpha <1.0.0-beta", ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-beta"]) == (
        "1.0.0-alpha.1"
    )


@pytest.mark.parametrize(
    ("constraint", "version", "ok"),
    [
        # Masterminds specifics worth pinning down
        ("^0.0.3", "0.0.3", True),
        ("^0.0.3", "0.0.4", False),
        ("^0.0", "0.0.9", True),
        ("^0.0", "0.1.0", False),
        ("^0", "0.9.9", True),
        ("^0", "1.0.0", False),
        ("~1.2.3", "1.3.0", False),
        ("~1.2.3", "1.2.2", False),
        ("~0.0.0", "5.0.0", True),
        ("<1.x", "0.9.9", True),
        ("<1.x", "1.0.0", False),
        ("<=2.x", "2.9.9", True),
        ("<=2.x", "3.0.0", False),
        (">11.1", "11.1.9", False),
        (">11.1", "11.2.0", True),
        ("!=4.x", "4.5.0", False),
        ("!=4.x", "5.0.0", True),
        ("!=4.1.x", "4.1.7", False),
        ("!=4.1.x", "4.2.0", True),
        ("1.2.3", "1.2.3+build.7", True),
        ("~1.1-alpha", "1.1.1-beta", True),
        ("~1.1.1-beta", "1.1.1-alpha", False),
        ("^1.2.x-alpha", "1.1.1-beta1", False),
        (">0.0.0-0", "0.0.0-alpha", True),
        (">=0", "0.0.1-alpha", False),
        ("*-0", "1.2.3-alpha.1", True),
    ],
)
def test_matches(constraint: str, version: str, ok: bool) -> None:
    assert parse_constraint(constraint).matches(version) is ok


@pytest.mark.parametrize(
    "constraint",
    [
        ">= bar",
        "BAR >= 1.2.3",
        "12.3.4.1234",
        "12.3.34~ 1.2.3",
        ">=1.0<2",
        "1.2.3 ||",
        "|| 1.2.3",
        "01.2.3",
        "1.2.3-01",
        "^",
        ">=",
        "1.2.3 -",
        "latest",
        "1.2.3+",
    ],
)
def test_invalid_constraint_names_it(constraint: str) -> None:
    with pytest.raises(ConstraintError, match=r"invalid version constraint") as info:
        select_version(constraint, INDEX)
    assert repr(constraint) in str(info.value)


def test_invalid_constraint_fails_even_with_empty_index() -> None:
    with pytest.raises(ConstraintError):
        select_version("nope", [])


def test_exact_string_match_wins_and_build_metadata_is_selectable() -> None:
    index = ["1.0.0+a", "1.0.0+b", "1.0.0+c"]
    assert select_version("1.0.0+a", index) == "1.0.0+a"
    # equal precedence: the answer does not depend on index order
    assert select_version("1.0.0", index) == select_version("1.0.0", list(reversed(index))) == "1.0.0+c"


def test_unparseable_index_entries_are_skipped() -> None:
    assert select_version("*", ["latest", "1.0", "v1.1.0", "1.0.0.0", "", "2.x"]) == "v1.1.0"
    assert select_version("v1.1.0", ["v1.1.0", "1.1.0"]) == "v1.1.0"  # exact string first, as Helm


@pytest.mark.parametrize(
    ("constraint", "exact"),
    [
        ("1.2.3", True),
        ("v1.2.3", True),
        ("=1.2.3", True),
        (" 1.2.3 ", True),
        ("1.2.3-rc.1+build", True),
        ("1.2", False),
        ("1.2.x", False),
        ("~1.2.3", False),
        ("^1.2.3", False),
        (">=1.2.3", False),
        ("1.2.3 || 1.2.4", False),
        ("1.2.3 - 1.2.3", False),
        ("*", False),
        ("", False),
        ("not a version", False),
    ],
)
def test_is_exact(constraint: str, exact: bool) -> None:
    assert is_exact(constraint) is exact


def test_version_ordering_follows_semver_precedence() -> None:
    ordered = [
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "1.0.0",
        "1.0.1",
        "1.1.0",
        "2.0.0",
    ]
    parsed = [parse_version(v) for v in ordered]
    assert sorted(reversed(parsed)) == parsed
    assert parse_version("1.0.0+a") == parse_version("v1.0.0+b")
    assert str(parse_version("v1.2")) == "1.2.0"
    with pytest.raises(VersionError):
        parse_version("1.0.0-01")


# --- where semantic_version.NpmSpec (the installed candidate) differs from Helm -------------


@pytest.mark.parametrize(
    ("constraint", "version"),
    [
        (">=1.0.0-0 <2.0.0", "1.5.0-beta"),  # npm admits pre-releases of the same x.y.z only
        ("^1.2.0-alpha.0", "1.2.1-alpha.1"),
        ("~1.2.3-beta.2", "1.2.4-beta.2"),
    ],
)
def test_npmspec_differs_on_prereleases(constraint: str, version: str) -> None:
    assert parse_constraint(constraint).matches(version)
    assert not semantic_version.NpmSpec(constraint).match(semantic_version.Version(version))


@pytest.mark.parametrize("constraint", [">=1.0, <2", "~>1.2", "!=1.2.3", "=> 1.2"])
def test_npmspec_rejects_helm_syntax(constraint: str) -> None:
    parse_constraint(constraint)
    with pytest.raises(ValueError, match="Invalid"):
        semantic_version.NpmSpec(constraint)


# --- properties ----------------------------------------------------------------------------

_nums = st.integers(min_value=0, max_value=12)
_pre = st.one_of(
    st.just(()),
    st.lists(
        st.one_of(st.integers(0, 5), st.sampled_from(["alpha", "beta", "rc"])), min_size=1, max_size=2
    ).map(tuple),
)
_versions = st.builds(Version, _nums, _nums, _nums, _pre)


@given(st.lists(_versions, max_size=12), _versions)
def test_exact_constraint_selects_itself_or_nothing(index: list[Version], wanted: Version) -> None:
    texts = [str(v) for v in index]
    got = select_version(str(wanted), texts)
    assert got == (str(wanted) if wanted in index else None)
    assert is_exact(str(wanted))


@given(
    st.lists(_versions, max_size=12),
    st.sampled_from(["*", "^1", "~1.2", ">=1 <3", "1.x || 2.x", ">=1.0.0-0"]),
)
def test_selection_is_the_highest_match(index: list[Version], constraint: str) -> None:
    texts = [str(v) for v in index]
    c = parse_constraint(constraint)
    got = select_version(constraint, texts)
    matching = [v for v in index if c.matches(v)]
    if got is None:
        assert not matching
    else:
        assert c.matches(got)
        assert all(parse_version(got) >= v for v in matching)
        if not any(cmp.ver.prerelease for group in c.groups for cmp in group):
            assert not parse_version(got).prerelease


@given(st.text(max_size=20))
def test_parse_never_raises_anything_but_constraint_error(text: str) -> None:
    try:
        parse_constraint(text)
    except ConstraintError as exc:
        assert repr(text) in str(exc)
