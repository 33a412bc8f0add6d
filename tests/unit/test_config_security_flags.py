"""The flags of issue #9's hostile-input bounds: lockdown mode, internal values URLs and the HTTP
server's limits, as flags and as GITOPS_HELM_* variables."""

from __future__ import annotations

import argparse

import pytest

from gitops_helm.config import ConfigError, Settings, add_run_flags, settings_from_args


def settings(*argv: str, environ: dict[str, str] | None = None) -> Settings:
    parser = argparse.ArgumentParser()
    add_run_flags(parser)
    return settings_from_args(parser.parse_args(list(argv)), environ or {})


def test_defaults_are_not_lockdown_and_refuse_internal_urls() -> None:
    s = settings()
    assert s.allow_cross_namespace_refs and not s.lockdown and not s.allow_internal_urls
    assert s.http_server.max_connections == 256 and s.http_server.read_timeout_s == 10.0


def test_no_cross_namespace_refs_is_lockdown() -> None:
    for s in (
        settings("--no-cross-namespace-refs"),
        settings("--allow-cross-namespace-refs", "false"),
        settings(environ={"GITOPS_HELM_NO_CROSS_NAMESPACE_REFS": "true"}),
    ):
        assert not s.allow_cross_namespace_refs and s.lockdown
    assert Settings(default_service_account="runner").lockdown
    with pytest.raises(ConfigError, match="contradicts"):
        settings("--no-cross-namespace-refs", "--allow-cross-namespace-refs", "true")


def test_allow_internal_urls() -> None:
    assert settings("--allow-internal-urls", "true").allow_internal_urls
    assert settings(environ={"GITOPS_HELM_ALLOW_INTERNAL_URLS": "1"}).allow_internal_urls
    with pytest.raises(ConfigError, match="--allow-internal-urls"):
        settings("--allow-internal-urls", "maybe")


def test_http_server_limits() -> None:
    s = settings("--http-max-connections", "32", "--http-read-timeout", "3s")
    assert (s.http_server.max_connections, s.http_server.read_timeout_s) == (32, 3.0)
    with pytest.raises(ConfigError, match="--http-max-connections"):
        settings("--http-max-connections", "0")
    with pytest.raises(ConfigError, match="--http-read-timeout"):
        settings("--http-read-timeout", "soon")


def test_a_zero_http_read_timeout_is_refused() -> None:
    # every request would be past its deadline at once: probes would fail and the pod restart-loop
    with pytest.raises(ConfigError, match="--http-read-timeout: must be more than zero"):
        settings("--http-read-timeout", "0s")
