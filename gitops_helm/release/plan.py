"""Decide the next Helm action for one HelmRelease: observed + remembered + desired -> action.

Place in the data flow: ``release.reconcile`` reads the latest release from Helm storage
(without running ``helm``), loads the HelmRelease's status memory, computes the desired
digest (chart content + composed values + release-affecting spec fields), and calls
:func:`plan`. It runs the one action returned, records the outcome with the ``record_*``
helpers below (pure too), re-reads storage and plans again, until the plan needs no Helm
call (NONE, WAIT_RETRY, REFUSE, SUSPENDED) or an action kind repeats within one reconcile.
:func:`plan_deletion` decides what a deleted HelmRelease does to its release.

PURE: no clock (``now`` is an argument), no I/O, no Kubernetes, no subprocess.

Terms. *ours*: the latest revision is the one the agent last produced
(``memory.last_release_revision``). *failures*: ``memory.failures`` when they were recorded
for the current desired digest (and generation, when the memory records one), else 0: a new
digest or a spec edit resets the counters, and the plan then says ``reset_failures``.
*gated X*: when failures > 0, X is subject to the retry policy of the action that failed
(install or upgrade): a retry budget the user configured and used up (``retries >= 0 and
failures > retries``) => WAIT_RETRY stalled (until the desired digest or generation changes);
backoff not elapsed (``last_failure_time + backoff[failures-1] > now``) => WAIT_RETRY with
``retry_at`` (``backoff``); otherwise X. With failures == 0, X at once.
*retry by default*: no retry budget is configured for the failed action (install:
``retries == 0``; upgrade: ``retries == 0`` and no ``remediate_last_failure``, i.e. no
``rollback.enable``/``upgrade.remediation`` that asks for a remediation). Then failures are
retried with the backoff, without limit, until one succeeds or the desired state changes: a
release is never left stalled without a human asking for it (Flux stalls after
``retries: 0``; the Helm Operator purged a failed install and installed again at each sync).
A failed install is still uninstalled first when ``remediate_last_failure`` (the default purge).
*interruptions*: ``memory.interruptions`` when recorded for the current desired digest, else 0:
how often an attempt at this desired state ended without a verdict on it: the agent's own
attempt found pending and unlocked (the agent was killed: crash, kill -9, OOM, node loss), the
agent's own remediation rollback found pending and discarded (row 4b), or an upgrade whose wait
judged a previous rollout's stale status (``record_unjudged``). Up to
``policy.max_interruptions`` they are not failures; each one past that bound is recorded as a
failure of the attempt, so the retry policy, remediation and backoff above apply (an attempt
that kills the agent each time cannot loop forever without backoff).

Rows are checked top to bottom; the first match wins.

===  ===========================================  =============================================
 #   observed state                               next action
===  ===========================================  =============================================
 1   release owned by another HelmRelease, or     REFUSE (never touched, whatever its status)
     one with no owner marker that may not be
     adopted (``desired.adoptable`` false)
 2   spec.suspend                                 SUSPENDED
 3   no release, or latest is ``uninstalled``     gated INSTALL (deleted by hand => reinstall)
 4a  ``pending-*``, changed < pending_grace ago   WAIT_RETRY (another operation may be running:
     (``last_modified``: created, for helm;       a person's helm, an orphaned or old leader's)
     ``pending-rollback``: or, when longer,
     ``rollback_pending_grace``)
 4b  ``pending-*``                                UNLOCK_PENDING: mark the revision failed in
                                                  storage; an interrupted attempt is not a
                                                  failure of the desired state (the agent was
                                                  stopped, not the release proven bad), so
                                                  ``then`` (the plan for the unlocked release)
                                                  is an UPGRADE that retries it, as in Flux;
                                                  past ``max_interruptions`` for the digest it
                                                  counts as a failure (``then`` per row 8).
                                                  The agent's own remediation rollback
                                                  (:func:`unrecorded_remediation`: right after
                                                  the failed revision it recorded, not yet
                                                  remediated, helm's "Rollback to N" to the
                                                  revision row 8c picks) is instead discarded
                                                  (``discard``: the pending revision deleted,
                                                  the failed one latest again), ``then`` row
                                                  8c runs the same remediation again (counted
                                                  once); each is an interruption, and after
                                                  ``max_interruptions`` it is unlocked as above
 5a  ``uninstalling``, changed < grace ago        WAIT_RETRY
 5b  ``uninstalling``                             UNINSTALL (finish it; row 3 reinstalls)
 6   no owner marker (installed by hand)          gated UPGRADE with ``adopt`` (take over)
 7   latest revision is not ours (manual helm     gated UPGRADE back to the desired state
     upgrade/rollback, lost status memory)
 8a  failed (status ``failed``, or deployed with  failures == 0 (desired state changed since,
     tests failed and the action that made the    or an interrupted attempt): UPGRADE now,
     revision does not ignore test failures)      counters reset
 8b  ... failure of an install                    UNINSTALL (remediation) if
                                                  ``install.strategy`` is uninstall and (retries
                                                  left or ``remediate_last_failure``)
 8c  ... failure of an upgrade, rollback          ROLLBACK to ``previous_deployed_revision``
                                                  (remediation) if one exists below the latest
                                                  and (retries left or remediate_last_failure)
 8d  ... failure of an upgrade, uninstall         UNINSTALL (remediation), same condition
 8e  ... otherwise (no remediation configured     gated UPGRADE (retry), or WAIT_RETRY
     or allowed, no rollback target, a failed     (backoff; stalled only when a configured
     rollback, revision already remediated)       retry budget is used up)
 8f  an UPGRADE of rows 4b, 7 or 8 is due, the    ROLLBACK to ``previous_deployed_revision``
     latest revision is ours and failed, helm     with ``restore`` first (not a remediation;
     merges upgrades against the last deployed    failures kept), unless the failed revision
     revision (``merges_from_deployed``: helm 3)  is itself such a restore; then row 10
 9   latest is ``superseded``/``unknown``         gated UPGRADE
 10  deployed, digest differs from desired       gated UPGRADE (spec, chart or values changed;
                                                  also after a rollback remediation)
 11  deployed in sync, tests enabled, not run     TEST
 12  deployed in sync                             NONE; drift ``warn``/``enabled`` and drift not
                                                  checked: NONE with ``check_drift``; drift
                                                  found: ``warn`` => NONE with ``drifted``,
                                                  ``enabled`` => CORRECT_DRIFT
 13  any Helm action of the rows above, while a   WAIT_RETRY until ``test_started + test_grace``
     ``helm test`` the agent started may still    (the test's timeout + the pending-grace
     run (``memory.test_started``, no outcome     margin): an orphaned ``helm test`` (agent
     recorded, less than ``test_grace`` ago)      killed, its helm child alive; an old leader's)
                                                  writes nothing to storage until it ends, so
                                                  rows 4a/5a cannot see it; a second test would
                                                  delete its pod, an upgrade would be overwritten
                                                  by its final write of the tested revision;
                                                  planned again every ``test_recheck`` meanwhile
                                                  (the reconciler records the outcome the test
                                                  wrote to storage when it ended, not run again)
===  ===========================================  =============================================

Invariants (property-tested): the action is in :class:`Action`; NONE only when the latest
revision is deployed, is ours, and carries the desired digest (so an unchanged release costs
no Helm call); REFUSE whenever another HelmRelease owns the release, or nobody does and it may
not be adopted; never INSTALL while a release exists; never UPGRADE without one; stalled only
when the failed action has a configured retry budget that is used up (so with retry by default,
never); a WAIT_RETRY after failures is due at most the longest backoff step after the last
failure; and, with the ``record_*`` helpers, a release that always fails makes a bounded number
of Helm calls before time must pass, and repeated interruptions of one desired state are bounded
(past ``max_interruptions`` each counts as a failure).

This is the one retry and remediation model of the agent. Legacy Helm Operator
``rollback.{enable,retry,maxRetries}`` are mapped onto ``Policy.upgrade`` by
``api.policy.derive_policy``: "retry while
``rollbackCount <= maxRetries`` (0 = unlimited)" is "retry while failures <= retries" because
each failed upgrade is followed by exactly one rollback. Where they differ (a failed upgrade
that wrote no revision, so no rollback happened) the operator retried forever; we count it.
Without ``rollback.enable`` the operator left a failed upgrade failed until the chart changed;
we retry it with backoff (retry by default).

Known limit of *interrupted attempt*: helm copies a release's labels (our owner and digest
markers) onto the pending revision of someone else's ``helm upgrade``; if that upgrade is
interrupted too, its revision is indistinguishable in storage from the agent's own interrupted
attempt and is counted as an interruption. That is on the safe side: the revision is unlocked
only after the pending grace either way, and at worst the bound is reached one interruption
earlier, after which failures are retried with backoff (or remediated per the user's policy).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum

from gitops_helm.api.policy import Remediation
from gitops_helm.api.spec import DriftMode, RemediationStrategy

__all__ = [
    "HELM_ACTIONS",
    "Action",
    "Desired",
    "DriftMode",
    "Memory",
    "ObservedRelease",
    "Plan",
    "Policy",
    "ReleaseAction",
    "ReleaseStatus",
    "Remediation",
    "RemediationStrategy",
    "TestState",
    "forget_failures",
    "ignores_test_failures",
    "interrupted_attempt",
    "own_rollback_candidate",
    "plan",
    "plan_deletion",
    "record_failure",
    "record_release",
    "record_rollback",
    "record_test",
    "record_test_started",
    "record_uninstall",
    "record_unjudged",
    "record_unlock",
    "record_unrecorded_release",
    "record_unrecorded_rollback",
    "retries_by_default",
    "unrecorded_interruption",
    "unrecorded_release",
    "unrecorded_remediation",
]


class ReleaseStatus(StrEnum):
    """Helm's release status strings."""

    DEPLOYED = "deployed"
    FAILED = "failed"
    PENDING_INSTALL = "pending-install"
    PENDING_UPGRADE = "pending-upgrade"
    PENDING_ROLLBACK = "pending-rollback"
    SUPERSEDED = "superseded"
    UNINSTALLING = "uninstalling"
    UNINSTALLED = "uninstalled"
    UNKNOWN = "unknown"

    @property
    def pending(self) -> bool:
        return self in (
            ReleaseStatus.PENDING_INSTALL,
            ReleaseStatus.PENDING_UPGRADE,
            ReleaseStatus.PENDING_ROLLBACK,
        )


