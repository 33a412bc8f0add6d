"""The offline values reader of ``gitops-helm render``: ConfigMaps and Secrets from manifests, read
by the agent's own values pipeline; and the labelling of helm's output."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gitops_helm import values as values_mod
from gitops_helm.adapters.git import same_repository_url
from gitops_helm.api.spec import ConfigMapValuesSource, SecretValuesSource
from gitops_helm.release.manifest_objects import DeclaredObject, ManifestObjectError, ManifestObjects
from gitops_helm.render import label_sources


def _cm(name: str, data: dict[str, object], namespace: str | None = "apps") -> DeclaredObject:
    meta: dict[str, object] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    return DeclaredObject(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}, "a.yaml:1"
    )


def _secret(name: str, **fields: object) -> DeclaredObject:
    body = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": "apps"}, **fields}
    return DeclaredObject(body, "s.yaml:3")


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class _NoUrls:
    def url(self, url: str) -> bytes:
        raise AssertionError(f"no URL is read here: {url}")

    def chart_file(self, path: str) -> bytes:
        raise values_mod.SourceNotFound(path)


class _Reader(_NoUrls):
    def __init__(self, objects: ManifestObjects) -> None:
        self.objects = objects

    def configmap(self, namespace: str, name: str) -> dict[str, str] | None:
        return self.objects.get_configmap_data(namespace, name)

    def secret(self, namespace: str, name: str) -> dict[str, bytes] | None:
        return self.objects.get_secret_data(namespace, name)


def test_secret_data_is_base64_and_string_data_wins() -> None:
    objects = ManifestObjects(
        [_secret("s", data={"a": _b64("one"), "b": _b64("two")}, stringData={"b": "three"})], "default"
    )
    assert objects.get_secret_data("apps", "s") == {"a": b"one", "b": b"three"}


def test_manifest_without_namespace_is_in_the_default_namespace() -> None:
    objects = ManifestObjects([_cm("v", {"values.yaml": "x: 1"}, namespace=None)], "team")
    assert objects.get_configmap_data("team", "v") == {"values.yaml": "x: 1"}
    assert objects.get_configmap_data("apps", "v") is None


def test_other_kinds_and_undeclared_objects_are_not_found() -> None:
    deployment = DeclaredObject(
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "v", "namespace": "apps"}}, "d:1"
    )
    objects = ManifestObjects([deployment], "default")
    assert objects.get_configmap_data("apps", "v") is None
    assert objects.get_secret_data("apps", "v") is None


def test_bad_base64_names_the_secret_its_file_and_key_never_the_value() -> None:
    objects = ManifestObjects([_secret("s", data={"values.yaml": "not*base64*hunter2"})], "default")
    with pytest.raises(ManifestObjectError) as caught:
        objects.get_secret_data("apps", "s")
    assert str(caught.value) == "Secret apps/s (s.yaml:3): data.values.yaml is not valid base64"


def test_configmap_value_that_is_not_a_string_is_an_error_naming_it() -> None:
    objects = ManifestObjects([_cm("v", {"values.yaml": 5})], "default")
    with pytest.raises(
        ManifestObjectError, match=r"ConfigMap apps/v \(a.yaml:1\): data.values.yaml is not a string"
    ):
        objects.get_configmap_data("apps", "v")


def test_values_pipeline_over_manifests_merges_in_helm_operator_order() -> None:
    objects = ManifestObjects(
        [
            _cm("base", {"values.yaml": "message: base\nreplicaCount: 1\n"}),
            _secret("creds", stringData={"extra.yaml": "image: {tag: '2.0'}\nmessage: secret\n"}),
        ],
        "default",
    )
    spec = values_mod.ValuesSpec(
        namespace="apps",
        values_from=[
            ConfigMapValuesSource(name="base", namespace="apps"),
            SecretValuesSource(name="creds", namespace="apps", key="extra.yaml"),
            ConfigMapValuesSource(name="absent", namespace="apps", optional=True),
        ],
        values={"replicaCount": 3},
    )
    composed = values_mod.compose_values(spec, _Reader(objects))
    assert composed.values == {"message": "secret", "replicaCount": 3, "image": {"tag": "2.0"}}
    assert composed.skipped == ("valuesFrom[2] configMapKeyRef apps/absent key values.yaml: not found",)


def test_a_missing_reference_names_it() -> None:
    spec = values_mod.ValuesSpec(
        namespace="apps", values_from=[ConfigMapValuesSource(name="gone", namespace="apps")]
    )
    with pytest.raises(values_mod.ValuesError) as caught:
        values_mod.compose_values(spec, _Reader(ManifestObjects([], "default")))
    assert str(caught.value) == "valuesFrom[0] configMapKeyRef apps/gone key values.yaml: ConfigMap not found"


def test_a_broken_secret_manifest_fails_its_source_with_the_reason() -> None:
    objects = ManifestObjects([_secret("s", data={"values.yaml": "%%%"})], "default")
    spec = values_mod.ValuesSpec(
        namespace="apps", values_from=[SecretValuesSource(name="s", namespace="apps")]
    )
    with pytest.raises(
        values_mod.ValuesError,
        match=r"secretKeyRef apps/s key values.yaml: cannot read Secret: .*not valid base64",
    ):
        values_mod.compose_values(spec, _Reader(objects))


def test_label_sources_prefixes_every_document_with_the_helmrelease() -> None:
    helm_out = (
        "---\n# Source: hello/templates/a.yaml\napiVersion: v1\nkind: ConfigMap\n"
        "---\n# Source: hello/templates/empty.yaml\n"
        "---\napiVersion: v1\nkind: Service\n"
    )
    assert label_sources(helm_out, "apps/web") == (
        "---\n# Source: apps/web: hello/templates/a.yaml\napiVersion: v1\nkind: ConfigMap\n"
        "---\n# Source: apps/web: (unnamed)\napiVersion: v1\nkind: Service\n"
    )


@given(st.lists(st.sampled_from(["ConfigMap", "Service", "Deployment"]), max_size=6))
def test_label_sources_keeps_every_document(kinds: list[str]) -> None:
    helm_out = "".join(f"---\n# Source: c/templates/{i}.yaml\nkind: {k}\n" for i, k in enumerate(kinds))
    labelled = label_sources(helm_out, "ns/n")
    assert labelled.count("# Source: ns/n: c/templates/") == len(kinds)
    assert [line for line in labelled.splitlines() if line.startswith("kind:")] == [
        f"kind: {k}" for k in kinds
    ]


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("https://git.example/team/config.git", "https://git.example/team/config"),
        ("git@git.example:team/config.git", "ssh://git@git.example/team/config"),
        ("https://user@GIT.example/team/config/", "https://git.example/team/config"),
    ],
)
def test_same_repository_url(a: str, b: str) -> None:
    assert same_repository_url(a, b)


def test_different_repositories_differ() -> None:
    assert not same_repository_url("https://git.example/team/config", "https://git.example/team/other")


@pytest.mark.parametrize("name", ["../../escaped", "..", "a/b", "Upper"])
def test_render_refuses_a_name_that_is_no_object_name(tmp_path: object, name: str) -> None:
    """Offline no API server checks metadata.name, and --output-dir makes it a path: a
    HelmRelease named ``../../escaped`` must fail, never write (or delete) outside the directory."""
    import io
    from pathlib import Path

    from gitops_helm.cli import build_parser
    from gitops_helm.config import settings_from_args
    from gitops_helm.render import RenderOptions, render

    root = Path(str(tmp_path))
    (root / "in").mkdir()
    (root / "in" / "hr.yaml").write_text(
        "apiVersion: helm.fluxcd.io/v1\nkind: HelmRelease\n"
        f"metadata: {{name: {name!r}, namespace: apps}}\n"
        "spec: {releaseName: x, chart: {repository: 'https://charts.example.com', name: c, version: 1.0.0}}\n"
    )
    out = root / "out" / "deep"
    settings = settings_from_args(build_parser().parse_args(["render", str(root / "in")]))
    err = io.StringIO()
    assert render(settings, RenderOptions(path=root / "in", output_dir=out), io.StringIO(), err) == 1
    assert "is not a valid Kubernetes object name" in err.getvalue()
    assert sorted(p.name for p in root.rglob("*.yaml")) == ["hr.yaml"]
