"""Content-addressed chart cache and safe chart extraction.

Place in the data flow: `helmrepo` streams a downloaded chart archive into `ChartCache.store`,
which verifies its sha256 and publishes it as `<root>/charts/sha256/<hex>.tgz` (temp file +
rename, so a reader never sees a partial file). A cached digest is never downloaded again while
its file is intact: `ChartCache.lookup` hashes the file on use unless it is the very file it
verified before, unchanged since (same inode, size, mtime and ctime: any write changes the ctime,
which nobody but root can set back), and a file whose content no longer matches its name (disk
corruption, a replaced file) is discarded and reported missing, so the caller fetches it again
(and the store's digest check refuses a source that serves the wrong bytes once more).
The helm adapter is given that `.tgz`; code that needs the chart's files (values
`chartFileRef`, dependency handling) calls `ChartCache.unpack`, which extracts with
`archive.extract_chart` (bounded streaming checks of every member before anything is written:
absolute paths, `..`, link chains leaving the chart, special files, size and count limits).
Extracted directories are shared: treat them as read-only.

No network I/O here; errors are the permanent `ArchiveError`, `SizeLimitError` and
`DigestMismatchError` of `gitops_helm.charts.errors`.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from gitops_helm import log as logging
from gitops_helm.charts.archive import DEFAULT_LIMITS, ExtractLimits, extract_chart
from gitops_helm.charts.errors import ArchiveError, DigestMismatchError, SizeLimitError

__all__ = ["ChartCache", "ExtractLimits", "extract_chart", "is_sha256"]

_log = logging.get(__name__)
_MiB = 1024 * 1024
_HASH_CHUNK = _MiB
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
#: A file changed less than this long before it was hashed may change again within the same
#: timestamp tick (coarse, or a whole second on some filesystems) and keep its times: such a file
#: is hashed again on its next use; only one settled for this long is remembered as verified.
_SETTLE_S = 2.0

#: What identifies one version of a file's content: device, inode, size, mtime, ctime (ns).
_Stamp = tuple[int, int, int, int, int]


def _stamp(st: os.stat_result) -> _Stamp:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def is_sha256(text: str) -> bool:
    """Whether `text` is a lower-case hex sha256 digest."""
    return bool(_HEX64.match(text))


class ChartCache:
    """Chart archives by sha256 under `<root>/charts/sha256/`, unpacked under `.../unpacked/`."""

    def __init__(self, root: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.root = root
        self._archives = root / "charts" / "sha256"
        self._unpacked = root / "charts" / "unpacked"
        self._clock = clock  # wall clock: compared with the files' ctime
        # archives hashed and found intact, by digest: the file as it was then (a resync uses the
        # same archive three times; hashing a 1 MiB chart costs about 1.5 ms each time)
        self._verified: dict[str, _Stamp] = {}
        self._verified_lock = threading.Lock()
        self._prune_at = 64

    def archive_path(self, hexdigest: str) -> Path:
        if not is_sha256(hexdigest):
            raise ValueError(f"not a sha256 digest: {hexdigest!r}")
        return self._archives / f"{hexdigest}.tgz"

    def unpacked_path(self, hexdigest: str) -> Path:
        """Where :meth:`unpack` puts the files of this archive (whether or not it has yet)."""
        self.archive_path(hexdigest)  # validates the digest
        return self._unpacked / hexdigest

    def lookup(self, hexdigest: str) -> Path | None:
        """The cached archive with this digest, verified, or None.

        Verified: hashed now, or hashed before and unchanged since (the same inode, size, mtime
        and ctime as when it was hashed, at least ``_SETTLE_S`` after its last change).
        A file whose content does not hash to its digest is removed (unless it was replaced
        meanwhile, e.g. by a concurrent re-fetch) and None is returned: the caller fetches it
        again. The unpacked directory of a digest is left alone: it was extracted from a
        verified archive, and a helm run may be reading it."""
        path = self.archive_path(hexdigest)
        try:
            seen = _stamp(os.lstat(path))  # a link has a stamp of its own: never the one verified
        except OSError:
            seen = None
        with self._verified_lock:
            if seen is not None and self._verified.get(hexdigest) == seen:
                return path
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:  # missing, or a link planted in the cache
            self._forget(hexdigest)
            if path.is_symlink():
                self._discard(path, None, hexdigest, "a symbolic link")
            return None
        with os.fdopen(fd, "rb") as fh:
            opened = os.fstat(fh.fileno())
            stamp = _stamp(opened)
            digest = hashlib.sha256()
            while chunk := fh.read(_HASH_CHUNK):
                digest.update(chunk)
        actual = digest.hexdigest()
        if actual == hexdigest:
            changed = max(opened.st_mtime_ns, opened.st_ctime_ns) / 1e9
            if self._clock() - changed >= _SETTLE_S:
                self._remember(hexdigest, stamp)
            return path
        self._forget(hexdigest)
        self._discard(path, opened, hexdigest, f"content sha256:{actual}")
        return None

    def _remember(self, hexdigest: str, stamp: _Stamp) -> None:
        """Remember a verified archive; when they have doubled since the last time, drop the
        digests whose archive is gone (evicted): at most twice as many as there are archives."""
        with self._verified_lock:
            self._verified[hexdigest] = stamp
            if len(self._verified) <= self._prune_at:
                return
            for gone in [d for d in self._verified if not self.archive_path(d).exists()]:
                del self._verified[gone]
            self._prune_at = max(64, 2 * len(self._verified))

    def _forget(self, hexdigest: str) -> None:
        with self._verified_lock:
            self._verified.pop(hexdigest, None)

    @staticmethod
    def _discard(path: Path, opened: os.stat_result | None, hexdigest: str, found: str) -> None:
        try:
            current = os.lstat(path)
        except FileNotFoundError:
            return
        if opened is not None and (current.st_ino, current.st_dev) != (opened.st_ino, opened.st_dev):
            return  # replaced since it was read: not the file that failed
        path.unlink(missing_ok=True)
        _log.warning(
            "cached chart archive does not match its digest; discarded, it will be fetched again",
            digest=f"sha256:{hexdigest}",
            found=found,
        )

    def store(
        self, chunks: Iterable[bytes], *, expected: str | None, max_bytes: int, what: str
    ) -> tuple[str, Path]:
        """Write `chunks` into the cache; return (hex digest, path).

        `expected` (hex sha256, when the index has one) must match, or nothing is stored.
        `what` names the chart and its URL in error messages.
        """
        self._archives.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=".tmp-", suffix=".tgz", dir=self._archives)
        tmp = Path(tmp_name)
        try:
            digest = hashlib.sha256()
            size = 0
            with os.fdopen(fd, "wb") as fh:
                for chunk in chunks:
                    size += len(chunk)
                    if size > max_bytes:
                        raise SizeLimitError(f"{what} is larger than the limit of {max_bytes} bytes")
                    digest.update(chunk)
                    fh.write(chunk)
                fh.flush()
                os.fsync(fh.fileno())
            actual = digest.hexdigest()
            if expected is not None and actual != expected:
                raise DigestMismatchError(
                    f"{what}: digest mismatch: the source says sha256:{expected}, downloaded sha256:{actual}"
                )
            final = self.archive_path(actual)
            os.chmod(tmp, 0o644)
            os.replace(tmp, final)
            return actual, final
        finally:
            tmp.unlink(missing_ok=True)

    def unpack(self, hexdigest: str, limits: ExtractLimits = DEFAULT_LIMITS) -> Path:
        """The directory of the cached chart's files (extracted once per digest).

        Returns `<root>/charts/unpacked/<hex>/<chart>`; raises `ArchiveError` when the archive
        is not cached or is unsafe.
        """
        archive = self.lookup(hexdigest)
        if archive is None:
            raise ArchiveError(f"chart sha256:{hexdigest} is not in the cache")
        dest = self._unpacked / hexdigest
        if not dest.is_dir():
            self._unpacked.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=self._unpacked))
            try:
                extract_chart(archive, tmp, limits)
                try:
                    tmp.rename(dest)
                except OSError:
                    if not dest.is_dir():  # not a concurrent unpack of the same digest
                        raise
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        tops = [p for p in dest.iterdir() if p.is_dir()]
        return tops[0]
