"""The commit a sync records on what it applies (``sync.plan.commit_to_record``): the sync's commit
when the Git text changed, else the one already recorded, so a commit that leaves an object as it
was costs no write."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from gitops_helm.sync.model import Manifest, ObjectKey, Origin
from gitops_helm.sync.plan import (
    CHECKSUM_ANNOTATION,
    COMMIT_ANNOTATION,
    checksum,
    commit_to_record,
    live_commit,
    prepare_for_apply,
)

SOURCE = "default-1234567890"
OLD, NEW = "a" * 40, "b" * 40


def manifest(data: dict[str, str], annotations: dict[str, str] | None = None) -> Manifest:
    metadata: dict[str, Any] = {"name": "a"}
    if annotations is not None:
        metadata["annotations"] = annotations
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data}
    return Manifest(ObjectKey("", "ConfigMap", "", "a"), "v1", body, Origin("a.yaml", 1))


def live(m: Manifest, commit: str | None) -> dict[str, Any]:
    """The metadata of what a sync applied from ``m`` when ``commit`` was recorded."""
    return prepare_for_apply(m, SOURCE, commit)["metadata"]


def test_a_new_object_records_the_sync_commit() -> None:
    assert commit_to_record(manifest({"k": "v"}), {}, NEW) == NEW


def test_the_same_text_keeps_the_recorded_commit() -> None:
    m = manifest({"k": "v"})
    assert commit_to_record(m, live(m, OLD), NEW) == OLD


def test_changed_text_records_the_new_commit() -> None:
    before, after = manifest({"k": "v"}), manifest({"k": "w"})
    assert commit_to_record(after, live(before, OLD), NEW) == NEW


def test_an_object_applied_before_commits_were_recorded_is_not_rewritten_for_one() -> None:
    m = manifest({"k": "v"})
    assert commit_to_record(m, live(m, None), NEW) is None
    assert COMMIT_ANNOTATION not in prepare_for_apply(m, SOURCE, None)["metadata"]["annotations"]


def test_no_revision_records_nothing() -> None:
    assert commit_to_record(manifest({"k": "v"}), {}, "") is None


def test_a_commit_annotation_written_in_git_is_replaced_by_the_applied_commit() -> None:
    m = manifest({"k": "v"}, {COMMIT_ANNOTATION: "forged", "note": "kept"})
    annotations = prepare_for_apply(m, SOURCE, NEW)["metadata"]["annotations"]
    assert annotations == {COMMIT_ANNOTATION: NEW, CHECKSUM_ANNOTATION: checksum(m.body), "note": "kept"}
    assert COMMIT_ANNOTATION not in prepare_for_apply(m, SOURCE, None)["metadata"]["annotations"]


@given(
    st.dictionaries(st.text(max_size=4), st.text(max_size=4), max_size=4),
    st.dictionaries(st.text(max_size=4), st.text(max_size=4), max_size=4),
)
def test_the_body_sent_for_an_unchanged_text_is_the_body_already_applied(
    first: dict[str, str], second: dict[str, str]
) -> None:
    """Sync commit OLD, then commit NEW: the body sent the second time equals the live one
    exactly when the text did not change (a server-side apply of it then writes nothing)."""
    before, after = manifest(first), manifest(second)
    applied = prepare_for_apply(before, SOURCE, commit_to_record(before, {}, OLD))
    sent = prepare_for_apply(after, SOURCE, commit_to_record(after, applied["metadata"], NEW))
    assert (sent == applied) is (first == second)
    assert live_commit(sent["metadata"]) == (OLD if first == second else NEW)
