"""Which Event an emitted Event repeats: a bounded memory of the Events this process created.

Place in the flow: :meth:`gitops_helm.adapters.kube.Kube.emit_event` asks :meth:`RecentEvents.seen`
before writing. A repeat (same involved object, type, reason and message) increments the count
of the Event already written instead of creating a new object on every retry, the way
client-go's event correlator does; the map keeps the most recently used entries only, so a
long-running agent's memory stays bounded. Pure and thread-safe; no I/O.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

EventKey = tuple[str, str, str, str, str, str]  # namespace, kind, name, uid, type, reason+message


@dataclass(frozen=True)
class Written:
    """An Event this process wrote: its name and the count it has on the server."""

    namespace: str
    name: str
    count: int


def event_key(
    namespace: str, kind: str, name: str, uid: str, event_type: str, reason: str, message: str
) -> EventKey:
    return (namespace, kind, name, uid, event_type, f"{reason}\n{message}")


class RecentEvents:
    def __init__(self, limit: int) -> None:
        self.limit = max(1, limit)
        self._written: OrderedDict[EventKey, Written] = OrderedDict()
        self._lock = threading.Lock()

    def seen(self, key: EventKey) -> Written | None:
        """The Event last written for ``key``, if still remembered."""
        with self._lock:
            found = self._written.get(key)
            if found is not None:
                self._written.move_to_end(key)
            return found

    def remember(self, key: EventKey, written: Written) -> None:
        with self._lock:
            self._written[key] = written
            self._written.move_to_end(key)
            while len(self._written) > self.limit:
                self._written.popitem(last=False)

    def forget(self, key: EventKey) -> None:
        with self._lock:
            self._written.pop(key, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._written)
