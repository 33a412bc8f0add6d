"""Experiment 6: malformed input, fed through the real paths of a running agent.

Injects: every file of ``chaos/corpus/`` plus the inputs generated here because they are large or
binary (a 10 MB manifest, 10 000-deep nesting in flow and block style, binary garbage, a
HelmRelease with 2 MB of values, chart archives: truncated, not gzip, a ``../`` path, a symlink
leaving the chart, a 6 MB Chart.yaml, no Chart.yaml; index files: truncated, wrong types,
binary, an alias bomb, 12 MB without the chart). One real ``gitops-helm run`` (debug log, garbage
collection on, internal URLs allowed) syncs a Git repository on the environment's Git server
that holds working objects (a ConfigMap and a HelmRelease, installed first) and then, in one
commit, every malformed manifest and HelmRelease spec of the corpus, plus HelmReleases whose
values (from a ConfigMap, a Secret or a URL) or charts and indexes (from a Helm repository served
on 127.0.0.1 by this experiment) are malformed. Counted once per corpus entry (the full run feeds
the whole corpus, the quick run a subset of each family).

Checks, one trial per entry: the error names the file (Git: the sync state's errors begin with
the file's path) or the field or source (HelmRelease: its Ready condition is False and names the
``spec`` field, the ``valuesFrom[i]`` source, the chart archive or the index), with the entry's
expected wording; no Helm release is created for it. Then three more trials: the agent process is
alive and its log holds no traceback; the working objects survived the malformed commit (the
ConfigMap's data, the HelmRelease Ready and its release still at the revision it had); and they
survive the commit that removes the corpus again, when garbage collection does run (it deletes
the corpus objects that were applied, and nothing else).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import random
import re
import tarfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chaos.framework import Context, Outcome, Trial, experiment
from tests.conftest import CHARTS, Env
from tests.integration.syncfix import (
    AgentProcess,
    ConfigRepo,
    get_object,
    release_exists,
    start_agent,
    synced_revision,
    unblock_namespace,
    unique_name,
    wait_for,
)
from tests.localhttp import LocalServer, Reply, Seen

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
_MiB = 1024 * 1024

# --- the corpus ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One malformed input: where it goes, and the wording its error must have."""

    family: str  # manifest | helmrelease | values | chart | index
    name: str  # the scenario: family/file (or family/what for generated input)
    expect: str  # a regular expression the error must match
    quick: bool = True