class Action(StrEnum):
    """The closed set of decisions."""

    NONE = "none"  # in sync: no Helm call
    INSTALL = "install"
    UPGRADE = "upgrade"
    TEST = "test"
    ROLLBACK = "rollback"  # to Plan.rollback_to
    UNINSTALL = "uninstall"
    UNLOCK_PENDING = "unlock-pending"  # rewrite the pending revision as failed in storage
    CORRECT_DRIFT = "correct-drift"  # re-apply the stored manifest (no new revision)
    REFUSE = "refuse"  # another HelmRelease owns the release
    WAIT_RETRY = "wait-retry"  # backoff (retry_at) or stalled
    SUSPENDED = "suspended"


#: Actions that call Helm or write Helm storage.
HELM_ACTIONS = frozenset(
    {Action.INSTALL, Action.UPGRADE, Action.TEST, Action.ROLLBACK, Action.UNINSTALL, Action.UNLOCK_PENDING}
)


class ReleaseAction(StrEnum):
    """What produced a revision (and, for failures, which retry policy applies)."""

    INSTALL = "install"
    UPGRADE = "upgrade"
    ROLLBACK = "rollback"


class TestState(StrEnum):
    """Test outcome for ``Memory.last_release_revision``."""

    __test__ = False  # not a pytest class

    PENDING = "pending"  # not run yet
    PASSED = "passed"
    FAILED = "failed"


