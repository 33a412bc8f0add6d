"""The one YAML decoder (gitops_helm.yamlio): limits, keys, timestamps, positions, documents, dump."""

from __future__ import annotations

import contextlib
import json
import math
import re
import struct
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from gitops_helm import yamlio
from gitops_helm.errors import GitopsHelmError
from gitops_helm.yamlio import Limits, YAMLError, dump, key_text, load, load_all


def error_of(text: str | bytes, **options: Any) -> YAMLError:
    with pytest.raises(YAMLError) as info:
        load_all(text, **options)
    return info.value


# --- limits ------------------------------------------------------------------------------------


def test_the_one_set_of_limits() -> None:
    limits = yamlio.LIMITS
    assert (limits.max_bytes, limits.max_nodes, limits.max_depth) == (32 * 1024 * 1024, 1_000_000, 400)


def test_too_many_bytes_counts_utf8_bytes() -> None:
    limits = Limits(max_bytes=10)
    assert load("a: 123456", limits=limits) == {"a": 123456}  # 9 bytes
    for text in ("a: 12345678", b"a: 12345678", "a: é123456"):  # 11 bytes each
        error = error_of(text, limits=limits)
        assert str(error) == "YAML text is larger than the limit of 10 bytes"
        assert error.line is None and not error.syntax


def test_alias_bomb_is_bounded_after_expansion() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    error = error_of("\n".join(lines))
    assert error.problem == "document expands to more than 1000000 values (YAML aliases?)"
    assert error.line is not None and not error.syntax


def test_merge_keys_count_against_the_budget_too() -> None:
    text = "base: &b {a: 1, b: 2, c: 3}\n" + "".join(f"m{i}: {{<<: *b}}\n" for i in range(20))
    assert len(load(text)) == 21
    assert "expands to more than 50 values" in str(error_of(text, limits=Limits(max_nodes=50)))


def test_budget_is_per_document() -> None:
    text = "---\n".join("[1, 2, 3]\n" for _ in range(5))  # 4 values each, 20 in all
    assert [d.data for d in load_all(text, limits=Limits(max_nodes=4))] == [[1, 2, 3]] * 5


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("&a [*a]\n", 1),
        ("x:\n  " + "[" * 401 + "]" * 401 + "\n", 2),
        ("x: " + "{a: " * 401 + "1" + "}" * 401 + "\n", 1),
    ],
)
def test_too_deep_is_bounded(text: str, line: int) -> None:
    error = error_of(text)
    assert error.problem == "document is nested more than 400 levels deep"
    assert error.line == line and not error.syntax


def test_depth_400_is_allowed() -> None:
    assert load("[" * 400 + "]" * 400) is not None
    assert load("[" * 3 + "]" * 3, limits=Limits(max_depth=2)) == [[[]]]
    assert "nested more than 1 levels" in str(error_of("[" * 3 + "]" * 3, limits=Limits(max_depth=1)))


# --- duplicate keys ----------------------------------------------------------------------------


def test_duplicate_key_names_both_lines() -> None:
    error = error_of("apiVersion: v1\nmetadata:\n  name: a\ndata: {}\nmetadata:\n  name: b\n")
    assert str(error) == "line 5, column 1: duplicate mapping key 'metadata' (first at line 2)"
    assert not error.syntax


@pytest.mark.parametrize("text", ["1: a\n'1': b\n", "true: a\n'true': b\n", "1.0: a\n1: b\n"])
def test_keys_equal_after_conversion_are_duplicates(text: str) -> None:
    assert "after conversion to string (first at line 1)" in str(error_of(text))


def test_without_unique_keys_the_last_one_wins_as_in_helm() -> None:
    assert load("a: 1\nb: 2\na: 3\n1: x\n'1': y\n", unique_keys=False) == {"a": 3, "b": 2, "1": "y"}


def test_merged_keys_are_not_duplicates_and_own_keys_win() -> None:
    text = (
        "base: &base {a: 1, b: 2}\nmore: &more {b: 20, c: 30}\n"
        "one: {<<: *base, b: 3}\n"
        "list: {<<: [*base, *more], a: 0}\n"  # in a list, the earlier mapping wins
        "own-first: {c: 1, <<: *more}\n"
    )
    assert load(text) == {
        "base": {"a": 1, "b": 2},
        "more": {"b": 20, "c": 30},
        "one": {"a": 1, "b": 3},
        "list": {"b": 2, "c": 30, "a": 0},
        "own-first": {"b": 20, "c": 1},
    }


def test_aliases_are_copies() -> None:
    data = load("a: &x {k: [1]}\nb: *x\n")
    data["a"]["k"].append(2)
    assert data["b"] == {"k": [1]}


# --- scalars and keys ----------------------------------------------------------------------------


