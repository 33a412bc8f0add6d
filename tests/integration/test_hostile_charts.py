"""Hostile chart repositories against a real agent process: a tar bomb, a link chain leaving the
chart, and a 20 MB index, each served by a real HTTP server on 127.0.0.1 (tests/localhttp.py).

They are not published to the environment's shared chart repository: `helm repo index` there
would have to read them too, and every other test depends on that index.

Memory is measured as the growth of the process's peak resident set (VmHWM of /proc/PID/status)
across the operation: a resource bound, generous on purpose, not a timing.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import sys
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, Env
from tests.integration.reconcile_helpers import apply, hr_manifest
from tests.integration.syncfix import GITOPS_HELM, AgentProcess, free_port, get_object, process_env, wait_for
from tests.localhttp import LocalServer, Reply, Seen

_MiB = 1024 * 1024
CHART_YAML = b"apiVersion: v2\nname: NAME\nversion: 1.0.0\n"


def peak_rss_bytes(pid: int | str = "self") -> int:
    """VmHWM: the largest resident set the process has had."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc/PID/status")


def _member(tar: tarfile.TarFile, name: str, data: bytes = b"", **fields: Any) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for key, value in fields.items():
        setattr(info, key, value)
    tar.addfile(info, io.BytesIO(data))


def tar_bomb(name: str, declared: int) -> bytes:
    """A chart whose second member is a pax header declaring `declared` bytes of zeros (they are
    there: a reader that trusts the header reads them all into memory). About 1 KiB per MiB."""
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as gz:
        head = io.BytesIO()
        with tarfile.open(fileobj=head, mode="w", format=tarfile.USTAR_FORMAT) as tar:
            _member(tar, name, type=tarfile.DIRTYPE)
        gz.write(head.getvalue()[:512])
        pax = tarfile.TarInfo("PaxHeader")
        pax.type, pax.size = tarfile.XHDTYPE, declared
        gz.write(pax.tobuf(tarfile.USTAR_FORMAT))
        zeros = bytes(_MiB)
        for _ in range(declared // _MiB):
            gz.write(zeros)
        tail = io.BytesIO()
        with tarfile.open(fileobj=tail, mode="w", format=tarfile.USTAR_FORMAT) as tar:
            _member(tar, f"{name}/Chart.yaml", CHART_YAML.replace(b"NAME", name.encode()))
        gz.write(tail.getvalue())
    return out.getvalue()


def link_chain(name: str) -> bytes:
    """A chart whose links each stay inside it, but followed one after the other leave it:
    `templates/a/up` is the chart directory, so `up/../..` is the directory above the chart
    (spelled out, `templates/a/up/../../etc/passwd` looks like `templates/etc/passwd`)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        _member(tar, name, type=tarfile.DIRTYPE)
        _member(tar, f"{name}/Chart.yaml", CHART_YAML.replace(b"NAME", name.encode()))
        _member(tar, f"{name}/templates", type=tarfile.DIRTYPE)
        _member(tar, f"{name}/templates/a", type=tarfile.DIRTYPE)
        _member(tar, f"{name}/templates/a/up", type=tarfile.SYMTYPE, linkname="../..")
        _member(tar, f"{name}/templates/a/x.yaml", type=tarfile.SYMTYPE, linkname="up/../../etc/passwd")
    return out.getvalue()


class ChartServer:
    """A Helm repository on 127.0.0.1: `index.yaml` and the archives it lists."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.server = LocalServer(self.handle)

    def handle(self, request: Seen) -> Reply:
        body = self.files.get(request.path.lstrip("/"))
        return (200, {}, body) if body is not None else (404, {}, b"")

    def publish(self, name: str, archive: bytes) -> None:
        self.files[f"{name}-1.0.0.tgz"] = archive
        entries = {
            chart[: -len("-1.0.0.tgz")]: [
                {"name": chart[: -len("-1.0.0.tgz")], "version": "1.0.0", "urls": [chart],
                 "digest": hashlib.sha256(data).hexdigest()}
            ]
            for chart, data in self.files.items()
            if chart.endswith(".tgz")
        }  # fmt: skip
        self.files["index.yaml"] = json.dumps({"apiVersion": "v1", "entries": entries}).encode()


@pytest.fixture
def charts() -> Iterator[ChartServer]:
    server = ChartServer()
    yield server
    server.server.close()


@pytest.fixture
def agent(env: Env, namespace: str, tmp_path: Path) -> Iterator[AgentProcess]:
    """`gitops-helm run --reconcile-only` for `namespace`, as a process of its own."""
    port = free_port()
    argv = [
        GITOPS_HELM, "run", "--reconcile-only", "--kubeconfig", env["KUBECONFIG"],
        "--namespace", namespace, "--helm-bin", env["HELM_BIN"], "--listen", f"127.0.0.1:{port}",
        "--work-dir", str(tmp_path / "work"), "--retry-base", "1s", "--retry-max", "3s",
    ]  # fmt: skip
    log_path = tmp_path / "agent.log"
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=process_env(env))
    process = AgentProcess(proc, port, log_path, "", namespace, argv)
    try:
        process.wait_acting()
        yield process
    finally:
        process.stop()


def chart_failure(env: Env, namespace: str, name: str) -> Callable[[], str | None]:
    """The message of the HelmRelease's ChartFetchFailed condition, once it has one."""

    def check() -> str | None:
        status = (get_object(env, "helmrelease", namespace, name) or {}).get("status", {})
        for condition in status.get("conditions", []):
            if condition.get("reason") == "ChartFetchFailed" and condition.get("status") == "True":
                return str(condition.get("message", ""))
        return None

    return check


