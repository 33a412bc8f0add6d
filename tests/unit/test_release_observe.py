"""When a stored revision last changed (observe.last_changed, FirstSeen), and what the planner
makes of it: a pending revision that helm is still working on is never taken over."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import cast

import pytest

from gitops_helm.adapters.kube import Kube, StoredRelease, _epoch_seconds
from gitops_helm.release import plan as pl
from gitops_helm.release.identity import DIGEST_LABEL, OWNER_LABEL, ReleaseRef
from gitops_helm.release.observe import FirstSeen, last_changed, observe, outcome_of_tests_since

NOW = 1_796_070_900.0
AN_HOUR_AGO = NOW - 3600


def stored(
    revision: int, status: str, labels: Mapping[str, str] | None = None, created: float | None = None
) -> StoredRelease:
    full = {"owner": "helm", "name": "app", "version": str(revision), "status": status, **(labels or {})}
    return StoredRelease(
        "app", "apps", revision, status, full, f"sh.helm.release.v1.app.v{revision}", created
    )


class FakeKube:
    """Release storage as ``Kube.release_revisions`` lists it."""

    def __init__(self, *revisions: StoredRelease) -> None:
        self.revisions = list(revisions)

    def release_revisions(self, namespace: str, release: str) -> list[StoredRelease]:
        return list(self.revisions)


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


REF = ReleaseRef("apps", "app", "app", "apps")
OWNER = REF.owner


def observed(kube: FakeKube, first_seen: FirstSeen | None = None) -> pl.ObservedRelease:
    release = observe(cast(Kube, kube), REF, first_seen).release
    assert release is not None
    return release


# -- what helm 3 and helm 4 write (checked with the real binaries) ---------------------------------


def helm_pending_upgrade(created_at: float, previous_modified_at: float) -> StoredRelease:
    """The revision `helm upgrade` creates and works on: createdAt now, modifiedAt copied from the
    previous revision (with the agent's labels, copied too), Secret created now."""
    labels = {
        "createdAt": str(int(created_at)),
        "modifiedAt": str(int(previous_modified_at)),
        OWNER_LABEL: OWNER,
        DIGEST_LABEL: "d1",
    }
    return stored(2, "pending-upgrade", labels, created=created_at)


def test_a_pending_revision_changed_when_helm_created_it_not_when_its_predecessor_did() -> None:
    assert last_changed(helm_pending_upgrade(NOW - 5, AN_HOUR_AGO)) == NOW - 5


def test_an_updated_revision_changed_at_modified_at() -> None:
    # helm's update (deployed, failed, uninstalling...) drops createdAt and stamps modifiedAt
    uninstalling = stored(3, "uninstalling", {"modifiedAt": str(int(NOW - 2))}, created=AN_HOUR_AGO)
    assert last_changed(uninstalling) == NOW - 2


def test_without_time_labels_the_secret_creation_time_counts() -> None:
    assert last_changed(stored(2, "pending-install", created=NOW - 7)) == NOW - 7
    assert last_changed(stored(2, "pending-install", {"createdAt": "soon"}, created=NOW - 7)) == NOW - 7


def test_nothing_known_is_none() -> None:
    assert last_changed(stored(2, "pending-install", {"createdAt": "", "modifiedAt": "-1"})) is None


def test_secret_creation_timestamps_are_epoch_seconds() -> None:
    when = datetime(2026, 11, 30, 20, 33, 50, tzinfo=UTC)
    assert _epoch_seconds(when) == when.timestamp()
    assert _epoch_seconds("2026-11-30T20:33:50Z") == when.timestamp()
    assert _epoch_seconds(when.replace(tzinfo=None)) == when.timestamp()  # naive: UTC
    assert _epoch_seconds(None) is None
    assert _epoch_seconds("yesterday") is None


# -- the regression of issue #8 item 3: the planner leaves a running helm alone --------------------


def policy(grace: float) -> pl.Desired:
    return pl.Desired(digest="d1", generation=2, owner=OWNER, policy=pl.Policy(pending_grace=grace))


MEMORY = pl.Memory(
    last_applied_digest="d1", last_release_revision=1, last_release_action=pl.ReleaseAction.INSTALL
)


def test_a_running_upgrade_of_a_release_deployed_long_ago_is_waited_for() -> None:
    kube = FakeKube(
        stored(1, "deployed", {"modifiedAt": str(int(AN_HOUR_AGO)), OWNER_LABEL: OWNER}, AN_HOUR_AGO),
        helm_pending_upgrade(NOW - 5, AN_HOUR_AGO),
    )
    release = observed(kube)
    assert release.last_modified == NOW - 5
    p = pl.plan(release, MEMORY, policy(65.0), now=NOW)
    assert (p.action, p.retry_at) == (pl.Action.WAIT_RETRY, NOW + 60)
    # once the grace has passed, it is unlocked
    later = pl.plan(release, MEMORY, policy(65.0), now=NOW + 61)
    assert later.action is pl.Action.UNLOCK_PENDING


@pytest.mark.parametrize("status", ["pending-install", "pending-upgrade", "pending-rollback", "uninstalling"])
def test_a_revision_without_any_time_gets_its_grace_from_when_it_was_first_seen(status: str) -> None:
    clock = Clock()
    first_seen = FirstSeen(clock)
    kube = FakeKube(stored(1, "deployed", {OWNER_LABEL: OWNER}), stored(2, status, {OWNER_LABEL: OWNER}))
    assert observed(kube).last_modified is None  # without the memory, nothing is known
    assert observed(kube, first_seen).last_modified == NOW
    assert pl.plan(observed(kube, first_seen), MEMORY, policy(65.0), now=NOW).action is pl.Action.WAIT_RETRY
    clock.now = NOW + 30
    assert observed(kube, first_seen).last_modified == NOW  # still the first sighting
    clock.now = NOW + 66
    takeover = pl.plan(observed(kube, first_seen), MEMORY, policy(65.0), now=clock.now)
    assert takeover.action in (pl.Action.UNLOCK_PENDING, pl.Action.UNINSTALL)


def test_first_seen_starts_again_for_a_new_revision_or_state() -> None:
    clock = Clock()
    first_seen = FirstSeen(clock)
    kube = FakeKube(stored(2, "pending-upgrade", {OWNER_LABEL: OWNER}))
    assert observed(kube, first_seen).last_modified == NOW
    clock.now = NOW + 100
    kube.revisions = [stored(3, "pending-rollback", {OWNER_LABEL: OWNER})]
    assert observed(kube, first_seen).last_modified == NOW + 100
    # a settled revision is forgotten; the same pending state seen again later starts again
    kube.revisions = [stored(3, "failed", {OWNER_LABEL: OWNER})]
    assert observed(kube, first_seen).last_modified is None
    clock.now = NOW + 200
    kube.revisions = [stored(3, "pending-rollback", {OWNER_LABEL: OWNER})]
    assert observed(kube, first_seen).last_modified == NOW + 200


def test_a_recorded_time_wins_over_first_seen() -> None:
    first_seen = FirstSeen(Clock(NOW + 500))
    kube = FakeKube(helm_pending_upgrade(NOW - 5, AN_HOUR_AGO))
    assert observed(kube, first_seen).last_modified == NOW - 5


# --- the outcome an orphaned helm test wrote (plan row 13) -----------------------------------

STARTED = datetime(2026, 12, 1, 9, 39, 4, tzinfo=UTC).timestamp()


def _test_hook(name: str, started_at: str | None, phase: str | None) -> dict[str, object]:
    run = {"started_at": started_at, "completed_at": started_at, "phase": phase} if phase else {}
    return {"name": name, "kind": "Pod", "events": ["test"], "last_run": run}


def test_a_test_helm_ended_after_the_start_gives_its_outcome() -> None:
    passed = {"hooks": [_test_hook("a", "2026-12-01T09:39:04.753597081Z", "Succeeded")]}
    failed = {
        "hooks": [
            _test_hook("a", "2026-12-01T09:39:05Z", "Failed"),
            _test_hook("b", None, None),  # helm stops at the first failed test
        ]
    }
    assert outcome_of_tests_since(passed, STARTED) is True
    assert outcome_of_tests_since(failed, STARTED) is False


def test_an_older_test_run_or_none_at_all_says_nothing() -> None:
    older = {"hooks": [_test_hook("a", "2026-12-01T09:39:03.999Z", "Succeeded")]}
    never = {"hooks": [_test_hook("a", None, None)]}
    partly = {
        "hooks": [
            _test_hook("a", "2026-12-01T09:39:05Z", "Succeeded"),
            _test_hook("b", "2026-12-01T09:00:00Z", "Succeeded"),
        ]
    }
    other_hooks = {"hooks": [{"name": "x", "events": ["pre-install"], "last_run": {"phase": "Succeeded"}}]}
    for record in (older, never, partly, other_hooks, {}, {"hooks": [_test_hook("a", "garbage", "Failed")]}):
        assert outcome_of_tests_since(record, STARTED) is None, record
