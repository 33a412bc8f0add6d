"""The installation's digest key: what makes recorded desired-state digests unguessable.

Place in the flow: ``agent.Agent`` loads the key once when it starts acting
(:meth:`DigestKey.load`) and the reconciler's ``release.desired.desired_digest`` mixes it in
with HMAC-SHA256. The digest lands where many can read it (the HelmRelease's
``status.lastAppliedDigest``, the Helm storage label ``gitops-helm.io/digest``) and covers the
composed values, Secret values included: a plain hash would let anyone who reads it test guesses
of a Secret offline. Keyed, it says only "changed" or "unchanged".

The key lives in the Secret ``gitops-helm-digest-key`` of the state namespace, created with 32
random bytes by the first agent that needs it (replicas racing to create it all read back the
one that won). Losing it changes every digest: each release is then upgraded once with the same
chart and values (a new revision, the workloads unchanged).
"""

from __future__ import annotations

import secrets
import threading

from gitops_helm.adapters.kube import Kube, KubeError, KubeErrorKind

KEY_SECRET = "gitops-helm-digest-key"  # noqa: S105 - the Secret's name, not a secret
KEY_FIELD = "key"
KEY_BYTES = 32
MIN_KEY_BYTES = 16
LABELS = {"app.kubernetes.io/managed-by": "gitops-helm", "app.kubernetes.io/component": "digest-key"}


class DigestKey:
    """The key, loaded once; :attr:`value` before :meth:`load` is a programming error."""

    def __init__(self, kube: Kube, namespace: str) -> None:
        self._kube = kube
        self._namespace = namespace
        self._value: bytes | None = None
        self._lock = threading.Lock()

    @property
    def value(self) -> bytes:
        if self._value is None:
            raise RuntimeError("the digest key is used before DigestKey.load()")
        return self._value

    def load(self) -> bytes:
        """Read the key, creating it first when there is none (idempotent)."""
        with self._lock:
            if self._value is None:
                self._value = load_or_create(self._kube, self._namespace)
            return self._value


def load_or_create(kube: Kube, namespace: str) -> bytes:
    where = f"Secret {namespace}/{KEY_SECRET}"
    data = kube.get_secret_data(namespace, KEY_SECRET)
    if data is None:
        kube.create_secret(namespace, KEY_SECRET, {KEY_FIELD: secrets.token_bytes(KEY_BYTES)}, LABELS)
        data = kube.get_secret_data(namespace, KEY_SECRET)  # ours, or the one a replica created first
    key = (data or {}).get(KEY_FIELD, b"")
    if len(key) < MIN_KEY_BYTES:
        raise KubeError(
            KubeErrorKind.INVALID,
            where,
            f"field {KEY_FIELD!r} is missing or shorter than {MIN_KEY_BYTES} bytes; restore it from a "
            "backup, or delete the Secret to have a new key made (every release is then upgraded once)",
        )
    return key


def read_existing(kube: Kube, namespace: str) -> bytes | None:
    """The key if one exists and is usable, else None; creates nothing (for ``plan``, which
    changes nothing: with no key yet, the agent makes one and no digest can be known before)."""
    data = kube.get_secret_data(namespace, KEY_SECRET)
    key = (data or {}).get(KEY_FIELD, b"")
    return key if len(key) >= MIN_KEY_BYTES else None
