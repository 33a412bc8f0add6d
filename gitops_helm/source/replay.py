"""Webhook replays: which verified deliveries the agent has already acted on.

Place in the data flow: the HTTP server (``server.py``) asks :meth:`DeliveryMemory.replay` about
every verified push that concerns the synced repository and branch, before it triggers a fetch.

Why: a signature proves who wrote a body, not when. GitHub, Gitea and the generic format sign the
body only (no timestamp), and the delivery id travels in an unsigned header, so anyone who saw one
delivery can send it again, as often as they like, and each copy would make the agent fetch.

The rule (a delivery is acted on at most once, and never for a commit the agent already has):

1. a delivery id (``X-GitHub-Delivery``, ``X-Gitea-Delivery``, ``X-Forgejo-Delivery``,
   ``X-Gitlab-Event-UUID``, generic ``X-Delivery``) seen in one of the last ``capacity`` acted-on
   deliveries is a **duplicate**: answered 409, no fetch (GitHub's "Redeliver" of a delivery the
   agent received sends the same id: the agent acted on it the first time);
2. a push whose commit (``after``; GitLab ``checkout_sha``) is the commit the source has checked
   out is **already synced**: 202, no fetch;
3. a push whose commit was named by an acted-on delivery while the source's head has not moved
   since is **already being fetched**: 202, no fetch (the source retries a failed fetch on its
   own backoff, so nothing is lost; a flood of copies cannot make it fetch early and often).

A delivery naming no commit (a generic "something changed", an empty body) cannot be told from a
new one: with no delivery id it is acted on every time, bounded only by the fetch coalescing of
``GitSource.trigger``. Memory is bounded (least recently recorded first out) and per process.
"""

from __future__ import annotations

import enum
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["DELIVERY_ID_HEADERS", "DeliveryMemory", "Replay", "ReplayKind", "delivery_id"]

DELIVERY_ID_HEADERS = (
    "x-github-delivery",
    "x-gitea-delivery",
    "x-forgejo-delivery",
    "x-gitlab-event-uuid",
    "x-delivery",
)
_COMMIT = re.compile(r"[0-9a-fA-F]{40}|[0-9a-fA-F]{64}")  # SHA-1 or SHA-256
_MAX_ID_CHARS = 200  # an id is a GUID; a longer header is cut (it is only compared, never shown whole)


def delivery_id(headers: Mapping[str, str]) -> str | None:
    """The delivery id the provider sent, or ``None``."""
    lowered = {key.lower(): value.strip() for key, value in headers.items()}
    for name in DELIVERY_ID_HEADERS:
        value = lowered.get(name)
        if value:
            return f"{name}:{value[:_MAX_ID_CHARS]}"
    return None


class ReplayKind(enum.StrEnum):
    DUPLICATE = "duplicate delivery"
    SYNCED = "already synced"
    FETCHING = "already being fetched"


@dataclass(frozen=True)
class Replay:
    kind: ReplayKind
    reason: str


class DeliveryMemory:
    """The last ``capacity`` acted-on delivery ids and commits; thread-safe."""

    def __init__(self, capacity: int = 1024) -> None:
        self._capacity = max(1, capacity)
        self._ids: OrderedDict[str, str | None] = OrderedDict()  # the values are unused
        self._commits: OrderedDict[str, str | None] = OrderedDict()  # commit -> the head then
        self._lock = threading.Lock()

    def replay(self, delivery: str | None, commit: str | None, head: str | None) -> Replay | None:
        """Why this delivery must not trigger a fetch, or ``None`` (then it is recorded as acted on).

        ``head`` is the commit the source has checked out now (``None`` before its first fetch).
        """
        # only a commit id is remembered: a body's "after" may be any string up to the body's size
        commit = commit.lower() if commit and _COMMIT.fullmatch(commit) else None
        with self._lock:
            if delivery is not None and delivery in self._ids:
                return Replay(ReplayKind.DUPLICATE, "this delivery id was already received")
            if commit is not None and head is not None and commit == head.lower():
                return Replay(ReplayKind.SYNCED, f"commit {commit[:12]} is already synced")
            if commit is not None and commit in self._commits and self._commits[commit] == head:
                return Replay(ReplayKind.FETCHING, f"commit {commit[:12]} is already being fetched")
            if delivery is not None:
                self._remember(self._ids, delivery, None)
            if commit is not None:
                self._remember(self._commits, commit, head)
            return None

    def _remember(self, memory: OrderedDict[str, str | None], key: str, value: str | None) -> None:
        memory[key] = value
        memory.move_to_end(key)
        while len(memory) > self._capacity:
            memory.popitem(last=False)
