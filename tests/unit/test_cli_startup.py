"""`gitops-helm --help` and `version` answer without loading the heavy libraries (fast start)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("kubernetes", "requests", "git", "watchdog", "prometheus_client", "urllib3")

PROBE = f"""
import json, sys
from gitops_helm.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print(json.dumps({{"code": code, "loaded": sorted(m for m in {HEAVY!r} if m in sys.modules)}}))
"""


@pytest.mark.parametrize("argv", [["--help"], ["version"], ["run", "--help"], ["sync", "--help"]])
def test_help_and_version_do_not_import_the_kubernetes_client(argv: list[str]) -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, timeout=60, check=True
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"code": 0, "loaded": []}
