"""Content-addressed chart cache and safe chart extraction.

Place in the data flow: `helmrepo` streams a downloaded chart archive into `ChartCache.store`,
which verifies its sha256 and publishes it as `<root>/charts/sha256/<hex>.tgz` (temp file +
rename, so a reader never sees a partial file). A cached digest is never downloaded again.
The helm adapter is given that `.tgz`; code that needs the chart's files (values
`chartFileRef`, dependency handling) calls `ChartCache.unpack` or `extract_chart`, which refuse
absolute paths, `..`, links leaving the chart, device and other special files, and archives
over the size limits. Extracted directories are shared: treat them as read-only.

No network I/O here; errors are the permanent `ArchiveError`, `SizeLimitError` and
`DigestMismatchError` of `gitops_helm.charts.errors`.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from gitops_helm.charts.errors import ArchiveError, DigestMismatchError, SizeLimitError

__all__ = ["ChartCache", "ExtractLimits", "extract_chart", "is_sha256"]

_MiB = 1024 * 1024
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def is_sha256(text: str) -> bool:
    """Whether `text` is a lower-case hex sha256 digest."""
    return bool(_HEX64.match(text))


@dataclass(frozen=True)
class ExtractLimits:
    """Limits for extracting a chart (Helm's defaults: 100 MiB in all, 5 MiB per file)."""

    max_total_bytes: int = 100 * _MiB
    max_file_bytes: int = 5 * _MiB
    max_members: int = 10_000


class ChartCache:
    """Chart archives by sha256 under `<root>/charts/sha256/`, unpacked under `.../unpacked/`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._archives = root / "charts" / "sha256"
        self._unpacked = root / "charts" / "unpacked"

    def archive_path(self, hexdigest: str) -> Path:
        if not is_sha256(hexdigest):
            raise ValueError(f"not a sha256 digest: {hexdigest!r}")
        return self._archives / f"{hexdigest}.tgz"

    def unpacked_path(self, hexdigest: str) -> Path:
        """Where :meth:`unpack` puts the files of this archive (whether or not it has yet)."""
        self.archive_path(hexdigest)  # validates the digest
        return self._unpacked / hexdigest

    def lookup(self, hexdigest: str) -> Path | None:
        """The cached archive with this digest, or None."""
        path = self.archive_path(hexdigest)
        return path if path.is_file() else None

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
                    f"{what}: digest mismatch: the index says sha256:{expected}, downloaded sha256:{actual}"
                )
            final = self.archive_path(actual)
            os.chmod(tmp, 0o644)
            os.replace(tmp, final)
            return actual, final
        finally:
            tmp.unlink(missing_ok=True)

    def unpack(self, hexdigest: str, limits: ExtractLimits = ExtractLimits()) -> Path:
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


def _clean(name: str, what: str) -> list[str]:
    """The path components of an archive member name; refuses absolute paths and `..`."""
    if name.startswith("/") or "\\" in name:
        raise ArchiveError(f"{what}: unsafe path {name!r} (absolute or with backslashes)")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ArchiveError(f"{what}: unsafe path {name!r} (contains '..')")
    return parts


def _check_member(member: tarfile.TarInfo, parts: list[str], top: str, links: set[str], what: str) -> None:
    name = member.name
    if any("/".join(parts[:i]) in links for i in range(1, len(parts))):
        raise ArchiveError(f"{what}: {name!r} is beneath a link")
    if member.issym() or member.islnk():
        target = member.linkname
        if member.issym():
            if target.startswith("/"):
                raise ArchiveError(f"{what}: link {name!r} points outside the chart")
            target = posixpath.join(posixpath.dirname("/".join(parts)), target)
        resolved = posixpath.normpath(target)
        if not (resolved == top or resolved.startswith(top + "/")):
            raise ArchiveError(f"{what}: link {name!r} points outside the chart")
        links.add("/".join(parts))
    elif not (member.isreg() or member.isdir()) or member.issparse():
        raise ArchiveError(f"{what}: {name!r} is a device, FIFO or other special file")


def extract_chart(archive: Path, dest: Path, limits: ExtractLimits = ExtractLimits()) -> str:
    """Extract a chart `.tgz` into `dest` (created if needed); return the chart's top directory.

    Every member is checked before anything is written: one top-level directory, no absolute
    paths or `..`, links only to places inside the chart, no special files, at most
    `limits.max_members` members and the byte limits. Extraction then runs with tarfile's
    `data` filter as a second line of defence.
    """
    what = f"chart archive {archive.name}"
    try:
        with tarfile.open(archive, "r:gz") as tar:
            top: str | None = None
            links: set[str] = set()
            members: list[tarfile.TarInfo] = []
            total = 0
            for member in tar:
                if len(members) >= limits.max_members:
                    raise SizeLimitError(f"{what} has more than {limits.max_members} files")
                parts = _clean(member.name, what)
                if not parts:
                    continue
                if top is None:
                    top = parts[0]
                if parts[0] != top or (len(parts) == 1 and not member.isdir()):
                    raise ArchiveError(f"{what}: {member.name!r} is not inside the chart directory {top!r}")
                _check_member(member, parts, top, links, what)
                if member.size > limits.max_file_bytes:
                    raise SizeLimitError(
                        f"{what}: {member.name!r} is larger than {limits.max_file_bytes} bytes"
                    )
                total += member.size
                if total > limits.max_total_bytes:
                    raise SizeLimitError(f"{what} expands to more than {limits.max_total_bytes} bytes")
                members.append(member)
            if top is None:
                raise ArchiveError(f"{what} is empty")
            dest.mkdir(parents=True, exist_ok=True)
            tar.extractall(dest, members=members, filter="data")
            return top
    except (tarfile.TarError, zlib.error, EOFError) as exc:
        raise ArchiveError(f"{what} is not a valid gzip-compressed tar archive: {exc}") from exc
