"""Which Git chart sources a HelmRelease may name, and which may use the operator's SSH key.

Place in the flow: the resolver refuses a ``chart.git`` that is a path on the agent's own disk
(``file://`` or a plain path: the agent's mirrors, checkouts and work files live there) unless
the operator allows it (``--allow-local-chart-git``); the Git chart source hands the agent's
``--git-ssh-key`` only to the hosts the operator lists (``--git-ssh-key-hosts``; by default the
host of the synced repository, so charts kept in the config repository keep working).

Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit

__all__ = ["is_local_git_url", "ssh_address", "ssh_host_entry", "ssh_key_allowed"]

_SCP = re.compile(r"^(?:[^@/:\s]+@)?(?P<host>[^@/:\s]+):(?!//)")


def is_local_git_url(url: str) -> bool:
    """``file://...`` or a path (git's rule: no scheme and no ``host:`` before the first slash)."""
    if "://" in url:
        return url.partition("://")[0].lower() == "file"
    return _SCP.match(url) is None


def ssh_address(url: str) -> tuple[str, int | None] | None:
    """(host, port) of an SSH URL (``ssh://user@host:port/path`` or ``user@host:path``), lower-cased
    host; None for any other kind of URL."""
    if "://" in url:
        parts = urlsplit(url)
        if parts.scheme.lower() != "ssh" or not parts.hostname:
            return None
        try:
            return parts.hostname.lower(), parts.port
        except ValueError:
            return None
    scp = _SCP.match(url)
    return (scp["host"].lower(), None) if scp else None


def ssh_host_entry(url: str) -> str | None:
    """The ``--git-ssh-key-hosts`` entry for an SSH URL's host (``host``, ``host:port``,
    ``[v6]:port``) as :func:`ssh_key_allowed` reads it; None for any other kind of URL."""
    address = ssh_address(url)
    if address is None:
        return None
    host, port = address
    host = f"[{host}]" if ":" in host else host  # IPv6
    return f"{host}:{port}" if port else host


def ssh_key_allowed(url: str, hosts: Iterable[str]) -> bool:
    """Whether ``url`` is an SSH URL of a listed host: ``host`` allows every port, ``host:port``
    only that one."""
    address = ssh_address(url)
    if address is None:
        return False
    host, port = address
    for entry in hosts:
        name, colon, listed_port = entry.strip().lower().rpartition(":")
        if not colon:
            name, listed_port = listed_port, ""
        if name.strip("[]") == host and (not listed_port or str(port or 22) == listed_port):
            return True
    return False
