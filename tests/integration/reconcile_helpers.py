"""Helpers shared by the reconcile integration tests (tests/integration/test_reconcile_*.py).

They build HelmRelease manifests, publish uniquely named copies of the test chart, push charts to
the environment's Git server, and read what a user would check: Helm release storage, the values
Helm holds for a release, and the state of the release's objects.
"""

from __future__ import annotations

import base64
import gzip
import json
import shutil
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import CHARTS, ROOT, Env

sys.path.insert(0, str(ROOT / "scripts"))
from testenvlib import env as testenv

# The timeout (seconds) of installs/upgrades meant to fail: pods of the environment are Ready in
# about a second, so a release that is not Ready by then will not be.
FAIL_TIMEOUT = 4


def hr_manifest(name: str, namespace: str, chart: dict[str, Any], **spec: Any) -> dict[str, Any]:
    """A HelmRelease whose release is called ``name``."""
    return {
        "apiVersion": "helm.fluxcd.io/v1",
        "kind": "HelmRelease",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"releaseName": name, "chart": chart, **spec},
    }


def apply(env: Env, obj: dict[str, Any]) -> None:
    env.kubectl("apply", "-f", "-", input_text=json.dumps(obj))


def patch_spec(env: Env, namespace: str, name: str, spec: dict[str, Any]) -> None:
    """Merge-patch the HelmRelease's spec (as a user editing the manifest would)."""
    env.kubectl(
        "patch", "helmrelease", name, "-n", namespace, "--type=merge", "-p", json.dumps({"spec": spec})
    )


def repo_chart(env: Env, name: str = "hello", version: str = "0.1.0") -> dict[str, str]:
    return {"repository": env["TESTENV_CHARTS"], "name": name, "version": version}


def chart_copy(tmp_path: Path, name: str, version: str = "0.1.0", **values: Any) -> Path:
    """A copy of tests/charts/hello named ``name`` at ``version``, with changed default values."""
    dest = tmp_path / "charts" / f"{name}-{version}" / name
    shutil.copytree(CHARTS / "hello", dest)
    meta = yaml.safe_load((dest / "Chart.yaml").read_text())
    meta.update(name=name, version=version)
    (dest / "Chart.yaml").write_text(yaml.safe_dump(meta))
    if values:
        defaults = yaml.safe_load((dest / "values.yaml").read_text())
        defaults.update(values)
        (dest / "values.yaml").write_text(yaml.safe_dump(defaults))
    return dest


def unique_name(prefix: str = "hello") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def publish(tmp_path: Path, name: str, version: str = "0.1.0", **values: Any) -> str:
    """Publish a copy of the test chart as ``name`` ``version`` to every chart repository."""
    testenv.publish_chart([str(chart_copy(tmp_path, name, version, **values))])
    return name


class GitRepo:
    """A working copy pushed to ``$TESTENV_GIT_HTTP/<name>.git`` (also served over SSH)."""

    def __init__(self, env: Env, tmp_path: Path, name: str | None = None) -> None:
        self.env = env
        self.name = name or unique_name("charts")
        self.dir = tmp_path / "work" / self.name
        self.dir.mkdir(parents=True)
        self.http_url = f"{env['TESTENV_GIT_HTTP']}/{self.name}.git"
        self.ssh_url = f"{env['TESTENV_GIT_SSH']}/{self.name}.git"
        self.git("init", "-q", "-b", "master")

    def git(self, *args: str) -> str:
        argv = ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid", *args]
        return self.env.run(
            argv, env={"GIT_DIR": str(self.dir / ".git"), "GIT_WORK_TREE": str(self.dir)}
        ).stdout

    def add_chart(self, path: str, **values: Any) -> Path:
        dest = self.dir / path
        shutil.copytree(CHARTS / "hello", dest)
        if values:
            self.set_chart_values(path, **values)
        return dest

    def set_chart_values(self, path: str, **values: Any) -> None:
        file = self.dir / path / "values.yaml"
        defaults = yaml.safe_load(file.read_text())
        defaults.update(values)
        file.write_text(yaml.safe_dump(defaults))

    def write(self, path: str, text: str) -> None:
        (self.dir / path).parent.mkdir(parents=True, exist_ok=True)
        (self.dir / path).write_text(text)

    def commit_and_push(self, message: str = "change") -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        self.git("push", "-q", self.http_url, "HEAD:refs/heads/master")
        return self.git("rev-parse", "HEAD").strip()


# -- what a user checks ---------------------------------------------------------------------------


def release_secrets(env: Env, namespace: str, release: str) -> list[dict[str, Any]]:
    """Helm's storage Secrets of ``release``, oldest revision first."""
    items = env.kube_json("secrets", "-n", namespace, "-l", f"owner=helm,name={release}")["items"]
    return sorted(items, key=lambda s: int(s["metadata"]["labels"]["version"]))


