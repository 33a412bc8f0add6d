"""Fuzzing the parsers that read what users and the network send (issue #12, experiment 6).

Each property feeds generated input to one parser and accepts only its documented outcome: a
result, or the module's own error type. The other test files already fuzz single files of text
(discover), plain JSON (HelmRelease parsing), single index bodies and archives; these add file
trees of bytes, YAML built from its own tokens (so the generator reaches anchors, aliases, merge
keys, tags, flow collections and block scalars far more often than random text does), values
documents from every kind of source, constraint grammar, and webhook headers and payloads.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gitops_helm.api import SpecError, parse_helmrelease
from gitops_helm.api.spec import ValuesSource
from gitops_helm.charts.semver import (
    ConstraintError,
    VersionError,
    parse_constraint,
    parse_version,
    select_version,
)
from gitops_helm.source.webhook import Provider, PushInfo, Verdict, parse_push, verify_webhook
from gitops_helm.sync.discover import discover
from gitops_helm.values import ValuesError, ValuesSpec, compose_values
from gitops_helm.yamlio import YAMLError, load
from tests.unit.test_values import FakeReader, cm_ref, file_ref, secret_ref, url_ref

FILE_SETTINGS = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- YAML made of its own tokens ------------------------------------------------------------

_YAML_TOKENS = [
    "apiVersion: v1", "kind: ConfigMap", "kind: List", "items:", "metadata:", "name: x", "namespace: y",
    "data:", "spec:", "a:", "b: 1", "- ", "-", ": ", ":", "? ", "&a ", "*a", "&b ", "*b", "<<: *a", "<<: ",
    "!!binary ", "!!str ", "!!int ", "!!map ", "!!set ", "!!omap ", "!!python/object ", "!custom ", "|",
    ">-", "'", '"', "{", "}", "[", "]", ",", "#", "---", "...", "%YAML 1.1", "~", "null", "true", "yes",
    "0x1F", "1e400", ".nan", "-.inf", "2001-12-14", "12:30:45", "0o17", "\t", "\\", "\u2028", "\x85",
    "\x00", "\ufeff", "é", "\n", "\n", "\n  ", "\n    ", "  ",
]  # fmt: skip
yaml_text = st.lists(st.sampled_from(_YAML_TOKENS), max_size=40).map("".join)
raw_bytes = st.one_of(st.binary(max_size=200), yaml_text.map(lambda t: t.encode("utf-8", "surrogatepass")))


@FILE_SETTINGS
@given(yaml_text)
def test_discovery_of_token_built_yaml_gives_a_result_never_an_exception(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "x.yaml").write_text(text, encoding="utf-8")
        result = discover(tmp)
    assert result.files == ("x.yaml",)
    assert all(error.path == "x.yaml" for error in result.errors)
    if any(error.key is None for error in result.errors):
        assert not result.complete  # an unreadable document makes the sync keep everything


_segments = st.sampled_from(["a", "b", "deep", ".hidden", "charts", "templates", "x y", "é"])
_file_names = st.sampled_from(
    ["m.yaml", "m.yml", "m.json", "Chart.yaml", "notes.txt", "values.yaml", ".h.yaml"]
)
_trees = st.dictionaries(
    st.tuples(st.lists(_segments, max_size=3), _file_names).map(lambda t: "/".join([*t[0], t[1]])),
    raw_bytes,
    max_size=6,
)


_paths = st.lists(st.sampled_from(["", ".", "a", "a/b", "missing", "../x", "/etc", "deep"]), max_size=2)


@FILE_SETTINGS
@given(_trees, _paths)
def test_discovery_of_any_tree_of_bytes_gives_a_result_never_an_exception(
    tree: dict[str, bytes], paths: list[str]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for rel, content in tree.items():
            target = Path(tmp, rel)
            if any(p.is_file() for p in [target, *target.parents] if p != Path(tmp) and p.exists()):
                continue  # a generated file name taken as a directory elsewhere in the tree
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        result = discover(tmp, paths)
    for error in result.errors:
        assert error.path, "every error names a file or a path"
    keys = [m.key for m in result.objects]
    assert len(set(keys)) == len(keys)
    assert list(result.files) == sorted(set(result.files), key=lambda f: tuple(f.split("/")))


# --- HelmRelease specs written as YAML --------------------------------------------------------

_spec_fields = st.sampled_from(
    ["releaseName", "targetNamespace", "chart", "values", "valuesFrom", "timeout", "wait", "rollback",
     "test", "resetValues", "forceUpgrade", "maxHistory", "dependsOn", "helmVersion", "suspend", "test"]
)  # fmt: skip


@FILE_SETTINGS
@given(st.dictionaries(_spec_fields, yaml_text, max_size=4))
def test_helmrelease_fields_of_any_yaml_give_the_model_or_a_spec_error(fields: dict[str, str]) -> None:
    spec = "".join(f"  {name}: {json.dumps(text)}\n" for name, text in fields.items())
    for field_text in fields.values():  # each field's text also as YAML of its own
        try:
            value = load(field_text)
        except YAMLError:
            continue
        obj = {
            "apiVersion": "helm.fluxcd.io/v1",
            "kind": "HelmRelease",
            "metadata": {"name": "x"},
            "spec": {"chart": value, "values": value, "valuesFrom": value, "releaseName": value},
        }
        try:
            parse_helmrelease(obj)
        except SpecError as exc:
            assert "spec." in str(exc)
    document = f"apiVersion: helm.fluxcd.io/v1\nkind: HelmRelease\nmetadata:\n  name: x\nspec:\n{spec}"
    with contextlib.suppress(SpecError):
        parse_helmrelease(load(document))


# --- values from every kind of source --------------------------------------------------------


@FILE_SETTINGS
@given(yaml_text, raw_bytes, raw_bytes, raw_bytes, st.booleans())
def test_values_of_any_content_compose_or_raise_a_values_error(
    configmap_text: str, secret_bytes: bytes, url_bytes: bytes, file_bytes: bytes, optional: bool
) -> None:
    reader = FakeReader(
        configmaps={("ns", "c"): {"values.yaml": configmap_text}},
        secrets={("ns", "s"): {"values.yaml": secret_bytes}},
        urls={"https://example.com/v.yaml": url_bytes},
        files={"v.yaml": file_bytes},
    )
    sources: list[ValuesSource | None] = [
        cm_ref("c", namespace="ns", optional=optional),
        secret_ref("s", namespace="ns", optional=optional),
        url_ref("https://example.com/v.yaml", optional=optional),
        file_ref("v.yaml", optional=optional),
    ]
    try:
        composed = compose_values(ValuesSpec("ns", sources), reader)
    except ValuesError as exc:
        assert str(exc)
    else:
        assert isinstance(composed.values, dict)


# --- chart version constraints ---------------------------------------------------------------

_ops = st.sampled_from(["", "=", "==", "!=", ">", "<", ">=", "<=", "=>", "=<", "~", "^", "~>", "v", " "])
_parts = st.sampled_from(["0", "1", "01", "2", "x", "X", "*", "", "99999999999999999999", "-1", "a"])
_tails = st.sampled_from(["", "-alpha", "-rc.1", "-0", "-", "+build", "+", "-a..b", "-01", "-é"])
_comparators = st.builds(
    lambda op, parts, tail: op + ".".join(parts) + tail,
    _ops,
    st.lists(_parts, min_size=1, max_size=4),
    _tails,
)
_joins = st.sampled_from([" ", ", ", ",", " || ", "||", " - ", "  "])
constraints = st.builds(
    lambda first, rest: first + "".join(join + cmp for join, cmp in rest),
    _comparators,
    st.lists(st.tuples(_joins, _comparators), max_size=3),
)


@given(constraints, st.lists(st.one_of(_comparators, st.text(max_size=10)), max_size=8))
def test_any_constraint_selects_from_the_index_or_raises_a_constraint_error(
    constraint: str, index: list[str]
) -> None:
    try:
        chosen = select_version(constraint, index)
    except ConstraintError as exc:
        # the whole constraint, or (for a number past Helm's range) the comparator holding it
        assert repr(constraint) in str(exc) or "a numeric part is larger than" in str(exc)
        return
    assert chosen is None or chosen in index


@given(st.one_of(_comparators, st.text(max_size=24)))
def test_any_version_text_parses_or_raises_a_version_error(text: str) -> None:
    try:
        version = parse_version(text)
    except VersionError:
        return
    assert parse_version(str(version)) == version
    assert parse_constraint(str(version)).matches(version)


# --- webhook deliveries ------------------------------------------------------------------------

_header_names = st.sampled_from(
    ["X-GitHub-Event", "X-Hub-Signature-256", "X-Hub-Signature", "X-Gitea-Event", "X-Gitea-Signature",
     "X-Forgejo-Signature", "X-Gitlab-Event", "X-Gitlab-Token", "X-Signature", "X-Event", "Content-Type",
     "x-github-event", "X-GITLAB-TOKEN"]
)  # fmt: skip
_header_values = st.one_of(
    st.sampled_from(["push", "Push Hook", "Tag Push Hook", "ping", "sha256=", "sha1=00", "application/json"]),
    st.text(max_size=70),
)
_url_keys = st.sampled_from(
    ["ref", "after", "branch", "checkout_sha", "repository", "project", "clone_url", "ssh_url", "html_url",
     "url", "git_http_url", "git_ssh_url", "web_url", "payload"]
)  # fmt: skip
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_url_keys, inner, max_size=4),
    max_leaves=15,
)
payloads = st.one_of(
    _json_values.map(lambda v: json.dumps(v).encode()),
    _json_values.map(lambda v: b"payload=" + json.dumps(v).encode()),
    st.binary(max_size=200),
)


@given(st.dictionaries(_header_names, _header_values, max_size=5), payloads, st.text(max_size=16))
def test_any_delivery_gives_a_verdict_and_only_a_verified_push_carries_one(
    headers: dict[str, str], body: bytes, secret: str
) -> None:
    verdict = verify_webhook(headers, body, secret)
    assert isinstance(verdict, Verdict)
    if not verdict.verified:
        assert verdict.push is None and verdict.reason
        assert not verdict.concerns("https://git.example/org/repo", "main")


_events = st.sampled_from(["push", "Push Hook", "tag push hook", "ping"])


@given(st.sampled_from(list(Provider)), _events, payloads)
def test_any_verified_payload_parses_to_strings_or_nothing(
    provider: Provider, event: str, body: bytes
) -> None:
    push = parse_push(provider, event, body)
    if push is None:
        return
    assert isinstance(push, PushInfo)
    assert push.ref is None or isinstance(push.ref, str)
    assert push.after is None or isinstance(push.after, str)
    assert all(isinstance(url, str) and url for url in push.repo_urls)
    verdict = Verdict(verified=True, reason="", provider=provider, event=event, push=push)
    verdict.concerns("https://git.example/org/repo", "main")  # never raises on what a payload says
