"""`gitops-helm history`'s pure parts: the table (oldest first, revision beside commit), the live
line and the JSON document."""

from __future__ import annotations

from gitops_helm.api import AttemptOutcome, HistoryAction, HistoryEntry
from gitops_helm.api.history import serialise_history
from gitops_helm.verbs.history import history_data, live_line, render_history

COMMIT1, COMMIT2 = "1" * 40, "2" * 40


def _entries() -> tuple[HistoryEntry, ...]:
    chart = {"chart_name": "hello", "chart_version": "0.1.0", "chart_digest": "sha256:" + "c" * 64}
    install = HistoryEntry(
        HistoryAction.INSTALL,
        AttemptOutcome.SUCCEEDED,
        "2026-12-01T08:00:00Z",
        "2026-12-01T08:00:05Z",
        helm_revision=1,
        git_commit=COMMIT1,
        values_digest="h1-" + "a" * 48,
        test_result="passed",
        **chart,  # type: ignore[arg-type]
    )
    upgrade = HistoryEntry(
        HistoryAction.UPGRADE,
        AttemptOutcome.FAILED,
        "2026-12-01T09:00:00Z",
        "2026-12-01T09:00:09Z",
        helm_revision=None,  # helm failed before writing a revision
        git_commit=COMMIT2,
        values_digest="h1-" + "b" * 48,
        **chart,  # type: ignore[arg-type]
    )
    rollback = HistoryEntry(
        HistoryAction.ROLLBACK,
        AttemptOutcome.SUCCEEDED,
        "2026-12-01T09:00:10Z",
        "2026-12-01T09:00:12Z",
        helm_revision=2,
        git_commit=COMMIT1,
        rolled_back_to=1,
    )
    return rollback, upgrade, install


def test_the_table_is_oldest_first_with_the_revision_beside_the_commit() -> None:
    lines = render_history(_entries()).splitlines()
    assert lines[0].split() == [
        "REVISION", "COMMIT", "ACTION", "OUTCOME", "TEST", "CHART", "VALUES", "STARTED", "FINISHED"
    ]  # fmt: skip
    assert lines[1].split() == [
        "1", COMMIT1[:12], "install", "succeeded", "passed", "hello@0.1.0", "a" * 8,
        "2026-12-01T08:00:00Z", "2026-12-01T08:00:05Z",
    ]  # fmt: skip
    assert lines[2].split()[:7] == ["-", COMMIT2[:12], "upgrade", "failed", "-", "hello@0.1.0", "b" * 8]
    assert lines[3].split()[:8] == ["2", COMMIT1[:12], "rollback", "to", "1", "succeeded", "-", "-"]
    # columns line up: every row's COMMIT starts where the header's does
    at = lines[0].index("COMMIT")
    assert all(line[at : at + 12] in (COMMIT1[:12], COMMIT2[:12]) for line in lines[1:])


def test_the_live_line_names_the_commit_of_the_live_revision() -> None:
    status = {
        "lastReleaseRevision": 2,
        "releaseStatus": "deployed",
        "history": serialise_history(_entries()),
    }
    assert live_line(status) == f"live: Helm revision 2 (deployed), commit {COMMIT1}, chart -"
    assert live_line({**status, "history": []}) == "live: Helm revision 2 (deployed)"
    assert live_line({}) is None


def test_json_is_the_status_history_as_stored() -> None:
    obj = {
        "metadata": {"name": "app", "namespace": "web"},
        "status": {"releaseName": "app", "lastReleaseRevision": 2, "history": serialise_history(_entries())},
    }
    data = history_data(obj)
    assert data == {
        "namespace": "web",
        "name": "app",
        "releaseName": "app",
        "lastReleaseRevision": 2,
        "releaseStatus": None,
        "history": obj["status"]["history"],
    }
