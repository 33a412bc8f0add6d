"""Provenance of values (``gitops-helm explain values``): which source set each leaf, what it
replaced, and that the explanation's values are exactly the agent's own composition."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from gitops_helm.values import (
    REDACTED,
    ExplainedLeaf,
    ValuesError,
    ValuesExplanation,
    ValuesLayer,
    ValuesSpec,
    compose_values,
    explain_layers,
    explain_values,
    merge_values,
)
from tests.unit.test_values import SECRET_TEXT, FakeReader, cm_ref, file_ref, secret_ref, url_ref

DEFAULTS = b"image:\n  repository: app\n  tag: '0.9'\nreplicas: 1\nservice:\n  port: 80\nextra: x\n"


def _sources() -> FakeReader:
    return FakeReader(
        configmaps={("apps", "base"): {"values.yaml": "image:\n  tag: '1.0'\nreplicas: 2\n"}},
        secrets={
            ("apps", "creds"): {"values.yaml": f"db:\n  password: {SECRET_TEXT}\nreplicas: 3\n".encode()}
        },
        urls={"https://values.example/v.yaml": b"service:\n  port: 8080\n"},
        files={"values.yaml": DEFAULTS, "ci/prod.yaml": b"image:\n  tag: '1.1'\n"},
    )


def _spec(**kwargs: Any) -> ValuesSpec:
    return ValuesSpec(
        "apps",
        values_from=[
            cm_ref("base", namespace="apps"),
            secret_ref("creds", namespace="apps"),
            url_ref("https://values.example/v.yaml"),
            file_ref("ci/prod.yaml"),
        ],
        values={"replicas": 4},
        **kwargs,
    )


def _leaf(explained: ValuesExplanation, dotted: str) -> ExplainedLeaf:
    path = tuple(dotted.split("."))
    (leaf,) = [leaf for leaf in explained.leaves if leaf.path == path]
    return leaf


def test_every_source_is_named_in_merge_order_with_the_chart_defaults_lowest() -> None:
    explained = explain_values(_spec(), _sources(), chart="hello 0.1.0")
    assert [layer.label for layer in explained.sources] == [
        "chart default (hello 0.1.0 values.yaml)",
        "valuesFrom[0] configMapKeyRef apps/base key values.yaml",
        "valuesFrom[1] secretKeyRef apps/creds key values.yaml",
        "valuesFrom[2] externalSourceRef https://values.example/v.yaml",
        "valuesFrom[3] chartFileRef ci/prod.yaml",
        "values",
    ]
    assert _leaf(explained, "image.repository").winner.source.startswith("chart default")
    assert _leaf(explained, "image.repository").overridden == ()
    tag = _leaf(explained, "image.tag")
    assert [(s.source.split()[0], s.value) for s in tag.chain] == [
        ("chart", "0.9"),
        ("valuesFrom[0]", "1.0"),
        ("valuesFrom[3]", "1.1"),
    ]
    assert _leaf(explained, "service.port").value == 8080
    assert _leaf(explained, "service.port").winner.source.startswith("valuesFrom[2] externalSourceRef")


def test_secret_values_are_redacted_with_their_source_also_when_overridden() -> None:
    explained = explain_values(_spec(), _sources(), chart="hello 0.1.0")
    password = _leaf(explained, "db.password")
    assert password.value == REDACTED
    assert password.winner.sensitive
    assert password.winner.source == "valuesFrom[1] secretKeyRef apps/creds key values.yaml"
    replicas = _leaf(explained, "replicas")
    assert replicas.value == 4
    assert [s.value for s in replicas.chain] == [1, 2, REDACTED, 4]
    assert SECRET_TEXT not in repr(explained.leaves)
    assert SECRET_TEXT not in repr(explained)
    assert explained.shown()["db"] == {"password": REDACTED}
    assert explained.merged["db"]["password"] == SECRET_TEXT  # the real values stay available


def test_a_map_replacing_a_scalar_and_back_keeps_the_whole_chain() -> None:
    layers = [
        ValuesLayer("one", {"a": 1}),
        ValuesLayer("two", {"a": {"x": 2, "y": 3}}),
        ValuesLayer("three", {"a": 4}),
    ]
    explained = explain_layers(layers)
    (leaf,) = explained.leaves
    assert leaf.path == ("a",)
    assert [(s.source, s.path, s.value) for s in leaf.chain] == [
        ("one", ("a",), 1),
        ("two", ("a", "x"), 2),
        ("two", ("a", "y"), 3),
        ("three", ("a",), 4),
    ]


def test_chart_defaults_lie_under_the_composed_values_not_under_the_first_source() -> None:
    # helm coalesces the chart defaults under the user-supplied values: a later source's map
    # that replaced an earlier source's scalar still gets the defaults' other keys
    layers = [
        ValuesLayer("chart default (c 1 values.yaml)", {"a": {"x": 1, "keep": True}}),
        ValuesLayer("one", {"a": "scalar"}),
        ValuesLayer("two", {"a": {"x": 2}}),
    ]
    explained = explain_layers(layers, chart_defaults=True)
    assert explained.merged == {"a": {"x": 2, "keep": True}}
    assert _leaf(explained, "a.keep").winner.source.startswith("chart default")
    assert [s.source for s in _leaf(explained, "a.x").chain] == [
        "chart default (c 1 values.yaml)",
        "one",
        "two",
    ]


def test_null_over_a_chart_default_is_removed_as_helm_removes_it() -> None:
    layers = [
        ValuesLayer("chart default (c 1 values.yaml)", {"a": 1, "b": 2}),
        ValuesLayer("values", {"a": None}),
    ]
    explained = explain_layers(layers, chart_defaults=True)
    assert _leaf(explained, "a").removed
    assert explained.shown() == {"b": 2}


def test_a_chart_without_values_yaml_has_no_default_layer() -> None:
    explained = explain_values(ValuesSpec("apps", values={"a": 1}), FakeReader(), chart="c 1")
    assert [layer.label for layer in explained.sources] == ["values"]


def test_unreadable_chart_defaults_name_the_chart() -> None:
    reader = FakeReader(broken={"values.yaml"})
    with pytest.raises(ValuesError, match=r"chart default \(c 1 values.yaml\): cannot read: OSError"):
        explain_values(ValuesSpec("apps"), reader, chart="c 1")
    reader = FakeReader(files={"values.yaml": b"a: [\n"})
    with pytest.raises(ValuesError, match=r"chart default \(c 1 values.yaml\): not valid YAML"):
        explain_values(ValuesSpec("apps"), reader, chart="c 1")


def test_a_failing_source_fails_the_explanation_as_it_fails_the_release() -> None:
    spec = ValuesSpec("apps", values_from=[cm_ref("missing", namespace="apps")])
    with pytest.raises(ValuesError, match=r"valuesFrom\[0\] configMapKeyRef apps/missing key values.yaml"):
        explain_values(spec, FakeReader(), chart="c 1")


# --- properties --------------------------------------------------------------------------------

_scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.text(max_size=3))
_keys = st.sampled_from(["a", "b", "c"])
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=2), st.dictionaries(_keys, inner, max_size=3)),
    max_leaves=10,
)
_maps = st.dictionaries(_keys, _values, max_size=3)


def _at(values: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        values = values[key]
    return values


def _leaf_paths(values: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    if isinstance(values, dict) and values:
        return [p for key, child in values.items() for p in _leaf_paths(child, (*path, key))]
    return [path] if path else []


@given(_maps, st.lists(_maps, max_size=4), _maps)
def test_explained_values_are_the_agents_composition(
    defaults: dict[str, Any], sources: list[dict[str, Any]], inline: dict[str, Any]
) -> None:
    reader = FakeReader(
        configmaps={("ns", f"c{i}"): {"values.yaml": yaml.safe_dump(doc)} for i, doc in enumerate(sources)},
        files={"values.yaml": yaml.safe_dump(defaults).encode()},
    )
    spec = ValuesSpec("ns", [cm_ref(f"c{i}", namespace="ns") for i in range(len(sources))], values=inline)
    composed = compose_values(spec, reader)
    assert explain_values(spec, reader).merged == composed.values
    explained = explain_values(spec, reader, chart="c 1")
    # helm puts the chart defaults under the user-supplied values the agent composes
    assert explained.merged == merge_values(defaults, composed.values)
    assert [leaf.path for leaf in explained.leaves] == _leaf_paths(explained.merged)
    for leaf in explained.leaves:
        assert leaf.value == _at(explained.merged, leaf.path)
        assert [s.layer for s in leaf.chain] == sorted(s.layer for s in leaf.chain)
        assert max(s.layer for s in leaf.chain) == leaf.winner.layer


@given(st.lists(_maps, min_size=1, max_size=4), st.lists(st.booleans(), min_size=4, max_size=4))
def test_secret_layers_never_show_their_values(layers: list[dict[str, Any]], secret: list[bool]) -> None:
    stack = [ValuesLayer(f"l{i}", doc, sensitive=secret[i]) for i, doc in enumerate(layers)]
    explained = explain_layers(stack)
    merged: dict[str, Any] = {}
    for doc in layers:
        merged = merge_values(merged, doc)
    assert explained.merged == merged
    for leaf in explained.leaves:
        for setting in leaf.chain:
            assert setting.sensitive == secret[setting.layer]
            if setting.sensitive:
                assert setting.value == REDACTED
        if not leaf.winner.sensitive:
            assert leaf.value == _at(merged, leaf.path)
