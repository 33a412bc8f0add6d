"""The desired-state digest is keyed: it tells "changed" from "unchanged" and nothing more."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gitops_helm.api import parse_helmrelease
from gitops_helm.release.desired import desired_digest, unkeyed_digest
from tests.unit.test_api_examples import REPO_CHART, manifest

POLICY = parse_helmrelease(manifest(REPO_CHART)).policy
KEYS = st.binary(min_size=16, max_size=64)


@given(key=KEYS, chart=st.text(max_size=20), values=st.text(max_size=20))
def test_the_same_state_under_the_same_key_has_one_digest(key: bytes, chart: str, values: str) -> None:
    assert desired_digest(POLICY, chart, values, key) == desired_digest(POLICY, chart, values, key)


@given(a=KEYS, b=KEYS, values=st.text(max_size=20))
def test_another_key_gives_another_digest(a: bytes, b: bytes, values: str) -> None:
    if a != b:
        assert desired_digest(POLICY, "c", values, a) != desired_digest(POLICY, "c", values, b)


@given(key=KEYS, one=st.text(max_size=20), two=st.text(max_size=20))
def test_a_values_change_changes_the_digest(key: bytes, one: str, two: str) -> None:
    if one != two:
        assert desired_digest(POLICY, "c", one, key) != desired_digest(POLICY, "c", two, key)


@given(key=KEYS, values=st.text(max_size=20))
def test_the_keyed_digest_is_never_the_guessable_one(key: bytes, values: str) -> None:
    keyed = desired_digest(POLICY, "c", values, key)
    assert keyed.startswith("h1-")
    assert keyed != unkeyed_digest(POLICY, "c", values)
    assert unkeyed_digest(POLICY, "c", values) not in keyed
