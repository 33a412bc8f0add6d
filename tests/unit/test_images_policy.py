"""Tag policies: filters, orderings, min-age, digest pinning, no downgrade, clear errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gitops_helm.images.model import Candidate
from gitops_helm.images.policy import (
    Action,
    Policy,
    PolicyError,
    decide,
    image_policy,
    parse_duration,
    parse_filter,
    parse_policy_file,
    release_settings,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64


def ago(hours: float) -> datetime:
    return NOW - timedelta(hours=hours)


def semver(range_: str, **kw: object) -> Policy:
    return Policy(parse_filter(f"semver:{range_}"), **kw)  # type: ignore[arg-type]


TAGS = [Candidate(t) for t in ("1.0.0", "1.1.0", "2.0.0-rc.1", "2.0.0", "latest", "main-abc")]


@pytest.mark.parametrize(
    ("range_", "current", "chosen"),
    [
        ("~1", "1.0.0", "1.1.0"),
        ("^1", "1.0.0", "1.1.0"),
        (">=1.0.0", "1.0.0", "2.0.0"),
        (">=2.0.0-0", "1.1.0", "2.0.0"),  # a pre-release range also takes the release after it
        ("*", "1.0.0", "2.0.0"),
    ],
)
def test_semver_picks_the_highest_matching_version(range_: str, current: str, chosen: str) -> None:
    decision = decide(semver(range_), current, TAGS, NOW)
    assert decision.action is Action.UPDATE
    assert decision.tag == chosen


def test_tilde_with_a_minor_is_helms_patch_range() -> None:
    # Helm (Masterminds): ~1.0 means >=1.0.0 <1.1.0, so 1.1.0 is not taken; ~1 or ^1.0 take it
    decision = decide(semver("~1.0"), "1.0.0", TAGS, NOW)
    assert decision.action is Action.KEEP
    assert decision.reason == "current 1.0.0 is the newest matching semver:~1.0"


def test_pre_releases_only_when_the_range_asks() -> None:
    tags = [Candidate("1.0.0"), Candidate("2.0.0-rc.1")]
    assert decide(semver(">=1.0.0"), "1.0.0", tags, NOW).action is Action.KEEP
    assert decide(semver(">=1.0.0-0"), "1.0.0", tags, NOW).tag == "2.0.0-rc.1"


def test_never_a_downgrade_and_the_reason_says_so() -> None:
    decision = decide(semver("~1.0"), "2.0.0", TAGS, NOW)
    assert decision.action is Action.KEEP
    assert "no downgrade" in decision.reason


def test_equal_versions_do_not_flap() -> None:
    decision = decide(semver("*"), "1.10.0", [Candidate("1.10"), Candidate("v1.10.0")], NOW)
    assert decision.action is Action.KEEP


def test_a_current_tag_that_is_not_a_version_moves_onto_the_policy() -> None:
    decision = decide(semver("^1.0"), "latest", TAGS, NOW)
    assert decision.tag == "1.1.0"
    assert "'latest' is not a version" in decision.reason


def test_latest_is_never_chosen_unless_asked_literally() -> None:
    tags = [Candidate("latest", created=ago(1)), Candidate("1.0.0", created=ago(5))]
    glob_all = Policy(parse_filter("glob:*"))
    assert decide(glob_all, "0.9", tags, NOW).tag == "1.0.0"
    assert decide(Policy(parse_filter("glob:late*")), "0.9", tags, NOW).action is Action.KEEP
    assert decide(Policy(parse_filter("glob:latest")), "0.9", tags, NOW).tag == "latest"


def test_glob_and_regex_order_by_build_time() -> None:
    tags = [
        Candidate("main-aaa", created=ago(1)),
        Candidate("main-zzz", created=ago(30)),
        Candidate("main-old", created=ago(48)),
        Candidate("dev-new", created=ago(0.5)),
    ]
    glob = decide(Policy(parse_filter("glob:main-*")), "main-old", tags, NOW)
    regex = decide(Policy(parse_filter("regex:^main-")), "main-old", tags, NOW)
    assert (glob.tag, regex.tag) == ("main-aaa", "main-aaa")
    # the current image is newer than every match: nothing older is taken
    assert decide(Policy(parse_filter("glob:main-*")), "dev-new", tags, NOW).action is Action.KEEP


def test_build_time_ties_break_by_tag_whatever_the_listing_order() -> None:
    same = ago(3)
    tags = [Candidate("b", created=same), Candidate("a", created=same), Candidate("c", created=same)]
    assert decide(Policy(parse_filter("glob:*")), "zzz-gone", tags, NOW).tag == "c"
    assert decide(Policy(parse_filter("glob:*")), "zzz-gone", list(reversed(tags)), NOW).tag == "c"


def test_min_age_waits_and_says_until_when() -> None:
    tags = [Candidate("1.0.0", created=ago(100)), Candidate("1.1.0", created=ago(1))]
    decision = decide(semver("^1.0", min_age=timedelta(hours=2)), "1.0.0", tags, NOW)
    assert decision.action is Action.WAIT
    assert decision.waiting == ("1.1.0", ago(1) + timedelta(hours=2))
    assert "eligible at 2026-03-01T13:00:00+00:00" in decision.reason
    later = decide(semver("^1.0", min_age=timedelta(hours=2)), "1.0.0", tags, NOW + timedelta(hours=1))
    assert later.tag == "1.1.0"


def test_min_age_takes_the_newest_old_enough_tag_meanwhile() -> None:
    tags = [Candidate("1.1.0", created=ago(10)), Candidate("1.2.0", created=ago(1))]
    decision = decide(semver("~1", min_age=timedelta(hours=2)), "1.0.0", tags, NOW)
    assert (decision.action, decision.tag) == (Action.UPDATE, "1.1.0")


def test_digest_pinning_writes_the_digest_and_follows_a_moved_tag() -> None:
    pinned = semver("^1.0", pin_digest=True)
    decision = decide(pinned, "1.0.0", [Candidate("1.1.0", D1)], NOW)
    assert (decision.tag, decision.digest) == ("1.1.0", D1)
    moved = decide(pinned, "1.1.0", [Candidate("1.1.0", D2)], NOW, current_digest=D1)
    assert (moved.action, moved.digest) == (Action.UPDATE, D2)
    same = decide(pinned, "1.1.0", [Candidate("1.1.0", D1)], NOW, current_digest=D1)
    assert same.action is Action.KEEP
    # a reference that already carries a digest keeps carrying one
    assert decide(semver("^1.0"), "1.0.0", [Candidate("1.1.0", D1)], NOW, current_digest=D2).digest == D1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("semver:~1.x.x.x", "invalid semver range"),
        ("semver:>>1", "invalid semver range"),
        ("regex:^(main", "invalid regular expression"),
        ("semvr:~1", "unknown filter 'semvr'"),
    ],
)
def test_invalid_filters_name_where_they_came_from(text: str, message: str) -> None:
    with pytest.raises(PolicyError, match=f"filter.fluxcd.io/app: {message}"):
        parse_filter(text, "filter.fluxcd.io/app")


def test_a_bare_pattern_is_a_glob_and_star_is_the_only_wildcard() -> None:
    f = parse_filter("release-*")
    assert f.matches("release-1.0") and not f.matches("xrelease-1")
    assert not parse_filter("glob:v1.?").matches("v1.2")
    assert parse_filter("glob:v1.?").matches("v1.?")


@pytest.mark.parametrize(("text", "seconds"), [("2h", 7200), ("30m", 1800), ("1h30m", 5400), ("1d", 86400)])
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "2", "h", "2 hours", "-1h", "1.5h"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(PolicyError, match=r"gitops-helm\.io/min-age: .* is not a duration"):
        parse_duration(text, "gitops-helm.io/min-age")


def test_release_settings_report_problems_instead_of_raising() -> None:
    settings = release_settings(
        {
            "fluxcd.io/automated": "yes",
            "fluxcd.io/locked": "true",
            "fluxcd.io/locked_msg": "incident 42",
            "gitops-helm.io/min-age": "soon",
            "gitops-helm.io/chart-version": "glob:1.*",
        }
    )
    assert settings.locked and settings.locked_msg == "incident 42"
    assert not settings.automated
    assert len(settings.problems) == 3
    assert any("fluxcd.io/automated" in p for p in settings.problems)
    assert any("chart versions take semver" in p for p in settings.problems)


def test_two_policies_for_one_image_is_an_error_naming_both() -> None:
    annotations = {"filter.fluxcd.io/app": "semver:~1", "fluxcd.io/tag.app": "glob:*"}
    with pytest.raises(
        PolicyError, match=r"two policies for one image: annotation filter.fluxcd.io/app .* fluxcd"
    ):
        image_policy(annotations, release_settings(annotations), "app")
    same = {"filter.fluxcd.io/app": "semver:~1", "fluxcd.io/tag.app": "semver:~1"}
    assert image_policy(same, release_settings(same), "app").filter.text == "semver:~1"


def test_per_image_overrides_the_release_defaults() -> None:
    annotations = {
        "gitops-helm.io/min-age": "2h",
        "min-age.gitops-helm.io/api": "10m",
        "pin-digest.gitops-helm.io/api": "true",
    }
    settings = release_settings(annotations)
    api = image_policy(annotations, settings, "api")
    web = image_policy(annotations, settings, "web")
    assert (api.min_age, api.pin_digest) == (timedelta(minutes=10), True)
    assert (web.min_age, web.pin_digest) == (timedelta(hours=2), False)


def test_policy_file_entries_and_their_errors() -> None:
    declared, problems = parse_policy_file(
        {
            "policies": [
                {
                    "name": "flux-system:app",
                    "image": "ghcr.io/org/app",
                    "filter": "semver:^4",
                    "minAge": "1h",
                },
                {"name": "flux-system:bad", "image": "ghcr.io/org/bad", "filter": "regex:("},
                {"name": "no-namespace", "image": "x"},
                {"name": "a:b", "image": "x:1.0"},
                {"name": "a:c", "image": "x", "color": "red"},
            ]
        },
        "policies.yaml",
    )
    assert list(declared) == ["flux-system:app"]
    assert declared["flux-system:app"].policy.min_age == timedelta(hours=1)
    assert len(problems) == 4
    assert "policies.yaml: policies[1] (flux-system:bad).filter: invalid regular expression" in problems[0]
    assert "expected 'namespace:name'" in problems[1]
    assert "a repository without tag or digest" in problems[2]
    assert "unknown field(s) color" in problems[3]


_versions = st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 3)).map(
    lambda t: f"{t[0]}.{t[1]}.{t[2]}"
)


@given(st.lists(_versions, min_size=1, max_size=12), _versions, st.permutations(range(12)))
def test_semver_decision_never_downgrades_and_ignores_listing_order(
    tags: list[str], current: str, order: list[int]
) -> None:
    from gitops_helm.charts.semver import parse_version

    candidates = [Candidate(t) for t in tags]
    shuffled = [candidates[i] for i in order if i < len(candidates)]
    a = decide(semver("*"), current, candidates, NOW)
    b = decide(semver("*"), current, shuffled, NOW)
    assert (a.action, a.tag) == (b.action, b.tag)
    if a.action is Action.UPDATE:
        assert parse_version(a.tag) > parse_version(current)
        assert parse_version(a.tag) == max(parse_version(t) for t in tags)
    else:
        assert all(parse_version(t) <= parse_version(current) for t in tags)


def test_a_glob_matches_as_its_regex_did_and_in_linear_time() -> None:
    import itertools
    import re

    alphabet = ("a", "b", "-", ".")
    tags = ["".join(p) for n in range(6) for p in itertools.product(alphabet, repeat=n)]
    patterns = ["*", "a*", "*a", "a*b", "*a*", "a*a", "*-*.*", "a**b", "ab", "", "*a*a*", "a*-*a"]
    for pattern in patterns:
        regex = re.compile(".*".join(re.escape(part) for part in pattern.split("*")))
        glob = parse_filter(f"glob:{pattern}")
        for tag in tags:
            if tag.lower() == "latest":
                continue
            assert glob.matches(tag) == (regex.fullmatch(tag) is not None), (pattern, tag)
    # a crafted filter: as a backtracking regex this is C(120, 40) steps under the GIL (the old
    # code never returned here); the linear matcher answers at once
    crafted = parse_filter("glob:" + "*a" * 40 + "*b")
    assert not crafted.matches("a" * 120)


def test_a_regex_filter_cannot_backtrack_and_backreferences_are_refused() -> None:
    # Python's re would take years on this (nested quantifiers, a tag that almost matches) while
    # holding the interpreter lock; RE2 is linear in the tag (the old code never returned here)
    nested = parse_filter("regex:^(a+)+$")
    assert not nested.matches("a" * 120 + "!")
    assert nested.matches("a" * 120)
    # RE2 syntax, as Go's regexp in Flux: no backreferences; the error names the filter
    with pytest.raises(PolicyError, match=r"filter\.fluxcd\.io/app: invalid regular expression .*RE2"):
        parse_filter(r"regex:^(a)\1$", "filter.fluxcd.io/app")
    assert parse_filter(r"regex:^v(?P<major>\d+)\.\d+$").matches("v12.3")