# ---------------------------------------------------------------------------------------------
# inputs


_NO_REMEDIATION = Remediation(
    strategy=RemediationStrategy.ROLLBACK, retries=0, remediate_last_failure=False, ignore_test_failures=False
)


@dataclass(frozen=True)
class Policy:
    """Everything configurable that the decision depends on.

    ``install`` and ``upgrade`` are the HelmRelease's effective remediation (``api.policy``;
    ``retries < 0`` means unlimited). A failed install is remediated by an uninstall when
    ``install.strategy`` is ``uninstall`` (always so for a parsed HelmRelease). ``backoff`` is the
    delay after failure 1, 2, ... (the last one repeats); the reconciler takes it from the
    settings, and the empty default retries at once.
    """

    install: Remediation = _NO_REMEDIATION
    upgrade: Remediation = _NO_REMEDIATION
    test_enabled: bool = False  # run ``helm test`` after each install/upgrade
    drift: DriftMode = DriftMode.DISABLED
    backoff: tuple[float, ...] = ()
    pending_grace: float = 0.0  # seconds a pending-*/uninstalling revision is left alone
    # seconds a pending-rollback revision is left alone, when longer (a rollback has its own timeout)
    rollback_pending_grace: float = 0.0
    # interrupted attempts at one desired state that are not failures (the settings' bound)
    max_interruptions: int = 3
    # helm 3: an upgrade is three-way-merged against the last *deployed* revision, not the latest
    # failed one, so a field only the failed revision added stays on the live objects (row 8f)
    merges_from_deployed: bool = False
    # seconds a helm test the agent started may still run (its timeout + the pending-grace margin)
    test_grace: float = 0.0
    # while row 13 waits, plan again this often (0: only when the grace ends): the reconciler
    # then reads an outcome the test wrote to storage when it ended
    test_recheck: float = 0.0


@dataclass(frozen=True)
class ObservedRelease:
    """The latest revision in Helm storage (read without running helm)."""

    revision: int
    status: ReleaseStatus
    previous_deployed_revision: int | None = None  # newest older revision deployed/superseded
    owner: str | None = None  # owner marker: the managing HelmRelease's id, or None
    digest: str | None = None  # desired digest the agent recorded on this revision
    # epoch seconds of the latest revision's last change (``release.observe.last_changed``: for a
    # pending revision, when helm created it); None means unknown and rows 4a/5a do not apply, so
    # the reconciler always gives a pending revision a time (at worst, when it first saw it)
    last_modified: float | None = None
    # the revision that the ``helm rollback`` which wrote this revision restores (helm describes it
    # "Rollback to N"); read by the reconciler only for an :func:`own_rollback_candidate`, else None
    rolled_back_to: int | None = None


@dataclass(frozen=True)
class Memory:
    """What the agent remembers in the HelmRelease status (updated with ``record_*``)."""

    last_applied_digest: str | None = None  # digest of the last successful install/upgrade
    last_release_revision: int | None = None  # latest revision the agent produced (any outcome)
    last_release_action: ReleaseAction | None = None  # what produced it
    test_state: TestState = TestState.PENDING  # for last_release_revision
    failures: int = 0  # consecutive failures for last_failed_digest/generation
    last_failed_digest: str | None = None
    last_failed_generation: int | None = None  # None: failures are not scoped to a generation
    last_failed_action: ReleaseAction | None = None  # INSTALL or UPGRADE
    last_failure_time: float | None = None
    last_remediated_revision: int | None = None  # a failed revision is remediated once
    rollback_count: int = 0  # status.rollbackCount (Helm Operator compatible); not read by plan
    interruptions: int = 0  # own attempts at last_interrupted_digest found pending and unlocked
    last_interrupted_digest: str | None = None
    # epoch seconds a helm test of last_release_revision was started whose outcome is not recorded
    test_started: float | None = None


@dataclass(frozen=True)
class Desired:
    digest: str  # chart content + composed values + release-affecting spec fields
    generation: int
    owner: str  # this HelmRelease's id, as written in the owner marker
    suspended: bool = False
    # row 6: a release without an owner marker may be taken over (the reconciler allows it in the
    # HelmRelease's own namespace, elsewhere only with --allow-adoption-across-namespaces)
    adoptable: bool = True
    policy: Policy = field(default_factory=Policy)


@dataclass(frozen=True)
class Plan:
    """One decision. Only the fields relevant to ``action`` are set."""

    action: Action
    reason: str
    rollback_to: int | None = None  # ROLLBACK
    remediation: bool = False  # ROLLBACK/UNINSTALL that repairs a failure
    adopt: bool = False  # UPGRADE that takes over a release nobody owns
    stalled: bool = False  # WAIT_RETRY: retries exhausted; wait for a new digest/generation
    retry_at: float | None = None  # WAIT_RETRY: when to plan again
    backoff: bool = False  # WAIT_RETRY: retry_at is the backoff after failed attempts
    reset_failures: bool = False  # failure counters no longer apply: clear them
    then: Action | None = None  # UNLOCK_PENDING: the expected plan once unlocked
    check_drift: bool = False  # NONE: run drift detection, then plan again with its result
    drifted: bool = False  # NONE in warn mode: drift found and reported only
    restore: bool = False  # ROLLBACK that restores the merge base before an upgrade (row 8f)
    discard: bool = False  # UNLOCK_PENDING: delete the pending revision instead (row 4b)


# ---------------------------------------------------------------------------------------------
# planning


def _failures(memory: Memory, desired: Desired) -> int:
    if memory.failures <= 0 or memory.last_failed_digest != desired.digest:
        return 0
    if memory.last_failed_generation is not None and memory.last_failed_generation != desired.generation:
        return 0
    return memory.failures


