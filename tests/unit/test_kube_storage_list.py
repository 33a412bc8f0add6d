"""The revisions a list of Helm storage Secrets describes, read from its metadata only."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from gitops_helm.adapters.kube import stored_revisions


def item(name: str | None, labels: Any, created: Any = "2026-12-01T10:00:00Z") -> dict[str, Any]:
    meta: dict[str, Any] = {"labels": labels, "creationTimestamp": created}
    if name is not None:
        meta["name"] = name
    return {"metadata": meta}


def test_metadata_list_gives_revisions_oldest_first_with_their_labels_and_creation_time() -> None:
    listed = {
        "kind": "PartialObjectMetadataList",
        "apiVersion": "meta.k8s.io/v1",
        "items": [
            item("sh.helm.release.v1.web.v10", {"name": "web", "version": "10", "status": "deployed"}),
            item("sh.helm.release.v1.web.v9", {"name": "web", "version": "9", "status": "superseded"}),
        ],
    }
    found = stored_revisions(listed, "apps", "web")
    assert [(r.revision, r.status, r.secret_name) for r in found] == [
        (9, "superseded", "sh.helm.release.v1.web.v9"),
        (10, "deployed", "sh.helm.release.v1.web.v10"),
    ]
    assert found[0].labels["name"] == "web" and found[0].namespace == "apps" and found[0].name == "web"
    assert found[0].created == 1796119200.0


def test_items_that_are_no_revision_are_left_out() -> None:
    listed = {
        "items": [
            item(None, {"version": "1"}),  # no name
            item("sh.helm.release.v1.web.vx", {"version": "x"}),  # version not a number
            item("sh.helm.release.v1.web.v2", None, created=None),  # no labels, no time
            "not an object",
            {"metadata": "not an object"},
        ]
    }
    found = stored_revisions(listed, "apps", "web")
    assert [(r.revision, r.status, r.created) for r in found] == [(0, "unknown", None)]


def test_an_answer_without_items_lists_no_revision() -> None:
    assert stored_revisions({}, "apps", "web") == []
    assert stored_revisions({"items": None}, "apps", "web") == []
    assert stored_revisions([], "apps", "web") == []


@given(st.lists(st.integers(min_value=1, max_value=10_000), unique=True))
def test_every_numbered_revision_is_listed_once_in_order(revisions: list[int]) -> None:
    listed = {"items": [item(f"v{n}", {"version": str(n), "status": "superseded"}) for n in revisions]}
    found = stored_revisions(listed, "apps", "web")
    assert [r.revision for r in found] == sorted(revisions)
    assert all(r.secret_name == f"v{r.revision}" for r in found)
