"""Which version of an external program the agent would run: ``helm`` and ``git``.

Place in the flow: ``gitops-helm version`` (``cli_version``) asks here; the agent's own adapters
(``adapters.helm``, ``adapters.git``) find the same programs the same way: ``--helm-bin`` or
``helm`` on ``PATH``, and ``git`` on ``PATH``. Kept apart from those adapters so that ``version``
loads neither GitPython nor anything else heavy.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass

from gitops_helm.errors import GitopsHelmError

PROBE_TIMEOUT_S = 10.0


class ProbeError(GitopsHelmError):
    """The program is missing, did not start, failed or did not answer in time."""


@dataclass(frozen=True)
class ProgramVersion:
    program: str  # what was asked for: "helm", a --helm-bin path, "git"
    path: str  # where it was found
    version: str


def program_version(program: str, argv_tail: list[str], timeout_s: float = PROBE_TIMEOUT_S) -> ProgramVersion:
    path = shutil.which(program)
    if path is None:
        raise ProbeError(f"{program}: not found (not an executable file, nor on PATH)")
    try:
        done = subprocess.run(
            [path, *argv_tail], capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired:
        raise ProbeError(f"{path}: did not answer within {timeout_s:.0f}s") from None
    except OSError as exc:
        raise ProbeError(f"{path}: cannot run: {exc.strerror}") from None
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise ProbeError(f"{path}: exit code {done.returncode}: {tail[0][:200]}")
    return ProgramVersion(program, path, done.stdout.strip())


def helm_version(helm_bin: str, timeout_s: float = PROBE_TIMEOUT_S) -> ProgramVersion:
    """``helm version --template {{.Version}}``, as ``adapters.helm`` asks at start."""
    return program_version(helm_bin, ["version", "--template", "{{.Version}}"], timeout_s)


def git_version(git_bin: str = "git", timeout_s: float = PROBE_TIMEOUT_S) -> ProgramVersion:
    """``git --version`` -> ``2.43.0``."""
    found = program_version(git_bin, ["--version"], timeout_s)
    return ProgramVersion(found.program, found.path, found.version.removeprefix("git version ").strip())