def ignores_test_failures(policy: Policy, produced_by: ReleaseAction | None) -> bool:
    """Whether a failed ``helm test`` of a revision made by ``produced_by`` is not a failure.

    The one place that decides it: the planner, the recorded memory and the status conditions
    all ask here. A revision of unknown origin follows the upgrade policy."""
    if produced_by is ReleaseAction.INSTALL:
        return policy.install.ignore_test_failures
    return policy.upgrade.ignore_test_failures


def _exhausted(retries: int, failures: int) -> bool:
    return retries >= 0 and failures > retries


def retries_by_default(kind: ReleaseAction, remediation: Remediation) -> bool:
    """No retry budget is configured for failures of ``kind``: retry with backoff, no limit.

    An install with ``retries == 0`` (its default purge is a remediation, not a budget); an
    upgrade with ``retries == 0`` and no remediation asked for (``remediate_last_failure``, set by
    ``rollback.enable`` or an explicit ``upgrade.remediation``: "remediate once, then stop")."""
    if remediation.retries != 0:
        return False
    return kind is ReleaseAction.INSTALL or not remediation.remediate_last_failure


def _retries_text(retries: int, by_default: bool = False) -> str:
    if by_default:
        return "unlimited (no retries configured)"
    return "unlimited" if retries < 0 else str(retries)


def _utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class _Ctx:
    observed: ObservedRelease | None
    memory: Memory
    desired: Desired
    now: float

    @property
    def policy(self) -> Policy:
        return self.desired.policy

    @property
    def failures(self) -> int:
        return _failures(self.memory, self.desired)

    @property
    def stale_failures(self) -> bool:
        return self.memory.failures > 0 and self.failures == 0

    @property
    def failed_kind(self) -> ReleaseAction:
        kind = self.memory.last_failed_action
        return ReleaseAction.INSTALL if kind is ReleaseAction.INSTALL else ReleaseAction.UPGRADE

    @property
    def failed_remediation(self) -> Remediation:
        p = self.policy
        return p.install if self.failed_kind is ReleaseAction.INSTALL else p.upgrade

    @property
    def failed_retries(self) -> int:
        return self.failed_remediation.retries

    @property
    def by_default(self) -> bool:
        """Failures of the failed action are retried by default (no budget configured)."""
        return retries_by_default(self.failed_kind, self.failed_remediation)

    def gated(self, action: Action, reason: str, *, adopt: bool = False) -> Plan:
        """``action`` now, or WAIT_RETRY when failures for this digest say so."""
        failures = self.failures
        if failures == 0:
            return Plan(action, reason, adopt=adopt, reset_failures=self.stale_failures)
        retries = self.failed_retries
        by_default = self.by_default
        kind = self.failed_kind.value
        if not by_default and _exhausted(retries, failures):
            return Plan(
                Action.WAIT_RETRY,
                f"{reason}; but {kind} failed {failures} time(s) for this desired state and "
                f"{kind} retries ({retries}) are used up: stalled until the spec, chart or values change",
                stalled=True,
            )
        backoff = self.policy.backoff
        last = self.memory.last_failure_time
        if backoff and last is not None:
            due = last + backoff[min(failures, len(backoff)) - 1]
            if self.now < due:
                return Plan(
                    Action.WAIT_RETRY,
                    f"{reason}; retry {failures} of {_retries_text(retries, by_default)} after "
                    f"{kind} failure is due at {_utc(due)}",
                    retry_at=due,
                    backoff=True,
                )
        return Plan(
            action,
            f"{reason} (retry {failures} of {_retries_text(retries, by_default)} after {kind} failure)",
            adopt=adopt,
        )


def plan(
    observed: ObservedRelease | None,
    memory: Memory,
    desired: Desired,
    *,
    now: float,
    drift_detected: bool | None = None,
) -> Plan:
    """The next action for a HelmRelease that exists (see the module table)."""
    decision = _plan(observed, memory, desired, now=now, drift_detected=drift_detected)
    return _waiting_for_test(_restoring_first(decision, observed, memory, desired), memory, desired, now)


def _waiting_for_test(decision: Plan, memory: Memory, desired: Desired, now: float) -> Plan:
    """Row 13: no Helm action while a ``helm test`` the agent started may still be running.

    Helm writes a test's outcome to storage only when the test ends, so an orphaned test (the
    agent was killed, its helm child lives on in its own session) or an old leader's is invisible
    in storage. The status records when the test started, before helm runs: any agent that reads
    it (restarted, or a new leader) waits as long as that test may run."""
    started = memory.test_started
    if decision.action not in HELM_ACTIONS or started is None:
        return decision
    until = started + desired.policy.test_grace
    if now >= until:
        return decision
    recheck = desired.policy.test_recheck
    return Plan(
        Action.WAIT_RETRY,
        f"{decision.reason}; but a helm test of revision {memory.last_release_revision} started "
        f"{now - started:.0f}s ago may still be running (its outcome is not recorded), waiting "
        f"{until - now:.0f}s more before {decision.action.value}",
        retry_at=min(until, now + recheck) if recheck > 0 else until,
    )


def _restoring_first(decision: Plan, r: ObservedRelease | None, memory: Memory, desired: Desired) -> Plan:
    """Row 8f: with helm 3, an upgrade after a failed revision first rolls back to the last
    deployed revision, so that the upgrade's merge base is what the failed revision left live.
    Otherwise a field the failed revision added (a label, a container) is never removed and a
    corrected desired state can never become Ready."""
    if (
        decision.action is not Action.UPGRADE
        or decision.adopt
        or r is None
        or r.status is not ReleaseStatus.FAILED
        or not desired.policy.merges_from_deployed
        or r.owner != desired.owner
    ):
        return decision
    prev = r.previous_deployed_revision
    if prev is None or prev >= r.revision:
        return decision
    if memory.last_release_action is ReleaseAction.ROLLBACK and memory.last_release_revision == r.revision:
        return decision  # the failed revision is a rollback (a failed restore): upgrade from it
    return Plan(
        Action.ROLLBACK,
        f"{decision.reason}; first restoring revision {prev}, because helm 3 merges an upgrade "
        f"against the last deployed revision and would keep what failed revision {r.revision} changed",
        rollback_to=prev,
        restore=True,
    )


