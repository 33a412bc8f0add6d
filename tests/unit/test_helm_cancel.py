"""The helm adapter's fence: acting operations start only while ``may_act`` allows, and
``cancel_all`` kills the running ones with their whole process group. A stand-in helm script
plays the long operation (real helm runs against the real cluster in tests/integration)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from gitops_helm.adapters.helm import (
    Helm,
    HelmError,
    HelmErrorKind,
    HelmSettings,
    RollbackOptions,
    UpgradeOptions,
)

SCRIPT = """#!/bin/sh
if [ "$1" = version ]; then echo v3.14.0; exit 0; fi
sleep 300 &
echo $! > "{children}"
echo $$ > "{parent}"
wait
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def _wait(what: str, check: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _pid(path: Path) -> int:
    try:
        return int(path.read_text().strip() or 0)
    except FileNotFoundError:
        return 0


def _helm(tmp_path: Path, may_act: object = None) -> Helm:
    fake = tmp_path / "helm"
    fake.write_text(SCRIPT.format(children=tmp_path / "child.pid", parent=tmp_path / "helm.pid"))
    fake.chmod(0o755)
    return Helm(HelmSettings(binary=str(fake), home=tmp_path / "home"), may_act=may_act)  # type: ignore[arg-type]


def test_cancel_all_kills_the_helm_process_group_and_reports_an_interruption(tmp_path: Path) -> None:
    helm = _helm(tmp_path)
    errors: list[HelmError] = []

    def upgrade() -> None:
        try:
            helm.upgrade("app", "ns", "/charts/hello", {}, UpgradeOptions(timeout_s=300), install=False)
        except HelmError as exc:
            errors.append(exc)

    worker = threading.Thread(target=upgrade)
    worker.start()
    _wait("helm to start its child", lambda: _pid(tmp_path / "child.pid") and _pid(tmp_path / "helm.pid"))
    parent = int((tmp_path / "helm.pid").read_text())
    child = int((tmp_path / "child.pid").read_text())

    killed = helm.cancel_all("this replica lost the leader Lease")
    worker.join(30)
    assert not worker.is_alive()
    assert killed == [f"upgrade {parent}"]
    assert len(errors) == 1
    assert errors[0].kind is HelmErrorKind.INTERRUPTED
    assert errors[0].temporary  # never counted as a failure of the release
    assert errors[0].message == "killed: this replica lost the leader Lease"
    _wait("helm's own child to die with it", lambda: not _alive(child))
    assert not _alive(parent)

    # nothing acting starts afterwards; queries still run
    calls = dict(helm.calls)
    with pytest.raises(HelmError) as caught:
        helm.rollback("app", "ns", 1, RollbackOptions())
    assert caught.value.kind is HelmErrorKind.INTERRUPTED
    assert caught.value.message == "not started: this replica lost the leader Lease"
    assert dict(helm.calls) == calls


def test_an_acting_operation_is_not_started_when_the_replica_may_not_act(tmp_path: Path) -> None:
    allowed = [True]
    helm = _helm(tmp_path, may_act=lambda: allowed[0])
    allowed[0] = False
    for call in (
        lambda: helm.upgrade("app", "ns", "/c", {}, UpgradeOptions(), install=True),
        lambda: helm.uninstall("app", "ns", 60),
        lambda: helm.test("app", "ns", 60),
    ):
        with pytest.raises(HelmError) as caught:
            call()
        assert caught.value.kind is HelmErrorKind.INTERRUPTED
        assert caught.value.message == "not started: this replica may no longer act"
    assert not (tmp_path / "helm.pid").exists()  # no helm process was started
    assert set(helm.calls) == {"version"}