def test_timestamps_stay_the_string_that_was_written() -> None:
    text = "d: 2024-01-02\nt: 2001-12-14t21:59:43.10-05:00\ne: !!timestamp 2024-01-02\n2024-01-02: key\n"
    assert load(text) == {
        "d": "2024-01-02",
        "t": "2001-12-14t21:59:43.10-05:00",
        "e": "2024-01-02",
        "2024-01-02": "key",
    }


def test_scalars_resolve_as_yaml_1_1() -> None:
    text = "a: yes\nb: 1.10\nc: 0x1F\nd: ~\ne: '1'\nf: 1_000\ng: =\nh: !!str 5\n"
    assert load(text) == {"a": True, "b": 1.1, "c": 31, "d": None, "e": "1", "f": 1000, "g": "=", "h": "5"}


@pytest.mark.parametrize(
    ("key", "text"),
    [
        ("a", "a"),
        ("7", "7"),
        ("0x10", "16"),
        ("true", "true"),
        ("no", "false"),
        ("~", "null"),
        ("1.5", "1.5"),
        ("1.0", "1"),
        ("100000.0", "100000"),
        ("1000000.0", "1e+06"),
        ("1234567.0", "1.234567e+06"),
        ("0.0001", "0.0001"),
        ("0.00001", "1e-05"),
        ("3.14159265358979", "3.1415927"),
        ("-2.5", "-2.5"),
        ("-0.0", "-0"),
        ("1.0e+39", ".inf"),  # beyond float32, as Go converts it
        (".inf", ".inf"),
        ("-.inf", "-.inf"),
        (".nan", ".nan"),
    ],
)
def test_the_key_rule_is_kubernetes_yaml_to_json(key: str, text: str) -> None:
    # sigs.k8s.io/yaml: strconv.FormatFloat(f, 'g', -1, 32), strconv.Itoa, "true"/"false";
    # null -> "null" is our one deviation (Kubernetes refuses null keys; we always accepted them)
    assert load(f"{key}: v\n") == {text: "v"}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("? [a]\n: 1\n", "line 1, column 3: unsupported map key of type list"),
        ("{? {a: 1}: 1}\n", "line 1, column 4: unsupported map key of type dict"),
        ("!!binary aGk=: 1\n", "line 1, column 1: unsupported map key of type bytes"),
    ],
)
def test_keys_without_a_string_form_are_errors(text: str, problem: str) -> None:
    error = error_of(text)
    assert str(error) == problem
    assert error.syntax


def test_key_text_for_callers_with_python_data() -> None:
    assert [key_text(k) for k in ("x", 1, True, None, 2.5)] == ["x", "1", "true", "null", "2.5"]
    with pytest.raises(TypeError, match="unsupported map key of type tuple"):
        key_text((1, 2))


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("a: .nan\n", "line 1, column 4: unsupported number nan"),
        ("a: [-.inf]\n", "line 1, column 5: unsupported number -inf"),
        ("a: !!set {x}\n", "line 1, column 4: unsupported YAML value of type set"),
    ],
)
def test_values_json_cannot_hold_are_errors(text: str, problem: str) -> None:
    error = error_of(text)
    assert str(error) == problem
    assert not error.syntax


def test_binary_is_the_one_non_json_type() -> None:
    assert load("a: !!binary aGk=\n") == {"a": b"hi"}
    assert str(error_of("a: !!binary aGk\n")) == "line 1, column 4: invalid !!binary value"


def test_ordered_pairs_become_lists() -> None:
    assert load("!!omap [{a: 1}, {b: 2}]") == [["a", 1], ["b", 2]]
    assert "single-pair mapping" in str(error_of("!!pairs [{a: 1, b: 2}]"))


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("a: !custom 1\n", "line 1, column 4: could not determine a constructor for the tag '!custom'"),
        ("a: !!int abc\n", "line 1, column 4: invalid !!int value"),
        ("a: !!bool maybe\n", "line 1, column 4: invalid !!bool value"),
        ("a: !!float x\n", "line 1, column 4: invalid !!float value"),
        ("a: !!map [1]\n", "line 1, column 4: could not determine a constructor for the tag "),
        ("<<: 1\n", "line 1, column 5: expected a mapping or list of mappings for merging"),
        ("<<: [1]\n", "line 1, column 6: expected a mapping for merging"),
    ],
)
def test_unknown_tags_and_bad_scalars_are_syntax_errors(text: str, problem: str) -> None:
    error = error_of(text)
    assert str(error).startswith(problem)
    assert error.syntax


