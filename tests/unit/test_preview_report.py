"""``gitops-helm plan``'s pure parts: the summary, the three formats, the exit status, redaction
of Secret-derived strings and Secrets' data, and the explanation of a digest that moved."""

from __future__ import annotations

import json
import string
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from gitops_helm.preview import report as rp
from gitops_helm.preview.objects import REDACTED, REDACTED_CHANGED, Redactor, leaf_strings, unified_diff


def _release(name: str = "apps/web", action: str = rp.UPGRADE, **kw: Any) -> rp.ReleasePlan:
    return rp.ReleasePlan(name, name, action, **kw)


def _report(*releases: rp.ReleasePlan, manifests: tuple[rp.ManifestChange, ...] = ()) -> rp.PlanReport:
    return rp.PlanReport(
        "https://git.example/config.git next", "0123456789abcdef", list(releases), list(manifests)
    )


CHANGED_CM = rp.ObjectChange("ConfigMap/apps/web-config", rp.CHANGE, "-  message: one\n+  message: two\n")


def test_summary_rows_give_action_version_move_and_object_counts() -> None:
    report = _report(
        _release(
            chart="hello",
            version_from="0.1.0",
            version_to="0.2.0",
            objects=(CHANGED_CM, rp.ObjectChange("Service/apps/web", rp.DELETE, "")),
        ),
        _release("apps/new", rp.INSTALL, chart="hello", version_to="0.1.0"),
        _release("apps/old", rp.UNINSTALL, chart="hello", version_from="0.1.0"),
        _release("apps/same", rp.NO_CHANGE, chart="hello", version_from="0.1.0", version_to="0.1.0"),
    )
    assert rp.summary_rows(report) == [
        ("apps/web", "upgrade", "hello", "0.1.0 -> 0.2.0", "0", "1", "1"),
        ("apps/new", "install", "hello", "(none) -> 0.1.0", "0", "0", "0"),
        ("apps/old", "uninstall", "hello", "0.1.0 -> (none)", "0", "0", "0"),
        ("apps/same", "no change", "hello", "0.1.0", "0", "0", "0"),
    ]


def test_exit_status_no_change_changes_and_errors() -> None:
    same = _release(action=rp.NO_CHANGE)
    assert _report(same, manifests=(rp.ManifestChange("unchanged", "ConfigMap apps/x"),)).exit_code() == 0
    assert _report(same, manifests=(rp.ManifestChange("update", "ConfigMap apps/x"),)).exit_code() == 1
    assert _report(_release(action=rp.INSTALL)).exit_code() == 1
    # drift of an unchanged release is a change to show
    assert _report(_release(action=rp.NO_CHANGE, objects=(CHANGED_CM,))).exit_code() == 1
    assert _report(_release(action=rp.ERROR, error="chart: not found")).exit_code() == 2
    errored = _report(_release(action=rp.INSTALL))
    errored.errors.append("app/x.yaml:3: not YAML")
    assert errored.exit_code() == 2


def test_text_has_the_table_then_each_release_with_inputs_and_diffs() -> None:
    report = _report(
        _release(
            chart="hello",
            version_from="0.1.0",
            version_to="0.1.0",
            planned_digest="h1-new",
            live_digest="h1-old",
            objects=(CHANGED_CM,),
            inputs=(rp.Input("ConfigMap", "apps/values", "sha256:aaaa"),),
        ),
        manifests=(rp.ManifestChange("create", "ConfigMap apps/values", "app/values.yaml:1"),),
    )
    out = rp.text(report)
    lines = out.splitlines()
    assert lines[0] == "# plan of https://git.example/config.git next at 0123456789ab"
    assert lines[2].split() == ["RELEASE", "ACTION", "CHART", "VERSION", "CREATED", "CHANGED", "DELETED"]
    assert lines[3].split() == ["apps/web", "upgrade", "hello", "0.1.0", "0", "1", "0"]
    assert "manifests: 1 to create, 0 to update, 0 to delete, 0 unchanged" in lines
    assert "  digest: h1-old -> h1-new" in lines
    assert "    ConfigMap apps/values: sha256:aaaa" in lines
    assert "  change ConfigMap/apps/web-config" in lines
    assert "    +  message: two" in lines


def test_markdown_is_a_table_and_fenced_diffs_that_survive_backticks_and_pipes() -> None:
    tricky = rp.ObjectChange("ConfigMap/apps/web-config", rp.CHANGE, "+  script: |\n```\n+  a|b\n")
    out = rp.markdown(_report(_release("apps/w|eb", chart="hello", version_to="0.1.0", objects=(tricky,))))
    assert "| Release | Action | Chart | Version | Created | Changed | Deleted |" in out
    assert "| apps/w\\|eb | upgrade | hello | (none) -> 0.1.0 | 0 | 1 | 0 |" in out
    assert "````diff\n+  script: |\n```\n+  a|b\n````" in out  # a longer fence than the diff's
    assert "<details>" in out and "</details>" in out


