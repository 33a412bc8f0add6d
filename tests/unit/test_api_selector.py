"""Label selectors as the API server reads them (the sharding flags' parser and matcher)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gitops_helm.api.selector import (
    SHARD_LABEL,
    LabelSelector,
    Operator,
    Requirement,
    SelectorError,
    parse_selector,
    shard_selector,
)


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        ("", {}, True),
        ("app=web", {"app": "web"}, True),
        ("app==web", {"app": "web"}, True),
        ("app=web", {"app": "db"}, False),
        ("app=web", {}, False),
        ("app!=web", {}, True),
        ("app!=web", {"app": "web"}, False),
        ("app", {"app": ""}, True),
        ("app", {}, False),
        ("!app", {}, True),
        ("!app", {"app": "x"}, False),
        ("tier in (a, b)", {"tier": "b"}, True),
        ("tier in (a,b)", {"tier": "c"}, False),
        ("tier in (a,b)", {}, False),
        ("tier notin (a,b)", {}, True),
        ("tier notin (a,b)", {"tier": "a"}, False),
        ("n>3", {"n": "4"}, True),
        ("n>3", {"n": "3"}, False),
        ("n<3", {"n": "x"}, False),
        ("app=", {"app": ""}, True),
        (f"!{SHARD_LABEL}", {"other": "x"}, True),
        (f"!{SHARD_LABEL}", {SHARD_LABEL: "a"}, False),
        (" app = web , tier in ( x ) ", {"app": "web", "tier": "x"}, True),
        ("app=web,tier=x", {"app": "web"}, False),
    ],
)
def test_matches_as_the_api_server(text: str, labels: dict[str, str], expected: bool) -> None:
    assert parse_selector(text).matches(labels) is expected


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("app=", None),  # valid: the empty value
        ("=web", "a label key expected, found '='"),
        ("app=web,", "a requirement expected after the last ','"),
        ("app web", "expected =, ==, !=, in, notin, <, > or ','"),
        ("tier in (a", "')' missing"),
        ("tier in a", "expected '('"),
        ("tier in (a b)", "expected ',' or ')'"),
        ("n>x", "'x' is not a whole number"),
        ("Bad_Prefix/x=y", "the prefix before '/' must be a DNS subdomain"),
        ("-app=web", "the name must be 1 to 63"),
        ("app=-web", "must be at most 63 letters"),
        ("app=" + "v" * 64, "must be at most 63"),
        ("app=web)", "expected ',' between requirements, found ')'"),
        ("!", "a label key after '!' expected at the end"),
    ],
)
def test_refused_with_the_reason(text: str, says: str | None) -> None:
    if says is None:
        parse_selector(text)
        return
    with pytest.raises(SelectorError, match=_escaped(says)):
        parse_selector(text)


def _escaped(text: str) -> str:
    import re

    return re.escape(text)


def test_shard_selector_and_combination() -> None:
    shard = shard_selector("blue")
    assert str(shard) == f"{SHARD_LABEL}=blue"
    both = shard.with_requirements(parse_selector(f"team=x,{SHARD_LABEL}=blue"))
    assert str(both) == f"{SHARD_LABEL}=blue,team=x"
    with pytest.raises(SelectorError, match="the shard name"):
        shard_selector("not a name")


def test_matches_object_reads_metadata_labels() -> None:
    sel = parse_selector("app=web")
    assert sel.matches_object({"metadata": {"labels": {"app": "web"}}})
    assert not sel.matches_object({"metadata": {}})
    assert parse_selector("!app").matches_object({"metadata": {"labels": None}})


_names = st.from_regex(r"\A[a-z0-9]([a-z0-9._-]{0,10}[a-z0-9])?\Z")
_keys = st.one_of(_names, st.builds(lambda p, n: f"{p}.io/{n}", st.from_regex(r"\A[a-z]{1,8}\Z"), _names))
_values = st.one_of(st.just(""), _names)
_requirements = st.one_of(
    st.builds(lambda k: Requirement(k, Operator.EXISTS), _keys),
    st.builds(lambda k: Requirement(k, Operator.NOT_EXISTS), _keys),
    st.builds(lambda k, v: Requirement(k, Operator.EQUALS, (v,)), _keys, _values),
    st.builds(lambda k, v: Requirement(k, Operator.NOT_EQUALS, (v,)), _keys, _values),
    st.builds(
        lambda k, vs: Requirement(k, Operator.IN, tuple(dict.fromkeys(vs))),
        _keys,
        st.lists(_names, min_size=1, max_size=3),
    ),
    st.builds(
        lambda k, vs: Requirement(k, Operator.NOT_IN, tuple(dict.fromkeys(vs))),
        _keys,
        st.lists(_names, min_size=1, max_size=3),
    ),
    st.builds(lambda k, n: Requirement(k, Operator.GREATER, (str(n),)), _keys, st.integers(-50, 50)),
)


@given(st.lists(_requirements, max_size=4, unique=True))
def test_text_sent_to_the_server_parses_back_to_the_same_selector(reqs: list[Requirement]) -> None:
    selector = LabelSelector(tuple(reqs))
    assert parse_selector(str(selector)) == selector


@given(st.lists(_requirements, max_size=4, unique=True), st.dictionaries(_keys, _values, max_size=4))
def test_a_selector_matches_when_every_requirement_does(
    reqs: list[Requirement], labels: dict[str, str]
) -> None:
    selector = LabelSelector(tuple(reqs))
    assert selector.matches(labels) == all(LabelSelector((r,)).matches(labels) for r in reqs)
    # a requirement and its negation never both match
    for r in reqs:
        if r.operator in (Operator.EQUALS, Operator.IN):
            negated = Requirement(r.key, Operator.NOT_IN, r.values)
            assert r.matches(labels) != negated.matches(labels)
        if r.operator is Operator.EXISTS:
            assert r.matches(labels) != Requirement(r.key, Operator.NOT_EXISTS).matches(labels)
