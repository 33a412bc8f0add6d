"""Credential fingerprints: the part of every chart cache key that says who fetched the entry.

Place in the flow: the chart sources key what they remember (repository index state and its files
on disk, the lookup of a chart URL to the archive digest) by a fingerprint of the credentials
used, so what one identity obtained is never served to another without its own request.
Anonymous access is an identity of its own. (The HTTP adapter keys its sessions and the OCI
source its tokens and tag digests the same way, with ``Identity.key``, which lives in memory only.)

A fingerprint is an HMAC-SHA256, under a key of this installation, of every part that decides
what a server lets the caller see (user name, password, token, CA, client certificate and key,
TLS options). Fingerprints name files on disk, so the key is kept in the private work directory
(0600, created once) and survives a restart; without the key a fingerprint cannot be tested
against a guessed password, and no secret is ever part of a key, a file name or a log.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Iterable
from pathlib import Path

from gitops_helm.charts.errors import AuthConfigError

__all__ = ["FingerprintKey", "Part"]

Part = str | bytes | bool | None
_KEY_BYTES = 32


class FingerprintKey:
    """The installation's key for credential fingerprints. Its value is never in ``repr``."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("a fingerprint key has at least 16 bytes")
        self._key = key

    def __repr__(self) -> str:
        return "FingerprintKey(...)"

    @classmethod
    def random(cls) -> FingerprintKey:
        """A key for this process only (fingerprints kept in memory)."""
        return cls(os.urandom(_KEY_BYTES))

    @classmethod
    def load_or_create(cls, path: Path) -> FingerprintKey:
        """The key in ``path``, created (0600) with random bytes when there is none. A file of
        the wrong size (damaged) is replaced: only cache file names depend on it."""
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            data = b""
        except OSError as exc:
            raise AuthConfigError(f"cannot read the fingerprint key {path}: {exc.strerror}") from None
        if len(data) == _KEY_BYTES:
            return cls(data)
        path.parent.mkdir(parents=True, exist_ok=True)
        fresh = os.urandom(_KEY_BYTES)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(fresh)
            if data:
                os.replace(tmp, path)
            else:
                try:
                    os.link(tmp, path)  # created once: a concurrent creator's key wins
                except FileExistsError:
                    return cls.load_or_create(path)
        finally:
            tmp.unlink(missing_ok=True)
        return cls(fresh)

    def fingerprint(self, parts: Iterable[Part]) -> str:
        """Hex HMAC-SHA256 of ``parts``, each typed and length-prefixed: ``None``, ``""`` and
        ``b""`` differ, and no two sequences of parts run into each other."""
        mac = hmac.new(self._key, digestmod=hashlib.sha256)
        for part in parts:
            if part is None:
                tag, data = b"n", b""
            elif isinstance(part, bool):
                tag, data = b"b", bytes([part])
            elif isinstance(part, bytes):
                tag, data = b"y", part
            else:
                tag, data = b"s", part.encode("utf-8", "surrogatepass")
            mac.update(tag + len(data).to_bytes(8, "big") + data)
        return mac.hexdigest()
