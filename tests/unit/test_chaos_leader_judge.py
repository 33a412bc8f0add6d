"""Experiment 4's verdict on a release's Helm history follows experiment 1's rule "one change is
applied once": two applied revisions of one desired state (one digest) are a double upgrade; an
attempt whose helm was killed, or a second desired state with the same values (a chart
republished with new bytes), is not."""

from __future__ import annotations

from chaos.experiments.e04_leader import ReleaseState, Revision, _judge

AGENT = "gitops-helm: revision 1 has digest h1-a, desired h1-b: upgrading"


def state(*revisions: Revision) -> dict[str, ReleaseState]:
    deployed = [r for r in revisions if r.status == "deployed"]
    return {"app": ReleaseState(True, "Ready", deployed[-1].message if deployed else None, list(revisions))}


BASE = Revision(1, "superseded", AGENT, "h1-a", "first")


def test_one_upgrade_of_the_change_survives() -> None:
    assert _judge(state(BASE, Revision(2, "deployed", AGENT, "h1-b", "change")), {"app": 1}, ["change"]) == (
        "survived",
        [],
    )


def test_two_applied_revisions_of_one_digest_are_a_double_upgrade() -> None:
    outcome, broken = _judge(
        state(
            BASE,
            Revision(2, "superseded", AGENT, "h1-b", "change"),
            Revision(3, "deployed", "gitops-helm: revision 2 was made outside the agent", "h1-b", "change"),
        ),
        {"app": 1},
        ["change"],
    )
    assert outcome == "violated"
    assert "2 applied revisions for one change" in broken[0]


def test_an_attempt_whose_helm_was_killed_is_not_an_application() -> None:
    # left pending by the killed helm, unlocked as failed, then superseded by the retry
    interrupted = Revision(
        2, "superseded", "marked failed by gitops-helm: the operation was interrupted", "h1-b", "change"
    )
    history = state(BASE, interrupted, Revision(3, "deployed", AGENT, "h1-b", "change"))
    assert _judge(history, {"app": 1}, ["change"]) == ("survived", [])


def test_the_same_values_under_a_new_chart_digest_are_a_new_desired_state() -> None:
    history = state(
        BASE,
        Revision(2, "superseded", AGENT, "h1-b", "change"),
        Revision(3, "deployed", AGENT, "h1-c", "change"),  # the chart's archive changed meanwhile
    )
    assert _judge(history, {"app": 1}, ["change"]) == ("survived", [])


def test_a_change_never_applied_is_violated() -> None:
    outcome, _ = _judge(state(BASE, Revision(2, "deployed", AGENT, "h1-b", "other")), {"app": 1}, ["change"])
    assert outcome == "violated"
