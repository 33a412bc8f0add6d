"""The desired state of a release: its digest and the planner's policy, from spec, chart and values.

Place in the flow: after the chart is fetched and the values composed, the reconciler builds a
``plan.Desired`` with :func:`desired_state`. The digest covers everything that changes what the
release is, and nothing else: timeouts and retry policy do not cause upgrades.
"""

from __future__ import annotations

import hashlib
import hmac
import json

from gitops_helm.api import ReleasePolicy
from gitops_helm.config import RetrySettings
from gitops_helm.release import plan as pl
from gitops_helm.release.identity import ReleaseRef

#: How many backoff steps the planner is given; the last one repeats.
BACKOFF_STEPS = 8


def desired_digest(policy: ReleasePolicy, chart_digest: str, values_digest: str, key: bytes | None) -> str:
    """Digest of everything that changes what the release is (not timeouts or retry policy).

    Keyed with the installation's digest key (``release.digest_key``): it is readable in status
    and storage labels and covers Secret values, so it must not allow guessing them offline.
    ``key=None`` gives the unkeyed digest earlier versions recorded (see :func:`desired_state`).
    """
    material = {
        "chart": chart_digest,
        "values": values_digest,
        "release": policy.release_name,
        "namespace": policy.target_namespace,
        "reuseValues": policy.reuse_values,
        "force": policy.force_upgrade,
        "skipCRDs": policy.skip_crds,
        "disableOpenAPIValidation": policy.disable_openapi_validation,
    }
    encoded = json.dumps(material, sort_keys=True).encode()
    if key is None:
        return hashlib.sha256(encoded).hexdigest()[:48]
    return "h1-" + hmac.new(key, encoded, hashlib.sha256).hexdigest()[:48]


def keyed_values_digest(values_digest: str, key: bytes) -> str:
    """The values digest as ``status.history`` shows it: keyed like the desired digest (values may
    hold Secret data; a plain digest would let anyone who reads the status test guesses)."""
    return "h1-" + hmac.new(key, values_digest.encode(), hashlib.sha256).hexdigest()[:48]


def plan_policy(
    policy: ReleasePolicy, retry: RetrySettings, *, merges_from_deployed: bool = False
) -> pl.Policy:
    """The planner's view of the effective policy; the backoff schedule and the bound on
    interrupted attempts come from the settings. ``merges_from_deployed``: the helm in use (3)
    merges an upgrade against the last deployed revision (see ``plan`` row 8f)."""
    return pl.Policy(
        install=policy.install,
        upgrade=policy.upgrade,
        test_enabled=policy.test.enable,
        drift=policy.drift_detection.mode,
        backoff=tuple(retry.delay(n) for n in range(1, BACKOFF_STEPS + 1)),
        # a pending-* revision younger than this may still be another operation's
        pending_grace=float(policy.timeout) + retry.pending_grace_margin_s,
        # the agent's own rollbacks run with spec.rollback.timeout
        rollback_pending_grace=float(policy.rollback.timeout) + retry.pending_grace_margin_s,
        max_interruptions=retry.max_interruptions,
        # a helm test the agent started (and may have orphaned) runs at most spec.test.timeout
        test_grace=float(policy.test.timeout) + retry.pending_grace_margin_s,
        # ... and looks at storage again this often meanwhile (the test's outcome, once it ended)
        test_recheck=retry.base_s,
        merges_from_deployed=merges_from_deployed,
    )


def desired_state(
    ref: ReleaseRef,
    policy: ReleasePolicy,
    generation: int,
    chart_digest: str,
    values_digest: str,
    retry: RetrySettings,
    key: bytes,
    *,
    adopt_across_namespaces: bool = False,
    merges_from_deployed: bool = False,
) -> pl.Desired:
    """What the release should be. A release without an owner marker may be taken over only in
    the HelmRelease's own namespace, unless ``adopt_across_namespaces``."""
    return pl.Desired(
        digest=desired_digest(policy, chart_digest, values_digest, key),
        generation=generation,
        owner=ref.owner,
        suspended=False,
        policy=plan_policy(policy, retry, merges_from_deployed=merges_from_deployed),
        adoptable=adopt_across_namespaces or ref.target_namespace == ref.namespace,
    )


def unkeyed_digest(policy: ReleasePolicy, chart_digest: str, values_digest: str) -> str:
    """The digest of the same desired state as a version without the digest key recorded it: a
    release it left deployed and unchanged is recognised as in sync, and costs no upgrade."""
    return desired_digest(policy, chart_digest, values_digest, None)
