"""review-14: the history entry of a rollback that helm refused before writing a revision."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from gitops_helm.adapters.helm import HelmError, HelmErrorKind
from gitops_helm.api import AttemptOutcome, HistoryAction, HistoryEntry, entry_for_revision
from gitops_helm.release import actions as actions_mod
from gitops_helm.release import plan as pl


class _Report:
    def __init__(self, history: tuple[HistoryEntry, ...]) -> None:
        self.status = SimpleNamespace(history=history)
        self.entries: list[HistoryEntry] = []

    def phase(self, *args: Any, **kwargs: Any) -> None:
        pass

    def write(self) -> None:
        pass

    def event(self, *args: Any) -> None:
        pass

    def attempted(self, entry: HistoryEntry) -> None:
        self.entries.append(entry)
        self.status.history = (entry, *self.status.history)


class _Helm:
    def rollback(self, *args: Any) -> None:
        raise HelmError(HelmErrorKind.FAILED, "rollback", "release has no 1 version")


def test_a_rollback_refused_before_writing_claims_no_revision(monkeypatch: pytest.MonkeyPatch) -> None:
    # revision 2 is the failed upgrade of commit bbb; helm refuses the rollback to 1 outright
    failed_upgrade = HistoryEntry(
        HistoryAction.UPGRADE, AttemptOutcome.FAILED, "t1", "t2", helm_revision=2, git_commit="bbb"
    )
    installed = HistoryEntry(
        HistoryAction.INSTALL, AttemptOutcome.SUCCEEDED, "t0", "t0", helm_revision=1, git_commit="aaa"
    )
    still = SimpleNamespace(release=SimpleNamespace(revision=2), latest_record=lambda: {})
    monkeypatch.setattr(actions_mod, "observe", lambda kube, ref: still)
    monkeypatch.setattr(pl, "record_rollback", lambda memory, **kw: memory)
    policy = SimpleNamespace(
        release_name="app",
        target_namespace="apps",
        max_history=10,
        rollback=SimpleNamespace(timeout=60, wait=False, force=False, recreate=False, disable_hooks=False),
    )
    target = SimpleNamespace(
        policy=policy,
        ref=SimpleNamespace(key="apps/app"),
        chart=SimpleNamespace(name="hello", version="0.2.0", digest="sha256:x"),
        commit="bbb",
        values_digest="h1-v",
    )
    actions = actions_mod.ReleaseActions(None, _Helm(), clock=lambda: 0.0)  # type: ignore[arg-type]
    report = _Report((failed_upgrade, installed))
    decision = SimpleNamespace(restore=False, rollback_to=1)
    memory = SimpleNamespace(last_release_revision=2)
    _memory, ok = actions._rollback(report, target, decision, memory)  # type: ignore[arg-type]
    assert not ok
    (entry,) = report.entries
    assert entry.action is HistoryAction.ROLLBACK and entry.outcome is AttemptOutcome.FAILED
    assert entry.helm_revision is None, entry
    # so "which commit is live" still answers with the failed upgrade's revision, not the restored one
    assert entry_for_revision(report.status.history, 2) == failed_upgrade