def latest_revision(env: Env, namespace: str, release: str) -> tuple[int, str]:
    """(revision, status) of the latest stored revision; (0, "") when there is none."""
    secrets = release_secrets(env, namespace, release)
    if not secrets:
        return 0, ""
    labels = secrets[-1]["metadata"]["labels"]
    return int(labels["version"]), labels["status"]


def release_history(env: Env, namespace: str, release: str) -> list[tuple[int, str]]:
    """(revision, status) of every stored revision, oldest first."""
    return [
        (int(s["metadata"]["labels"]["version"]), s["metadata"]["labels"]["status"])
        for s in release_secrets(env, namespace, release)
    ]


def settled_ready(env: Env, namespace: str, name: str) -> dict[str, Any] | None:
    """The HelmRelease's status when it is Ready=True for its current generation and no run is
    in progress (no Reconciling); None otherwise."""
    hr = env.kube_json("helmrelease", name, "-n", namespace)
    st: dict[str, Any] = hr.get("status", {})
    types = {c["type"]: c["status"] for c in st.get("conditions", [])}
    current = st.get("observedGeneration") == hr.get("metadata", {}).get("generation")
    return st if types.get("Ready") == "True" and current and "Reconciling" not in types else None


def release_record(secret: dict[str, Any]) -> dict[str, Any]:
    raw = base64.b64decode(base64.b64decode(secret["data"]["release"]))
    return json.loads(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw)  # type: ignore[no-any-return]


def helm_cli(env: Env, helm: str, *args: str, check: bool = True) -> str:
    return env.run([helm, *args], check=check, timeout=120).stdout


def user_values(env: Env, helm: str, namespace: str, release: str) -> dict[str, Any]:
    """``helm get values`` (the user-supplied values of the latest revision)."""
    out = helm_cli(env, helm, "get", "values", release, "-n", namespace, "-o", "json")
    return json.loads(out) or {}


def config_message(env: Env, namespace: str, release: str) -> str:
    """The chart renders ``.Values.message`` into ConfigMap ``<release>-config``."""
    return str(env.kube_json("configmap", f"{release}-config", "-n", namespace)["data"]["message"])


def status(agent: Any, name: str, namespace: str) -> dict[str, Any]:
    return agent.hr(name, namespace).get("status", {})  # type: ignore[no-any-return]


def cond(agent: Any, name: str, namespace: str, ctype: str) -> dict[str, Any]:
    found = agent.condition(name, namespace, ctype)
    assert found is not None, f"no {ctype} condition on {namespace}/{name}"
    return found  # type: ignore[no-any-return]


def wait_revision(
    agent: Any, env: Env, namespace: str, release: str, revision: int, status_: str = "deployed"
) -> None:
    agent.wait_for(
        f"{release} revision {revision} {status_}",
        lambda: latest_revision(env, namespace, release) == (revision, status_),
    )


def eventually(agent: Any, what: str, check: Callable[[], Any], timeout: float = 60.0) -> Any:
    return agent.wait_for(what, check, timeout=timeout)


def wait_ready(agent: Any, name: str, namespace: str, status_: str = "True", timeout: float = 90.0) -> None:
    """Wait until the agent is done with the current spec and says Ready=status_: the condition
    and ``observedGeneration == metadata.generation``. On timeout the error shows the
    HelmRelease's status and helm calls.

    Ready alone is not enough: it is written as soon as helm returns, while ``releaseStatus``,
    ``observedGeneration`` and the removal of ``Stalled`` come with the run's last status write a
    moment later; and during an upgrade the Ready=True of the previous revision is still there.
    """

    def check() -> bool:
        hr = agent.hr(name, namespace)
        st = hr.get("status") or {}
        ready = next((c for c in st.get("conditions", []) if c["type"] == "Ready"), None)
        current = st.get("observedGeneration") == hr["metadata"]["generation"]
        return bool(ready and ready["status"] == status_ and current)

    try:
        agent.wait_for(f"{namespace}/{name} Ready={status_} for its current generation", check, timeout)
    except AssertionError as exc:
        st = json.dumps(agent.hr(name, namespace).get("status"), indent=1)
        raise AssertionError(f"{exc}\nstatus: {st}\nhelm calls: {dict(agent.agent.helm.calls)}") from None


def resync(agent: Any, key: str) -> None:
    """Queue one reconcile of ``key`` (as a periodic resync would) and wait until it ran."""
    agent.resync(key)


def assert_quiet_resync(agent: Any, name: str, namespace: str) -> None:
    """A resync of an unchanged release makes no helm call and writes no status."""
    calls = agent.helm_calls()
    version = agent.hr(name, namespace)["metadata"]["resourceVersion"]
    time.sleep(1.1)  # condition times have second precision: a rewrite would now differ
    resync(agent, f"{namespace}/{name}")
    assert agent.helm_calls() == calls, dict(agent.agent.helm.calls)
    assert agent.hr(name, namespace)["metadata"]["resourceVersion"] == version, "the resync wrote the status"