# Expected wording per corpus file (static files) or generated input. A file of the corpus that is
# missing here fails the experiment (see `_entries`): every malformed input needs its verdict.
MANIFESTS = {
    "truncated.yaml": r"truncated\.yaml:\d+: .*(unterminated|end of (the )?stream|found unexpected end)",
    "wrong-types.yaml": r"wrong-types\.yaml:\d+: .*metadata\.name",
    "metadata-not-a-mapping.yaml": r"metadata-not-a-mapping\.yaml:\d+: .*metadata",
    "kind-missing.yaml": r"kind-missing\.yaml:\d+: .*kind",
    "top-level-scalar.yaml": r"top-level-scalar\.yaml:\d+: .*(object|mapping)",
    "alias-bomb.yaml": r"alias-bomb\.yaml:\d+: .*(alias|too many|values)",
    "recursive-alias.yaml": r"recursive-alias\.yaml:\d+: .*(alias|recursive|nested more than)",
    "duplicate-keys.yaml": r"duplicate-keys\.yaml:\d+: .*duplicate.*color",
    "multi-doc-one-bad.yaml": r"multi-doc-one-bad\.yaml:1[0-9]: ",
    "tab-indent.yaml": r"tab-indent\.yaml:\d+: .*tab",
    "python-tag.yaml": r"python-tag\.yaml:\d+: .*(tag|python)",
    "list-with-bad-item.yaml": r"list-with-bad-item\.yaml:8: .*not a mapping",
    # generated
    "binary.yaml": r"binary\.yaml(:\d+)?: .*(UTF-8|control|character|binary)",
    "huge-10mb.yaml": r"huge-10mb\.yaml:1: ConfigMap corpus-huge: the object is \d+ bytes, larger than",
    "deep-flow.yaml": r"deep-flow\.yaml:\d+: .*(deep|nest)",
    "deep-block.yaml": r"deep-block\.yaml:\d+: .*(deep|nest)",
}
HELMRELEASES = {
    "chart-a-string.yaml": r"spec\.chart: must be an object",
    "chart-repository-a-number.yaml": r"spec\.chart\.repository: must be a string",
    "chart-version-a-list.yaml": r"spec\.chart\.version: must be a string",
    "chart-git-and-repository.yaml": r"spec\.chart: sets both a Git source",
    "values-a-list.yaml": r"spec\.values: must be an object",
    "valuesfrom-a-mapping.yaml": r"spec\.valuesFrom: must be an array",
    "valuesfrom-entry-wrong.yaml": r"spec\.valuesFrom\[0\]\.configMapKeyRef\.name: must be a string",
    "timeout-a-word.yaml": r"spec\.timeout: must be an integer",
    "rollback-wrong-types.yaml": r"spec\.rollback\.enable: must be true or false",
    "test-wrong-types.yaml": r"spec\.test\.enable: must be true or false",
    "releasename-invalid.yaml": r"spec\.releaseName: .* is not a valid Helm release name",
    "dependson-wrong.yaml": r"spec\.dependsOn\[0\]: must be an object",
    "maxhistory-negative.yaml": r"spec\.maxHistory: must be at least 0",
    "spec-a-string.yaml": r"spec: must be an object",
    "unknown-fields.yaml": r"\.spec\.(replicaCount|valuesFile|chart2): field not declared in schema",
    # generated
    "huge-values.yaml": r"huge-values\.yaml:1: .*(larger than|too large)",
}
VALUES = {  # each file is read through a ConfigMap, a Secret and a URL
    "invalid-yaml.yaml": r"line \d+",
    "a-list.yaml": r"(mapping|object)",
    "a-scalar.yaml": r"(mapping|object)",
    "alias-bomb.yaml": r"(alias|too many|values)",
}
GENERATED_VALUES = {  # (only through a Secret and a URL: a ConfigMap holds text)
    "binary": r"(UTF-8|control|character|binary|mapping|object)",
    "deep": r"(deep|nest)",
}
CHART_ARCHIVES = {
    "truncated": r"chart archive .*truncated|not a valid gzip",
    "not-gzip": r"chart archive .*not a valid gzip",
    "dot-dot-path": r"chart archive .*\.\.",
    "symlink-out": r"chart archive .*(link|outside|leaves)",
    "huge-chart-yaml": r"chart archive .*Chart\.yaml.*larger than",
    "no-chart-yaml": r"Chart\.yaml",
}
INDEXES = {
    "truncated": r"index of .* (not valid YAML|not a Helm repository index)",
    "wrong-types": r"index of .* not a Helm repository index",
    "binary": r"index of .* (not valid YAML|not a Helm repository index)",
    "alias-bomb": r"index of .* not valid YAML.*(alias|too many|values)",
    "huge-without-the-chart": r"chart \"hello\" .*not found|no chart \"hello\"|hello.*not in",
}


def _entries() -> list[Entry]:
    out: list[Entry] = []
    for family, table in (("manifest", MANIFESTS), ("helmrelease", HELMRELEASES)):
        folder = CORPUS / f"{family}s"
        files = {p.name for p in folder.iterdir() if p.suffix == ".yaml"}
        missing = files - set(table)
        if missing:
            raise ValueError(f"chaos/corpus/{family}s: no expected error for {sorted(missing)}")
        for index, (name, expect) in enumerate(sorted(table.items())):
            out.append(Entry(family, f"{family}/{name}", expect, quick=index % 2 == 0))
    files = {p.name for p in (CORPUS / "values").iterdir() if p.suffix == ".yaml"}
    if files - set(VALUES):
        raise ValueError(f"chaos/corpus/values: no expected error for {sorted(files - set(VALUES))}")
    for index, (name, expect) in enumerate(sorted(VALUES.items())):
        for way in ("configmap", "secret", "url"):
            out.append(Entry("values", f"values/{name} via {way}", expect, quick=(index + len(way)) % 3 == 0))
    for name, expect in GENERATED_VALUES.items():
        for way in ("secret", "url"):
            out.append(Entry("values", f"values/{name} via {way}", expect, quick=way == "url"))
    for index, (name, expect) in enumerate(CHART_ARCHIVES.items()):
        out.append(Entry("chart", f"chart/{name}", expect, quick=index % 2 == 0))
    for index, (name, expect) in enumerate(INDEXES.items()):
        out.append(Entry("index", f"index/{name}", expect, quick=index % 2 == 1))
    return out


