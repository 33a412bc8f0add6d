"""Safe reading of a chart archive (`.tgz`): a bounded streaming scan, then extraction.

Place in the data flow: `cache.ChartCache.unpack` calls `extract_chart` for an archive that a
chart source stored; whatever the archive holds came from a repository or registry we do not
trust. Python's `tarfile` reads a pax or GNU long-name header into memory whole, whatever size
it declares, and keeps every member it has seen, so a small archive of compressible zeros could
make the process grow by hundreds of MiB before any of our checks ran. Hence two passes:

1. `_scan` reads the decompressed stream itself, one 512-byte header at a time, and refuses the
   archive as soon as a limit of `ExtractLimits` is passed: members, bytes of one extension
   header (pax, GNU long name/link), consecutive extension headers, path depth, bytes of one
   file and of all files. Sizes are checked from the headers before the data is read; data is
   skipped in small chunks. Memory stays bounded by the limits whatever the archive declares.
2. With every member known, links are checked as the file system would follow them: a symbolic
   link is resolved through the archive's other links (`a -> b -> ../..` is a chain that leaves
   the chart even when each link alone stays inside), a hard link must name an earlier regular
   file that is not reached through a link, nothing may sit beneath a link, no name twice.

Only then does `tarfile` extract, with its `data` filter as a second line of defence; its view of
the members must equal the scan's (a parser differential is refused, not trusted). The safety
of the result does not depend on the Python release's filter, some of which have known bypasses
(CVE-2025-4517 and friends, fixed in 3.11.13 / 3.12.11 / 3.13.4).

Errors are the permanent `ArchiveError` and `SizeLimitError`; messages name the archive.
"""

from __future__ import annotations

import gzip
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from gitops_helm.charts.errors import ArchiveError, SizeLimitError

__all__ = ["DEFAULT_LIMITS", "ExtractLimits", "extract_chart"]

_MiB = 1024 * 1024
_BLOCK = 512
_SKIP_CHUNK = 64 * 1024
_REGULAR = (b"0", b"\0", b"7")  # tarfile treats contiguous files as regular ones
_EXTENSIONS = (b"x", b"g", b"L", b"K")  # pax (per member, global), GNU long name, long link
_NO_PREFIX = (b"L", b"K", b"S")  # tarfile ignores the ustar prefix field for these types


@dataclass(frozen=True)
class ExtractLimits:
    """Limits for reading a chart archive (Helm's own: 100 MiB in all, 5 MiB per file)."""

    max_total_bytes: int = 100 * _MiB
    max_file_bytes: int = 5 * _MiB
    max_members: int = 10_000
    max_header_bytes: int = 64 * 1024  # one pax or GNU long-name header (a path is at most 4 KiB)
    max_extension_headers: int = 4  # in a row, before one member
    max_path_depth: int = 64  # components of a member path (`chart/charts/sub/templates/x` is 5)
    max_link_hops: int = 32  # links followed to resolve one link (a loop never resolves)


#: The limits of every chart extraction (settings may pass others).
DEFAULT_LIMITS = ExtractLimits()


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


@dataclass(frozen=True)
class _Member:
    name: str  # as tarfile names it: no trailing "/"
    kind: str  # "file", "dir", "symlink", "hardlink"
    size: int  # bytes of a file; 0 for the others
    linkname: str


def _kind(member: tarfile.TarInfo) -> str:
    if member.issym():
        return "symlink"
    if member.islnk():
        return "hardlink"
    if member.isdir():
        return "dir"
    return "file" if member.isreg() else "other"


