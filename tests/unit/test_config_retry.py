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


def test_status_history_limit() -> None:
    assert settings().status_history_limit == 5
    assert settings("--status-history-limit", "0").status_history_limit == 0
    assert settings(environ={"GITOPS_HELM_STATUS_HISTORY_LIMIT": "50"}).status_history_limit == 50
    with pytest.raises(ConfigError, match=r"--status-history-limit: 51 is more than 50"):
        settings("--status-history-limit", "51")
    with pytest.raises(ConfigError, match=r"--status-history-limit: must be 0 or more"):
        settings("--status-history-limit", "-1")
