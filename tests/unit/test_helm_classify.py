"""helm's error text is read in exactly one place; these are real stderr lines from helm 3 and 4."""

from __future__ import annotations

import pytest

from gitops_helm.adapters.helm import HelmErrorKind, _json_part, _tail, classify


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
