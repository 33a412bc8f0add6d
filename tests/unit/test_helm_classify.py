"""helm's error text is read in exactly one place; these are real stderr lines from helm 3 and 4."""

from __future__ import annotations

import errno
import subprocess
from pathlib import Path

import pytest

from gitops_helm.adapters.helm import (
    Helm,
    HelmError,
    HelmErrorKind,
    HelmSettings,
    UpgradeOptions,
    _json_part,
    _tail,
    classify,
)


@pytest.mark.parametrize(
    ("stderr", "kind"),
    [
        (
            "Error: UPGRADE FAILED: another operation (install/upgrade/rollback) is in progress",
            HelmErrorKind.LOCKED,
        ),
        ("Error: release: not found", HelmErrorKind.NOT_FOUND),
        (
            'Error: Kubernetes cluster unreachable: Get "https://127.0.0.1:6443/version": connection refused',
            HelmErrorKind.TEMPORARY,
        ),
        ("Error: INSTALLATION FAILED: release: already exists", HelmErrorKind.TEMPORARY),
        ("Error: INSTALLATION FAILED: cannot re-use a name that is still in use", HelmErrorKind.TEMPORARY),
        (
            "Error: resource Deployment/ns/web not ready. status: InProgress, message: Available: 0/1\n"
            "context deadline exceeded",
            HelmErrorKind.FAILED,
        ),
        (
            "Error: INSTALLATION FAILED: template: hello/templates/x.yaml:3:9: executing ... nil pointer",
            HelmErrorKind.FAILED,
        ),
        (
            "Error: failed to fetch https://charts.example/hello-9.9.9.tgz : 404 Not Found",
            HelmErrorKind.CHART,
        ),
        ("Error: 1 error occurred:\n\t* pod bad-test failed", HelmErrorKind.FAILED),
    ],
)
def test_classify(stderr: str, kind: HelmErrorKind) -> None:
    assert classify(stderr) is kind


def test_tail_drops_warnings_and_error_prefix() -> None:
    stderr = "WARNING: Kubernetes configuration file is group-readable\nError: UPGRADE FAILED: boom\n"
    assert _tail(stderr) == "UPGRADE FAILED: boom"


def test_json_part_skips_leading_noise() -> None:
    assert _json_part('walrus says hi\n{"name": "x"}') == '{"name": "x"}'
    assert _json_part("") == "null"


@pytest.mark.parametrize(
    "error",
    [
        FileNotFoundError(errno.ENOENT, "No such file or directory"),
        PermissionError(errno.EACCES, "Permission denied"),
        BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable"),
        OSError(errno.ENOMEM, "Cannot allocate memory"),
    ],
    ids=["missing", "not-executable", "eagain", "enomem"],
)
def test_helm_that_cannot_be_started_is_a_temporary_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: OSError
) -> None:
    """Spawning helm fails (binary gone, fork/exec refused): nothing is wrong with the release,
    so the error is temporary (retried with backoff, never counted as a release failure)."""
    fake = tmp_path / "helm"
    fake.write_text("#!/bin/sh\necho v3.14.0\n")
    fake.chmod(0o755)
    helm = Helm(HelmSettings(binary=str(fake), home=tmp_path / "home"))

    def refuse(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr(subprocess, "Popen", refuse)
    with pytest.raises(HelmError) as caught:
        helm.upgrade("app", "ns", "/charts/hello", {}, UpgradeOptions(), install=True)
    assert caught.value.kind is HelmErrorKind.TEMPORARY
    assert caught.value.temporary
    assert caught.value.message == f"cannot start {fake}: {error.strerror}"


def test_a_missing_helm_binary_is_a_start_error(tmp_path: Path) -> None:
    with pytest.raises(HelmError, match=r"helm version: cannot start .*/nowhere/helm: No such file"):
        Helm(HelmSettings(binary=str(tmp_path / "nowhere" / "helm"), home=tmp_path / "home"))