def test_json_document_round_trips_and_carries_digests_and_inputs() -> None:
    release = _release(
        planned_digest="h1-new",
        live_digest="h1-old",
        objects=(CHANGED_CM,),
        inputs=(rp.Input("Secret", "apps/creds", "h1-abcd"),),
        manifest_change="update",
    )
    doc = json.loads(json.dumps(rp.document(_report(release))))
    (entry,) = doc["releases"]
    assert entry["plannedDigest"] == "h1-new" and entry["liveDigest"] == "h1-old"
    assert entry["objects"] == {"created": 0, "changed": 1, "deleted": 0}
    assert entry["inputs"] == [{"kind": "Secret", "name": "apps/creds", "fingerprint": "h1-abcd"}]
    assert entry["helmReleaseChange"] == "update"
    assert doc["exitCode"] == 1


def test_a_moved_digest_is_explained_by_the_inputs_that_changed() -> None:
    before = _release(
        planned_digest="h1-a",
        inputs=(
            rp.Input("chart", "repo hello", "hello 0.1.0"),
            rp.Input("ConfigMap", "apps/values", "sha256:1111"),
            rp.Input("URL", "https://values.example/v.yaml", "sha256:3333"),
        ),
    )
    saved = rp.document(_report(before))
    after = _release(
        planned_digest="h1-b",
        inputs=(
            rp.Input("chart", "repo hello", "hello 0.1.0"),
            rp.Input("ConfigMap", "apps/values", "sha256:2222"),
            rp.Input("Secret", "apps/creds", "h1-x"),
        ),
    )
    (line,) = rp.explain_against(_report(after), saved)
    assert line == (
        "apps/web: planned digest h1-a -> h1-b: ConfigMap apps/values: sha256:1111 -> sha256:2222; "
        "Secret apps/creds: newly read (h1-x); URL https://values.example/v.yaml: no longer read"
    )
    # the same digest: nothing to explain
    assert rp.explain_against(_report(before), saved) == []
    # the same inputs, another digest: the HelmRelease itself changed
    moved = _release(planned_digest="h1-c", inputs=before.inputs)
    assert rp.explain_against(_report(moved), saved) == [
        "apps/web: planned digest h1-a -> h1-c: no input changed (the HelmRelease spec did)"
    ]


def test_a_saved_plan_with_malformed_inputs_is_read_without_failing() -> None:
    saved = {"releases": [{"helmRelease": "apps/web", "plannedDigest": "h1-a", "inputs": [1, {"kind": 2}]}]}
    lines = rp.explain_against(_report(_release(planned_digest="h1-b")), saved)
    assert lines == ["apps/web: planned digest h1-a -> h1-b: no input changed (the HelmRelease spec did)"]


# -- redaction -------------------------------------------------------------------------------


def _configmap(message: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": "n"},
        "data": {"m": message},
    }


def test_secret_derived_strings_are_redacted_in_diffs_also_base64_encoded() -> None:
    redactor = Redactor()
    redactor.add(leaf_strings({"db": {"password": "hunter2-long"}, "port": 5432, "on": True}))
    live = _configmap("old")
    planned = _configmap("url=postgres://u:hunter2-long@db")
    planned["data"]["b64"] = "aHVudGVyMi1sb25n"  # base64 of the password, as b64enc writes it
    diff = unified_diff("ConfigMap/n/c", live, planned, redactor)
    assert "hunter2-long" not in diff and "aHVudGVyMi1sb25n" not in diff
    assert f"+  m: url=postgres://u:{REDACTED}@db" in diff
    assert f"+  b64: {REDACTED}" in diff


def test_a_secrets_data_is_never_shown_only_whether_each_key_changes() -> None:
    def secret(**data: str) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "s", "namespace": "n"},
            "data": data,
        }

    diff = unified_diff(
        "Secret/n/s", secret(a="YQ==", b="Yg=="), secret(a="YQ==", b="Yw==", c="ZA=="), Redactor()
    )
    assert "YQ==" not in diff and "Yg==" not in diff and "Yw==" not in diff and "ZA==" not in diff
    assert f"-  b: {REDACTED}" in diff and f"+  b: {REDACTED_CHANGED}" in diff
    assert f"+  c: {REDACTED_CHANGED}" in diff
    assert f"  a: {REDACTED}" in diff  # unchanged key: context, no change mark