# --- positions -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: 1\nb: 2\nc: d: e\n", "line 3, column 5: mapping values are not allowed"),
        (
            "a: 1\nb: [1,\n  2\nc: 3\n",
            "line 4, column 2: did not find expected ',' or ']' (while parsing a flow sequence at line 2)",
        ),
        ("a: *missing\n", "line 1, column 4: found undefined alias"),
        ("é: ü\x01\n", "line 1, column 5: control characters are not allowed (character #x0001)"),
        (b"a: 1\nb: \xff\n", "line 2, column 4: invalid leading UTF-8 octet (character #x00ff)"),
        ("\ud800", "not valid Unicode text"),
    ],
)
def test_errors_carry_line_and_column(text: str | bytes, message: str) -> None:
    error = error_of(text)
    assert str(error).startswith(message)
    assert error.syntax


def test_yaml_error_is_a_permanent_package_error() -> None:
    error = error_of("a: [")
    assert isinstance(error, GitopsHelmError)
    assert not error.temporary
    assert error.position == f"line {error.line}, column {error.column}"
    assert YAMLError("x", syntax=False).position == ""
    assert YAMLError("x", 3, syntax=True).position == "line 3"
    assert str(YAMLError("x", 3, 4, syntax=True)) == "line 3, column 4: x"


# --- documents -----------------------------------------------------------------------------------


def test_load_all_gives_each_document_with_its_first_line() -> None:
    text = "# comment\na: 1\n---\n---\n~\n---\nkind: List\nitems:\n- x: 1\n-\n  y: 2\n...\n---\n[1]\n"
    documents = load_all(text)
    assert [(d.line, d.data) for d in documents] == [
        (2, {"a": 1}),
        (7, {"kind": "List", "items": [{"x": 1}, {"y": 2}]}),
        (14, [1]),
    ]
    assert documents[1].line_of(("items", 0)) == 9
    assert documents[1].line_of(("items", 1)) == 11
    assert documents[1].line_of(("items",)) == 9
    assert documents[1].line_of(("items", 2)) is None
    assert documents[1].line_of(("nope", 0)) is None
    assert documents[2].line_of((0,)) == 14


def test_line_of_looks_into_merged_mappings() -> None:
    (document,) = load_all("kind: List\n<<: {items: [{a: 1},\n  {b: 2}]}\n")
    assert document.data["items"] == [{"a": 1}, {"b": 2}]
    assert document.line_of(("items", 1)) == 3


def test_load_all_is_all_or_nothing() -> None:
    assert error_of("a: 1\n---\nb: .nan\n").line == 3
    assert load_all("") == [] and load_all("---\n...\n") == []


def test_load_takes_one_document() -> None:
    assert load("") is None and load("~") is None and load("# only a comment\n") is None
    assert load(b"\xef\xbb\xbfa: 1\n") == {"a": 1}  # a byte order mark is accepted
    with pytest.raises(YAMLError, match=r"^line 2, column 1: expected a single document in the stream"):
        load("a: 1\n---\nb: 2\n")


def test_strings_only_keeps_every_scalar_as_written() -> None:
    text = "version: 1.10\nnull: ~\ndate: 2024-01-02\nempty:\ntag: !!int 5\n<<: {a: 1}\nlist: [yes, 0x1F]\n"
    assert load(text, strings_only=True) == {
        "version": "1.10",
        "null": "~",
        "date": "2024-01-02",
        "empty": "",
        "tag": "5",
        "<<": {"a": "1"},
        "list": ["yes", "0x1F"],
    }
    assert "unsupported map key of type list" in str(error_of("? [a]\n: 1\n", strings_only=True))


# --- dump ----------------------------------------------------------------------------------------


def test_dump_writes_what_the_writers_wrote_before() -> None:
    data = {"b": {"when": "2024-01-02", "n": 1.5, "list": [1, "yes", None]}, "a": "x"}
    assert dump(data) == yaml.safe_dump(data, default_flow_style=False, sort_keys=True)
    assert dump(data, sort_keys=False) == yaml.safe_dump(data, sort_keys=False)
    assert load(dump(data)) == data


# --- properties ----------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200) | st.text(alphabet="[]{}:,-?&*!|>'\"#%@ \n\tab01.~<", max_size=80))
def test_any_text_decodes_or_raises_yaml_error(text: str) -> None:
    # YAML breaks lines at \r too, and at NEL, LS and PS (YAML 1.1), not only at \n
    lines = len(re.split("\r\n|[\r\n\x85\u2028\u2029]", text))
    for options in ({}, {"unique_keys": False}, {"strings_only": True}):
        try:
            documents = load_all(text, **options)
        except YAMLError as error:
            assert error.line is None or 1 <= error.line <= lines + 1
        else:
            for document in documents:
                assert 1 <= document.line <= lines + 1


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_decode_or_raise_yaml_error(data: bytes) -> None:
    with contextlib.suppress(YAMLError):
        load(data)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(_json)
