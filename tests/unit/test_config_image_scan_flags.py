"""The image scan flags (issue #10): defaults, flags, GITOPS_HELM_* variables and bad values."""

from __future__ import annotations

import argparse

import pytest

from gitops_helm.config import (
    ConfigError,
    ImageScanSettings,
    Settings,
    add_image_scan_flags,
    settings_from_args,
)


def settings(*argv: str, environ: dict[str, str] | None = None) -> Settings:
    parser = argparse.ArgumentParser()
    add_image_scan_flags(parser)
    return settings_from_args(parser.parse_args(list(argv)), environ or {})


def test_defaults() -> None:
    images = settings().images
    assert images == ImageScanSettings()
    assert (images.scan_interval_s, images.platform, images.pull_secrets) == (300.0, "linux/amd64", ())


def test_flags_and_variables() -> None:
    images = settings(
        "--image-scan-interval", "90s",
        "--image-pull-secrets", "team-a/regcred, flux/hub",
        "--image-platform", "linux/arm/v7",
        "--image-registry-rps", "0.5",
        "--image-registry-burst", "3",
        "--image-retry-after-max", "2m",
        "--image-max-tags", "500",
        "--image-max-tag-pages", "4",
        "--image-docker-config", "/etc/docker/config.json",
    ).images  # fmt: skip
    assert images.scan_interval_s == 90.0
    assert images.pull_secrets == (("team-a", "regcred"), ("flux", "hub"))
    assert (images.platform, images.rate_per_s, images.burst) == ("linux/arm/v7", 0.5, 3)
    assert (images.max_retry_after_s, images.max_tags, images.max_tag_pages) == (120.0, 500, 4)
    assert images.docker_config == "/etc/docker/config.json"
    from_env = settings(
        environ={"GITOPS_HELM_IMAGE_PULL_SECRETS": "ns/name", "GITOPS_HELM_IMAGE_SCAN_INTERVAL": "1h"}
    )
    assert from_env.images.pull_secrets == (("ns", "name"),) and from_env.images.scan_interval_s == 3600.0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--image-pull-secrets", "regcred"], "--image-pull-secrets: 'regcred' is not NAMESPACE/NAME"),
        (
            ["--image-pull-secrets", "ns/Bad_Name"],
            "--image-pull-secrets: 'ns/Bad_Name' is not NAMESPACE/NAME",
        ),
        (["--image-platform", "amd64"], "--image-platform: 'amd64' is not a platform"),
        (["--image-registry-rps", "fast"], "--image-registry-rps: 'fast' is not a number"),
        (["--image-registry-rps", "0"], "--image-registry-rps: must be more than zero"),
        (["--image-scan-interval", "0s"], "--image-scan-interval: must be more than zero"),
        (["--image-registry-burst", "0"], "--image-registry-burst: must be at least 1"),
        (["--image-max-tags", "many"], "--image-max-tags: 'many' is not a whole number"),
    ],
)
def test_bad_values_are_named(argv: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        settings(*argv)