def test_a_created_and_a_deleted_object_diff_against_nothing() -> None:
    created = unified_diff("ConfigMap/n/c", None, _configmap("x"), Redactor())
    assert created.startswith("--- /dev/null\n+++ planned/ConfigMap/n/c\n")
    deleted = unified_diff("ConfigMap/n/c", _configmap("x"), None, Redactor())
    assert deleted.startswith("--- live/ConfigMap/n/c\n+++ /dev/null\n")
    assert "status" not in unified_diff(
        "ConfigMap/n/c", None, {**_configmap("x"), "status": {"a": 1}}, Redactor()
    )


SECRETISH = st.text(alphabet=string.ascii_letters + string.digits + "-_.:/@", min_size=4, max_size=24)


@given(secret=SECRETISH, prefix=st.text(max_size=10), suffix=st.text(max_size=10))
def test_property_no_secret_leaf_survives_redaction(secret: str, prefix: str, suffix: str) -> None:
    redactor = Redactor()
    redactor.add(leaf_strings({"nested": [{"value": secret}]}))
    shown = redactor.data({"k": [f"{prefix}{secret}{suffix}"], f"key-{secret}": 1})
    texts = [*shown, *shown["k"]]
    # the mark itself may spell a short secret ("dact"): look outside it
    assert not any(secret in text.replace(REDACTED, "\0") for text in texts), shown


# -- the command line ------------------------------------------------------------------------


def test_plan_needs_a_directory_or_a_ref_and_says_so(capsys: Any) -> None:
    from gitops_helm.cli import main

    assert main(["plan"]) == 2
    assert "plan: give a directory (plan DIR) or --git-url URL --ref REF" in capsys.readouterr().err
    assert main(["plan", "--ref", "main"]) == 2
    assert "plan --ref needs --git-url" in capsys.readouterr().err


def test_a_since_file_that_is_not_a_saved_plan_is_named(tmp_path: Any, capsys: Any) -> None:
    from gitops_helm.cli import main

    bad = tmp_path / "plan.json"
    bad.write_text('{"not": "a plan"}')
    assert main(["plan", str(tmp_path), "--since", str(bad)]) == 2
    assert f"--since {bad}: not a plan saved with -o json (no releases list)" in capsys.readouterr().err


# -- review-14: the live side is redacted too, JSON-escaped secrets, HelmRelease-only changes ----


def test_a_change_of_the_helmrelease_object_alone_is_a_change() -> None:
    # suspend: true or a new timeout moves no digest, yet the sync writes the object
    suspended = _release(action=rp.NO_CHANGE, manifest_change="update")
    assert _report(suspended).exit_code() == 1
    assert _report(_release(action=rp.NO_CHANGE, manifest_change="")).exit_code() == 0


def test_a_secret_inside_a_json_document_is_redacted_as_go_escapes_it() -> None:
    redactor = Redactor()
    redactor.add(['p&ss"w<rd'])
    # {{ .Values | toJson }}: Go writes & < > as \u0026 \u003c \u003e, and escapes the quote
    shown = redactor.text('{"password":"p\\u0026ss\\"w\\u003crd"}')
    assert shown == f'{{"password":"{REDACTED}"}}', shown


class _FakeKube:
    """What ``Planner.removed`` reads: a live HelmRelease reading a Secret, its release."""

    def __init__(self, secret: dict[str, bytes]) -> None:
        self.secret = secret
        self.manifest = (
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web-config\n"
            "data:\n  url: postgres://app:hunter2-long@db\n"
        )

    def get_helmrelease(self, namespace: str, name: str) -> dict[str, Any]:
        return {
            "apiVersion": "helm.fluxcd.io/v1",
            "kind": "HelmRelease",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "chart": {"repository": "https://charts.example/", "name": "web", "version": "1.0.0"},
                "valuesFrom": [{"secretKeyRef": {"name": "db", "key": "values.yaml"}}],
            },
        }

    def get_secret_data(self, namespace: str, name: str) -> dict[str, bytes] | None:
        return self.secret if (namespace, name) == ("apps", "db") else None

    def release_revisions(self, namespace: str, name: str) -> list[Any]:
        from gitops_helm.adapters.kube import StoredRelease

        return [StoredRelease(name, namespace, 1, "deployed", {}, f"sh.helm.release.v1.{name}.v1")]

    def read_release(self, stored: Any) -> dict[str, Any]:
        return {"chart": {"metadata": {"name": "web", "version": "1.0.0"}}, "manifest": self.manifest}

    def is_namespaced(self, api_version: str, kind: str) -> bool:
        return True

    def get(self, api_version: str, kind: str, namespace: str | None, name: str) -> dict[str, Any]:
        from gitops_helm.release.drift import manifest_objects

        obj = manifest_objects(self.manifest)[0]
        obj["metadata"]["namespace"] = namespace
        return obj


