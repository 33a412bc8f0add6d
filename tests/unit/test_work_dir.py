"""``--work-dir`` is private to the agent: created 0700, and refused when another user owns it,
can write it, or it is a symbolic link (what it holds is trusted by later runs)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from gitops_helm.agent import prepare_work_dir
from gitops_helm.config import ConfigError


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_work_dir_is_created_private(tmp_path: Path) -> None:
    work = tmp_path / "a" / "work"
    prepare_work_dir(work)
    assert work.is_dir()
    assert _mode(work) == 0o700


def test_an_existing_work_dir_others_may_only_read_is_tightened(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    work.chmod(0o755)  # what an older version left, with the usual umask
    (work / "mirrors").mkdir()
    prepare_work_dir(work)
    assert _mode(work) == 0o700
    assert (work / "mirrors").is_dir(), "its contents are kept"


@pytest.mark.parametrize("mode", [0o775, 0o757, 0o777, 0o1777], ids=oct)
def test_a_work_dir_others_can_write_is_refused(tmp_path: Path, mode: int) -> None:
    work = tmp_path / "work"
    work.mkdir()
    work.chmod(mode)
    with pytest.raises(ConfigError, match=r"--work-dir .*work: writable by other users"):
        prepare_work_dir(work)
    assert _mode(work) == mode, "a refused directory is left as it was"


def test_a_symbolic_link_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o700)
    link = tmp_path / "work"
    link.symlink_to(target)
    with pytest.raises(ConfigError, match=r"--work-dir .*work: not a directory \(a symbolic link is refused"):
        prepare_work_dir(link)


def test_a_file_is_refused(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.write_text("")
    with pytest.raises(ConfigError, match="not a directory"):
        prepare_work_dir(work)


def test_a_work_dir_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        work = tmp_path / "work"
        work.mkdir(mode=0o700)
        os.chown(work, 65534, 65534)
    else:
        work = Path("/")  # owned by root, never by an unprivileged test user
    with pytest.raises(ConfigError, match=r"owned by uid \d+, not by the agent's uid"):
        prepare_work_dir(work)


def test_the_cli_says_what_is_wrong_without_a_traceback(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    work.chmod(0o777)
    gitops_helm = str(Path(sys.executable).with_name("gitops-helm"))
    out = subprocess.run(
        [gitops_helm, "run", "--reconcile-only", "--work-dir", str(work)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode != 0
    assert f"--work-dir {work}: writable by other users (mode 0777)" in out.stderr
    assert "Traceback" not in out.stderr
