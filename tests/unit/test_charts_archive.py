"""Hostile chart archives: streaming limits, link chains, and arbitrary bytes (hypothesis)."""

from __future__ import annotations

import contextlib
import gzip
import io
import tarfile
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gitops_helm.charts.archive import ExtractLimits, extract_chart
from gitops_helm.charts.errors import ArchiveError, ChartError, SizeLimitError

CHART_YAML = b"apiVersion: v2\nname: app\nversion: 1.0.0\n"


def _info(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "", size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = kind, linkname, size
    return info


def _archive(
    path: Path, *members: tarfile.TarInfo | tuple[str, bytes], form: int = tarfile.PAX_FORMAT
) -> Path:
    with tarfile.open(path, "w:gz", format=form) as tar:
        tar.addfile(_info("app", tarfile.DIRTYPE))
        info = _info("app/Chart.yaml", size=len(CHART_YAML))
        tar.addfile(info, io.BytesIO(CHART_YAML))
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                tar.addfile(member)
            else:
                tar.addfile(_info(member[0], size=len(member[1])), io.BytesIO(member[1]))
    return path


@pytest.mark.parametrize("form", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT])
def test_a_chart_with_long_names_and_links_inside_it_extracts(tmp_path: Path, form: int) -> None:
    deep = "app/templates/" + "/".join(["sub"] * 30) + "/" + "n" * 150 + ".yaml"  # a long-name header
    archive = _archive(
        tmp_path / "ok.tgz",
        (deep, b"kind: ConfigMap\n"),
        ("app/files/a.txt", b"a"),
        _info("app/files/b.txt", tarfile.SYMTYPE, "a.txt"),
        _info("app/c.txt", tarfile.SYMTYPE, "files/b.txt"),  # a chain that stays inside
        _info("app/files/h.txt", tarfile.LNKTYPE, "app/files/a.txt"),
        _info("app/" + "l" * 120, tarfile.SYMTYPE, "files/" + "a.txt"),  # a long link name too
        form=form,
    )
    assert extract_chart(archive, tmp_path / "out") == "app"
    assert (tmp_path / "out" / deep).read_bytes() == b"kind: ConfigMap\n"
    assert (tmp_path / "out" / "app" / "c.txt").read_text() == "a"
    assert (tmp_path / "out" / "app" / "files" / "h.txt").read_text() == "a"


