"""Unit and property tests of pure sync planning (gitops_helm.sync.plan)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gitops_helm.sync.discover import discover
from gitops_helm.sync.model import Discovery, Manifest, ObjectKey, Origin
from gitops_helm.sync.plan import (
    CHECKSUM_ANNOTATION,
    SOURCE_LABEL,
    ApplyPhase,
    Ownership,
    SourceIdentity,
    apply_order,
    apply_phase,
    canonical_json,
    checksum,
    decide_ownership,
    delete_order,
    diff_plan,
    dump_inventory,
    ignored_in_cluster,
    in_mode,
    is_valid_label_value,
    live_checksum,
    load_identity,
    load_inventory,
    may_delete,
    next_inventory,
    owned_by_source,
    plan_gc,
    prepare_for_apply,
    source_id,
)

REPO = Path(__file__).parent / "data" / "manifests" / "repo"
SOURCE = source_id("flux-system/main")


def manifest(key: ObjectKey, body: dict[str, Any] | None = None) -> Manifest:
    api_version = f"{key.group}/v1" if key.group else "v1"
    metadata = {"name": key.name, **({"namespace": key.namespace} if key.namespace else {})}
    body = body or {"apiVersion": api_version, "kind": key.kind, "metadata": metadata}
    return Manifest(key, api_version, body, Origin("x.yaml", 1))


def live(labels: dict[str, Any] | None = None, annotations: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"metadata": {"labels": labels or {}, "annotations": annotations or {}}}


# --- strategies --------------------------------------------------------------------------------

_KINDS = [
    ("apiextensions.k8s.io", "CustomResourceDefinition"),
    ("", "Namespace"),
    ("", "ConfigMap"),
    ("", "Secret"),
    ("rbac.authorization.k8s.io", "Role"),
    ("rbac.authorization.k8s.io", "RoleBinding"),
    ("apps", "Deployment"),
    ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"),
    ("helm.fluxcd.io", "HelmRelease"),
    ("example.com", "Widget"),
]
keys = st.builds(
    lambda gk, ns, name: ObjectKey(gk[0], gk[1], ns, name),
    st.sampled_from(_KINDS),
    st.sampled_from(["", "default", "apps"]),
    st.sampled_from(["a", "b", "c"]),
)
key_sets = st.frozensets(keys, max_size=12)
any_keys = st.builds(
    ObjectKey, st.text(max_size=5), st.text(max_size=8), st.text(max_size=5), st.text(max_size=8)
)


# --- source id ---------------------------------------------------------------------------------


def test_source_id_is_readable_short_and_stable() -> None:
    assert source_id("flux-system/main") == "flux-system-main-" + source_id("flux-system/main")[-10:]
    assert source_id("flux-system/main") == SOURCE
    assert source_id("a/b") != source_id("a-b")
    assert source_id("") == source_id("")
    assert len(source_id("///")) == 10
    assert len(source_id("x" * 500)) == 51


@given(st.text())
def test_source_id_is_always_a_valid_label_value(name: str) -> None:
    value = source_id(name)
    assert is_valid_label_value(value)
    assert value == source_id(name)


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("", True),
        ("a", True),
        ("a-b.c_d", True),
        ("-a", False),
        ("a-", False),
        ("a/b", False),
        ("a" * 64, False),
    ],
)
def test_label_values(value: str, valid: bool) -> None:
    assert is_valid_label_value(value) is valid


# --- checksums and marks -----------------------------------------------------------------------


def test_canonical_json_and_checksum() -> None:
    body = {"b": [1, {"y": "é", "x": None}], "a": True}
    assert canonical_json(body) == '{"a":true,"b":[1,{"x":null,"y":"é"}]}'.encode()
    assert checksum(body) == checksum({"a": True, "b": [1, {"x": None, "y": "é"}]})
    assert checksum(body) != checksum({**body, "a": False})
    assert len(checksum(body)) == 64


@given(st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=8))
def test_checksum_ignores_key_order(body: dict[str, Any]) -> None:
    assert checksum(dict(reversed(list(body.items())))) == checksum(body)


def test_prepare_for_apply_adds_marks_without_touching_the_manifest() -> None:
    web = next(m for m in discover(REPO).objects if m.key.kind == "Deployment")
    before = json.dumps(web.body, sort_keys=True)

    body = prepare_for_apply(web, SOURCE)

    assert json.dumps(web.body, sort_keys=True) == before
    assert body["metadata"]["labels"] == {SOURCE_LABEL: SOURCE}
    assert body["metadata"]["annotations"] == {CHECKSUM_ANNOTATION: checksum(web.body)}
    assert body["spec"] == web.body["spec"]


def test_prepare_for_apply_overrides_copied_marks_and_keeps_others() -> None:
    key = ObjectKey("", "ConfigMap", "", "a")
    metadata = {
        "name": "a",
        "labels": {"app": "a", SOURCE_LABEL: "someone-else"},
        "annotations": {CHECKSUM_ANNOTATION: "stale", "note": "kept"},
    }
    m = manifest(key, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata})
    body = prepare_for_apply(m, SOURCE)
    assert body["metadata"]["labels"] == {"app": "a", SOURCE_LABEL: SOURCE}
    assert body["metadata"]["annotations"] == {CHECKSUM_ANNOTATION: checksum(m.body), "note": "kept"}
    with pytest.raises(ValueError, match="not a valid label value"):
        prepare_for_apply(m, "flux-system/main")


def test_ownership_and_ignore_predicates() -> None:
    ours = live({SOURCE_LABEL: SOURCE})
    assert owned_by_source(ours["metadata"], SOURCE)
    assert may_delete(ours["metadata"], SOURCE)
    assert not owned_by_source(ours["metadata"], "other")
    for metadata in (None, "junk", {}, {"labels": None}, {"labels": ["x"]}, live({"app": "x"})["metadata"]):
        assert not owned_by_source(metadata, SOURCE)
        assert not may_delete(metadata, SOURCE)
    sync_only = live({SOURCE_LABEL: SOURCE}, {"fluxcd.io/ignore": "sync_only"})["metadata"]
    ignored = live({SOURCE_LABEL: SOURCE}, {"fluxcd.io/ignore": "true"})["metadata"]
    assert owned_by_source(sync_only, SOURCE)
    assert not may_delete(sync_only, SOURCE)
    assert not may_delete(ignored, SOURCE)
    assert ignored_in_cluster(ignored)
    assert not ignored_in_cluster(sync_only)
    assert live_checksum(live(annotations={CHECKSUM_ANNOTATION: "abc"})["metadata"]) == "abc"
    assert live_checksum(live(annotations={CHECKSUM_ANNOTATION: 3})["metadata"]) is None
    assert live_checksum(None) is None


# --- order -------------------------------------------------------------------------------------


def test_apply_order_of_the_fixture_checkout() -> None:
    ordered = [str(m.key) for m in apply_order(discover(REPO).objects)]
    assert ordered == [
        "CustomResourceDefinition.apiextensions.k8s.io widgets.example.com",
        "Namespace apps",
        "Namespace monitoring",
        "ConfigMap apps/keep-me",
        "ConfigMap apps/tcp-services",
        "Secret apps/web-token",
        "ServiceAccount apps/web",
        "ClusterRole.rbac.authorization.k8s.io widget-reader",
        "Role.rbac.authorization.k8s.io apps/web",
        "RoleBinding.rbac.authorization.k8s.io apps/web",
        "Service apps/web",
        "Deployment.apps apps/web",
        "Widget.example.com sprocket",
        "HelmRelease.helm.fluxcd.io apps/podinfo",
        "HelmRelease.helm.toolkit.fluxcd.io apps/podinfo-v2",
    ]


@given(key_sets)
def test_delete_order_is_the_reverse_of_apply_order(key_set: frozenset[ObjectKey]) -> None:
    applied = [m.key for m in apply_order(manifest(k) for k in key_set)]
    deleted = delete_order(key_set)
    assert deleted == applied[::-1]
    phases = [apply_phase(k) for k in applied]
    assert phases == sorted(phases)
    if deleted:
        assert apply_phase(deleted[0]) == max(phases)


def test_phases() -> None:
    assert (
        apply_phase(ObjectKey("apiextensions.k8s.io", "CustomResourceDefinition", "", "x")) is ApplyPhase.CRDS
    )
    assert apply_phase(ObjectKey("", "Namespace", "", "x")) is ApplyPhase.NAMESPACES
    assert apply_phase(ObjectKey("example.com", "Namespace", "", "x")) is ApplyPhase.OTHER
    assert apply_phase(ObjectKey("helm.fluxcd.io", "HelmRelease", "a", "x")) is ApplyPhase.HELMRELEASES
    assert max(ApplyPhase) is ApplyPhase.HELMRELEASES


# --- inventory ---------------------------------------------------------------------------------


def test_inventory_format() -> None:
    text = dump_inventory(
        [ObjectKey("apps", "Deployment", "apps", "web"), ObjectKey("", "Namespace", "", "apps")]
    )
    assert text == '{"version":1,"objects":[["","Namespace","","apps"],["apps","Deployment","apps","web"]]}'


@given(st.lists(any_keys, max_size=20))
def test_inventory_round_trips(key_list: list[ObjectKey]) -> None:
    valid = [k for k in key_list if k.kind and k.name]
    assert load_inventory(dump_inventory(valid)) == frozenset(valid)


@pytest.mark.parametrize(
    "text",
    [
        None,
        "",
        "not json",
        "[]",
        '{"version":2,"objects":[]}',
        '{"version":true,"objects":[]}',
        '{"version":1}',
        '{"version":1,"objects":{}}',
        '{"version":1,"objects":[["","Namespace",""]]}',
        '{"version":1,"objects":[["","Namespace","",1]]}',
        '{"version":1,"objects":[["","","","a"]]}',
        '{"version":1,"objects":[["","Namespace","","a"],"x"]}',
    ],
)
def test_corrupt_or_missing_inventory_is_unknown(text: str | None) -> None:
    assert load_inventory(text) is None


@given(st.text(max_size=200))
def test_loading_any_text_never_raises(text: str) -> None:
    result = load_inventory(text)
    assert result is None or isinstance(result, frozenset)


def test_empty_inventory_is_known() -> None:
    assert load_inventory(dump_inventory([])) == frozenset()


def test_next_inventory() -> None:
    a, b, c = (ObjectKey("", "ConfigMap", "apps", n) for n in "abc")
    assert next_inventory({a, b}, [b, c], discovery_complete=True) == {b, c}
    assert next_inventory({a, b}, [b, c], discovery_complete=True, retain=[a]) == {a, b, c}
    assert next_inventory({a, b}, [c], discovery_complete=False) == {a, b, c}
    assert next_inventory(None, [c], discovery_complete=False) == {c}


# --- garbage collection ------------------------------------------------------------------------


def test_plan_gc_matches_keys_after_namespace_defaulting() -> None:
    written = ObjectKey("apps", "Deployment", "", "web")  # as in Git, no namespace
    stored = ObjectKey("apps", "Deployment", "prod", "web")  # as applied and stored
    gone = ObjectKey("", "ConfigMap", "prod", "old")
    cluster = ObjectKey("", "Namespace", "", "prod")
    previous = frozenset({stored, gone, cluster})
    assert plan_gc(previous, [written, cluster], True, default_namespace="prod") == [gone]
    # with another default namespace the stored Deployment is no longer declared
    assert plan_gc(previous, [written, cluster], True, default_namespace="x") == [stored, gone]
    assert plan_gc(previous, [], False, default_namespace="prod") == []
    assert plan_gc(None, [], True, default_namespace="prod") == []


def test_plan_gc_keeps_protected_keys_of_the_fixture_checkout() -> None:
    found = discover(REPO)
    legacy = ObjectKey("apps", "Deployment", "apps", "legacy")  # fluxcd.io/ignore: "true" in Git
    removed = ObjectKey("apps", "Deployment", "apps", "removed")
    previous = frozenset({legacy, removed, *(m.key for m in found.objects)})
    assert plan_gc(previous, found.declared_keys, found.complete, default_namespace="default") == [removed]


@given(key_sets, key_sets, st.booleans(), st.sampled_from(["default", "apps"]))
def test_gc_never_deletes_a_declared_key(
    previous: frozenset[ObjectKey], declared: frozenset[ObjectKey], complete: bool, default_ns: str
) -> None:
    doomed = plan_gc(previous, declared, complete, default_namespace=default_ns)
    declared_effective = {k.effective(default_ns) for k in declared}
    assert not {k.effective(default_ns) for k in doomed} & declared_effective
    assert set(doomed) <= previous
    assert len(doomed) == len(set(doomed))
    assert doomed == delete_order(doomed)
    if complete:
        # ...and forgets nothing: every undeclared previous key is a candidate
        assert {k for k in previous if k.effective(default_ns) not in declared_effective} == set(doomed)


@given(key_sets, key_sets, st.sampled_from(["default", "apps"]))
def test_gc_deletes_nothing_when_discovery_is_incomplete_or_inventory_unknown(
    previous: frozenset[ObjectKey], declared: frozenset[ObjectKey], default_ns: str
) -> None:
    assert plan_gc(previous, declared, False, default_namespace=default_ns) == []
    assert plan_gc(None, declared, True, default_namespace=default_ns) == []


_hand_made = [ObjectKey("", "ConfigMap", "apps", "by-hand"), ObjectKey("", "Secret", "apps", "other-source")]
rounds = st.lists(st.tuples(key_sets, st.booleans(), st.booleans()), min_size=1, max_size=6)


@settings(max_examples=200)
@given(rounds)
def test_simulated_syncs_never_delete_declared_or_foreign_objects_and_leak_nothing(
    sync_rounds: list[tuple[frozenset[ObjectKey], bool, bool]],
) -> None:
    """Run several syncs against a fake cluster, with failing discoveries and a lost inventory."""
    cluster: dict[ObjectKey, dict[str, Any]] = {
        _hand_made[0]: live(),
        _hand_made[1]: live({SOURCE_LABEL: "other-source"}),
    }
    stored: str | None = None
    lost_before = False
    for declared, complete, lose_inventory in sync_rounds:
        previous = None if lose_inventory else load_inventory(stored)
        lost_before = lost_before or lose_inventory
        # an incomplete discovery sees only part of what Git declares
        seen = declared if complete else frozenset(sorted(declared)[: len(declared) // 2])
        applied = {key.effective("default") for key in seen}  # the applier defaults namespaces
        for key in applied:
            cluster[key] = live({SOURCE_LABEL: SOURCE})
        for key in plan_gc(previous, seen, complete, default_namespace="default"):
            obj = cluster.get(key)
            if obj is not None and may_delete(obj["metadata"], SOURCE):
                del cluster[key]
        stored = dump_inventory(next_inventory(previous, applied, discovery_complete=complete))

        assert applied <= cluster.keys()
        assert set(_hand_made) <= cluster.keys()
        if complete and previous is not None and not lost_before:
            owned = {k for k, obj in cluster.items() if owned_by_source(obj["metadata"], SOURCE)}
            assert owned == applied  # nothing leaked, even after incomplete rounds


# --- diff --------------------------------------------------------------------------------------


def test_diff_plan_classifies_every_object() -> None:
    found = discover(REPO)
    by_name = {(m.key.kind, m.key.name): m for m in found.objects}
    unchanged = by_name[("Deployment", "web")]
    updated = by_name[("ConfigMap", "tcp-services")]
    skipped = by_name[("Service", "web")]
    owned_gone = ObjectKey("", "ConfigMap", "apps", "owned-gone")
    foreign_gone = ObjectKey("", "ConfigMap", "apps", "foreign-gone")
    kept_gone = ObjectKey("", "ConfigMap", "apps", "sync-only-gone")
    absent_gone = ObjectKey("", "ConfigMap", "apps", "already-deleted")
    legacy = ObjectKey("apps", "Deployment", "apps", "legacy")  # ignored in Git
    widget = ObjectKey("example.com", "Widget", "", "sprocket")  # no namespace in Git

    live_by_key = {
        unchanged.key: prepare_for_apply(unchanged, SOURCE),
        updated.key: live({SOURCE_LABEL: SOURCE}, {CHECKSUM_ANNOTATION: "old"}),
        skipped.key: live({SOURCE_LABEL: SOURCE}, {"fluxcd.io/ignore": "true"}),
        widget.effective("default"): prepare_for_apply(by_name[("Widget", "sprocket")], SOURCE),
        owned_gone: live({SOURCE_LABEL: SOURCE}),
        foreign_gone: live({SOURCE_LABEL: "another"}),
        kept_gone: live({SOURCE_LABEL: SOURCE}, {"fluxcd.io/ignore": "sync_only"}),
        legacy: live({SOURCE_LABEL: SOURCE}),
    }
    previous = frozenset({owned_gone, foreign_gone, kept_gone, absent_gone, legacy, updated.key})

    diff = diff_plan(
        found, live_by_key, source=SOURCE, previous_inventory=previous, default_namespace="default"
    )

    assert [m.key for m in diff.unchanged] == [unchanged.key, widget]
    assert [m.key for m in diff.update] == [updated.key]
    assert [m.key for m in diff.skipped] == [skipped.key]
    assert len(diff.create) == len(found.objects) - 4
    assert diff.create == tuple(apply_order(diff.create))
    assert diff.delete == (owned_gone,)
    assert diff.garbage_collection

    everything = diff.create + diff.update + diff.unchanged + diff.skipped
    assert sorted(m.key for m in everything) == sorted(m.key for m in found.objects)


def test_diff_plan_deletes_nothing_without_a_complete_discovery_or_inventory() -> None:
    gone = ObjectKey("", "ConfigMap", "apps", "gone")
    live_by_key = {gone: live({SOURCE_LABEL: SOURCE})}
    incomplete = Discovery((), (), frozenset(), (), False, ())
    complete = Discovery((), (), frozenset(), (), True, ())
    for found, previous in ((incomplete, frozenset({gone})), (complete, None)):
        diff = diff_plan(
            found, live_by_key, source=SOURCE, previous_inventory=previous, default_namespace="d"
        )
        assert diff.delete == ()
        assert not diff.garbage_collection
    diff = diff_plan(complete, live_by_key, source=SOURCE, previous_inventory={gone}, default_namespace="d")
    assert diff.delete == (gone,)


# --- the source that owns the inventory (issue #8) ----------------------------------------------

A_URL = "https://git.example.com/org/config.git"
HR = ObjectKey("helm.fluxcd.io", "HelmRelease", "apps", "web")
CM = ObjectKey("", "ConfigMap", "apps", "plain")
CRD = ObjectKey("apiextensions.k8s.io", "CustomResourceDefinition", "", "widgets.example.com")
NS = ObjectKey("", "Namespace", "", "apps")


def ident(
    url: str = A_URL, branch: str = "main", paths: tuple[str, ...] = (), only: bool = False
) -> SourceIdentity:
    return SourceIdentity.of(url, branch, paths, only)


def test_identity_paths_are_a_normalised_sorted_set() -> None:
    assert ident(paths=()).paths == (".",)
    assert ident(paths=("", ".", "/")).paths == (".",)
    assert ident(paths=("./b/", "a//x", "b", "a/x/../x")).paths == ("a/x", "b")
    assert ident(paths=("b", "a")).same_source(ident(paths=("a/", "./b")))
    assert not ident(paths=("a",)).same_source(ident(paths=("a", "b")))


def test_identity_round_trips_and_rejects_anything_else() -> None:
    me = ident(paths=("apps", "infra"), only=True)
    assert load_identity(me.dump()) == me
    assert json.loads(me.dump()) == {
        "branch": "main",
        "onlyHelmReleases": True,
        "paths": ["apps", "infra"],
        "url": A_URL,
    }
    for text in (
        "",
        "x",
        "[]",
        '{"url":"u"}',
        '{"url":"u","branch":"b","paths":"p","onlyHelmReleases":false}',
    ):
        assert load_identity(text) is None


def test_the_mode_is_recorded_but_not_compared() -> None:
    assert ident(only=True).same_source(ident(only=False))
    assert not ident(branch="master").same_source(ident())
    assert not ident(url="https://git.example.com/org/other.git").same_source(ident())


def test_ownership_new_adopted_owned() -> None:
    me = ident()
    new = decide_ownership(False, None, me, sync_name="default", take_over=False)
    assert (new.ownership, new.owns, new.owner, new.error) == (Ownership.NEW, True, me, "")
    # The upgrade rule: an inventory without an identity belongs to the source that finds it.
    old = decide_ownership(True, None, me, sync_name="default", take_over=False)
    assert (old.ownership, old.owns, old.owner) == (Ownership.ADOPTED, True, me)
    # Same source, other mode: owned, and the new mode is what gets recorded.
    moded = decide_ownership(True, ident(only=True).dump(), me, sync_name="default", take_over=False)
    assert (moded.ownership, moded.owns, moded.owner) == (Ownership.OWNED, True, me)


def test_a_foreign_identity_is_refused_naming_both_and_the_ways_out() -> None:
    first, other = ident(), ident(url="https://git.example.com/org/other.git", paths=("x",))
    refused = decide_ownership(True, first.dump(), other, sync_name="default", take_over=False)
    assert refused.ownership is Ownership.FOREIGN and not refused.owns
    assert refused.owner == first and refused.recorded == first
    assert first.describe() in refused.error and other.describe() in refused.error
    assert "--sync-name" in refused.error and "--sync-take-over-inventory=true" in refused.error
    taken = decide_ownership(True, first.dump(), other, sync_name="default", take_over=True)
    assert (taken.ownership, taken.owns, taken.owner, taken.recorded) == (
        Ownership.TAKEN_OVER,
        True,
        other,
        first,
    )
    # An identity that cannot be read is never assumed to be ours.
    garbled = decide_ownership(True, "{garbled", other, sync_name="default", take_over=False)
    assert garbled.ownership is Ownership.FOREIGN and "unreadable identity" in garbled.error


def test_in_mode() -> None:
    assert all(in_mode(k, False) for k in (HR, CM, CRD, NS))
    assert in_mode(HR, True)
    assert not any(in_mode(k, True) for k in (CM, CRD, NS))


def test_only_helmreleases_never_collects_other_kinds_and_keeps_them() -> None:
    previous = frozenset({HR, CM, CRD, NS})
    # Switching the mode on: Git still declares everything, discovery only sees the HelmRelease.
    assert plan_gc(previous, [HR], True, default_namespace="apps", only_helmreleases=True) == []
    kept = next_inventory(previous, [HR], discovery_complete=True, only_helmreleases=True)
    assert kept == previous
    # A HelmRelease that left Git is still collected in that mode.
    assert plan_gc(previous, [], True, default_namespace="apps", only_helmreleases=True) == [HR]
    assert next_inventory(previous, [], discovery_complete=True, only_helmreleases=True) == {CM, CRD, NS}
    # Switching back: the source still owns the retained keys and collects what left Git.
    assert plan_gc(kept, [HR, CRD], True, default_namespace="apps") == [CM, NS]


@given(key_sets, key_sets, st.booleans())
def test_no_key_outside_the_mode_is_ever_a_candidate_or_forgotten(
    previous: frozenset[ObjectKey], declared: frozenset[ObjectKey], only: bool
) -> None:
    doomed = plan_gc(previous, declared, True, default_namespace="apps", only_helmreleases=only)
    assert all(in_mode(k, only) for k in doomed)
    after = next_inventory(previous, declared, discovery_complete=True, only_helmreleases=only)
    assert {k for k in previous if not in_mode(k, only)} <= after


def test_diff_plan_follows_the_mode() -> None:
    disc = Discovery(
        objects=(manifest(HR),), ignored=(), protected=frozenset(), errors=(), complete=True, files=()
    )
    ours = live(labels={SOURCE_LABEL: SOURCE})
    lived = {HR: ours, CM: ours}
    kwargs: dict[str, Any] = {"source": SOURCE, "previous_inventory": {HR, CM}, "default_namespace": "apps"}
    assert diff_plan(disc, lived, **kwargs, only_helmreleases=True).delete == ()
    assert diff_plan(disc, lived, **kwargs).delete == (CM,)


def test_an_object_over_the_api_servers_request_limit_is_named_with_its_size() -> None:
    from gitops_helm.sync.plan import MAX_REQUEST_BYTES, size_problem

    small = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"x": "y"}}
    assert size_problem(small) is None
    big = {**small, "data": {"x": "y" * MAX_REQUEST_BYTES}}
    problem = size_problem(big)
    assert problem is not None
    assert f"larger than the {MAX_REQUEST_BYTES} bytes the Kubernetes API server accepts" in problem
    size = len(json.dumps(big, separators=(",", ":")).encode())
    assert problem.startswith(f"the object is {size} bytes"), problem