def test_dump_then_load_gives_the_same_json_data(data: Any) -> None:
    assert load(dump(data)) == data
    assert json.dumps(load(dump(data)), sort_keys=True) == json.dumps(data, sort_keys=True)


@given(st.floats(allow_nan=False, allow_infinity=False, width=32))
def test_float_keys_name_the_same_float32(value: float) -> None:
    text = key_text(value)
    assert struct.pack("<f", float(text)) == struct.pack("<f", value) or (value == 0 and float(text) == 0)
    digits = text.lstrip("-").split("e")[0].replace(".", "").lstrip("0")
    assert len(digits) <= 9  # the shortest form, never Python's float64 digits
    if "e" not in text:
        assert -4 <= (math.floor(math.log10(abs(value))) if value else 0) < 6


_YAMLISH = st.text(alphabet="[]{}:,-?&*!|>'\"#%@ \n\tab01.~<", max_size=120)


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=200) | _YAMLISH | _json.map(lambda data: yaml.safe_dump(data, allow_unicode=True)))
def test_strings_only_built_from_events_equals_the_composed_document(text: str) -> None:
    """`load(strings_only=True)` (events, no node tree) gives what the node builder gives."""
    for unique_keys in (True, False):
        try:
            streamed = load(text, strings_only=True, unique_keys=unique_keys)
        except YAMLError:
            streamed = YAMLError
        try:
            documents = load_all(text, strings_only=True, unique_keys=unique_keys)
            composed = documents[0].data if len(documents) == 1 else YAMLError if documents else None
        except YAMLError:
            composed = YAMLError
        if re.search("^(---|\\.\\.\\.)", text, re.M):
            continue  # maybe many documents: load refuses them, load_all does not
        assert streamed == composed


def test_strings_only_aliases_are_bounded_copies() -> None:
    text = "a: &a [x, y]\nb: *a\n"
    data = load(text, strings_only=True)
    assert data == {"a": ["x", "y"], "b": ["x", "y"]}
    assert data["a"] is not data["b"]
    laughs = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [" + ", ".join([f"*{chr(97 + i)}"] * 10) + "]\n" for i in range(8)
    )
    with pytest.raises(YAMLError, match="expands to more than 1000000 values"):
        load(laughs, strings_only=True)
    with pytest.raises(YAMLError, match="found undefined alias"):
        load("a: *nope\n", strings_only=True)
    with pytest.raises(YAMLError, match=r"line 2, column 1: duplicate mapping key 'a' \(first at line 1\)"):
        load("a: 1\na: 2\n", strings_only=True)
    assert load("a: 1\na: 2\n", strings_only=True, unique_keys=False) == {"a": "2"}


def test_read_file_reads_no_more_than_the_limit(tmp_path: Any) -> None:
    small = tmp_path / "Chart.yaml"
    small.write_bytes(b"name: app\n")
    assert yamlio.read_file(small, limits=Limits(max_bytes=10)) == b"name: app\n"
    big = tmp_path / "values.yaml"
    big.write_bytes(b"a: " + b"x" * 100)
    with pytest.raises(YAMLError, match="YAML file is larger than the limit of 10 bytes") as info:
        yamlio.read_file(big, limits=Limits(max_bytes=10))
    assert not info.value.syntax


def test_reduce_at_replaces_each_value_at_its_depth_as_soon_as_it_is_built() -> None:
    text = "entries:\n  a:\n  - {version: 1, urls: [u], extra: x}\n  - &v {version: 2, extra: y}\n  b: [*v]\n"
    seen: list[Any] = []

    def keep_version(value: Any) -> Any:
        seen.append(value)
        return {"version": value["version"]} if isinstance(value, dict) else value

    data = load(text, strings_only=True, reduce_at=(3, keep_version))
    assert data == {"entries": {"a": [{"version": "1"}, {"version": "2"}], "b": [{"version": "2"}]}}
    assert seen[0] == {"version": "1", "urls": ["u"], "extra": "x"}


@pytest.mark.parametrize(
    ("text", "line"),
    [("a:\n\tb: 1\n", 2), ("a: 1\nmetadata:\n\tname: x\n", 3), (b"\xc3\xa9: [x]\n\tb: 1\n", 2)],
)
def test_a_tab_where_a_token_starts_is_named_as_a_tab(text: str | bytes, line: int) -> None:
    with pytest.raises(YAMLError) as caught:
        load(text)
    assert caught.value.line == line
    assert "a tab character: YAML indents with spaces, never tabs" in str(caught.value)


def test_other_characters_that_cannot_start_a_token_keep_the_parsers_words() -> None:
    with pytest.raises(YAMLError) as caught:
        load("k: @x\n")
    assert "found character that cannot start any token" in str(caught.value)
    assert "tab" not in str(caught.value)