class _Scanner:
    """The members of a decompressed tar stream, read with bounded memory (see the module)."""

    def __init__(self, stream: _Readable, limits: ExtractLimits, what: str) -> None:
        self.stream = stream
        self.limits = limits
        self.what = what
        self.total = 0

    def read(self, size: int) -> bytes:
        data = self.stream.read(size)
        while len(data) < size:
            more = self.stream.read(size - len(data))
            if not more:
                break
            data += more
        return data

    def skip(self, size: int) -> None:
        left = size
        while left > 0:
            chunk = self.stream.read(min(left, _SKIP_CHUNK))
            if not chunk:
                raise ArchiveError(f"{self.what} is truncated")
            left -= len(chunk)

    def members(self) -> list[_Member]:
        out: list[_Member] = []
        pending: dict[str, str] = {}  # from extension headers, for the next member
        extensions = 0
        while True:
            header = self.read(_BLOCK)
            if len(header) < _BLOCK or header == bytes(_BLOCK):
                if header.strip(b"\0") or pending:
                    raise ArchiveError(f"{self.what} is truncated")
                return out
            self.check_sum(header)
            kind = header[156:157]
            size = self.number(header[124:136])
            if kind in _EXTENSIONS:
                extensions += 1
                if extensions > self.limits.max_extension_headers:
                    raise SizeLimitError(
                        f"{self.what} has more than {self.limits.max_extension_headers} "
                        "extension headers in a row"
                    )
                if size > self.limits.max_header_bytes:
                    raise SizeLimitError(
                        f"{self.what} has a header of {size} bytes; the limit is "
                        f"{self.limits.max_header_bytes}"
                    )
                data = self.read(_blocks(size))
                if len(data) < size:
                    raise ArchiveError(f"{self.what} is truncated")
                self.extension(kind, data[:size], pending)
                continue
            extensions = 0
            if len(out) >= self.limits.max_members:
                raise SizeLimitError(f"{self.what} has more than {self.limits.max_members} files")
            member = self.member(header, kind, size, pending)
            pending = {}
            out.append(member)
            if member.kind == "file":
                self.count(member)
                self.skip(_blocks(member.size))

    def count(self, member: _Member) -> None:
        limits = self.limits
        if member.size > limits.max_file_bytes:
            raise SizeLimitError(f"{self.what}: {member.name!r} is larger than {limits.max_file_bytes} bytes")
        self.total += member.size
        if self.total > limits.max_total_bytes:
            raise SizeLimitError(f"{self.what} expands to more than {limits.max_total_bytes} bytes")

    def member(self, header: bytes, kind: bytes, size: int, pending: dict[str, str]) -> _Member:
        name = _text(header[0:100])
        prefix = _text(header[345:500])
        if prefix and kind not in _NO_PREFIX:
            name = f"{prefix}/{name}"
        name = pending.get("path") or name
        linkname = pending.get("linkpath") or _text(header[157:257])
        size = int(pending["size"]) if "size" in pending else size
        if kind == b"5" or (kind == b"\0" and name.endswith("/")):
            category = "dir"
        elif kind in _REGULAR:
            category = "file"
        elif kind == b"2":
            category = "symlink"
        elif kind == b"1":
            category = "hardlink"
        elif kind in (b"3", b"4", b"6"):
            raise ArchiveError(f"{self.what}: {name!r} is a device, FIFO or other special file")
        else:
            raise ArchiveError(f"{self.what}: {name!r} has the unsupported member type {kind!r}")
        if category == "dir":
            name = name.rstrip("/")
        depth = len(name.split("/"))
        if depth > self.limits.max_path_depth:
            raise SizeLimitError(
                f"{self.what}: {name[:200]!r} is nested more than {self.limits.max_path_depth} levels deep"
            )
        return _Member(name, category, size if category == "file" else 0, linkname)

    def extension(self, kind: bytes, data: bytes, pending: dict[str, str]) -> None:
        if kind == b"L":
            pending["path"] = _text(data)
        elif kind == b"K":
            pending["linkpath"] = _text(data)
        else:
            records = self.pax(data)
            if kind == b"g" and {"path", "linkpath", "size"} & records.keys():
                raise ArchiveError(f"{self.what}: a global pax header sets a path, link or size")
            if kind == b"x":
                pending.update({k: v for k, v in records.items() if k in ("path", "linkpath", "size")})

    def pax(self, data: bytes) -> dict[str, str]:
        """The records of a pax header: `LENGTH KEY=VALUE\\n`, LENGTH counting the whole record."""
        records: dict[str, str] = {}
        offset = 0
        while offset < len(data) and data[offset : offset + 1] != b"\0":
            space = data.find(b" ", offset, offset + 20)
            length = int(data[offset:space]) if space > offset and data[offset:space].isdigit() else 0
            record = data[space + 1 : offset + length]
            if length <= 0 or offset + length > len(data) or not record.endswith(b"\n") or b"=" not in record:
                raise ArchiveError(f"{self.what}: malformed pax header")
            key, _, value = record[:-1].partition(b"=")
            text_key = key.decode("utf-8", "surrogateescape")
            if text_key.startswith("GNU.sparse"):
                raise ArchiveError(f"{self.what}: sparse files are not supported")
            records[text_key] = value.decode("utf-8", "surrogateescape")
            offset += length
        if "size" in records and not (records["size"].isascii() and records["size"].isdigit()):
            raise ArchiveError(f"{self.what}: malformed pax header (size {records['size'][:40]!r})")
        return records

    def check_sum(self, header: bytes) -> None:
        try:
            stored = self.number(header[148:156])
        except ArchiveError:
            raise ArchiveError(f"{self.what}: corrupt tar header") from None
        unsigned = sum(header[:148]) + 8 * 32 + sum(header[156:])
        signed = unsigned - 2 * sum(b for b in header[:148] + header[156:] if b > 127)
        if stored not in (unsigned, signed):
            raise ArchiveError(f"{self.what}: corrupt tar header (bad checksum)")

    def number(self, field: bytes) -> int:
        """A numeric header field: octal text, or GNU base-256 (first byte 0x80)."""
        if field[:1] == b"\x80":
            return int.from_bytes(field[1:], "big")
        if field[:1] == b"\xff":
            raise ArchiveError(f"{self.what}: corrupt tar header (negative number)")
        text = field.split(b"\0", 1)[0].strip()
        if not text:
            return 0
        if not all(48 <= b <= 55 for b in text):
            raise ArchiveError(f"{self.what}: corrupt tar header")
        return int(text, 8)