@pytest.mark.parametrize(
    ("members", "message"),
    [
        # each link alone stays inside the chart; followed one after the other they leave it
        (
            [
                _info("app/a", tarfile.DIRTYPE),
                _info("app/a/b", tarfile.DIRTYPE),
                _info("app/a/b/up", tarfile.SYMTYPE, "../.."),
                _info("app/a/b/out", tarfile.SYMTYPE, "up/../../etc/passwd"),
            ],
            "link 'app/a/b/out' points outside the chart",
        ),
        (
            [_info("app/one", tarfile.SYMTYPE, "two"), _info("app/two", tarfile.SYMTYPE, "../../x")],
            "link 'app/one' points outside the chart",  # through app/two
        ),
        (
            [_info("app/one", tarfile.SYMTYPE, "two"), _info("app/two", tarfile.SYMTYPE, "one")],
            "follows more than 32 links",
        ),
        # a hard link to a symbolic link is a copy of the link in another directory
        (
            [
                _info("app/a", tarfile.DIRTYPE),
                _info("app/a/up", tarfile.SYMTYPE, ".."),
                _info("app/h", tarfile.LNKTYPE, "app/a/up"),
            ],
            "hard link 'app/h' must name an earlier regular file",
        ),
        ([_info("app/h", tarfile.LNKTYPE, "etc/passwd")], "link 'app/h' points outside the chart"),
        ([_info("app/h", tarfile.LNKTYPE, "/etc/passwd")], "link 'app/h' points outside the chart"),
        (
            [_info("app/s", tarfile.SYMTYPE, "."), _info("app/h", tarfile.LNKTYPE, "app/s/Chart.yaml")],
            "hard link 'app/h' must name an earlier regular file",
        ),
        ([("app/x/y", b"1"), _info("app/x", tarfile.SYMTYPE, "..")], "'app/x/y' is beneath a link"),
        ([("app/x", b"1"), _info("app/x", tarfile.SYMTYPE, "Chart.yaml")], "'app/x' appears more than once"),
    ],
)
def test_link_chains_leaving_the_chart_are_refused_before_anything_is_written(
    tmp_path: Path, members: list[tarfile.TarInfo | tuple[str, bytes]], message: str
) -> None:
    archive = _archive(tmp_path / "links.tgz", *members)
    with pytest.raises(ArchiveError, match=message):
        extract_chart(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def _raw_tgz(path: Path, blocks: bytes) -> Path:
    path.write_bytes(gzip.compress(blocks + bytes(1024)))
    return path


def _header(name: str, kind: bytes, size: int) -> bytes:
    info = _info(name, kind, size=size)
    return info.tobuf(tarfile.USTAR_FORMAT)


def test_a_huge_pax_header_is_refused_before_it_is_read(tmp_path: Path) -> None:
    # 512 MiB of zeros declared as one pax header: about 500 KiB compressed; never decompressed
    blocks = _header("PaxHeader", tarfile.XHDTYPE, 512 * 1024 * 1024)
    stream = io.BytesIO()
    with gzip.GzipFile(fileobj=stream, mode="wb") as gz:
        gz.write(blocks)
        zeros = bytes(1024 * 1024)
        for _ in range(4):
            gz.write(zeros)
    archive = tmp_path / "bomb.tgz"
    archive.write_bytes(stream.getvalue())
    with pytest.raises(SizeLimitError, match="has a header of 536870912 bytes; the limit is 65536"):
        extract_chart(archive, tmp_path / "out")


@pytest.mark.parametrize(
    ("limits", "members", "message"),
    [
        (ExtractLimits(max_members=5), [(f"app/f{i}", b"") for i in range(10)], "more than 5 files"),
        (ExtractLimits(max_path_depth=4), [("app/a/b/c/d", b"")], "nested more than 4 levels deep"),
        (ExtractLimits(max_file_bytes=50), [("app/big", b"x" * 51)], "'app/big' is larger than 50 bytes"),
        (ExtractLimits(max_total_bytes=60), [("app/a", b"x" * 30)], "expands to more than 60 bytes"),
        (ExtractLimits(max_header_bytes=200), [("app/" + "n" * 300, b"")], "has a header of"),
    ],
)
def test_limits_are_checked_while_streaming(
    tmp_path: Path, limits: ExtractLimits, members: list[tuple[str, bytes]], message: str
) -> None:
    archive = _archive(tmp_path / "big.tgz", *members)
    with pytest.raises(SizeLimitError, match=message):
        extract_chart(archive, tmp_path / "out", limits)


def test_chained_extension_headers_are_bounded(tmp_path: Path) -> None:
    pax = tarfile.TarInfo("x")
    pax.pax_headers = {"comment": "c"}
    one = pax.tobuf(tarfile.PAX_FORMAT)[:1024]  # the extended header and its data, no member
    archive = _raw_tgz(tmp_path / "chain.tgz", one * 50 + _header("app", tarfile.DIRTYPE, 0))
    with pytest.raises(SizeLimitError, match="more than 4 extension headers in a row"):
        extract_chart(archive, tmp_path / "out")


def _valid_archive() -> bytes:
    stream = io.BytesIO()
    with tarfile.open(fileobj=stream, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(_info("app", tarfile.DIRTYPE))
        tar.addfile(_info("app/Chart.yaml", size=len(CHART_YAML)), io.BytesIO(CHART_YAML))
        tar.addfile(_info("app/" + "l" * 120, tarfile.SYMTYPE, "Chart.yaml"))
    return stream.getvalue()


VALID = _valid_archive()


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(data=st.binary(max_size=4096))
def test_arbitrary_bytes_give_only_chart_errors(tmp_path: Path, data: bytes) -> None:
    for raw in (data, gzip.compress(data)):
        work = Path(tempfile.mkdtemp(dir=tmp_path))
        (work / "any.tgz").write_bytes(raw)
        with contextlib.suppress(ChartError):
            extract_chart(work / "any.tgz", work / "out")


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(edits=st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)), min_size=1, max_size=8))
def test_a_corrupted_tar_gives_only_chart_errors(tmp_path: Path, edits: list[tuple[int, int]]) -> None:
    data = bytearray(VALID)
    for offset, value in edits:
        data[offset] = value
    work = Path(tempfile.mkdtemp(dir=tmp_path))
    archive = work / "corrupt.tgz"
    archive.write_bytes(gzip.compress(bytes(data)))
    out = work / "out"
    try:
        extract_chart(archive, out)
    except ChartError:
        return
    for path in out.rglob("*"):  # whatever was accepted stays inside
        assert path.resolve().is_relative_to(out.resolve())