def _plan(
    observed: ObservedRelease | None,
    memory: Memory,
    desired: Desired,
    *,
    now: float,
    drift_detected: bool | None,
) -> Plan:
    ctx = _Ctx(observed, memory, desired, now)
    r = observed
    p = desired.policy

    # 1 ownership first: another HelmRelease's release is never touched
    if r is not None and r.owner is not None and r.owner != desired.owner:
        return Plan(Action.REFUSE, f"release is managed by {r.owner!r}, not {desired.owner!r}")
    if r is not None and r.owner is None and not desired.adoptable:
        return Plan(
            Action.REFUSE,
            f"release (revision {r.revision}, {r.status.value}) has no owner marker and lives outside "
            "the HelmRelease's namespace: not taken over (the agent's --allow-adoption-across-namespaces "
            "allows it)",
        )
    # 2
    if desired.suspended:
        return Plan(Action.SUSPENDED, "reconciliation is suspended")
    # 3
    if r is None or r.status is ReleaseStatus.UNINSTALLED:
        if r is None:
            why = "no release in Helm storage"
            if memory.last_release_revision is not None:
                why += f" (revision {memory.last_release_revision} produced by the agent is gone)"
        else:
            why = f"release was uninstalled (revision {r.revision} kept in history)"
        return ctx.gated(Action.INSTALL, f"{why}: installing")
    # 4, 5
    if r.status.pending or r.status is ReleaseStatus.UNINSTALLING:
        grace = p.pending_grace
        if r.status is ReleaseStatus.PENDING_ROLLBACK:
            grace = max(grace, p.rollback_pending_grace)
        if r.last_modified is not None and now < r.last_modified + grace:
            until = r.last_modified + grace
            return Plan(
                Action.WAIT_RETRY,
                f"revision {r.revision} is {r.status.value} since {now - r.last_modified:.0f}s; another "
                f"operation may be running, waiting {until - now:.0f}s more before taking over",
                retry_at=until,
            )
        if r.status is ReleaseStatus.UNINSTALLING:
            return Plan(
                Action.UNINSTALL, f"revision {r.revision} was left uninstalling: finishing the uninstall"
            )
        return _unlock(ctx, r)
    # 6
    if r.owner is None:
        return ctx.gated(
            Action.UPGRADE,
            f"release (revision {r.revision}, {r.status.value}) has no owner marker, "
            "so it was installed outside the agent: taking it over",
            adopt=True,
        )
    # 7
    if memory.last_release_revision is None or r.revision != memory.last_release_revision:
        if memory.last_release_revision is None:
            why = f"no record of producing revision {r.revision}"
        elif r.revision > memory.last_release_revision:
            why = (
                f"revision {r.revision} was made outside the agent (last produced: "
                f"{memory.last_release_revision}; a manual helm upgrade or rollback?)"
            )
        else:
            why = (
                f"latest revision {r.revision} is older than the one the agent produced "
                f"({memory.last_release_revision})"
            )
        return ctx.gated(Action.UPGRADE, f"{why}: upgrading to the desired state")
    # 8
    in_digest = r.digest == desired.digest and memory.last_applied_digest == desired.digest
    tests_failed = (
        r.status is ReleaseStatus.DEPLOYED
        and in_digest
        and p.test_enabled
        and not ignores_test_failures(p, memory.last_release_action)
        and memory.test_state is TestState.FAILED
    )
    if r.status is ReleaseStatus.FAILED or tests_failed:
        return _failed(ctx, r, "tests failed" if tests_failed else "release failed")
    # 9
    if r.status is not ReleaseStatus.DEPLOYED:
        return ctx.gated(Action.UPGRADE, f"latest revision {r.revision} is {r.status.value}: upgrading")
    # 10
    if not in_digest:
        if r.digest != desired.digest:
            why = f"revision {r.revision} has digest {r.digest or 'none'}, desired {desired.digest}"
        else:
            why = f"status records digest {memory.last_applied_digest or 'none'} for revision {r.revision}"
        return ctx.gated(Action.UPGRADE, f"{why}: upgrading")
    # 11
    if p.test_enabled and memory.test_state is TestState.PENDING:
        return Plan(Action.TEST, f"revision {r.revision} is not tested yet")
    # 12
    reset = memory.failures > 0
    note = (
        " (tests failed, failures ignored)"
        if p.test_enabled and memory.test_state is TestState.FAILED
        else ""
    )
    in_sync = f"revision {r.revision} is deployed with the desired digest{note}"
    if p.drift is DriftMode.DISABLED:
        return Plan(Action.NONE, in_sync, reset_failures=reset)
    if drift_detected is None:
        return Plan(
            Action.NONE, f"{in_sync}; cluster drift not checked", check_drift=True, reset_failures=reset
        )
    if not drift_detected:
        return Plan(Action.NONE, f"{in_sync}; no cluster drift", reset_failures=reset)
    if p.drift is DriftMode.WARN:
        return Plan(
            Action.NONE, f"{in_sync}; cluster drift detected (warn only)", drifted=True, reset_failures=reset
        )
    return Plan(Action.CORRECT_DRIFT, f"{in_sync}; cluster drift detected: correcting", reset_failures=reset)


