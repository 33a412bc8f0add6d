"""Byte-exact edits: only the tag's bytes change, quoting is kept, stale edits fail clearly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from gitops_helm import yamlio
from gitops_helm.images.edit import apply_edits, render_scalar
from gitops_helm.images.find import find_in_file
from gitops_helm.images.locate import compose, scalar_text
from gitops_helm.images.model import ReleaseId, Role, ScalarEdit
from gitops_helm.images.policy import parse_policy_file

CORPUS = sorted((Path(__file__).parent / "data" / "images").glob("*.yaml"))
NEW = "Q9Q"
DECLARED, _ = parse_policy_file(
    {
        "policies": [
            {"name": "flux-system:app", "image": "ghcr.io/org/app"},
            {"name": "flux-system:proxy", "image": "ghcr.io/org/proxy"},
        ]
    },
    "policies.yaml",
)


def changed_bytes(before: bytes, after: bytes) -> tuple[bytes, bytes]:
    """The differing middle of two byte strings (after removing the common prefix and suffix)."""
    start = 0
    while start < min(len(before), len(after)) and before[start] == after[start]:
        start += 1
    end = 0
    while end < min(len(before), len(after)) - start and before[-1 - end] == after[-1 - end]:
        end += 1
    return before[start : len(before) - end], after[start : len(after) - end]


def test_the_corpus_has_every_kind_of_file() -> None:
    data = b"".join(p.read_bytes() for p in CORPUS)
    for feature in (
        b"\r\n",
        b"\xef\xbb\xbf",
        b"&",
        b"*",
        b"{",
        b"|",
        b">",
        b'# {"$imagepolicy"',
        b"'",
        b'"',
        b"---",
    ):
        assert feature in data, feature
    assert any(not p.read_bytes().endswith(b"\n") for p in CORPUS)


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.name)
def test_every_edit_changes_only_the_tag_bytes(path: Path) -> None:
    data = path.read_bytes()
    automations = find_in_file(path.name, data, DECLARED).automations
    assert automations, "every corpus file has images"
    all_edits = []
    for automation in automations:
        edits = automation.image.edits(NEW)
        assert len(edits) == 1
        result = apply_edits(data, edits)
        assert result.failed == ()
        old, new = changed_bytes(data, result.data)
        assert (old, new) == (automation.image.ref.tag.encode(), NEW.encode())
        all_edits.extend(edits)
    together = apply_edits(data, all_edits)
    assert len(together.applied) == len(all_edits)
    again = find_in_file(path.name, together.data, DECLARED).automations
    assert [a.image.ref.tag for a in again] == [NEW] * len(automations)
    # nothing else changed: same length difference as the tags, same line endings and ending
    assert together.data.count(b"\r\n") == data.count(b"\r\n")
    assert together.data.endswith(b"\n") == data.endswith(b"\n")


def test_a_stale_edit_fails_and_the_others_are_made() -> None:
    path = CORPUS[[p.name for p in CORPUS].index("multi-doc.yaml")]
    data = path.read_bytes()
    release = ReleaseId("podinfo", "podinfo", 1)
    stale = ScalarEdit(release, ("spec", "values", "image", "tag"), "6.4.0", "6.5.2")
    good = ScalarEdit(release, ("spec", "values", "redis", "image"), "docker.io/library/redis:7.2.4", "x/y:1")
    gone = ScalarEdit(
        ReleaseId("podinfo", "renamed", 1), ("spec", "values", "image", "tag"), "6.5.1", "6.5.2"
    )
    moved = ScalarEdit(release, ("spec", "values", "image", "version"), "6.5.1", "6.5.2")
    result = apply_edits(data, [stale, good, gone, moved])
    assert result.applied == (good,)
    assert [str(f) for f in result.failed] == [
        "HelmRelease podinfo/podinfo spec.values.image.tag: now reads '6.5.1', not '6.4.0' "
        "(the file changed since the scan)",
        "HelmRelease podinfo/renamed spec.values.image.tag: "
        "no HelmRelease podinfo/renamed in the file any more",
        "HelmRelease podinfo/podinfo spec.values.image.version: not in the file any more "
        "(the file changed since the scan)",
    ]
    assert changed_bytes(data, result.data) == (b"docker.io/library/redis:7.2.4", b"x/y:1")


def test_aliases_block_scalars_and_non_strings_are_never_edited() -> None:
    data = (
        b"apiVersion: helm.fluxcd.io/v1\nkind: HelmRelease\nmetadata: {name: a}\nspec:\n  values:\n"
        b"    base: &b {tag: '1.0'}\n    copy: *b\n    block: |\n      1.0\n    num: 1.0\n"
    )
    release = ReleaseId(None, "a", 0)
    edits = [
        ScalarEdit(release, ("spec", "values", "copy", "tag"), "1.0", "2.0"),
        ScalarEdit(release, ("spec", "values", "block"), "1.0\n", "2.0"),
        ScalarEdit(release, ("spec", "values", "num"), "1.0", "2.0"),
    ]
    result = apply_edits(data, edits)
    assert result.data == data
    reasons = [f.reason for f in result.failed]
    assert "shared through a YAML alias" in reasons[0]
    assert reasons[1] == "is a block scalar; not edited"
    assert reasons[2] == "is no longer a string value (the file changed since the scan)"


@pytest.mark.parametrize(
    ("new", "style", "written"),
    [
        ("1.2.3", None, "1.2.3"),
        ("1.10", None, '"1.10"'),  # plain would be a float
        ("true", None, '"true"'),
        ("1.10", "'", "'1.10'"),
        ("it's", "'", "'it''s'"),
        ("1.10", '"', '"1.10"'),
        ("repo/app:1.0@sha256:" + "a" * 64, None, "repo/app:1.0@sha256:" + "a" * 64),
    ],
)
def test_quoting_style_is_kept(new: str, style: str | None, written: str) -> None:
    assert render_scalar(new, style) == written


_key = st.from_regex(r"\A[a-z][a-zA-Z0-9]{0,8}\Z")
_leaf = st.one_of(st.integers(-5, 5), st.booleans(), st.from_regex(r"\A[a-z][a-z0-9 ._-]{0,10}\Z"), st.none())
_tree = st.recursive(
    st.dictionaries(_key, _leaf, max_size=4),
    lambda inner: st.dictionaries(_key, inner, max_size=4),
    max_leaves=12,
)
_tag = st.from_regex(r"\A[A-Za-z0-9_][A-Za-z0-9_.-]{0,15}\Z")
_style = st.sampled_from(["", "'", '"'])


def _quoted(text: str, style: str) -> str:
    if style == "'":
        return "'" + text.replace("'", "''") + "'"
    if style == '"':
        return json.dumps(text)
    return text


@settings(max_examples=150, deadline=None)
@given(_tree, _tree, _tag, _tag, _style, st.booleans())
def test_edit_then_reparse_gives_the_new_tag_and_every_other_value_equal(
    before: dict[str, object], after: dict[str, object], old: str, new: str, style: str, crlf: bool
) -> None:
    probe = compose(f"k: {old}".encode()).lookup(0, ("k",))
    if not style and (probe is None or scalar_text(probe.node) != old):
        # an unquoted 1.10 (or N, a YAML 1.1 bool as Kubernetes reads it) is not a tag: the
        # finder skips it, so the editor never sees it
        style = '"'
    before.pop("image", None)
    after.pop("image", None)
    head = yaml.safe_dump(
        {"apiVersion": "helm.fluxcd.io/v1", "kind": "HelmRelease", "metadata": {"name": "r"}}
    )
    values = yaml.safe_dump({"before": before}, default_flow_style=False)
    tail = yaml.safe_dump({"after": after}, default_flow_style=False)
    text = (
        head
        + "spec:\n  values:\n"
        + "".join("    " + line + "\n" for line in values.splitlines())
        + f"    image:\n      repository: repo/app  # the app\n      tag: {_quoted(old, style)}\n"
        + "".join("    " + line + "\n" for line in tail.splitlines())
        + "---\nkind: ConfigMap\n"
    )
    data = text.replace("\n", "\r\n").encode() if crlf else text.encode()
    original = yamlio.load_all(data)
    result = apply_edits(
        data, [ScalarEdit(ReleaseId(None, "r", 0), ("spec", "values", "image", "tag"), old, new)]
    )
    assert result.failed == ()
    edited = yamlio.load_all(result.data)
    assert edited[0].data["spec"]["values"]["image"]["tag"] == new
    edited[0].data["spec"]["values"]["image"]["tag"] = old
    assert [d.data for d in edited] == [d.data for d in original]
    assert result.data.count(b"\r\n") == data.count(b"\r\n")


def test_finder_edits_cover_each_role() -> None:
    path = CORPUS[[p.name for p in CORPUS].index("setters.yaml")]
    automations = find_in_file(path.name, path.read_bytes(), DECLARED).automations
    roles = {f.role for a in automations for f in a.image.fields}
    assert {Role.TAG, Role.REPOSITORY, Role.REF} <= roles
    (edit,) = automations[0].image.edits("4.1.0")
    assert edit.path[-1] == "tag"  # the :name marker is never rewritten