ENTRIES = _entries()
QUICK = sum(e.quick for e in ENTRIES)

# --- generated input ------------------------------------------------------------------------------


def _configmap_doc(name: str, data: dict[str, str]) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data})


def generated_manifests() -> dict[str, bytes]:
    rng = random.Random(6)  # the same garbage every run
    big = "x" * (10 * _MiB)
    return {
        "binary.yaml": bytes(rng.randrange(256) for _ in range(4096)),
        "huge-10mb.yaml": _configmap_doc("corpus-huge", {"big": big}).encode(),
        "deep-flow.yaml": (
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: corpus-deep-flow\ndata:\n  x: "
            + "{a: " * 10_000
            + "1"
            + "}" * 10_000
            + "\n"
        ).encode(),
        "deep-block.yaml": (
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: corpus-deep-block\nlist:\n"
            + "- " * 10_000
            + "x\n"
        ).encode(),
    }


def generated_helmreleases(chart: dict[str, str]) -> dict[str, bytes]:
    values = {f"key{i}": "v" * 1000 for i in range(2048)}  # 2 MB: more than Kubernetes stores
    body = {
        "apiVersion": "helm.fluxcd.io/v1",
        "kind": "HelmRelease",
        "metadata": {"name": "corpus-huge-values"},
        "spec": {"chart": chart, "values": values},
    }
    return {"huge-values.yaml": json.dumps(body).encode()}


def generated_values() -> dict[str, bytes]:
    rng = random.Random(66)
    return {
        "binary": bytes(rng.randrange(256) for _ in range(2048)),
        "deep": ("x: " + "[" * 10_000 + "]" * 10_000 + "\n").encode(),
    }


def _member(tar: tarfile.TarFile, name: str, data: bytes = b"", **fields: Any) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    for key, value in fields.items():
        setattr(info, key, value)
    tar.addfile(info, io.BytesIO(data))


def _tgz(members: Callable[[tarfile.TarFile], None]) -> bytes:
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as gz, tarfile.open(fileobj=gz, mode="w") as tar:
        members(tar)
    return out.getvalue()


def _hello_files() -> dict[str, bytes]:
    root = CHARTS / "hello"
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def good_chart() -> bytes:
    def members(tar: tarfile.TarFile) -> None:
        for rel, data in _hello_files().items():
            _member(tar, f"hello/{rel}", data)

    return _tgz(members)


