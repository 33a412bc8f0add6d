"""Pure parts of drift detection: which differences count, and manifest splitting."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from gitops_helm.release.drift import Drift, detect_drift, differences, manifest_objects

DEPLOY = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "apps", "resourceVersion": "12", "managedFields": [{"x": 1}]},
    "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "c", "image": "img:1"}]}}},
    "status": {"readyReplicas": 2},
}


def _with(obj: dict[str, Any], **spec: Any) -> dict[str, Any]:
    out = {**obj, "spec": {**obj["spec"], **spec}}
    return out


def test_equal_objects_have_no_differences_whatever_the_server_owned_fields() -> None:
    live = {**DEPLOY, "metadata": {**DEPLOY["metadata"], "resourceVersion": "99", "generation": 4}}
    live["status"] = {"readyReplicas": 0}
    assert differences(DEPLOY, live) == ()


def test_changed_scalar_is_reported_as_a_json_pointer() -> None:
    assert differences(DEPLOY, _with(DEPLOY, replicas=5)) == ("/spec/replicas",)


def test_changed_list_item_and_added_field() -> None:
    live = _with(DEPLOY, template={"spec": {"containers": [{"name": "c", "image": "img:2"}]}}, paused=True)
    assert differences(DEPLOY, live) == ("/spec/paused", "/spec/template/spec/containers/0/image")


def test_ignore_pointer_hides_that_subtree_only() -> None:
    live = _with(DEPLOY, replicas=5, paused=True)
    assert differences(DEPLOY, live, ["/spec/replicas"]) == ("/spec/paused",)


def test_keys_with_slashes_are_escaped() -> None:
    a = {"metadata": {"annotations": {"a/b": "1"}}}
    b = {"metadata": {"annotations": {"a/b": "2"}}}
    assert differences(a, b) == ("/metadata/annotations/a~1b",)


@given(
    st.recursive(
        st.integers() | st.text(max_size=5), lambda c: st.dictionaries(st.text(max_size=4), c, max_size=4)
    )
)
def test_an_object_never_differs_from_itself(value: Any) -> None:
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": value}
    assert differences(obj, obj) == ()


def test_manifest_objects_flattens_lists_and_skips_empty_documents() -> None:
    manifest = (
        "---\n# Source: chart/templates/a.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n"
        "---\n\n---\napiVersion: v1\nkind: List\n"
        "items:\n- {apiVersion: v1, kind: Secret, metadata: {name: s}}\n"
    )
    assert [o["metadata"]["name"] for o in manifest_objects(manifest)] == ["a", "s"]


class FakeKube:
    """Stands in for the API server's answers (the real one is used in integration tests)."""

    def __init__(self, live: dict[str, dict[str, Any]], normalised: dict[str, dict[str, Any]]) -> None:
        self.live = live
        self.normalised = normalised

    def get(self, api_version: str, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        return self.live.get(name)

    def apply(
        self, obj: Any, field_manager: str, *, dry_run: bool = False, force: bool = True
    ) -> dict[str, Any]:
        assert dry_run and force
        return self.normalised[obj["metadata"]["name"]]

    def is_namespaced(self, api_version: str, kind: str) -> bool:
        return kind != "Namespace"


def test_detect_drift_reports_missing_and_changed_objects() -> None:
    manifest = (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {replicas: 2}\n---\n"
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: gone}\n"
    )
    live = {"web": {**DEPLOY, "spec": {"replicas": 7}}}
    kube = FakeKube(live, {"web": {**DEPLOY, "spec": {"replicas": 2}}})
    drift = detect_drift(kube, manifest, "apps")
    assert drift == [
        Drift("Deployment/apps/web", ("/spec/replicas",)),
        Drift("ConfigMap/apps/gone", ("(missing)",)),
    ]
    assert str(drift[0]) == "Deployment/apps/web: /spec/replicas"