def _blocks(size: int) -> int:
    return -(-size // _BLOCK) * _BLOCK


def _text(field: bytes) -> str:
    return field.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _parts(name: str, what: str) -> list[str]:
    """The path components of a member name; refuses absolute paths and `..`."""
    if name.startswith("/") or "\\" in name:
        raise ArchiveError(f"{what}: unsafe path {name!r} (absolute or with backslashes)")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ArchiveError(f"{what}: unsafe path {name!r} (contains '..')")
    return parts


class _Links:
    """Resolves paths through the archive's symbolic links, as the file system will."""

    def __init__(self, symlinks: dict[tuple[str, ...], str], max_hops: int, what: str) -> None:
        self.symlinks = symlinks
        self.max_hops = max_hops
        self.what = what

    def resolve(self, start: list[str], rest: list[str], name: str) -> tuple[tuple[str, ...], int]:
        """(where `start` + `rest` leads, links followed); refuses leaving the archive root."""
        resolved = list(start)
        pending = list(rest)
        hops = 0
        while pending:
            part = pending.pop(0)
            if part in ("", "."):
                continue
            if part == "..":
                if not resolved:
                    raise ArchiveError(f"{self.what}: link {name!r} points outside the chart")
                resolved.pop()
                continue
            target = self.symlinks.get((*resolved, part))
            if target is None:
                resolved.append(part)
                continue
            hops += 1
            if hops > self.max_hops:
                raise ArchiveError(
                    f"{self.what}: link {name!r} follows more than {self.max_hops} links (a loop?)"
                )
            if target.startswith("/"):
                raise ArchiveError(f"{self.what}: link {name!r} points outside the chart")
            pending = target.split("/") + pending
        return tuple(resolved), hops


def _check_tree(members: list[_Member], limits: ExtractLimits, what: str) -> str:
    """The chart's top directory, once every member's place and every link is safe."""
    top: str | None = None
    seen: dict[tuple[str, ...], str] = {}
    symlinks: dict[tuple[str, ...], str] = {}
    for member in members:
        parts = _parts(member.name, what)
        if not parts:
            continue
        if top is None:
            top = parts[0]
        if parts[0] != top or (len(parts) == 1 and member.kind != "dir"):
            raise ArchiveError(f"{what}: {member.name!r} is not inside the chart directory {top!r}")
        key = tuple(parts)
        if key in seen and not (member.kind == "dir" and seen[key] == "dir"):
            raise ArchiveError(f"{what}: {member.name!r} appears more than once")
        seen[key] = member.kind
        if member.kind == "symlink":
            symlinks[key] = member.linkname
    if top is None:
        raise ArchiveError(f"{what} is empty")
    links = _Links(symlinks, limits.max_link_hops, what)
    earlier: set[tuple[str, ...]] = set()
    for member in members:
        parts = _parts(member.name, what)
        if not parts:
            continue
        key = tuple(parts)
        if any(seen.get(key[:i]) in ("symlink", "hardlink") for i in range(1, len(key))):
            raise ArchiveError(f"{what}: {member.name!r} is beneath a link")
        if member.kind == "symlink":
            absolute = member.linkname.startswith("/")
            resolved = (
                () if absolute else links.resolve(list(key[:-1]), member.linkname.split("/"), member.name)[0]
            )
            if resolved[:1] != (top,):
                raise ArchiveError(f"{what}: link {member.name!r} points outside the chart")
        elif member.kind == "hardlink":
            target = tuple(_parts(member.linkname, what)) if not member.linkname.startswith("/") else ()
            resolved, hops = links.resolve([], list(target), member.name) if target else ((), 0)
            if resolved[:1] != (top,):
                raise ArchiveError(f"{what}: link {member.name!r} points outside the chart")
            if hops or seen.get(resolved) != "file" or resolved not in earlier:
                raise ArchiveError(
                    f"{what}: hard link {member.name!r} must name an earlier regular file of the chart"
                )
        earlier.add(key)
    return top


def _summary(name: str, kind: str, size: int, linkname: str) -> tuple[str, str, int, str]:
    """What both readers must agree on: the name, the kind, a file's size, a link's target."""
    name = name.rstrip("/") if kind == "dir" else name
    return name, kind, size if kind == "file" else 0, linkname if kind.endswith("link") else ""


def extract_chart(archive: Path, dest: Path, limits: ExtractLimits = DEFAULT_LIMITS) -> str:
    """Extract a chart `.tgz` into `dest` (created if needed); return the chart's top directory.

    Everything is checked before anything is written (see the module): one top-level
    directory, no absolute paths or `..`, links resolving inside the chart, no special files,
    and the limits of `limits`.
    """
    what = f"chart archive {archive.name}"
    try:
        # not tarfile.open: opening reads the first member, which may be the oversized header
        with gzip.open(archive, "rb") as stream:
            members = _Scanner(stream, limits, what).members()
        top = _check_tree(members, limits, what)
        with tarfile.open(archive, "r:gz") as tar:
            seen_by_tarfile = tar.getmembers()
            ours = [_summary(m.name, m.kind, m.size, m.linkname) for m in members]
            theirs = [
                _summary(
                    m.name, _kind(m), m.size if m.isreg() else 0, m.linkname if m.issym() or m.islnk() else ""
                )
                for m in seen_by_tarfile
            ]
            if ours != theirs:
                raise ArchiveError(f"{what}: ambiguous tar headers (readers disagree on its members)")
            dest.mkdir(parents=True, exist_ok=True)
            tar.extractall(dest, members=seen_by_tarfile, filter="data")
            return top
    except (tarfile.TarError, gzip.BadGzipFile, zlib.error, EOFError, ValueError) as exc:
        raise ArchiveError(f"{what} is not a valid gzip-compressed tar archive: {exc}") from exc
    except OSError as exc:  # e.g. BadGzipFile, or a member the file system refuses
        raise ArchiveError(f"{what} could not be read or extracted: {exc.strerror or exc}") from exc