def generated_charts() -> dict[str, bytes]:
    files = _hello_files()

    def with_extra(
        extra: Callable[[tarfile.TarFile], None], skip: str = "", replace: dict[str, bytes] | None = None
    ) -> bytes:
        def members(tar: tarfile.TarFile) -> None:
            for rel, data in files.items():
                if rel != skip:
                    _member(tar, f"hello/{rel}", (replace or {}).get(rel, data))
            extra(tar)

        return _tgz(members)

    def nothing(_: tarfile.TarFile) -> None:
        pass

    good = good_chart()
    huge_chart_yaml = files["Chart.yaml"] + b"# padding\n" * (6 * _MiB // 10)
    return {
        "truncated": good[: len(good) // 2],
        "not-gzip": bytes(random.Random(7).randrange(256) for _ in range(3000)),
        "dot-dot-path": with_extra(lambda tar: _member(tar, "hello/../../escaped.yaml", b"a: 1\n")),
        "symlink-out": with_extra(
            lambda tar: _member(
                tar, "hello/templates/passwd.yaml", type=tarfile.SYMTYPE, linkname="../../../etc/passwd"
            )
        ),
        "huge-chart-yaml": with_extra(nothing, replace={"Chart.yaml": huge_chart_yaml}),
        "no-chart-yaml": with_extra(nothing, skip="Chart.yaml"),
    }


def index_for(archive: bytes, url: str = "hello-0.1.0.tgz") -> dict[str, Any]:
    digest = hashlib.sha256(archive).hexdigest()
    entry = {"name": "hello", "version": "0.1.0", "urls": [url], "digest": digest}
    return {"apiVersion": "v1", "entries": {"hello": [entry]}}


def generated_indexes() -> dict[str, bytes]:
    good = json.dumps(index_for(good_chart())).encode()
    bomb = "a: &a [x,x,x,x,x,x,x,x,x,x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 10) + "]\n" for i in range(8)
    )
    other = {f"c{i}": [{"name": f"c{i}", "version": "1.0.0", "urls": [f"c{i}.tgz"]}] for i in range(60_000)}
    return {
        "truncated": good[: len(good) // 2],
        "wrong-types": json.dumps({"apiVersion": "v1", "entries": [{"hello": "0.1.0"}]}).encode(),
        "binary": bytes(random.Random(8).randrange(256) for _ in range(3000)),
        "alias-bomb": (bomb + "entries: *i\n").encode(),
        "huge-without-the-chart": json.dumps({"apiVersion": "v1", "entries": other}).encode(),
    }


# --- the run ------------------------------------------------------------------------------------------


class CorpusServer:
    """Chart repositories and values files on 127.0.0.1: ``/chart/<case>/``, ``/index/<case>/``,
    ``/values/<name>``."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.server = LocalServer(self.handle)

    def handle(self, request: Seen) -> Reply:
        body = self.files.get(request.path.split("?", 1)[0])
        return (200, {}, body) if body is not None else (404, {}, b"not found\n")

    @property
    def url(self) -> str:
        return self.server.url


def _hr(name: str, chart: dict[str, str], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "helm.fluxcd.io/v1",
        "kind": "HelmRelease",
        "metadata": {"name": name},
        "spec": {"releaseName": name, "chart": chart, **spec},
    }


@dataclass
class Placed:
    """Where one entry went: the file in Git, or the HelmRelease to read."""

    entry: Entry
    path: str = ""
    release: str = ""


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40]


def build_tree(
    entries: list[Entry], env: Env, server: CorpusServer, repo_chart: dict[str, str]
) -> tuple[dict[str, bytes], list[Placed]]:
    """The files of the malformed commit (besides the working ones), and where each entry is."""
    files: dict[str, bytes] = {}
    placed: list[Placed] = []
    manifests = generated_manifests()
    helmreleases = generated_helmreleases(repo_chart)
    values_generated = generated_values()
    charts = generated_charts()
    indexes = generated_indexes()
    for entry in entries:
        family, _, what = entry.name.partition("/")
        if family == "manifest":
            path = f"corpus/manifests/{what}"
            files[path] = manifests.get(what) or (CORPUS / "manifests" / what).read_bytes()
            placed.append(Placed(entry, path=path))
        elif family == "helmrelease":
            path = f"corpus/helmreleases/{what}"
            text = helmreleases.get(what) or (CORPUS / "helmreleases" / what).read_bytes()
            files[path] = text.replace(b"${CHARTS}", env["TESTENV_CHARTS"].encode())
            placed.append(Placed(entry, path=path))
        elif family == "values":
            file, _, way = what.partition(" via ")
            content = values_generated.get(file) or (CORPUS / "values" / file).read_bytes()
            name = f"corpus-v-{_slug(file.removesuffix('.yaml'))}-{way}"
            if way == "configmap":
                holder = _configmap_doc(name, {"values.yaml": content.decode()})
                source: dict[str, Any] = {"configMapKeyRef": {"name": name, "key": "values.yaml"}}
            elif way == "secret":
                data = {"values.yaml": base64.b64encode(content).decode()}
                secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "data": data}
                holder = json.dumps(secret)
                source = {"secretKeyRef": {"name": name, "key": "values.yaml"}}
            else:
                server.files[f"/values/{name}.yaml"] = content
                holder = ""
                source = {"externalSourceRef": {"url": f"{server.url}/values/{name}.yaml"}}
            release = _hr(name, repo_chart, valuesFrom=[source])
            files[f"corpus/values/{name}.yaml"] = (holder + "\n---\n" + json.dumps(release) + "\n").encode()
            placed.append(Placed(entry, release=name))
        else:  # chart, index
            name = f"corpus-{family}-{_slug(what)}"
            base = f"/{family}/{what}"
            if family == "chart":
                server.files[f"{base}/hello-0.1.0.tgz"] = charts[what]
                server.files[f"{base}/index.yaml"] = json.dumps(index_for(charts[what])).encode()
            else:
                server.files[f"{base}/index.yaml"] = indexes[what]
                server.files[f"{base}/hello-0.1.0.tgz"] = good_chart()
            chart = {"repository": f"{server.url}{base}", "name": "hello", "version": "0.1.0"}
            files[f"corpus/{family}/{name}.yaml"] = (json.dumps(_hr(name, chart)) + "\n").encode()
            placed.append(Placed(entry, release=name))
    return files, placed


def working_tree(env: Env) -> dict[str, str]:
    chart = {"repository": env["TESTENV_CHARTS"], "name": "hello", "version": "0.1.0"}
    return {
        "working/settings.yaml": _configmap_doc("keep-settings", {"greeting": "still here"}) + "\n",
        "working/web.yaml": json.dumps(_hr("keep-web", chart, values={"message": "working"})) + "\n",
    }


def _conditions(env: Env, namespace: str, name: str) -> dict[str, dict[str, Any]]:
    status = (get_object(env, "helmrelease", namespace, name) or {}).get("status") or {}
    return {c.get("type", ""): c for c in status.get("conditions") or []}


def _helm_revision(env: Env, namespace: str, release: str) -> tuple[int, str] | None:
    out = env.run([env["HELM_BIN"], "history", release, "-n", namespace, "-o", "json"], check=False)
    if out.returncode != 0:
        return None
    latest = json.loads(out.stdout)[-1]
    return int(latest["revision"]), str(latest["status"])


def _working_objects_hold(env: Env, namespace: str, revision: tuple[int, str] | None) -> str:
    """What is wrong with the working objects, or '' when they are as they were."""
    settings = get_object(env, "configmap", namespace, "keep-settings")
    if settings is None or settings.get("data") != {"greeting": "still here"}:
        return f"ConfigMap keep-settings lost or changed: {settings and settings.get('data')}"
    if get_object(env, "helmrelease", namespace, "keep-web") is None:
        return "HelmRelease keep-web deleted"
    now = _helm_revision(env, namespace, "keep-web")
    if now != revision:
        return f"release keep-web was {revision}, now {now}"
    ready = _conditions(env, namespace, "keep-web").get("Ready", {})
    if ready.get("status") != "True":
        return f"HelmRelease keep-web not Ready: {ready}"
    return ""


def _judge(env: Env, namespace: str, sync_errors: list[str], placed: Placed) -> Trial:
    expect = re.compile(placed.entry.expect, re.IGNORECASE | re.DOTALL)
    if placed.path:
        mine = [e for e in sync_errors if e.startswith(placed.path)]
        if not mine:
            return Trial(placed.entry.name, "violated", f"no sync error names {placed.path}")
        if not any(expect.search(e) for e in mine):
            detail = f"error does not say /{placed.entry.expect}/: {mine[0][:300]}"
            return Trial(placed.entry.name, "violated", detail)
        return Trial(placed.entry.name, "survived", mine[0][:160])

    def failed() -> str | None:
        ready = _conditions(env, namespace, placed.release).get("Ready", {})
        if ready.get("status") == "False" and expect.search(str(ready.get("message", ""))):
            return str(ready["message"])
        return None

    try:
        message = wait_for(f"{placed.release} Ready=False saying /{placed.entry.expect}/", failed, timeout=90)
    except AssertionError as exc:
        conditions = _conditions(env, namespace, placed.release)
        shown = {k: (c.get("status"), c.get("message", "")[:300]) for k, c in conditions.items()}
        return Trial(placed.entry.name, "violated", f"{str(exc)[:120]}; conditions: {shown}")
    if release_exists(env, namespace, placed.release):
        detail = f"a release {placed.release} was installed: {message[:200]}"
        return Trial(placed.entry.name, "violated", detail)
    return Trial(placed.entry.name, "survived", message[:160])


@experiment(
    6,
    "malformed",
    "Malformed input corpus",
    injects="malformed manifests, HelmRelease specs, values, chart archives and indexes",
    quick=QUICK,
    full=len(ENTRIES),
    budget_seconds=600,
)
def malformed(ctx: Context, count: int) -> Iterator[Trial]:
    env = ctx.env
    entries = [e for e in ENTRIES if e.quick] if ctx.quick else list(ENTRIES)
    entries = entries[:count]
    work = ctx.scratch("malformed")
    server = CorpusServer()
    agent: AgentProcess | None = None
    with ctx.namespace("malformed") as namespace:
        try:
            url = f"{env['TESTENV_GIT_HTTP']}/{unique_name('chaos-malformed')}.git"
            repo = ConfigRepo(work / "repo", url)
            good = working_tree(env)
            first = repo.replace(good, "working objects")
            agent = start_agent(
                env, work / "agent", namespace, url,
                "--log-level", "debug", "--sync-garbage-collection", "--allow-internal-urls",
            )  # fmt: skip
            synced_revision(env, namespace, agent.sync_name, first, timeout=90)
            wait_for(
                "keep-web Ready",
                lambda: _conditions(env, namespace, "keep-web").get("Ready", {}).get("status") == "True",
                timeout=120,
            )
            revision = _helm_revision(env, namespace, "keep-web")
            repo_chart = {"repository": env["TESTENV_CHARTS"], "name": "hello", "version": "0.1.0"}
            files, placed = build_tree(entries, env, server, repo_chart)
            for path, content in files.items():
                target = repo.path / path
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(content)
            started = time.monotonic()
            bad = repo.commit({}, "the malformed corpus")  # (commit adds every file written above)
            state = synced_revision(env, namespace, agent.sync_name, bad, timeout=180)
            errors = [str(e) for e in json.loads(state.get("errors") or "[]")]
            took = time.monotonic() - started
            ctx.log(f"  [malformed] synced the corpus commit in {took:.0f}s, {len(errors)} errors")
            for item in placed:
                yield _judge(env, namespace, errors, item)

            alive = agent.proc.poll() is None
            log = agent.log()
            tracebacks = log.count("Traceback (most recent call last)")
            detail = f"alive={alive}, tracebacks={tracebacks}"
            if tracebacks:
                detail += f": {log[log.find('Traceback') :][:400]}"
            outcome: Outcome = "survived" if alive and not tracebacks else "violated"
            yield Trial("agent alive, no traceback in its log", outcome, detail, injected=len(placed))
            broken = _working_objects_hold(env, namespace, revision)
            outcome = "lost" if broken else "survived"
            yield Trial("working objects kept through the malformed commit", outcome, broken)

            clean = repo.replace(good, "the corpus removed")
            collected = synced_revision(env, namespace, agent.sync_name, clean, timeout=120)
            wait_for(
                "garbage collection of the corpus objects",
                lambda: not _corpus_objects(env, namespace),
                timeout=120,
            )
            broken = _working_objects_hold(env, namespace, revision)
            deleted = json.loads(collected.get("deleted") or "[]")
            wrong = [d for d in deleted if "keep-" in d]
            yield Trial(
                "working objects kept when garbage collection runs",
                "lost" if broken or wrong else "survived",
                broken or (f"deleted {wrong}" if wrong else f"collected {len(deleted)} corpus objects"),
            )
        finally:
            if agent is not None:
                agent.stop()
            server.server.close()
            for release in _releases(env, namespace):
                env.run([env["HELM_BIN"], "uninstall", release, "-n", namespace, "--wait=false"], check=False)
            unblock_namespace(env, namespace)


def _corpus_objects(env: Env, namespace: str) -> list[str]:
    out = env.kubectl("get", "helmreleases,configmaps,secrets", "-n", namespace, "-o", "name", check=False)
    return [line for line in out.split() if "corpus-" in line]


def _releases(env: Env, namespace: str) -> list[str]:
    out = env.run([env["HELM_BIN"], "list", "-q", "-a", "-n", namespace], check=False)
    return out.stdout.split()
