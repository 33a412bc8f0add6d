"""Unit tests of manifest discovery (gitops_helm.sync.discover) on fixture checkouts and tmp trees."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from gitops_helm.sync import discover as manifests
from gitops_helm.sync.discover import discover, object_key
from gitops_helm.sync.model import Discovery, IgnorePolicy, ObjectKey, ignore_policy

DATA = Path(__file__).parent / "data" / "manifests"
REPO = DATA / "repo"
BROKEN = DATA / "broken"
DUPS = DATA / "dups"

CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n"


def listing(discovery: Discovery) -> list[str]:
    return [f"{m.origin} {m.key}" for m in discovery.objects]


def errors(discovery: Discovery) -> list[str]:
    return [str(e) for e in discovery.errors]


def write(root: Path, rel: str, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# --- the valid fixture checkout ---------------------------------------------------------------


def test_discovers_every_object_with_its_origin() -> None:
    result = discover(REPO)

    assert result.complete
    assert errors(result) == []
    assert listing(result) == [
        "apps/ignored.yaml:9 ConfigMap apps/keep-me",
        "apps/list.yaml:4 ConfigMap apps/tcp-services",
        "apps/list.yaml:11 Secret apps/web-token",
        "apps/list.yaml:22 ServiceAccount apps/web",
        "apps/nested/deep/crd.yml:1 CustomResourceDefinition.apiextensions.k8s.io widgets.example.com",
        "apps/nested/widget.yaml:1 Widget.example.com sprocket",
        "apps/web.yaml:1 Deployment.apps apps/web",
        "apps/web.yaml:15 Service apps/web",
        "namespaces.yaml:3 Namespace apps",
        "namespaces.yaml:11 Namespace monitoring",
        "releases/podinfo.yaml:1 HelmRelease.helm.fluxcd.io apps/podinfo",
        "releases/podinfo.yaml:14 HelmRelease.helm.toolkit.fluxcd.io apps/podinfo-v2",
        "releases/rbac.yaml:1 RoleBinding.rbac.authorization.k8s.io apps/web",
        "releases/rbac.yaml:15 Role.rbac.authorization.k8s.io apps/web",
        "releases/rbac.yaml:22 ClusterRole.rbac.authorization.k8s.io widget-reader",
    ]


def test_skips_hidden_entries_chart_directories_and_other_files() -> None:
    # .github/workflows/ci.yml and the chart's templates would not parse as manifests;
    # README.md is not YAML; kustomization.yaml is read but is not a cluster object.
    assert discover(REPO).files == (
        "apps/ignored.yaml",
        "apps/kustomization.yaml",
        "apps/list.yaml",
        "apps/nested/deep/crd.yml",
        "apps/nested/widget.yaml",
        "apps/web.yaml",
        "namespaces.yaml",
        "releases/podinfo.yaml",
        "releases/rbac.yaml",
    )


def test_values_are_decoded_like_kubernetes_does() -> None:
    objects = discover(REPO).objects
    by_name = {m.key.name: m for m in objects}
    web = next(m for m in objects if m.key.kind == "Deployment")
    # a YAML timestamp stays the string that was written
    assert web.body["spec"]["template"]["metadata"]["annotations"]["deployed"] == "2024-01-02"
    # a numeric mapping key becomes a string (ingress-nginx tcp-services ConfigMaps)
    assert by_name["tcp-services"].body["data"] == {"8080": "apps/web:80"}
    assert by_name["tcp-services"].api_version == "v1"


def test_ignore_annotation_true_skips_the_object_but_protects_its_key() -> None:
    result = discover(REPO)
    legacy = ObjectKey("apps", "Deployment", "apps", "legacy")

    assert [f"{m.origin} {m.key}" for m in result.ignored] == [
        "apps/ignored.yaml:1 Deployment.apps apps/legacy"
    ]
    assert result.ignored[0].ignore is IgnorePolicy.IGNORE
    assert legacy not in {m.key for m in result.objects}
    assert result.protected == {legacy}
    assert legacy in result.declared_keys


def test_ignore_sync_only_is_applied_and_keeps_its_annotation() -> None:
    keep = next(m for m in discover(REPO).objects if m.key.name == "keep-me")
    assert keep.ignore is IgnorePolicy.SYNC_ONLY
    assert keep.body["metadata"]["annotations"] == {"fluxcd.io/ignore": "sync_only"}


def test_only_helmreleases_keeps_helm_fluxcd_io_v1_releases() -> None:
    result = discover(REPO, only_helmreleases=True)
    assert result.complete
    assert listing(result) == ["releases/podinfo.yaml:1 HelmRelease.helm.fluxcd.io apps/podinfo"]
    assert result.objects[0].is_helmrelease
    assert result.ignored == ()


def test_paths_select_subtrees_and_overlapping_paths_read_each_file_once() -> None:
    result = discover(REPO, ["releases/podinfo.yaml", "apps/nested", "apps/nested/deep", "./apps/nested/"])
    assert result.complete
    assert result.files == ("apps/nested/deep/crd.yml", "apps/nested/widget.yaml", "releases/podinfo.yaml")
    assert errors(result) == []


def test_a_chart_directory_given_as_path_is_skipped() -> None:
    result = discover(REPO, ["charts/mychart"])
    assert result.complete
    assert result.files == ()


# --- paths that cannot be read -----------------------------------------------------------------


def test_bad_paths_are_errors_and_make_the_discovery_incomplete() -> None:
    result = discover(REPO, ["nope", "../outside", "/etc", "releases/../../x", "releases"])
    assert errors(result) == [
        "/etc: path must be relative to the checkout",
        "../outside: path escapes the checkout",
        "nope: path does not exist",
        "releases/../../x: path escapes the checkout",
    ]
    assert not result.complete
    # the readable path is still read
    assert [m.key.name for m in result.objects] == ["podinfo", "podinfo-v2", "web", "web", "widget-reader"]


def test_missing_checkout_root(tmp_path: Path) -> None:
    result = discover(tmp_path / "absent")
    assert errors(result) == [".: checkout root is not a directory"]
    assert not result.complete


# --- broken content ----------------------------------------------------------------------------


def test_broken_files_are_reported_with_file_and_line() -> None:
    result = discover(BROKEN)
    assert errors(result) == [
        "bad.yaml:14: invalid YAML: did not find expected ',' or ']'"
        " (while parsing a flow sequence at line 13)",
        "dupkey.yaml:7: duplicate mapping key 'metadata' (first at line 3)",
        "invalid.yaml:1: document is not a mapping (found a sequence)",
        "invalid.yaml:4: missing kind",
        "invalid.yaml:8: missing metadata.name",
        "invalid.yaml:13: metadata.labels must be a mapping",
        "invalid.yaml:20: document is not a mapping (found a string)",
        "invalid.yaml:22: List: items must be a sequence",
    ]
    assert not result.complete
    # the valid file next to the broken ones is read; a file that does not parse gives nothing,
    # not even the valid document before the error
    assert listing(result) == ["good.yaml:1 ConfigMap apps/good"]
    # an object whose identity is known but which is invalid is protected from GC
    assert result.protected == {ObjectKey("", "ConfigMap", "apps", "bad-labels")}
    assert result.errors[5].key == ObjectKey("", "ConfigMap", "apps", "bad-labels")


def test_duplicates_report_both_locations_apply_neither_and_stay_complete() -> None:
    result = discover(DUPS)
    shared = ObjectKey("", "ConfigMap", "apps", "shared")
    assert errors(result) == [
        "a.yaml:1: duplicate object ConfigMap apps/shared (also defined at b/b.yaml:2)",
        "b/b.yaml:2: duplicate object ConfigMap apps/shared (also defined at a.yaml:1)",
    ]
    assert listing(result) == ["a.yaml:8 ConfigMap apps/unique"]
    assert result.complete
    assert result.protected == {shared}
    assert result.declared_keys == {shared, ObjectKey("", "ConfigMap", "apps", "unique")}


def test_three_duplicates_name_all_other_locations(tmp_path: Path) -> None:
    write(tmp_path, "x.yaml", "\n---\n".join(CONFIGMAP.format(name="a") for _ in range(3)))
    assert errors(discover(tmp_path)) == [
        "x.yaml:1: duplicate object ConfigMap a (also defined at x.yaml:7, x.yaml:13)",
        "x.yaml:7: duplicate object ConfigMap a (also defined at x.yaml:1, x.yaml:13)",
        "x.yaml:13: duplicate object ConfigMap a (also defined at x.yaml:1, x.yaml:7)",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: 1\n\tb: 2\n", "x.yaml:2: invalid YAML: "),
        ("{? [a]: 1}\n", "x.yaml:1: invalid YAML: unsupported map key of type list"),
        ("kind: ConfigMap\nmetadata: !custom {name: a}\n", "x.yaml:2: invalid YAML: "),
        ("a: *missing\n", "x.yaml:1: invalid YAML: "),
        ("ok: 1\nbad: \x01\n", "x.yaml:2: invalid YAML: "),
    ],
)
def test_yaml_errors_name_the_line(tmp_path: Path, text: str, message: str) -> None:
    write(tmp_path, "x.yaml", text)
    result = discover(tmp_path)
    assert len(result.errors) == 1
    assert str(result.errors[0]).startswith(message)
    assert not result.complete


def test_control_character_message(tmp_path: Path) -> None:
    write(tmp_path, "x.yaml", "ok: 1\nbad: \x01\n")
    assert errors(discover(tmp_path)) == [
        "x.yaml:2: invalid YAML: control characters are not allowed (character #x0001)"
    ]


def test_file_that_is_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "x.yaml").write_bytes(b"a: 1\nb: \xff\n")
    result = discover(tmp_path)
    assert errors(result) == ["x.yaml:2: file is not valid UTF-8"]
    assert not result.complete


def test_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    (tmp_path / "x.yaml").write_bytes(b"\xef\xbb\xbf" + CONFIGMAP.format(name="a").encode())
    assert listing(discover(tmp_path)) == ["x.yaml:1 ConfigMap a"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("apiVersion: v1\nkind: ConfigMap\n", "missing metadata"),
        ("kind: ConfigMap\nmetadata: {name: a}\n", "missing apiVersion"),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: [a]\n", "metadata must be a mapping"),
        ("apiVersion: a/b/c\nkind: X\nmetadata: {name: a}\n", "invalid apiVersion 'a/b/c'"),
        ("apiVersion: v1\nkind: 3\nmetadata: {name: a}\n", "invalid kind 3"),
        ("apiVersion: v1\nkind: X\nmetadata: {name: 1}\n", "invalid metadata.name 1"),
        (
            "apiVersion: v1\nkind: X\nmetadata: {name: a, namespace: [b]}\n",
            "invalid metadata.namespace ['b']",
        ),
        ("metadata: {}\n", "missing apiVersion; missing kind; missing metadata.name"),
    ],
)
def test_invalid_objects(tmp_path: Path, text: str, message: str) -> None:
    write(tmp_path, "x.yaml", text)
    result = discover(tmp_path)
    assert len(result.errors) == 1
    assert str(result.errors[0]).startswith(f"x.yaml:1: {message}")
    assert not result.complete
    assert result.objects == ()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("{x: .nan}", "x.yaml:4: unsupported number nan"),
        ("!!set {a}", "x.yaml:4: unsupported YAML value of type set"),
        (
            "{1: a, '1': b}",
            "x.yaml:4: duplicate mapping key '1' after conversion to string (first at line 4)",
        ),
    ],
)
def test_values_json_cannot_hold_are_reported_at_their_own_line(
    tmp_path: Path, spec: str, message: str
) -> None:
    # the decoder (yamlio) names the line of the value, not the line where the document starts
    write(tmp_path, "x.yaml", f"apiVersion: v1\nkind: X\nmetadata: {{name: a}}\nspec: {spec}\n")
    result = discover(tmp_path)
    assert errors(result) == [message]
    assert not result.complete
    assert result.objects == ()


def test_a_file_with_one_undecodable_document_gives_no_object(tmp_path: Path) -> None:
    write(
        tmp_path,
        "x.yaml",
        CONFIGMAP.format(name="a") + "---\n" + CONFIGMAP.format(name="b") + "data: {x: .inf}\n",
    )
    result = discover(tmp_path)
    assert errors(result) == ["x.yaml:10: unsupported number inf"]
    assert result.objects == ()
    assert not result.complete


def test_alias_bomb_is_bounded(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    write(tmp_path, "bomb.yaml", "\n".join(lines) + "\n")
    assert errors(discover(tmp_path)) == [
        "bomb.yaml:1: document expands to more than 1000000 values (YAML aliases?)"
    ]


def test_recursive_alias_is_bounded(tmp_path: Path) -> None:
    write(tmp_path, "loop.yaml", "&a [*a]\n")
    assert errors(discover(tmp_path)) == ["loop.yaml:1: document is nested more than 400 levels deep"]


def test_binary_values_become_base64_and_scalar_keys_strings(tmp_path: Path) -> None:
    write(
        tmp_path,
        "x.yaml",
        CONFIGMAP.format(name="a")
        + "binaryData:\n  b: !!binary aGk=\ndata: {true: a, null: b, 1.5: c, 7: d}\n",
    )
    body = discover(tmp_path).objects[0].body
    assert body["binaryData"] == {"b": "aGk="}
    assert body["data"] == {"true": "a", "null": "b", "1.5": "c", "7": "d"}


def test_float_keys_are_strings_as_kubernetes_writes_them(tmp_path: Path) -> None:
    # sigs.k8s.io/yaml: strconv.FormatFloat(key, 'g', -1, 32), and .inf/-.inf/.nan
    write(
        tmp_path, "x.yaml", CONFIGMAP.format(name="a") + "data: {1.0: a, 1000000.0: b, .inf: c, -.inf: d}\n"
    )
    body = discover(tmp_path).objects[0].body
    assert body["data"] == {"1": "a", "1e+06": "b", ".inf": "c", "-.inf": "d"}


def test_lists_nested_empty_and_typed(tmp_path: Path) -> None:
    write(
        tmp_path,
        "x.yaml",
        "kind: List\nitems:\n"
        "- kind: List\n  items:\n  - {apiVersion: v1, kind: ConfigMap, metadata: {name: inner}}\n"
        "- {apiVersion: v1, kind: ConfigMap, metadata: {name: outer}}\n"
        "---\nkind: List\nitems: []\n---\napiVersion: v1\nkind: List\n"
        "---\napiVersion: v1\nkind: ConfigMapList\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n"
        "  metadata: {name: typed}\n",
    )
    result = discover(tmp_path)
    assert errors(result) == []
    assert listing(result) == [
        "x.yaml:5 ConfigMap inner",
        "x.yaml:6 ConfigMap outer",
        "x.yaml:17 ConfigMap typed",
    ]


def test_a_kind_ending_in_list_without_items_is_an_object(tmp_path: Path) -> None:
    write(tmp_path, "x.yaml", "apiVersion: example.com/v1\nkind: AccessList\nmetadata: {name: a}\n")
    assert listing(discover(tmp_path)) == ["x.yaml:1 AccessList.example.com a"]


def test_list_items_merged_from_elsewhere_keep_their_own_line(tmp_path: Path) -> None:
    write(
        tmp_path,
        "x.yaml",
        "base: &items\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}\n"
        "---\nkind: List\n<<: {items: [{apiVersion: v1, kind: ConfigMap, metadata: {name: b}}]}\n",
    )
    result = discover(tmp_path)
    assert errors(result) == ["x.yaml:1: missing apiVersion; missing kind; missing metadata"]
    assert listing(result) == ["x.yaml:5 ConfigMap b"]


def test_empty_files_and_documents(tmp_path: Path) -> None:
    write(tmp_path, "empty.yaml", "")
    write(tmp_path, "blank.yml", "---\n# nothing\n---\n...\n")
    result = discover(tmp_path)
    assert result.complete
    assert result.objects == ()
    assert result.files == ("blank.yml", "empty.yaml")


def test_an_explicit_file_is_read_whatever_its_extension(tmp_path: Path) -> None:
    write(tmp_path, "manifest.txt", CONFIGMAP.format(name="a"))
    assert listing(discover(tmp_path, ["manifest.txt"])) == ["manifest.txt:1 ConfigMap a"]
    assert discover(tmp_path).files == ()


def test_legacy_ignore_annotation_and_unquoted_true(tmp_path: Path) -> None:
    write(
        tmp_path,
        "x.yaml",
        CONFIGMAP.format(name="a")
        + "  annotations: {flux.weave.works/ignore: 'true'}\n---\n"
        + CONFIGMAP.format(name="b")
        + "  annotations: {fluxcd.io/ignore: true}\n---\n"
        + CONFIGMAP.format(name="c")
        + "  annotations: {fluxcd.io/ignore: 'false'}\n",
    )
    result = discover(tmp_path)
    assert [m.key.name for m in result.ignored] == ["a", "b"]
    assert [m.key.name for m in result.objects] == ["c"]


def test_only_helmreleases_still_reports_unidentifiable_documents(tmp_path: Path) -> None:
    write(tmp_path, "x.yaml", "kind: HelmRelease\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Secret\n")
    result = discover(tmp_path, only_helmreleases=True)
    # the document without apiVersion may be a broken HelmRelease; the Secret is not ours
    assert errors(result) == ["x.yaml:1: missing apiVersion"]
    assert not result.complete


# --- symbolic links ----------------------------------------------------------------------------


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    root = tmp_path / "checkout"
    write(root, "apps/a.yaml", CONFIGMAP.format(name="a"))
    write(tmp_path, "outside/secret.yaml", CONFIGMAP.format(name="outside"))
    return root


def test_symlinked_file_outside_the_checkout_is_an_error(checkout: Path) -> None:
    (checkout / "apps" / "leak.yaml").symlink_to(checkout.parent / "outside" / "secret.yaml")
    result = discover(checkout)
    assert errors(result) == ["apps/leak.yaml: symbolic link points outside the checkout"]
    assert listing(result) == ["apps/a.yaml:1 ConfigMap a"]
    assert not result.complete


def test_symlinked_directory_outside_the_checkout_is_an_error(checkout: Path) -> None:
    (checkout / "apps" / "more").symlink_to(checkout.parent / "outside")
    result = discover(checkout)
    assert errors(result) == ["apps/more: symbolic link points outside the checkout"]
    assert "outside" not in {m.key.name for m in result.objects}
    # given as a path, or reached through it
    result = discover(checkout, ["apps/more", "apps/more/secret.yaml"])
    assert errors(result) == [
        "apps/more: symbolic link points outside the checkout",
        "apps/more/secret.yaml: symbolic link points outside the checkout",
    ]
    assert result.objects == ()


def test_checkout_root_reached_through_a_symlink(checkout: Path) -> None:
    alias = checkout.parent / "alias"
    alias.symlink_to(checkout)
    assert listing(discover(alias)) == ["apps/a.yaml:1 ConfigMap a"]


def test_symlinks_inside_the_checkout_are_followed_once(checkout: Path) -> None:
    (checkout / "apps" / "z-link.yaml").symlink_to("a.yaml")
    (checkout / "mirror").symlink_to("apps")
    (checkout / "apps" / "loop").symlink_to("..")
    result = discover(checkout)
    assert errors(result) == []
    assert result.files == ("apps/a.yaml",)
    assert listing(result) == ["apps/a.yaml:1 ConfigMap a"]


def test_broken_symlinks(checkout: Path) -> None:
    (checkout / "apps" / "gone.yaml").symlink_to("nowhere.yaml")
    (checkout / "apps" / "gone-dir").symlink_to("nowhere")
    result = discover(checkout)
    assert errors(result) == ["apps/gone.yaml: broken symbolic link"]
    assert errors(discover(checkout, ["apps/gone-dir"])) == ["apps/gone-dir: broken symbolic link"]


def test_unreadable_file_and_directory(checkout: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(checkout, "locked/x.yaml", CONFIGMAP.format(name="x"))
    real_open, real_scandir = open, os.scandir

    def deny_open(path: str, mode: str = "r") -> object:
        if path.endswith("a.yaml"):
            raise PermissionError(13, "Permission denied")
        return real_open(path, mode)

    def deny_scandir(path: str) -> object:
        if path.endswith("locked"):
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    monkeypatch.setattr(manifests, "open", deny_open, raising=False)
    monkeypatch.setattr(os, "scandir", deny_scandir)
    result = discover(checkout)
    monkeypatch.undo()
    assert errors(result) == [
        "apps/a.yaml: cannot read file: Permission denied",
        "locked: cannot read directory: Permission denied",
    ]
    assert not result.complete


# --- object_key and ignore_policy --------------------------------------------------------------


def test_object_key_of_a_live_object() -> None:
    live = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "apps"}}
    key = object_key(live)
    assert key == ObjectKey("apps", "Deployment", "apps", "web")
    assert str(key) == "Deployment.apps apps/web"
    assert object_key({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}}) == ObjectKey(
        "", "Namespace", "", "a"
    )
    with pytest.raises(ValueError, match=r"^missing kind; missing metadata\.name$"):
        object_key({"apiVersion": "v1", "metadata": {}})


def test_effective_key_fills_only_an_empty_namespace() -> None:
    key = ObjectKey("apps", "Deployment", "", "web")
    assert key.effective("prod") == ObjectKey("apps", "Deployment", "prod", "web")
    assert key.effective("") is key
    placed = ObjectKey("apps", "Deployment", "apps", "web")
    assert placed.effective("prod") is placed


@pytest.mark.parametrize(
    ("metadata", "policy"),
    [
        (None, IgnorePolicy.NONE),
        ("junk", IgnorePolicy.NONE),
        ({"annotations": None}, IgnorePolicy.NONE),
        ({"annotations": ["fluxcd.io/ignore"]}, IgnorePolicy.NONE),
        ({"annotations": {"fluxcd.io/ignore": "true"}}, IgnorePolicy.IGNORE),
        ({"annotations": {"fluxcd.io/ignore": True}}, IgnorePolicy.IGNORE),
        ({"annotations": {"fluxcd.io/ignore": "sync_only"}}, IgnorePolicy.SYNC_ONLY),
        ({"annotations": {"flux.weave.works/ignore": "sync_only"}}, IgnorePolicy.SYNC_ONLY),
        ({"annotations": {"fluxcd.io/ignore": "false"}}, IgnorePolicy.NONE),
        ({"annotations": {"fluxcd.io/ignore": "TRUE"}}, IgnorePolicy.NONE),
    ],
)
def test_ignore_policy(metadata: object, policy: IgnorePolicy) -> None:
    assert ignore_policy(metadata) is policy


# --- properties --------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=300))
def test_any_file_content_gives_a_result_never_an_exception(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "x.yaml").write_text(text, encoding="utf-8")
        result = discover(tmp)
    assert result.files == ("x.yaml",)
    for error in result.errors:
        assert error.path == "x.yaml"
        # YAML breaks lines at \r, \x85, \u2028 and \u2029 as well as \n (str.splitlines agrees)
        assert error.line is None or 1 <= error.line <= len(text.splitlines()) + 2
        if error.key is None:
            assert not result.complete
    assert len({m.key for m in result.objects}) == len(result.objects)


_names = st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True)
_data = st.dictionaries(_names, st.text(max_size=20) | st.integers() | st.booleans(), max_size=4)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(_names, st.none() | _names, _data), max_size=6), st.booleans())
def test_written_objects_are_found_at_their_lines(
    specs: list[tuple[str, str | None, dict[str, object]]], as_list: bool
) -> None:
    documents = []
    for name, namespace, data in specs:
        metadata = {"name": name} if namespace is None else {"name": name, "namespace": namespace}
        documents.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data})
    if as_list:
        text = yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": documents}, sort_keys=False)
    else:
        text = yaml.safe_dump_all(documents, sort_keys=False, explicit_start=True)
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "x.yaml").write_text(text, encoding="utf-8")
        result = discover(tmp)

    keys = [ObjectKey("", "ConfigMap", ns or "", name) for name, ns, _ in specs]
    unique = {k for k in keys if keys.count(k) == 1}
    assert result.complete
    assert {m.key for m in result.objects} == unique
    assert result.protected == set(keys) - unique
    lines = text.splitlines()
    for manifest in result.objects:
        assert manifest.body == documents[keys.index(manifest.key)]
        assert lines[manifest.origin.line - 1].lstrip("- ").startswith("apiVersion: v1")
