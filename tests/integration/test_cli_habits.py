"""Issue #11: the command line as people type it, on the real environment: `diff`'s exit codes
(those of `kubectl diff`), bare booleans and comma lists reaching a real sync, the Helm Operator's
and Flux v1's flags, and `version` naming the helm and git the agent would run."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.conftest import Env
from tests.integration.syncfix import ConfigRepo, cli, cm_data, configmap, sync_flags, unique_name


def http_repo(env: Env, tmp_path: Path, name: str) -> tuple[ConfigRepo, str]:
    url = f"{env['TESTENV_GIT_HTTP']}/{unique_name(name)}.git"
    return ConfigRepo(tmp_path / name, url), url


def test_diff_exit_codes_none_found_error(env: Env, namespace: str, tmp_path: Path) -> None:
    repo, url = http_repo(env, tmp_path, "diff-codes")
    flags = [*sync_flags(env, namespace, "codes"), "--git-url", url]
    repo.replace({"a.yaml": configmap("a", {"v": "1"})})

    out = cli(env, "diff", *flags)
    assert out.returncode == 1, out.stdout + out.stderr  # ConfigMap a would be created
    assert any(line.split()[:2] == ["create", "ConfigMap"] for line in out.stdout.splitlines()), out.stdout

    assert cli(env, "sync", "--once", *flags).returncode == 0
    out = cli(env, "diff", *flags)
    assert out.returncode == 0, out.stdout + out.stderr  # the cluster holds what Git declares
    assert "unchanged ConfigMap a" in out.stdout.splitlines(), out.stdout

    repo.replace({"a.yaml": configmap("a", {"v": "2"}), "bad.yaml": "a: [1, 2\nb: 3\n"})
    out = cli(env, "diff", *flags)
    assert out.returncode == 2, out.stdout + out.stderr  # an error wins over the differences
    assert "bad.yaml:2" in out.stderr, out.stderr

    missing = f"{env['TESTENV_GIT_HTTP']}/{unique_name('absent')}.git"
    out = cli(env, "diff", *sync_flags(env, namespace, "codes-absent"), "--git-url", missing)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "cannot fetch" in out.stderr, out.stderr
    assert cm_data(env, namespace, "a") == {"v": "1"}, "diff changed the cluster"


def test_bare_booleans_comma_paths_and_old_flags_drive_a_real_sync(
    env: Env, namespace: str, tmp_path: Path
) -> None:
    repo, url = http_repo(env, tmp_path, "habits")
    repo.replace(
        {
            "one/a.yaml": configmap("in-one", {"v": "1"}),
            "two/b.yaml": configmap("in-two", {"v": "1"}),
            "three/c.yaml": configmap("in-three", {"v": "1"}),
        }
    )
    flags = [*sync_flags(env, namespace, "habits"), "--git-url", url]
    out = cli(env, "sync", "--once", *flags, "--git-path", "one,two", "--sync-garbage-collection")
    assert out.returncode == 0, out.stdout + out.stderr
    assert cm_data(env, namespace, "in-one") == {"v": "1"} and cm_data(env, namespace, "in-two") == {"v": "1"}
    assert cm_data(env, namespace, "in-three") is None, "--git-path one,two synced a third directory"

    # Flux v1's name of the dry run, bare: nothing is deleted, the would-be deletion is said
    repo.replace(
        {
            "one/a.yaml": configmap("in-one", {"v": "1"}),
            "two/d.yaml": configmap("in-two-d", {"v": "1"}),
            "three/c.yaml": configmap("in-three", {"v": "1"}),
        }
    )
    out = cli(env, "sync", "--once", *flags, "--git-path=one,two", "--sync-garbage-collection-dry")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "--sync-garbage-collection-dry (a Flux v1 flag) is deprecated" in out.stderr, out.stderr
    assert f"would delete (dry run): ConfigMap {namespace}/in-two" in out.stdout, out.stdout
    assert cm_data(env, namespace, "in-two") == {"v": "1"}

    # Helm 2 is refused before anything happens
    out = cli(env, "sync", "--once", *flags, "--tiller-namespace", "kube-system", "--git-path", "one")
    assert out.returncode == 2, out.stdout + out.stderr
    assert "--tiller-namespace (a Helm Operator flag) is no longer supported" in out.stderr, out.stderr
    assert cm_data(env, namespace, "in-two") == {"v": "1"}


def test_version_names_helm_and_git(env: Env, tmp_path: Path) -> None:
    for helm_bin in (env["HELM_BIN"], env["HELM3_BIN"]):
        expected = subprocess.run(
            [helm_bin, "version", "--template", "{{.Version}}"], capture_output=True, text=True, timeout=60
        ).stdout.strip()
        out = cli(env, "version", "-o", "json", "--helm-bin", helm_bin)
        assert out.returncode == 0, out.stderr
        answer = json.loads(out.stdout)
        assert answer["helm"] == {"version": expected, "path": helm_bin}, answer
        assert answer["git"]["version"][0].isdigit(), answer

    out = cli(env, "version", "--helm-bin", str(tmp_path / "no-helm"))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("gitops-helm "), out.stdout
    assert (
        lines[1]
        == f"helm: unavailable: {tmp_path / 'no-helm'}: not found (not an executable file, nor on PATH)"
    )
    assert lines[2].startswith("git "), out.stdout

    out = cli(env, "version", "--short")
    assert out.returncode == 0 and out.stdout.strip() == lines[0].removeprefix("gitops-helm ")