def test_a_tar_bomb_fails_the_helmrelease_naming_the_chart_and_the_agent_stays_small(
    env: Env, namespace: str, charts: ChartServer, agent: AgentProcess
) -> None:
    archive = tar_bomb("bomb", 256 * _MiB)
    assert len(archive) < 512 * 1024  # a quarter of a MiB on the wire
    charts.publish("bomb", archive)
    before = peak_rss_bytes(agent.proc.pid)

    chart = {"repository": charts.server.url, "name": "bomb", "version": "1.0.0"}
    apply(env, hr_manifest("bomb", namespace, chart))
    message = wait_for("the chart to fail", chart_failure(env, namespace, "bomb"), timeout=90)

    assert message.startswith(f'chart "bomb" version "1.0.0" from {charts.server.url}'), message
    assert f"has a header of {256 * _MiB} bytes; the limit is 65536" in message, message
    growth = peak_rss_bytes(agent.proc.pid) - before
    assert growth < 64 * _MiB, f"the agent grew by {growth // _MiB} MiB reading a {len(archive)} byte archive"
    agent.assert_running()


def test_a_link_chain_leaving_the_chart_fails_the_helmrelease(
    env: Env, namespace: str, charts: ChartServer, agent: AgentProcess
) -> None:
    charts.publish("chain", link_chain("chain"))
    chart = {"repository": charts.server.url, "name": "chain", "version": "1.0.0"}
    apply(env, hr_manifest("chain", namespace, chart))
    message = wait_for("the chart to fail", chart_failure(env, namespace, "chain"), timeout=90)
    assert message.startswith(f'chart "chain" version "1.0.0" from {charts.server.url}'), message
    assert "link 'chain/templates/a/x.yaml' points outside the chart" in message, message
    assert get_object(env, "secret", namespace, "sh.helm.release.v1.chain.v1") is None  # nothing installed


_INDEX_READER = """
import json, sys
from pathlib import Path
from gitops_helm.charts.helmrepo import HelmRepoClient, HelmRepoSettings

def peak():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024

with HelmRepoClient(HelmRepoSettings(Path(sys.argv[2]))) as client:
    client.index(sys.argv[1] + "/warmup")  # the HTTP session, TLS and logging set up
    before = peak()
    index = client.index(sys.argv[1])
    print(json.dumps({"growth": peak() - before, "charts": len(index.entries)}))
"""


def _version(chart: int, v: int) -> dict[str, Any]:
    return {
        "apiVersion": "v2",
        "appVersion": f"1.{v}.0",
        "created": "2024-01-02T03:04:05.1Z",
        "description": f"Chart number {chart}, a web application packaged for Kubernetes",
        "digest": hashlib.sha256(f"{chart}-{v}".encode()).hexdigest(),
        "home": f"https://example.com/charts/chart{chart}",
        "keywords": ["web", "app"],
        "maintainers": [{"email": "team@example.com", "name": "Team"}],
        "name": f"chart{chart}",
        "sources": [f"https://git.example.com/chart{chart}"],
        "type": "application",
        "urls": [f"https://example.com/charts/chart{chart}-1.{v}.0.tgz"],
        "version": f"1.{v}.0",
    }


def _yaml_lines(value: Any, indent: str) -> list[str]:
    """Block YAML as `helm repo index` writes it (sequences not indented under their key)."""
    lines: list[str] = []
    for key, item in value.items():
        if isinstance(item, list):
            lines.append(f"{indent}{key}:")
            for element in item:
                if isinstance(element, dict):
                    inner = _yaml_lines(element, indent + "  ")
                    lines.append(f"{indent}- {inner[0].lstrip()}")
                    lines += inner[1:]
                else:
                    lines.append(f"{indent}- {element}")
        else:
            lines.append(
                f'{indent}{key}: "{item}"' if key in ("appVersion", "created") else f"{indent}{key}: {item}"
            )
    return lines


def large_index(size: int, form: str) -> bytes:
    """A Helm index of about `size` bytes, as `helm repo index` (or `--json`) writes them."""
    lines = ["apiVersion: v1", "entries:"]
    entries: dict[str, list[dict[str, Any]]] = {}
    total, chart = 0, 0
    while total < size:
        versions = [_version(chart, v) for v in range(20)]
        entries[f"chart{chart}"] = versions
        text = "\n".join([f"  chart{chart}:", *_yaml_lines({"x": versions}, "  ")[1:]])
        lines.append(text)
        total += len(text)
        chart += 1
    if form == "json":
        return json.dumps(
            {"apiVersion": "v1", "entries": entries, "generated": "2024-01-02T03:04:05Z"}
        ).encode()
    lines.append('generated: "2024-01-02T03:04:05Z"\n')
    return "\n".join(lines).encode()


@pytest.mark.parametrize("form", ["yaml", "json"])
def test_a_20_mb_index_costs_a_small_multiple_of_its_size(
    tmp_path: Path, charts: ChartServer, form: str
) -> None:
    body = large_index(20 * _MiB, form)
    charts.files["index.yaml"] = body
    charts.files["warmup/index.yaml"] = b"apiVersion: v1\nentries: {}\n"
    out = subprocess.run(
        [sys.executable, "-c", _INDEX_READER, charts.server.url, str(tmp_path / "cache")],
        capture_output=True, text=True, timeout=600, cwd=ROOT, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout)
    print(f"index of {len(body)} bytes: peak RSS grew by {result['growth']} bytes")
    assert result["charts"] > 1000
    assert result["growth"] < 4 * len(body), (
        f"{result['growth'] // _MiB} MiB for a {len(body) // _MiB} MiB index"
    )