def _unlock(ctx: _Ctx, r: ObservedRelease) -> Plan:
    desired = ctx.desired
    after = record_unlock(ctx.memory, desired, r, now=ctx.now)
    if _discarded(r, ctx.memory, desired) and ctx.memory.last_release_revision is not None:
        failed = ctx.memory.last_release_revision
        # with the pending revision deleted, the failed revision is the latest again
        latest = replace(r, revision=failed, status=ReleaseStatus.FAILED, rolled_back_to=None)
        follow = plan(latest, after, desired, now=ctx.now)
        return Plan(
            Action.UNLOCK_PENDING,
            f"revision {r.revision} was left {r.status.value} (the agent's own rollback of failed "
            f"revision {failed} to revision {r.rolled_back_to}, interruption {after.interruptions} at "
            f"the desired state): discarding it, then {follow.action.value} (the same remediation)",
            then=follow.action,
            discard=True,
        )
    unlocked = replace(r, status=ReleaseStatus.FAILED)
    follow = plan(unlocked, after, desired, now=ctx.now)
    if not interrupted_attempt(desired, r):
        whose = "not an attempt at the desired state"
    elif not unrecorded_interruption(ctx.memory, desired, r):
        whose = "an attempt at the desired state whose failure is recorded"
    elif after.failures > ctx.failures:
        whose = (
            f"interrupted attempt {after.interruptions} at the desired state, more than "
            f"{desired.policy.max_interruptions} allowed: counted as a failure"
        )
    else:
        whose = f"interrupted attempt {after.interruptions} at the desired state, not a failure"
    return Plan(
        Action.UNLOCK_PENDING,
        f"revision {r.revision} was left {r.status.value} ({whose}): "
        f"marking it failed, then {follow.action.value}",
        then=follow.action,
    )


def unrecorded_interruption(memory: Memory, desired: Desired, r: ObservedRelease) -> bool:
    """The pending revision is the agent's own attempt, and the agent never learned its outcome
    (it was stopped mid-attempt). When the agent killed helm at its own deadline it recorded that
    attempt as a failure already (``last_release_revision`` is this revision): not counted again."""
    return interrupted_attempt(desired, r) and memory.last_release_revision != r.revision


def unrecorded_release(observed: ObservedRelease | None, memory: Memory, desired: Desired) -> bool:
    """The latest revision may be the agent's own successful install or upgrade of the desired
    state whose outcome it never recorded: helm finished, and the agent was stopped (kill -9,
    OOM, node loss) before its status write. Deployed, with this HelmRelease's owner marker and
    the desired digest, and newer than the last revision the agent recorded.

    Labels alone cannot tell: helm copies them onto the next revision, so a manual ``helm
    upgrade`` carries them too (row 7 must correct that one). The reconciler asks the revision's
    description (the agent's own ``--description``, never copied) before it
    :func:`record_unrecorded_release`; without this, row 7 would upgrade again to the very state
    the release already holds (one change, two upgrades)."""
    return (
        observed is not None
        and observed.status is ReleaseStatus.DEPLOYED
        and observed.owner == desired.owner
        and observed.digest == desired.digest
        and (memory.last_release_revision is None or observed.revision > memory.last_release_revision)
    )


def record_unrecorded_release(memory: Memory, desired: Desired, observed: ObservedRelease) -> Memory:
    """Record the agent's own successful install or upgrade found in storage (see
    :func:`unrecorded_release`): an install when no earlier revision was deployed."""
    action = ReleaseAction.INSTALL if observed.previous_deployed_revision is None else ReleaseAction.UPGRADE
    return record_release(memory, desired, action=action, revision=observed.revision)


def own_rollback_candidate(observed: ObservedRelease | None, memory: Memory, desired: Desired) -> bool:
    """The latest revision may be the agent's own remediation rollback of the failed revision it
    last recorded, whose outcome it never learned (the agent was stopped during ``helm rollback``
    or before its status write): this HelmRelease's owner marker, the revision right after that
    failed install or upgrade, not remediated yet, and left by a rollback (pending-rollback) or
    written by one (deployed). Labels and memory only: the reconciler then reads the revision's
    description (:attr:`ObservedRelease.rolled_back_to`) for this one question."""
    failed = memory.last_release_revision
    return (
        observed is not None
        and observed.owner == desired.owner
        and failed is not None
        and observed.revision == failed + 1
        and observed.status in (ReleaseStatus.PENDING_ROLLBACK, ReleaseStatus.DEPLOYED)
        and memory.last_release_action in (ReleaseAction.INSTALL, ReleaseAction.UPGRADE)
        and memory.last_remediated_revision != failed
    )


def unrecorded_remediation(observed: ObservedRelease | None, memory: Memory, desired: Desired) -> bool:
    """The latest revision is the agent's own remediation rollback whose outcome it never recorded:
    an :func:`own_rollback_candidate` that helm's rollback wrote to the very revision row 8c rolls
    the failed revision back to.

    helm gives ``helm rollback`` no ``--description``: a person's ``helm rollback`` to that same
    revision right after the failure looks the same, and is taken for the agent's (it restores
    what the remediation would have restored)."""
    if observed is None or observed.rolled_back_to is None:
        return False
    if not own_rollback_candidate(observed, memory, desired) or memory.last_release_revision is None:
        return False
    failed = replace(
        observed, revision=memory.last_release_revision, status=ReleaseStatus.FAILED, rolled_back_to=None
    )
    remediation = _failed(_Ctx(failed, memory, desired, 0.0), failed, "release failed")
    return (
        remediation.action is Action.ROLLBACK
        and remediation.remediation
        and remediation.rollback_to == observed.rolled_back_to
    )


def _discarded(observed: ObservedRelease, memory: Memory, desired: Desired) -> bool:
    """Row 4b discards this pending revision: the agent's own interrupted remediation rollback,
    while fewer than ``max_interruptions`` interruptions of the desired state are recorded (a
    rollback that kills the agent each time is not run again for ever)."""
    return (
        observed.status is ReleaseStatus.PENDING_ROLLBACK
        and unrecorded_remediation(observed, memory, desired)
        and _interruptions(memory, desired) < desired.policy.max_interruptions
    )


def record_unrecorded_rollback(memory: Memory, observed: ObservedRelease) -> Memory:
    """Record the agent's own remediation rollback that helm finished (deployed) but the stopped
    agent never recorded (see :func:`unrecorded_remediation`), as the remediation would have."""
    failed = memory.last_release_revision
    return record_rollback(memory, remediated=failed or 0, revision=observed.revision, succeeded=True)


