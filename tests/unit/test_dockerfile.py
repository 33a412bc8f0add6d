"""The image's Dockerfile, checked without a Docker engine: a small parser reads its stages and
instructions; the tests check what a platform team relies on (pinned versions, locked Python
dependencies, an init as PID 1, git and ssh, non-root, a HEALTHCHECK). The entrypoint itself is
run from a local install in tests/integration/test_install.py."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
LOCK = ROOT / "requirements.lock"


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [arg for kw, arg in self.instructions if kw == keyword]

    def last(self, keyword: str) -> str:
        found = self.all(keyword)
        assert found, f"no {keyword} in the stage FROM {self.base}"
        return found[-1]

    def exec_form(self, keyword: str) -> list[str]:
        """The JSON (exec) form of ENTRYPOINT, CMD or HEALTHCHECK's CMD, as an argv."""
        arg = self.last(keyword)
        if keyword == "HEALTHCHECK":
            arg = arg[arg.index("CMD ") + 4 :]
        argv = json.loads(arg)
        assert isinstance(argv, list) and all(isinstance(a, str) for a in argv), arg
        return argv


def parse_dockerfile(text: str) -> list[Stage]:
    """Stages with their instructions (keyword upper-cased, continuation lines joined, comments
    dropped)."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "the Dockerfile ends in a continuation line"
    stages: list[Stage] = []
    for line in logical:
        keyword, _, arg = line.partition(" ")
        keyword, arg = keyword.upper(), re.sub(r"\s+", " ", arg).strip()
        if keyword == "FROM":
            m = re.fullmatch(r"(\S+)(?: AS (\S+))?", arg, re.IGNORECASE)
            assert m, f"FROM {arg}"
            stages.append(Stage(m.group(1), m.group(2)))
        elif keyword == "ARG" and not stages:
            continue
        else:
            assert stages, f"{keyword} before the first FROM"
            stages[-1].instructions.append((keyword, arg))
    return stages


def image() -> list[Stage]:
    return parse_dockerfile(DOCKERFILE.read_text())


def test_parser_reads_stages_continuations_and_exec_forms() -> None:
    text = 'ARG X=1\nFROM a:1 AS one\nRUN a \\\n  b\n# c\nFROM b:2\nENTRYPOINT ["x", "y"]\n'
    stages = parse_dockerfile(text)
    assert [(s.base, s.name) for s in stages] == [("a:1", "one"), ("b:2", None)]
    assert stages[0].all("RUN") == ["a b"]
    assert stages[1].exec_form("ENTRYPOINT") == ["x", "y"]


def test_every_base_image_has_a_full_version_tag() -> None:
    for stage in image():
        assert "@sha256:" in stage.base or re.search(r":\d+\.\d+\.\d+", stage.base), stage.base
        assert not stage.base.endswith(":latest")


def test_python_is_at_least_3_11_13() -> None:
    final = image()[-1]
    m = re.match(r"python:(\d+)\.(\d+)\.(\d+)", final.base)
    assert m, final.base
    assert tuple(int(p) for p in m.groups()) >= (3, 11, 13)


def test_helm_version_is_pinned() -> None:
    helm_stage = next(s for s in image() if s.name == "helm")
    assert re.fullmatch(r"HELM_VERSION=v\d+\.\d+\.\d+", helm_stage.last("ARG"))
    final = image()[-1]
    assert any(arg.startswith("--from=helm ") for arg in final.all("COPY"))


def test_python_dependencies_come_from_the_lock_with_hashes() -> None:
    installs = " ".join(arg for s in image() for arg in s.all("RUN") if "pip install" in arg)
    assert "--require-hashes -r requirements.lock" in installs
    assert "--no-deps ." in installs  # the project itself adds nothing unlocked
    requirements = [line for line in LOCK.read_text().splitlines() if re.match(r"^[A-Za-z0-9]", line)]
    assert requirements
    for line in requirements:
        assert re.match(r"^[A-Za-z0-9._-]+==\S+", line), line
    blocks = re.split(r"\n(?=[A-Za-z0-9])", LOCK.read_text())
    for block in blocks:
        if re.match(r"^[A-Za-z0-9]", block):
            assert "--hash=sha256:" in block, block.splitlines()[0]


def test_final_stage_runs_non_root_under_an_init_with_git_ssh_and_a_healthcheck() -> None:
    final = image()[-1]
    user = final.last("USER").split(":")[0]
    assert user not in ("root", "0") and user.isdigit()
    apt = " ".join(final.all("RUN"))
    for package in ("git", "openssh-client", "tini"):
        assert re.search(rf"\b{package}\b", apt), package
    entrypoint = final.exec_form("ENTRYPOINT")
    assert entrypoint[:2] == ["/usr/bin/tini", "--"] and entrypoint[2] == "gitops-helm"
    healthcheck = final.last("HEALTHCHECK")
    assert "/healthz" in healthcheck
    assert final.exec_form("HEALTHCHECK")[0] == "python"
