"""Values composition: merge semantics, source rules, errors, digest, provenance."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gitops_helm.api.spec import (
    ChartFileValuesSource,
    ConfigMapValuesSource,
    ExternalValuesSource,
    SecretValuesSource,
)
from gitops_helm.values import (
    SourceNotFound,
    ValuesError,
    ValuesSpec,
    WatchedObject,
    compose_values,
    merge_values,
    referenced_objects,
    values_digest,
)


# Sources as the API parser produces them: namespace and key already resolved.
def cm_ref(
    name: str, namespace: str = "default", key: str = "values.yaml", optional: bool = False
) -> ConfigMapValuesSource:
    return ConfigMapValuesSource(name, namespace, key, optional)


def secret_ref(
    name: str, namespace: str = "default", key: str = "values.yaml", optional: bool = False
) -> SecretValuesSource:
    return SecretValuesSource(name, namespace, key, optional)


def url_ref(url: str, optional: bool = False) -> ExternalValuesSource:
    return ExternalValuesSource(url, optional)


def file_ref(path: str, optional: bool = False) -> ChartFileValuesSource:
    return ChartFileValuesSource(path, optional)


SECRET_TEXT = "s3cr3t-hunter2"


@dataclass
class FakeReader:
    """In-memory ValuesSourceReader that records what was read."""

    configmaps: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    secrets: dict[tuple[str, str], dict[str, bytes]] = field(default_factory=dict)
    urls: dict[str, bytes] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    broken: set[str] = field(default_factory=set)  # names/urls/paths whose read raises
    reads: list[str] = field(default_factory=list)

    def configmap(self, namespace: str, name: str) -> Mapping[str, str] | None:
        self.reads.append(f"cm {namespace}/{name}")
        if name in self.broken:
            raise PermissionError("configmaps is forbidden")
        return self.configmaps.get((namespace, name))

    def secret(self, namespace: str, name: str) -> Mapping[str, bytes] | None:
        self.reads.append(f"secret {namespace}/{name}")
        if name in self.broken:
            raise ConnectionError("apiserver unavailable")
        return self.secrets.get((namespace, name))

    def url(self, url: str) -> bytes:
        self.reads.append(f"url {url}")
        if url in self.broken:
            raise TimeoutError("read timed out")
        if url not in self.urls:
            raise SourceNotFound(url)
        return self.urls[url]

    def chart_file(self, path: str) -> bytes:
        self.reads.append(f"file {path}")
        if path in self.broken:
            raise OSError("I/O error")
        if path not in self.files:
            raise SourceNotFound(path)
        return self.files[path]


def reader() -> FakeReader:
    return FakeReader(
        configmaps={
            ("default", "base"): {
                "values.yaml": "image:\n  tag: '1.0'\n  repo: app\nreplicas: 1\nlist: [1, 2]\n"
            },
            ("default", "env"): {"prod.yaml": "image:\n  tag: '2.0'\nlist: [3]\n"},
            ("other", "shared"): {"values.yaml": "shared: true\n"},
        },
        secrets={("default", "creds"): {"values.yaml": f"db:\n  password: {SECRET_TEXT}\n".encode()}},
        urls={"https://example.com/v.yaml": b"remote: 1\n"},
        files={"ci/values.yaml": b"fromChart: yes\n"},
    )


# --- merge semantics -------------------------------------------------------------------------


def test_merge_maps_recurse_scalars_and_lists_replace() -> None:
    base = {"a": {"b": 1, "c": [1, 2]}, "d": "x", "e": {"f": 1}, "g": 1}
    top = {"a": {"c": [3], "z": None}, "d": {"new": "map"}, "e": "scalar", "h": 2}
    assert merge_values(base, top) == {
        "a": {"b": 1, "c": [3], "z": None},
        "d": {"new": "map"},
        "e": "scalar",
        "g": 1,
        "h": 2,
    }
    assert base == {"a": {"b": 1, "c": [1, 2]}, "d": "x", "e": {"f": 1}, "g": 1}  # not mutated


def test_merge_order_secrets_then_values_from_then_inline() -> None:
    spec = ValuesSpec(
        namespace="default",
        value_file_secrets=[secret_ref("creds")],
        values_from=[
            cm_ref("base"),
            cm_ref("env", key="prod.yaml"),
            url_ref("https://example.com/v.yaml"),
            file_ref("ci/values.yaml"),
        ],
        values={"replicas": 3, "image": {"pullPolicy": "Always"}},
    )
    out = compose_values(spec, reader())
    assert out.values == {
        "db": {"password": SECRET_TEXT},
        "image": {"tag": "2.0", "repo": "app", "pullPolicy": "Always"},
        "replicas": 3,
        "list": [3],
        "remote": 1,
        "fromChart": True,
    }
    assert out.provenance["image"] == (
        "valuesFrom[0] configMapKeyRef default/base key values.yaml",
        "valuesFrom[1] configMapKeyRef default/env key prod.yaml",
        "values",
    )
    assert out.provenance["db"] == ("valueFileSecrets[0] secretKeyRef default/creds key values.yaml",)
    assert out.provenance["fromChart"] == ("valuesFrom[3] chartFileRef ci/values.yaml",)
    assert out.references == (
        WatchedObject("Secret", "default", "creds"),
        WatchedObject("ConfigMap", "default", "base"),
        WatchedObject("ConfigMap", "default", "env"),
    )


def test_no_sources_give_empty_values() -> None:
    out = compose_values(ValuesSpec(namespace="default"), FakeReader())
    assert out.values == {}
    assert out.digest == values_digest({})


def test_empty_entry_is_a_noop_and_keeps_indices() -> None:
    spec = ValuesSpec("default", values_from=[None, cm_ref("missing")])
    with pytest.raises(ValuesError, match=r"^valuesFrom\[1\] configMapKeyRef default/missing"):
        compose_values(spec, reader())


def test_yaml_keeps_dates_as_strings_and_keys_as_strings() -> None:
    r = FakeReader(
        configmaps={("default", "c"): {"values.yaml": "when: 2024-01-02\n1: one\ntrue: yes\n~: n\n1.5: f\n"}}
    )
    out = compose_values(ValuesSpec("default", [cm_ref("c")]), r)
    assert out.values == {"when": "2024-01-02", "1": "one", "true": True, "null": "n", "1.5": "f"}


def test_empty_document_is_empty_mapping() -> None:
    r = FakeReader(configmaps={("default", "c"): {"values.yaml": "# only a comment\n"}})
    assert compose_values(ValuesSpec("default", [cm_ref("c")]), r).values == {}


# --- source rules ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ref",
    [cm_ref("missing", optional=True), secret_ref("missing", optional=True)],
)
def test_not_found_and_optional_is_skipped(ref: ConfigMapValuesSource | SecretValuesSource) -> None:
    out = compose_values(ValuesSpec("default", [ref], values={"a": 1}), reader())
    assert out.values == {"a": 1}
    assert len(out.skipped) == 1
    assert out.references  # still watched, so creating it triggers a reconcile


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        (
            cm_ref("missing"),
            "valuesFrom[0] configMapKeyRef default/missing key values.yaml: ConfigMap not found",
        ),
        (
            secret_ref("missing"),
            "valuesFrom[0] secretKeyRef default/missing key values.yaml: Secret not found",
        ),
        (cm_ref("base", key="nope"), "ConfigMap has no key 'nope'"),
        (
            url_ref("https://example.com/404"),
            "valuesFrom[0] externalSourceRef https://example.com/404: not found",
        ),
        (file_ref("nope.yaml"), "valuesFrom[0] chartFileRef nope.yaml: file not found in chart"),
    ],
)
def test_not_found_and_required_is_an_error(ref: Any, message: str) -> None:
    with pytest.raises(ValuesError) as info:
        compose_values(ValuesSpec("default", [ref]), reader())
    assert message in str(info.value)


def test_missing_key_optional_is_skipped() -> None:
    out = compose_values(ValuesSpec("default", [cm_ref("base", key="nope", optional=True)]), reader())
    assert out.values == {}


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        (
            cm_ref("flaky", optional=True),
            "cannot read ConfigMap: PermissionError: configmaps is forbidden",
        ),
        (secret_ref("flaky", optional=True), "cannot read Secret: ConnectionError: apiserver unavailable"),
        (url_ref("flaky", optional=True), "cannot fetch: TimeoutError: read timed out"),
        (file_ref("flaky", optional=True), "cannot read chart file: OSError: I/O error"),
    ],
)
def test_other_read_errors_fail_even_when_optional(ref: Any, message: str) -> None:
    r = reader()
    r.broken.add("flaky")
    with pytest.raises(ValuesError) as info:
        compose_values(ValuesSpec("default", [ref]), r)
    assert message in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_invalid_yaml_names_source_and_line() -> None:
    r = FakeReader(configmaps={("default", "app-values"): {"values.yaml": "a: 1\nb: 2\nc: d: e\n"}})
    spec = ValuesSpec("default", [cm_ref("base"), cm_ref("app-values")])
    r.configmaps[("default", "base")] = {"values.yaml": "{}"}
    with pytest.raises(ValuesError) as info:
        compose_values(spec, r)
    # libyaml (C) says "... in this context", the pure-Python parser "... here".
    assert str(info.value).startswith(
        "valuesFrom[1] configMapKeyRef default/app-values key values.yaml: "
        "not valid YAML: line 3, column 5: mapping values are not allowed"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- a\n- b\n", "YAML is a list, not a mapping"),
        ("just a string", "YAML is a str, not a mapping"),
        ("a: .nan\n", "unusable YAML: line 1, column 4: unsupported number nan"),
        ("a: !!binary aGVsbG8=\n", "unsupported value of type bytes at .a"),
        ("? [x]\n: 1\n", "line 1, column 3: unsupported map key of type list"),
        ("---\na: 1\n---\nb: 2\n", "not valid YAML"),
    ],
)
def test_non_mapping_or_unrepresentable_is_an_error_unless_optional(text: str, message: str) -> None:
    r = FakeReader(configmaps={("default", "c"): {"values.yaml": text}})
    with pytest.raises(ValuesError, match=message):
        compose_values(ValuesSpec("default", [cm_ref("c")]), r)
    out = compose_values(ValuesSpec("default", [cm_ref("c", optional=True)]), r)
    assert out.values == {}
    assert out.skipped


def test_bad_bytes_are_an_error() -> None:
    r = FakeReader(secrets={("default", "s"): {"values.yaml": b"\xff\xfe"}})
    with pytest.raises(ValuesError, match="not valid UTF-8"):
        compose_values(ValuesSpec("default", [secret_ref("s")]), r)


def test_alias_bomb_is_bounded() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    r = FakeReader(configmaps={("default", "bomb"): {"values.yaml": "\n".join(lines)}})
    with pytest.raises(ValuesError, match=r"unusable YAML: line \d+, column \d+: document expands to more"):
        compose_values(ValuesSpec("default", [cm_ref("bomb")]), r)


def test_nesting_is_bounded_like_manifests() -> None:
    deep = "a:\n" + "".join(" " * i + "- \n" for i in range(1, 450)) + " " * 450 + "x\n"
    r = FakeReader(configmaps={("default", "deep"): {"values.yaml": "[" * 450 + "]" * 450}})
    with pytest.raises(
        ValuesError, match="unusable YAML: line 1, column 402: document is nested more than 400"
    ):
        compose_values(ValuesSpec("default", [cm_ref("deep")]), r)
    r = FakeReader(configmaps={("default", "deep"): {"values.yaml": deep}})
    with pytest.raises(ValuesError, match="nested more than 400 levels deep"):
        compose_values(ValuesSpec("default", [cm_ref("deep")]), r)


def test_keys_are_strings_as_helm_sees_them_and_the_last_duplicate_wins() -> None:
    # helm (sigs.k8s.io/yaml): floats as Go's FormatFloat(f, 'g', -1, 32), .inf as ".inf";
    # a key written twice is no error for helm, the last one wins (unlike Git manifests)
    text = "1.0: a\n1000000.0: b\n.inf: c\nx: 1\nx: 2\n1: one\n'1': uno\n"
    r = FakeReader(configmaps={("default", "c"): {"values.yaml": text}})
    out = compose_values(ValuesSpec("default", [cm_ref("c")]), r)
    assert out.values == {"1": "uno", "1e+06": "b", ".inf": "c", "x": 2}


@pytest.mark.parametrize(
    "path", ["../secret.yaml", "a/../../b.yaml", "/etc/passwd", "..", "", "a\\..\\b", "x\x00y"]
)
def test_chart_file_must_stay_inside_the_chart(path: str) -> None:
    r = reader()
    with pytest.raises(ValuesError) as info:
        compose_values(ValuesSpec("default", [file_ref(path, optional=True)]), r)
    assert f"path {path!r} leaves the chart directory" in str(info.value)
    assert not any(read.startswith("file") for read in r.reads)


def test_chart_file_path_is_normalised() -> None:
    r = reader()
    compose_values(ValuesSpec("default", [file_ref("./ci/../ci/values.yaml")]), r)
    assert r.reads == ["file ci/values.yaml"]


def test_cross_namespace_allowed_by_default() -> None:
    out = compose_values(ValuesSpec("default", [cm_ref("shared", namespace="other")]), reader())
    assert out.values == {"shared": True}
    assert out.references == (WatchedObject("ConfigMap", "other", "shared"),)


def test_cross_namespace_refused_when_disabled_and_never_read() -> None:
    r = reader()
    spec = ValuesSpec("default", [cm_ref("base"), secret_ref("x", namespace="other", optional=True)])
    with pytest.raises(ValuesError) as info:
        compose_values(spec, r, allow_cross_namespace=False)
    assert str(info.value).startswith(
        "valuesFrom[1] secretKeyRef other/x key values.yaml: references namespace"
    )
    assert r.reads == ["cm default/base"]
    assert info.value.references == (WatchedObject("ConfigMap", "default", "base"),)
    assert referenced_objects(spec, allow_cross_namespace=False) == (
        WatchedObject("ConfigMap", "default", "base"),
    )


def test_errors_carry_references_to_watch() -> None:
    spec = ValuesSpec("default", [cm_ref("missing"), secret_ref("creds")])
    with pytest.raises(ValuesError) as info:
        compose_values(spec, reader())
    assert info.value.references == (
        WatchedObject("ConfigMap", "default", "missing"),
        WatchedObject("Secret", "default", "creds"),
    )


# --- secrets never leak ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        f"password: {SECRET_TEXT}\nbad: [\n",
        f"key: '{SECRET_TEXT}\n",
        f"a: *{SECRET_TEXT}\n",
        f"{SECRET_TEXT}: .inf\n",
        f"- {SECRET_TEXT}\n",
        f"\t{SECRET_TEXT}: 1\n",
    ],
)
def test_secret_content_never_in_error_messages(text: str) -> None:
    r = FakeReader(secrets={("default", "s"): {"values.yaml": text.encode()}})
    with pytest.raises(ValuesError) as info:
        compose_values(ValuesSpec("default", [secret_ref("s")]), r)
    assert SECRET_TEXT not in str(info.value)
    assert str(info.value).startswith("valuesFrom[0] secretKeyRef default/s key values.yaml: ")


def test_secret_values_not_in_repr() -> None:
    out = compose_values(ValuesSpec("default", value_file_secrets=[secret_ref("creds")]), reader())
    assert SECRET_TEXT in str(out.values)
    assert SECRET_TEXT not in repr(out)


# --- digest ------------------------------------------------------------------------------------


def test_digest_ignores_order_but_not_types() -> None:
    assert values_digest({"a": 1, "b": {"c": 2, "d": 3}}) == values_digest({"b": {"d": 3, "c": 2}, "a": 1})
    assert values_digest({"a": 1}) != values_digest({"a": "1"})
    assert values_digest({"a": True}) != values_digest({"a": 1})
    assert values_digest({"a": None}) != values_digest({})
    assert values_digest({"a": [1, 2]}) != values_digest({"a": [2, 1]})
    assert values_digest({}).startswith("sha256:")


def test_inline_values_with_non_string_keys_are_normalised() -> None:
    out = compose_values(ValuesSpec("default", values={"a": {1: "x"}}), FakeReader())
    assert out.values == {"a": {"1": "x"}}


# --- properties --------------------------------------------------------------------------------

_scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.text(max_size=3))
_keys = st.sampled_from(["a", "b", "c", "d"])
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_keys, inner, max_size=3)),
    max_leaves=12,
)
_maps = st.dictionaries(_keys, _values, max_size=4)


@given(_maps)
def test_merge_with_empty_is_identity(a: dict[str, Any]) -> None:
    # (merge is not associative: a scalar in the middle layer cuts the recursion, as in Helm)
    assert merge_values(a, {}) == a
    assert merge_values({}, a) == a


@given(_maps, _maps)
def test_merge_overlay_wins_and_base_survives(a: dict[str, Any], b: dict[str, Any]) -> None:
    merged = merge_values(a, b)
    assert merge_values(merged, b) == merged  # idempotent
    assert set(merged) == set(a) | set(b)
    for key, value in b.items():
        if not (isinstance(value, dict) and isinstance(a.get(key), dict)):
            assert merged[key] == value


@given(_maps)
def test_digest_is_stable_under_key_order(a: dict[str, Any]) -> None:
    def reverse(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: reverse(v[k]) for k in reversed(list(v))}
        return v

    assert values_digest(a) == values_digest(reverse(a))


@given(_maps, _maps)
def test_compose_of_inline_equals_merge(a: dict[str, Any], b: dict[str, Any]) -> None:
    import yaml

    r = FakeReader(configmaps={("ns", "c"): {"values.yaml": yaml.safe_dump(a)}})
    out = compose_values(ValuesSpec("ns", [cm_ref("c", namespace="ns")], values=b), r)
    assert out.values == merge_values(a, b)
    assert out.digest == values_digest(merge_values(a, b))