def _interruptions(memory: Memory, desired: Desired) -> int:
    return memory.interruptions if memory.last_interrupted_digest == desired.digest else 0


def interrupted_attempt(desired: Desired, r: ObservedRelease) -> bool:
    """The pending revision is the agent's own install/upgrade of the desired state."""
    return (
        r.owner == desired.owner
        and r.digest == desired.digest
        and r.status in (ReleaseStatus.PENDING_INSTALL, ReleaseStatus.PENDING_UPGRADE)
    )


def _failed(ctx: _Ctx, r: ObservedRelease, what: str) -> Plan:
    memory = ctx.memory
    p = ctx.policy
    failures = ctx.failures
    if failures == 0:
        return Plan(
            Action.UPGRADE,
            f"{what} at revision {r.revision}, no failure counted for the desired state: upgrading",
            reset_failures=ctx.stale_failures,
        )
    kind = ctx.failed_kind
    pol_retries = ctx.failed_retries
    last_ok = ctx.failed_remediation.remediate_last_failure
    # retried by default: remediate only what was asked for (the default purge of an install)
    allowed = last_ok if ctx.by_default else (not _exhausted(pol_retries, failures) or last_ok)
    may_remediate = (
        memory.last_release_action in (ReleaseAction.INSTALL, ReleaseAction.UPGRADE)
        and memory.last_remediated_revision != r.revision
        and allowed
    )
    head = (
        f"{what} at revision {r.revision} "
        f"({kind.value} failure {failures}, retries {_retries_text(pol_retries, ctx.by_default)})"
    )
    if may_remediate:
        if kind is ReleaseAction.INSTALL:
            if p.install.strategy is RemediationStrategy.UNINSTALL:
                return Plan(Action.UNINSTALL, f"{head}: uninstalling", remediation=True)
        elif p.upgrade.strategy is RemediationStrategy.UNINSTALL:
            return Plan(Action.UNINSTALL, f"{head}: uninstalling", remediation=True)
        else:
            prev = r.previous_deployed_revision
            if prev is not None and prev < r.revision:
                return Plan(
                    Action.ROLLBACK,
                    f"{head}: rolling back to revision {prev}",
                    rollback_to=prev,
                    remediation=True,
                )
            head += "; no earlier deployed revision to roll back to"
    return ctx.gated(Action.UPGRADE, f"{head}: upgrading again")


def plan_deletion(
    observed: ObservedRelease | None,
    owner: str,
    *,
    suspended: bool = False,
    now: float = 0.0,
    pending_grace: float = 0.0,
    test_until: float | None = None,
) -> Plan:
    """What to do with the release when its HelmRelease is deleted.

    UNINSTALL only a release this HelmRelease owns (its owner marker, or the Helm Operator's
    antecedent naming it): NONE when there is no release, REFUSE when another HelmRelease owns it
    or it has no owner marker (installed outside the agent, or never taken over: a HelmRelease
    whose chart never fetched must not remove a release that merely has its name), SUSPENDED when
    the HelmRelease is suspended (the release is kept, as in Flux). Like row 4a, a revision that
    is ``pending-*`` or ``uninstalling`` and changed less than ``pending_grace`` ago may belong to
    an operation still running (a person's helm, an old leader's): WAIT_RETRY until the grace
    has passed, so two helm operations never run on one release. Likewise until ``test_until``,
    while a ``helm test`` the agent started may still run (row 13).
    """
    if observed is None or observed.status is ReleaseStatus.UNINSTALLED:
        return Plan(Action.NONE, "no release to uninstall")
    if observed.owner is None:
        return Plan(
            Action.REFUSE,
            f"release (revision {observed.revision}) has no owner marker, so this HelmRelease never "
            "managed it: left in place",
        )
    if observed.owner != owner:
        return Plan(Action.REFUSE, f"release is managed by {observed.owner!r}: left in place")
    if suspended:
        return Plan(Action.SUSPENDED, "HelmRelease is suspended: release left in place")
    busy = observed.status.pending or observed.status is ReleaseStatus.UNINSTALLING
    if busy and observed.last_modified is not None and now < observed.last_modified + pending_grace:
        until = observed.last_modified + pending_grace
        return Plan(
            Action.WAIT_RETRY,
            f"HelmRelease deleted, but revision {observed.revision} is {observed.status.value} since "
            f"{now - observed.last_modified:.0f}s; another operation may be running, waiting "
            f"{until - now:.0f}s more before uninstalling",
            retry_at=until,
        )
    if test_until is not None and now < test_until:
        return Plan(
            Action.WAIT_RETRY,
            f"HelmRelease deleted, but a helm test of revision {observed.revision} may still be "
            f"running, waiting {test_until - now:.0f}s more before uninstalling",
            retry_at=test_until,
        )
    return Plan(Action.UNINSTALL, f"HelmRelease deleted: uninstalling revision {observed.revision}")


# ---------------------------------------------------------------------------------------------
# recording outcomes (pure transitions of Memory, so the reconciler and plan agree)


def record_release(memory: Memory, desired: Desired, *, action: ReleaseAction, revision: int) -> Memory:
    """An install or upgrade succeeded and wrote ``revision``."""
    m = replace(
        memory,
        last_applied_digest=desired.digest,
        last_release_revision=revision,
        test_started=None,  # it named a test of the revision before
        last_release_action=action,
        test_state=TestState.PENDING,
    )
    # with tests enabled, success is only known after the tests (their failure must count
    # as the next consecutive failure, or test failures would retry forever)
    return m if desired.policy.test_enabled else _cleared(m)


def record_test_started(memory: Memory, *, now: float) -> Memory:
    """A ``helm test`` of ``memory.last_release_revision`` is about to start (recorded before
    helm runs, so that an agent that finds it unfinished waits for it: row 13)."""
    return replace(memory, test_started=now)


