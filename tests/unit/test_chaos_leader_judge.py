"""Experiment 4's verdict on a release's Helm history follows experiment 1's rule "one change is
applied once": two applied revisions of one change are a double upgrade, whatever their digest
labels (the experiment's chart is its own, so one change is one desired state); an attempt whose
helm was killed is not an application."""

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


def test_one_change_applied_twice_under_two_digests_is_a_double_upgrade() -> None:
    # the experiment's chart is its own and published once: one values change has one desired
    # digest, so a second applied revision with another digest (a leader that computed the
    # desired state differently) is an upgrade run twice for one change, not a new desired state
    history = state(
        BASE,
        Revision(2, "superseded", AGENT, "h1-b", "change"),
        Revision(3, "deployed", AGENT, "h1-c", "change"),
    )
    outcome, broken = _judge(history, {"app": 1}, ["change"])
    assert outcome == "violated"
    assert "2 applied revisions for one change" in broken[0]


def test_a_change_never_applied_is_violated() -> None:
    outcome, _ = _judge(state(BASE, Revision(2, "deployed", AGENT, "h1-b", "other")), {"app": 1}, ["change"])
    assert outcome == "violated"
