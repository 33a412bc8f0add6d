"""Smoke tests proving the local environment is real (issue: foundation and test environment)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from pathlib import Path

import requests

from tests.conftest import CHARTS, Env
from tests.integration.syncfix import wait_for

HELLO = str(CHARTS / "hello")


def _wait_flag(helm: str) -> list[str]:
    """helm 4 takes a wait strategy (`--wait=watcher`); helm 3 a plain bool."""
    return ["--wait=watcher"] if "helm4" in Path(helm).name else ["--wait"]


def _ready_pods(env: Env, ns: str, release: str) -> list[str]:
    pods = env.kube_json("pods", "-n", ns, "-l", f"app.kubernetes.io/instance={release}")["items"]
    return [
        p["metadata"]["name"]
        for p in pods
        if any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))
    ]


def test_install_wait_makes_pods_ready(env: Env, namespace: str, helm: str) -> None:
    env.run(
        [
            helm,
            "upgrade",
            "--install",
            "web",
            HELLO,
            "-n",
            namespace,
            *_wait_flag(helm),
            "--timeout",
            "90s",
            "--set",
            "replicaCount=2",
        ]
    )
    deploy = env.kube_json("deployment", "web", "-n", namespace)
    assert deploy["status"]["readyReplicas"] == 2
    assert len(_ready_pods(env, namespace, "web")) == 2
    status = json.loads(env.run([helm, "status", "web", "-n", namespace, "-o", "json"]).stdout)
    assert status["info"]["status"] == "deployed"


def test_unready_pods_make_wait_fail_with_a_timeout_error(env: Env, namespace: str, helm: str) -> None:
    """`--wait` gives up at its `--timeout`: helm fails with a timeout error and records the
    release as failed. Wall time is not asserted: a helm that ignored its timeout and waited for
    ever is caught by env.run's own limit (120 s here), far above the 6 s."""
    out = env.run(
        [
            helm,
            "upgrade",
            "--install",
            "stuck",
            HELLO,
            "-n",
            namespace,
            *_wait_flag(helm),
            "--timeout",
            "6s",
            "--set",
            "unready=true",
        ],
        check=False,
        timeout=120,
    )
    assert out.returncode != 0
    assert "deadline exceeded" in out.stderr or "timed out" in out.stderr, out.stderr
    status = json.loads(env.run([helm, "status", "stuck", "-n", namespace, "-o", "json"]).stdout)
    assert status["info"]["status"] == "failed"

    # The failure says the pods never got Ready, not that they were never started: they run.
    # (helm failing does not imply the kubelet has reported them Running yet: wait for that.)
    def pods_running() -> bool:
        pods = env.kube_json("pods", "-n", namespace, "-l", "app.kubernetes.io/instance=stuck")["items"]
        return bool(pods) and all(p["status"]["phase"] == "Running" for p in pods)

    wait_for("the stuck pods Running", pods_running, timeout=60)
    assert _ready_pods(env, namespace, "stuck") == []


def test_helm_test_passes_and_fails_on_annotation(env: Env, namespace: str, helm: str) -> None:
    env.run([helm, "install", "good", HELLO, "-n", namespace, *_wait_flag(helm), "--timeout", "60s"])
    ok = env.run([helm, "test", "good", "-n", namespace, "--timeout", "60s"], check=False)
    assert ok.returncode == 0, ok.stderr
    assert "Succeeded" in ok.stdout
    env.run(
        [
            helm,
            "install",
            "bad",
            HELLO,
            "-n",
            namespace,
            *_wait_flag(helm),
            "--timeout",
            "60s",
            "--set",
            "testOutcome=fail",
        ]
    )
    bad = env.run([helm, "test", "bad", "-n", namespace, "--timeout", "60s"], check=False)
    assert bad.returncode != 0
    assert env.kube_json("pod", "bad-test", "-n", namespace)["status"]["phase"] == "Failed"


def _commit(env: Env, work: Path, text: str) -> str:
    (work / "file.txt").write_text(text)
    env.run(["git", "-C", str(work), "add", "-A"])
    env.run(
        [
            "git",
            "-C",
            str(work),
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.invalid",
            "commit",
            "-q",
            "-m",
            text,
        ]
    )
    return env.run(["git", "-C", str(work), "rev-parse", "HEAD"]).stdout.strip()


def test_git_push_over_http_and_ssh_visible_in_fresh_clone(env: Env, tmp_path: Path) -> None:
    work = tmp_path / "work"
    env.run(["git", "init", "-q", "-b", "main", str(work)])
    name = f"smoke-{time.time_ns()}.git"
    http_url = f"{env['TESTENV_GIT_HTTP']}/{name}"
    ssh_url = f"{env['TESTENV_GIT_SSH']}/{name}"
    sha1 = _commit(env, work, "one")
    env.run(["git", "-C", str(work), "push", "-q", http_url, "main"])
    sha2 = _commit(env, work, "two")
    env.run(["git", "-C", str(work), "push", "-q", ssh_url, "main"], env=env.git_ssh_env())

    env.run(["git", "clone", "-q", ssh_url, str(tmp_path / "via-ssh")], env=env.git_ssh_env())
    env.run(["git", "clone", "-q", http_url, str(tmp_path / "via-http")])
    for clone in ("via-ssh", "via-http"):
        log = env.run(["git", "-C", str(tmp_path / clone), "log", "--format=%H"]).stdout.split()
        assert log == [sha2, sha1]
    # The basic-auth endpoint serves the same repository, and only with credentials.
    denied = env.run(["git", "ls-remote", f"{env['TESTENV_GIT_HTTP_AUTH']}/{name}"], check=False)
    assert denied.returncode != 0
    authed = env["TESTENV_GIT_HTTP_AUTH"].replace(
        "http://", f"http://{env['TESTENV_GIT_USER']}:{env['TESTENV_GIT_PASSWORD']}@"
    )
    assert sha2 in env.run(["git", "ls-remote", f"{authed}/{name}"]).stdout