def record_test(memory: Memory, desired: Desired, *, passed: bool, now: float) -> Memory:
    """Tests ran for ``memory.last_release_revision``."""
    m = replace(memory, test_state=TestState.PASSED if passed else TestState.FAILED, test_started=None)
    if passed or ignores_test_failures(desired.policy, memory.last_release_action):
        return _cleared(m)
    action = memory.last_release_action if memory.last_release_action is not None else ReleaseAction.UPGRADE
    return _failed_memory(m, desired, action, now)


def record_failure(
    memory: Memory, desired: Desired, *, action: ReleaseAction, revision: int | None, now: float
) -> Memory:
    """An install or upgrade failed; ``revision`` is the (failed) revision it wrote, if any."""
    m = memory
    if revision is not None:
        m = replace(
            m, last_release_revision=revision, last_release_action=action, test_state=TestState.PENDING
        )
        if m.last_remediated_revision == revision:
            # revision numbers restart after an uninstall: this failed revision is a new one
            m = replace(m, last_remediated_revision=None)
    return _failed_memory(m, desired, action, now)


def record_rollback(memory: Memory, *, remediated: int, revision: int | None, succeeded: bool) -> Memory:
    """A rollback remediated revision ``remediated``; it wrote ``revision`` (if any)."""
    m = replace(memory, last_remediated_revision=remediated)
    if revision is not None:
        m = replace(
            m,
            last_release_revision=revision,
            test_started=None,  # it named a test of the revision before
            last_release_action=ReleaseAction.ROLLBACK,
            test_state=TestState.PASSED,
            last_applied_digest=None,
        )
    return replace(m, rollback_count=m.rollback_count + 1) if succeeded else m


def record_restore(
    memory: Memory, desired: Desired, *, revision: int | None, succeeded: bool, now: float
) -> Memory:
    """A row 8f rollback ran before an upgrade and wrote ``revision`` (if any). It is not a
    remediation: ``rollback_count`` stays. A failed one counts as a failure of the upgrade it
    prepares, so it is retried with the backoff and not in a tight loop."""
    m = memory
    if revision is not None:
        m = replace(
            m,
            last_release_revision=revision,
            test_started=None,  # it named a test of the revision before
            last_release_action=ReleaseAction.ROLLBACK,
            test_state=TestState.PASSED,
            last_applied_digest=None,
        )
    return m if succeeded else _failed_memory(m, desired, ReleaseAction.UPGRADE, now)


def record_uninstall(memory: Memory, *, remediated: int | None, succeeded: bool) -> Memory:
    """An uninstall ran; ``remediated`` is the failed revision it repaired, if any."""
    m = replace(memory, last_remediated_revision=remediated) if remediated is not None else memory
    if not succeeded:
        return m
    return replace(
        m,
        last_release_revision=None,
        test_started=None,  # it named a test of the revision before
        last_release_action=None,
        last_applied_digest=None,
        test_state=TestState.PENDING,
    )


def record_unlock(memory: Memory, desired: Desired, observed: ObservedRelease, *, now: float) -> Memory:
    """A pending revision was marked failed (or discarded). The agent's own interrupted attempt becomes its
    latest revision (so it is not mistaken for a manual change) and is counted as an
    interruption of the desired state; only past ``policy.max_interruptions`` is it a failure.
    The agent's own interrupted remediation rollback (row 4b, discarded) is counted as an
    interruption too, so that resuming it is bounded; the failed revision stays the latest."""
    if _discarded(observed, memory, desired):
        return _interrupted(memory, desired, ReleaseAction.UPGRADE, now)
    if not unrecorded_interruption(memory, desired, observed):
        return memory
    action = (
        ReleaseAction.INSTALL if observed.status is ReleaseStatus.PENDING_INSTALL else ReleaseAction.UPGRADE
    )
    m = replace(
        memory,
        last_release_revision=observed.revision,
        test_started=None,  # it named a test of the revision before
        last_release_action=action,
        test_state=TestState.PENDING,
    )
    if m.last_remediated_revision == observed.revision:
        m = replace(m, last_remediated_revision=None)
    return _interrupted(m, desired, action, now)


def record_unjudged(
    memory: Memory, desired: Desired, *, action: ReleaseAction, revision: int | None, now: float
) -> Memory:
    """An install or upgrade failed without a verdict on the desired state (its wait judged a
    previous rollout's stale status): counted as an interruption, a failure only past the bound."""
    m = memory
    if revision is not None:
        m = replace(
            m,
            last_release_revision=revision,
            last_release_action=action,
            test_state=TestState.PENDING,
            test_started=None,
        )
        if m.last_remediated_revision == revision:
            m = replace(m, last_remediated_revision=None)
    return _interrupted(m, desired, action, now)


def _interrupted(memory: Memory, desired: Desired, action: ReleaseAction, now: float) -> Memory:
    same = memory.last_interrupted_digest == desired.digest
    m = replace(
        memory,
        interruptions=(memory.interruptions if same else 0) + 1,
        last_interrupted_digest=desired.digest,
    )
    if m.interruptions > desired.policy.max_interruptions:
        return _failed_memory(m, desired, action, now)
    return m


def _failed_memory(memory: Memory, desired: Desired, action: ReleaseAction, now: float) -> Memory:
    return replace(
        memory,
        failures=_failures(memory, desired) + 1,
        last_failed_digest=desired.digest,
        last_failed_generation=desired.generation,
        last_failed_action=action,
        last_failure_time=now,
    )


def forget_failures(memory: Memory) -> Memory:
    """The failure counters no longer apply (``Plan.reset_failures``): clear them."""
    return replace(
        memory,
        failures=0,
        last_failed_digest=None,
        last_failed_generation=None,
        last_failed_action=None,
        last_failure_time=None,
    )


def _cleared(memory: Memory) -> Memory:
    """The desired state was reached: no failures or interruptions, and the rollbacks since the
    last success end."""
    return replace(forget_failures(memory), rollback_count=0, interruptions=0, last_interrupted_digest=None)
