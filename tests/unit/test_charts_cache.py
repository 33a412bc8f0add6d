"""Content-addressed chart cache and safe extraction of crafted (malicious) archives."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest

from gitops_helm.charts import cache as cache_module
from gitops_helm.charts.cache import ChartCache, ExtractLimits, extract_chart
from gitops_helm.charts.errors import ArchiveError, DigestMismatchError, SizeLimitError

Member = tuple[str, bytes] | tarfile.TarInfo


def _tgz(path: Path, *members: Member) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                tar.addfile(member)
            else:
                info = tarfile.TarInfo(member[0])
                info.size = len(member[1])
                tar.addfile(info, io.BytesIO(member[1]))
    return path


def _info(name: str, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info


CHART = ("app/Chart.yaml", b"name: app\nversion: 1.0.0\n")


def test_store_and_lookup(tmp_path: Path) -> None:
    cache = ChartCache(tmp_path)
    body = b"chart bytes"
    digest = hashlib.sha256(body).hexdigest()
    assert cache.lookup(digest) is None
    stored, path = cache.store([body[:5], body[5:]], expected=digest, max_bytes=100, what="chart app")
    assert (stored, path) == (digest, tmp_path / "charts" / "sha256" / f"{digest}.tgz")
    assert cache.lookup(digest) == path and path.read_bytes() == body


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda path: path.write_bytes(b"other bytes"), id="replaced-content"),
        pytest.param(lambda path: path.write_bytes(path.read_bytes()[:-1]), id="truncated"),
        pytest.param(
            lambda path: (path.unlink(), path.symlink_to(path.parent / "elsewhere.tgz")), id="symlink"
        ),
    ],
)
def test_a_tampered_cached_archive_is_discarded_on_use_and_stored_again(tmp_path: Path, tamper: Any) -> None:
    cache = ChartCache(tmp_path)
    body = b"chart bytes"
    digest, path = cache.store([body], expected=None, max_bytes=100, what="chart app")
    (path.parent / "elsewhere.tgz").write_bytes(b"planted")
    tamper(path)
    assert cache.lookup(digest) is None
    assert not path.exists() and not path.is_symlink()
    # fetched again: the same digest is stored and served
    assert cache.store([body], expected=digest, max_bytes=100, what="chart app") == (digest, path)
    assert cache.lookup(digest) == path


def test_unpack_refuses_a_tampered_archive_it_has_not_extracted_yet(tmp_path: Path) -> None:
    cache = ChartCache(tmp_path)
    archive = _tgz(tmp_path / "a.tgz", CHART)
    digest, path = cache.store([archive.read_bytes()], expected=None, max_bytes=10**6, what="chart app")
    path.write_bytes(
        _tgz(tmp_path / "b.tgz", ("app/Chart.yaml", b"name: app\nversion: 6.6.6\n")).read_bytes()
    )
    with pytest.raises(ArchiveError, match=f"chart sha256:{digest} is not in the cache"):
        cache.unpack(digest)
    assert not cache.unpacked_path(digest).exists()


@pytest.mark.parametrize(
    ("expected", "max_bytes", "error", "message"),
    [
        ("0" * 64, 100, DigestMismatchError, "chart app: digest mismatch: the source says sha256:000"),
        (None, 5, SizeLimitError, "chart app is larger than the limit of 5 bytes"),
    ],
)
def test_store_refuses_and_leaves_nothing(
    tmp_path: Path, expected: str | None, max_bytes: int, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        ChartCache(tmp_path).store([b"chart bytes"], expected=expected, max_bytes=max_bytes, what="chart app")
    assert list((tmp_path / "charts" / "sha256").iterdir()) == []


def test_extract_returns_the_chart_directory(tmp_path: Path) -> None:
    archive = _tgz(
        tmp_path / "c.tgz",
        CHART,
        ("app/templates/cm.yaml", b"kind: ConfigMap\n"),
        _info("app/values-link.yaml", tarfile.SYMTYPE, "templates/cm.yaml"),
    )
    assert extract_chart(archive, tmp_path / "out") == "app"
    assert (tmp_path / "out" / "app" / "values-link.yaml").read_bytes() == b"kind: ConfigMap\n"


def test_unpack_extracts_once_per_digest(tmp_path: Path) -> None:
    cache = ChartCache(tmp_path)
    body = _tgz(tmp_path / "c.tgz", CHART).read_bytes()
    digest, _ = cache.store([body], expected=None, max_bytes=10_000, what="chart app")
    chart_dir = cache.unpack(digest)
    assert chart_dir == tmp_path / "charts" / "unpacked" / digest / "app"
    assert (chart_dir / "Chart.yaml").is_file()
    assert cache.unpack(digest) == chart_dir


LIMITS = ExtractLimits(max_total_bytes=100, max_file_bytes=60, max_members=3)


@pytest.mark.parametrize(
    ("members", "error", "message"),
    [
        ([("/etc/passwd", b"x")], ArchiveError, "unsafe path '/etc/passwd'"),
        ([CHART, ("app/../../evil", b"x")], ArchiveError, r"contains '\.\.'"),
        ([CHART, _info("app/l", tarfile.SYMTYPE, "../../etc/passwd")], ArchiveError, "points outside"),
        ([CHART, _info("app/l", tarfile.SYMTYPE, "/etc/passwd")], ArchiveError, "points outside"),
        ([CHART, _info("app/l", tarfile.LNKTYPE, "etc/passwd")], ArchiveError, "points outside"),
        (
            [CHART, _info("app/d", tarfile.SYMTYPE, "templates"), ("app/d/x", b"x")],
            ArchiveError,
            "beneath a link",
        ),
        ([CHART, _info("app/null", tarfile.CHRTYPE)], ArchiveError, "device, FIFO or other special"),
        ([CHART, _info("app/fifo", tarfile.FIFOTYPE)], ArchiveError, "device, FIFO or other special"),
        ([CHART, ("other/Chart.yaml", b"x")], ArchiveError, "not inside the chart directory 'app'"),
        ([("README.md", b"x")], ArchiveError, "not inside the chart directory"),
        ([CHART, ("app/big", b"x" * 61)], SizeLimitError, "larger than 60 bytes"),
        ([CHART, ("app/a", b"x" * 50), ("app/b", b"x" * 50)], SizeLimitError, "expands to more than 100"),
        ([CHART, ("app/a", b""), ("app/b", b""), ("app/c", b"")], SizeLimitError, "more than 3 files"),
    ],
)
def test_extract_refuses_unsafe_archives(
    tmp_path: Path, members: list[Member], error: type[Exception], message: str
) -> None:
    archive = _tgz(tmp_path / "evil.tgz", *members)
    with pytest.raises(error, match=message) as exc:
        extract_chart(archive, tmp_path / "out", LIMITS)
    assert not getattr(exc.value, "temporary", True)
    assert not (tmp_path / "out").exists()  # checked before anything is written


def test_extract_refuses_what_is_not_a_tgz(tmp_path: Path) -> None:
    archive = tmp_path / "plain.tgz"
    archive.write_bytes(b"<html>not found</html>")
    with pytest.raises(ArchiveError, match="not a valid gzip-compressed tar archive"):
        extract_chart(archive, tmp_path / "out")


def _settled_clock() -> float:
    """A clock for which every file of the test was last changed long ago (so verified archives
    are remembered as such)."""
    return time.time() + 3600


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(
            lambda path: (
                path.write_bytes(b"other bytes"),
                os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9)),
            ),
            id="rewritten-in-place-same-size",
        ),
        pytest.param(lambda path: path.write_bytes(path.read_bytes()[:-1]), id="truncated"),
        pytest.param(
            lambda path: (
                path.with_name("new").write_bytes(b"other bytes"),
                path.with_name("new").replace(path),
            ),
            id="replaced-by-rename",
        ),
        pytest.param(
            lambda path: (path.unlink(), path.symlink_to(path.parent / "elsewhere.tgz")), id="symlink"
        ),
    ],
)
def test_an_archive_verified_before_and_changed_since_is_discarded_on_use(
    tmp_path: Path, tamper: Any
) -> None:
    cache = ChartCache(tmp_path, clock=_settled_clock)
    body = b"chart bytes"
    digest, path = cache.store([body], expected=None, max_bytes=100, what="chart app")
    (path.parent / "elsewhere.tgz").write_bytes(b"planted")
    assert cache.lookup(digest) == path  # hashed and remembered
    assert cache.lookup(digest) == path  # unchanged: remembered
    tamper(path)
    assert cache.lookup(digest) is None
    assert not path.exists() and not path.is_symlink()
    assert cache.store([body], expected=digest, max_bytes=100, what="chart app") == (digest, path)
    assert cache.lookup(digest) == path


def test_an_archive_verified_right_after_it_changed_is_hashed_again_on_next_use(tmp_path: Path) -> None:
    # the real clock: the file was written a moment ago, so it is not remembered as verified (on
    # a filesystem with coarse timestamps a same-size rewrite within the same tick keeps its times)
    cache = ChartCache(tmp_path)
    body = b"chart bytes"
    digest, path = cache.store([body], expected=None, max_bytes=100, what="chart app")
    assert cache.lookup(digest) == path
    path.write_bytes(b"other bytes")
    assert cache.lookup(digest) is None


def test_remembered_archives_are_no_more_than_twice_those_cached(tmp_path: Path) -> None:
    cache = ChartCache(tmp_path, clock=_settled_clock)
    for n in range(300):
        digest, path = cache.store([b"chart %d" % n], expected=None, max_bytes=100, what="chart")
        assert cache.lookup(digest) == path
        path.unlink()  # evicted by the janitor: never looked up again
    digest, path = cache.store([b"the one kept"], expected=None, max_bytes=100, what="chart")
    assert cache.lookup(digest) == path
    assert len(cache._verified) <= 2 * 64


def test_an_archive_verified_before_and_unchanged_is_not_hashed_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the point of the memory: a resync uses one archive three times, hashed once
    cache = ChartCache(tmp_path, clock=_settled_clock)
    digest, path = cache.store([b"chart bytes"], expected=None, max_bytes=100, what="chart app")
    hashed: list[bytes] = []
    sha256 = hashlib.sha256

    def counting(*data: bytes) -> Any:
        hashed.append(b"".join(data))
        return sha256(*data)

    monkeypatch.setattr(cache_module.hashlib, "sha256", counting)
    for _ in range(3):
        assert cache.lookup(digest) == path
    assert len(hashed) == 1, f"the unchanged archive was hashed {len(hashed)} times in three uses"
