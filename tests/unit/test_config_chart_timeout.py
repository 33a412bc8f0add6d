"""``--chart-timeout``: how long a chart repository or registry may send nothing before it has failed."""

from __future__ import annotations

import argparse

import pytest

from gitops_helm.config import ConfigError, Settings, add_common_flags, add_run_flags, settings_from_args


def settings(*argv: str, environ: dict[str, str] | None = None) -> Settings:
    parser = argparse.ArgumentParser()
    add_common_flags(parser)
    add_run_flags(parser)
    return settings_from_args(parser.parse_args(list(argv)), environ or {})


def test_default_flag_and_environment() -> None:
    assert settings().chart_timeout_s == 30.0
    assert settings("--chart-timeout", "5s").chart_timeout_s == 5.0
    assert settings(environ={"GITOPS_HELM_CHART_TIMEOUT": "2m"}).chart_timeout_s == 120.0


def test_zero_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="--chart-timeout: must be more than zero"):
        settings("--chart-timeout", "0s")
