"""`gitops-helm status` reads the sync-state ConfigMap, which anyone with edit rights can change:
a hand-edited value is shown as unreadable, never a traceback."""

from __future__ import annotations

import pytest

from gitops_helm.verbs.releases import _print_state, _state_data


def test_a_hand_edited_sync_state_is_shown_not_raised(capsys: pytest.CaptureFixture[str]) -> None:
    edited = {"applied": "many", "unchanged": "3", "errors": "{not json", "wouldDelete": '{"a": 1}'}
    state = _state_data("ops", "gitops-helm-sync-default", edited)
    assert state["applied"] is None and state["unchanged"] == 3
    assert state["errors"] == ["(unreadable: '{not json')"]
    assert state["wouldDelete"] == ["(unreadable: '{\"a\": 1}')"]
    _print_state("ops", "gitops-helm-sync-default", edited)
    out = capsys.readouterr().out
    assert "error: (unreadable: '{not json')" in out


def test_the_agents_own_sync_state_reads_as_written() -> None:
    written = {"applied": "2", "unchanged": "5", "errors": '["x.yaml:3: bad"]', "wouldDelete": "[]"}
    state = _state_data("ops", "gitops-helm-sync-default", written)
    assert (state["applied"], state["unchanged"], state["errors"], state["wouldDelete"]) == (
        2,
        5,
        ["x.yaml:3: bad"],
        [],
    )