def test_published_chart_installs_from_http_and_basic_auth_repos(env: Env, namespace: str, helm: str) -> None:
    env.run(
        [
            helm,
            "install",
            "from-http",
            "hello",
            "--repo",
            env["TESTENV_CHARTS"],
            "--version",
            "0.1.0",
            "-n",
            namespace,
        ]
    )
    auth = [
        "--username",
        env["TESTENV_CHARTS_USER"],
        "--password",
        env["TESTENV_CHARTS_PASSWORD"],
        "--ca-file",
        env["TESTENV_CA_FILE"],
    ]
    env.run(
        [
            helm,
            "install",
            "from-auth",
            "hello",
            "--repo",
            env["TESTENV_CHARTS_AUTH"],
            "--version",
            "0.1.0",
            "-n",
            namespace,
            *auth,
        ]
    )
    releases = json.loads(env.run([helm, "list", "-n", namespace, "-o", "json"]).stdout)
    assert sorted(r["name"] for r in releases) == ["from-auth", "from-http"]
    assert {r["chart"] for r in releases} == {"hello-0.1.0"}

    refused = env.run(
        [
            helm,
            "install",
            "anon",
            "hello",
            "--repo",
            env["TESTENV_CHARTS_AUTH"],
            "--ca-file",
            env["TESTENV_CA_FILE"],
            "-n",
            namespace,
        ],
        check=False,
    )
    assert refused.returncode != 0
    assert "401" in refused.stderr or "Unauthorized" in refused.stderr
    raw = requests.get(f"{env['TESTENV_CHARTS_AUTH']}/index.yaml", verify=env["TESTENV_CA_FILE"], timeout=10)
    assert raw.status_code == 401


def test_oci_registry_lists_pushed_manifest(env: Env) -> None:
    base = f"http://{env['TESTENV_REGISTRY']}/v2/smoke/artifact"
    config = b"{}"
    layer = b"hello from the gitops-helm test environment"
    descriptors = []
    for blob, media in ((config, "application/vnd.oci.empty.v1+json"), (layer, "text/plain")):
        digest = "sha256:" + hashlib.sha256(blob).hexdigest()
        start = requests.post(f"{base}/blobs/uploads/", timeout=10)
        assert start.status_code == 202
        location = start.headers["Location"]
        sep = "&" if "?" in location else "?"
        url = location if location.startswith("http") else f"http://{env['TESTENV_REGISTRY']}{location}"
        put = requests.put(
            f"{url}{sep}digest={digest}",
            data=blob,
            headers={"Content-Type": "application/octet-stream"},
            timeout=10,
        )
        assert put.status_code == 201, put.text
        descriptors.append({"mediaType": media, "digest": digest, "size": len(blob)})
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": descriptors[0],
        "layers": [descriptors[1]],
    }
    tag = f"t{time.time_ns()}"
    put = requests.put(
        f"{base}/manifests/{tag}",
        data=json.dumps(manifest),
        headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
        timeout=10,
    )
    assert put.status_code == 201, put.text
    tags = requests.get(f"{base}/tags/list", timeout=10).json()
    assert tag in tags["tags"]
    # The chart published by publish-chart is there too, as an OCI chart.
    charts = requests.get(f"http://{env['TESTENV_REGISTRY']}/v2/charts/hello/tags/list", timeout=10).json()
    assert "0.1.0" in charts["tags"]


def test_private_registry_needs_basic_auth_and_holds_the_published_chart(env: dict[str, str]) -> None:
    url = f"http://{env['TESTENV_REGISTRY_AUTH']}/v2/charts/hello/tags/list"
    assert requests.get(url, timeout=10).status_code == 401
    wrong = requests.get(url, auth=(env["TESTENV_REGISTRY_USER"], "not-the-password"), timeout=10)
    assert wrong.status_code == 401
    credentials = (env["TESTENV_REGISTRY_USER"], env["TESTENV_REGISTRY_PASSWORD"])
    listed = requests.get(url, auth=credentials, timeout=10)
    assert listed.status_code == 200
    assert "0.1.0" in listed.json()["tags"]


def _testenv(state_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, GITOPS_HELM_TESTENV_STATE=str(state_dir))
    return subprocess.run(
        ["scripts/testenv", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=Path(__file__).resolve().parents[2],
    )


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in args:
            found.append(args)
    return found


def test_up_is_idempotent_and_down_leaves_no_process(tmp_path: Path) -> None:
    """A second, private environment: up, up again (no-op), down, nothing left; up again works."""
    state_dir = tmp_path / "private-env"
    for round_ in (1, 2):
        first = _testenv(state_dir, "up")
        assert first.returncode == 0, first.stderr
        again = _testenv(state_dir, "up")
        assert "already up" in again.stdout, f"round {round_}: {again.stdout} {again.stderr}"
        assert _testenv(state_dir, "status").stdout.strip() == "up"
        assert _processes_mentioning(str(state_dir)), "the environment's processes should be running"
        down = _testenv(state_dir, "down")
        assert down.returncode == 0, down.stderr
        assert _processes_mentioning(str(state_dir)) == []
        assert _testenv(state_dir, "status").stdout.strip() == "down"
