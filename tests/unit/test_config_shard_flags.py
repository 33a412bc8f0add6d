"""--watch-label-selector and --shard: the selector the agent watches with, its Lease, and a bad
value refused at startup naming the flag (through the real command line)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gitops_helm.cli import build_parser
from gitops_helm.config import ConfigError, Settings, settings_from_args


def run_settings(*argv: str, environ: dict[str, str] | None = None) -> Settings:
    args = build_parser().parse_args(["run", "--reconcile-only", *argv])
    return settings_from_args(args, environ or {})


def test_unsharded_by_default() -> None:
    s = run_settings()
    assert s.watch_label_selector == "" and s.shard is None
    assert s.leader_election_id == "gitops-helm"


def test_shard_selects_its_label_and_its_own_lease() -> None:
    s = run_settings("--shard", "blue")
    assert s.watch_label_selector == "gitops-helm.io/shard=blue"
    assert s.shard == "blue" and s.leader_election_id == "gitops-helm-blue"
    # an explicit Lease name wins
    assert run_settings("--shard", "blue", "--leader-election-id", "x").leader_election_id == "x"
    # from the environment, as every flag
    env = {"GITOPS_HELM_SHARD": "red", "GITOPS_HELM_WATCH_LABEL_SELECTOR": "team in (a,b)"}
    s = run_settings(environ=env)
    assert s.watch_label_selector == "gitops-helm.io/shard=red,team in (a,b)"


def test_catch_all_selector_keeps_the_default_lease() -> None:
    s = run_settings("--watch-label-selector", "!gitops-helm.io/shard")
    assert s.watch_label_selector == "!gitops-helm.io/shard" and s.shard is None
    assert s.leader_election_id == "gitops-helm"


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (
            ["--watch-label-selector", "team in (a"],
            "--watch-label-selector 'team in (a': team in: ')' missing",
        ),
        (["--watch-label-selector", "a=b=c"], "expected ',' between requirements"),
        (["--shard", "Blue"], "--shard: 'Blue' is not a shard name"),
        (["--shard", "b" * 52], "is not a shard name"),
    ],
)
def test_bad_values_are_refused_naming_the_flag(argv: list[str], says: str) -> None:
    with pytest.raises(ConfigError) as err:
        run_settings(*argv)
    assert says in str(err.value)


def test_command_line_says_it_without_a_traceback() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "gitops_helm.cli",
            "run",
            "--reconcile-only",
            "--watch-label-selector",
            "x in y",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "gitops-helm: --watch-label-selector 'x in y': x in: expected '('" in proc.stderr
    assert "Traceback" not in proc.stderr
