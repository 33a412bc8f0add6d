"""The release retry numbers from flags and environment: bounds and clear errors."""

from __future__ import annotations

import argparse

import pytest

from gitops_helm.config import ConfigError, Settings, add_common_flags, add_run_flags, settings_from_args


def settings(*argv: str, environ: dict[str, str] | None = None) -> Settings:
    parser = argparse.ArgumentParser()
    add_common_flags(parser)
    add_run_flags(parser)
    return settings_from_args(parser.parse_args(list(argv)), environ or {})


def test_defaults() -> None:
    retry = settings().retry
    assert (retry.max_interruptions, retry.pending_grace_margin_s) == (3, 60.0)


def test_flags_and_environment() -> None:
    retry = settings("--max-interruptions", "0", "--pending-grace-margin", "2s").retry
    assert (retry.max_interruptions, retry.pending_grace_margin_s) == (0, 2.0)
    from_env = settings(environ={"GITOPS_HELM_MAX_INTERRUPTIONS": "5"}).retry
    assert from_env.max_interruptions == 5


@pytest.mark.parametrize(("value", "error"), [("many", "is not a whole number"), ("-1", "must be 0 or more")])
def test_a_bad_bound_is_a_clear_error(value: str, error: str) -> None:
    with pytest.raises(ConfigError, match=f"--max-interruptions: .*{error}|--max-interruptions: {error}"):
        settings("--max-interruptions", value)