def test_the_objects_of_a_removed_release_hide_the_secret_values_they_were_rendered_from() -> None:
    from gitops_helm.config import Settings
    from gitops_helm.preview.planner import Planner

    kube = _FakeKube({"values.yaml": b"db:\n  password: hunter2-long\n"})
    planner = Planner(Settings(), kube, None, None, None)  # type: ignore[arg-type]
    removed = planner.removed("apps", "web")
    assert removed.action == rp.UNINSTALL, removed
    (deleted,) = removed.objects
    assert deleted.change == rp.DELETE
    assert "hunter2-long" not in deleted.diff, deleted.diff
    assert f"url: postgres://app:{REDACTED}@db" in deleted.diff, deleted.diff


def _planned_against(latest_labels: dict[str, str], recorded_revision: int) -> rp.ReleasePlan:
    """``Planner.release`` of an unchanged HelmRelease whose status records the planned digest
    and revision ``recorded_revision``; Helm storage's latest is revision 2 with ``latest_labels``."""
    from types import SimpleNamespace

    from gitops_helm.adapters.kube import StoredRelease
    from gitops_helm.api import parse_helmrelease
    from gitops_helm.config import Settings
    from gitops_helm.preview.planner import Planner
    from gitops_helm.release.desired import desired_digest

    key = b"k" * 32
    kube = _FakeKube({})
    body = kube.get_helmrelease("apps", "web")
    hr = parse_helmrelease(body)
    chart = SimpleNamespace(name="web", version="1.0.0", digest="sha256:c", revision="1.0.0")
    composed = SimpleNamespace(digest="sha256:v", skipped=())
    planned = desired_digest(hr.policy, chart.digest, composed.digest, key)
    body["status"] = {"lastAppliedDigest": planned, "lastReleaseRevision": recorded_revision}
    kube.get_helmrelease = lambda namespace, name: body  # type: ignore[method-assign]
    labels = {k: (planned if v == "PLANNED" else v) for k, v in latest_labels.items()}
    kube.release_revisions = lambda namespace, name: [  # type: ignore[method-assign]
        StoredRelease("web", "apps", 2, "deployed", labels, "sh.helm.release.v1.web.v2")
    ]
    kube.manifest = ""
    renderer = SimpleNamespace(
        chart=lambda resolver, hr, worktree: chart,
        values_reader=lambda chart: None,
        values=lambda hr, chart, reader: composed,
        template=lambda hr, chart, note, composed: "",
    )
    planner = Planner(Settings(), kube, renderer, None, key)  # type: ignore[arg-type]
    return planner.release(hr, "")


def test_a_revision_made_outside_the_agent_is_planned_as_the_upgrade_the_agent_makes() -> None:
    from gitops_helm.release.identity import DIGEST_LABEL

    in_sync = _planned_against({DIGEST_LABEL: "PLANNED"}, recorded_revision=2)
    assert in_sync.action == rp.NO_CHANGE, in_sync
    # helm upgrade or rollback by hand: revision 2 has no digest label, the status records 1
    by_hand = _planned_against({}, recorded_revision=1)
    assert by_hand.action == rp.UPGRADE, by_hand
    assert any("not made by the agent" in note for note in by_hand.notes), by_hand


def test_an_object_of_a_kind_the_chart_brings_its_crd_for_is_shown_not_an_error() -> None:
    from gitops_helm.adapters.kube import KubeError, KubeErrorKind
    from gitops_helm.config import Settings
    from gitops_helm.preview.planner import Planner

    def no_kind(*args: Any, **kwargs: Any) -> Any:
        raise KubeError(KubeErrorKind.NO_KIND, "resolve example.com/v1/Widget", "not served")

    kube = _FakeKube({})
    kube.is_namespaced = no_kind  # type: ignore[method-assign]
    kube.get = no_kind  # type: ignore[method-assign]
    kube.apply = no_kind  # type: ignore[attr-defined]
    planner = Planner(Settings(), kube, None, None, None)  # type: ignore[arg-type]
    widget = "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\nspec:\n  size: 1\n"
    notes: list[str] = []
    (change,) = planner.object_changes("", widget, "apps", Redactor(), notes)
    assert (change.object, change.change) == ("Widget/apps/w", rp.CREATE)
    assert "size: 1" in change.diff and notes, notes


def test_an_empty_configmap_read_is_listed_as_read_not_as_absent() -> None:
    from gitops_helm.preview.planner import RecordingReader

    class Inner:
        def configmap(self, namespace: str, name: str) -> dict[str, str] | None:
            return {} if name == "empty" else None

    reader = RecordingReader(Inner(), None, Redactor())  # type: ignore[arg-type]
    assert reader.configmap("n", "empty") == {}
    assert reader.configmap("n", "gone") is None
    prints = {i.name: i.fingerprint for i in reader.inputs}
    assert prints["n/gone"] == "absent"
    assert prints["n/empty"].startswith("sha256:"), prints
