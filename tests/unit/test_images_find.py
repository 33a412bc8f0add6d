"""Finding images in HelmRelease values: every Flux v1 shape, annotation mappings, setter markers,
chart versions, and the reasons given for what is skipped."""

from __future__ import annotations

import textwrap

import pytest

from gitops_helm.images.find import Findings, find_in_file
from gitops_helm.images.model import Shape
from gitops_helm.images.policy import parse_policy_file


def release(values: str, annotations: str = 'fluxcd.io/automated: "true"', chart: str = "") -> bytes:
    head = textwrap.dedent(
        """\
        apiVersion: helm.fluxcd.io/v1
        kind: HelmRelease
        metadata:
          name: app
          namespace: prod
          annotations:
        """
    )
    notes = textwrap.indent(textwrap.dedent(annotations), "    ")
    spec = "spec:\n" + textwrap.indent(textwrap.dedent(chart), "  ") + "  values:\n"
    return (head + notes + "\n" + spec + textwrap.indent(textwrap.dedent(values), "    ")).encode()


def found(findings: Findings) -> list[tuple[str, Shape, str]]:
    return [(a.image.name, a.image.shape, str(a.image.ref)) for a in findings.automations]


@pytest.mark.parametrize(
    ("values", "shape", "ref"),
    [
        ("image: repo/image:1.2.3\n", Shape.IMAGE, "repo/image:1.2.3"),
        ('image: repo/image\ntag: "1.2.3"\n', Shape.IMAGE_TAG, "repo/image:1.2.3"),
        (
            'registry: docker.io\nimage: repo/image\ntag: "1.2.3"\n',
            Shape.REGISTRY_IMAGE_TAG,
            "docker.io/repo/image:1.2.3",
        ),
        (
            "registry: quay.io\nimage: repo/image:1.2.3\n",
            Shape.REGISTRY_IMAGE_TAG,
            "quay.io/repo/image:1.2.3",
        ),
        ('image:\n  repository: repo/image\n  tag: "1.2.3"\n', Shape.IMAGE_MAP, "repo/image:1.2.3"),
        ("image:\n  repository: repo/image:1.2.3\n", Shape.IMAGE_MAP, "repo/image:1.2.3"),
        (
            'image:\n  registry: ghcr.io\n  repository: repo/image\n  tag: "1.2.3"\n',
            Shape.IMAGE_MAP_REGISTRY,
            "ghcr.io/repo/image:1.2.3",
        ),
        ("image: {repository: repo/image, tag: v1}\n", Shape.IMAGE_MAP, "repo/image:v1"),
    ],
)
def test_every_flux_v1_shape_at_the_top_is_chart_image(values: str, shape: Shape, ref: str) -> None:
    assert found(find_in_file("a.yaml", release(values))) == [("chart-image", shape, ref)]


def test_shapes_one_level_down_are_named_by_their_key() -> None:
    values = """\
        persistent: true
        api:
          image: repo/api:1.0.0
        worker:
          image:
            repository: repo/worker
            tag: "2.0.0"
            pullPolicy: IfNotPresent
        """
    assert found(find_in_file("a.yaml", release(values))) == [
        ("api", Shape.IMAGE, "repo/api:1.0.0"),
        ("worker", Shape.IMAGE_MAP, "repo/worker:2.0.0"),
    ]


def test_annotation_mappings_and_their_filters() -> None:
    annotations = """\
        fluxcd.io/automated: "true"
        repository.fluxcd.io/app: appImage
        tag.fluxcd.io/app: appTag
        filter.fluxcd.io/app: semver:~1.4
        registry.fluxcd.io/submarine: sub.marine.reg
        repository.fluxcd.io/submarine: sub.marine.img
        tag.fluxcd.io/submarine: sub.marine.tag
        """
    values = """\
        appImage: repo/image1
        appTag: "1.4.2"
        sub:
          marine:
            reg: registry.example.com
            img: team/image2
            tag: "0.9.0"
        """
    findings = find_in_file("a.yaml", release(values, annotations))
    assert found(findings) == [
        ("app", Shape.ANNOTATION, "repo/image1:1.4.2"),
        ("submarine", Shape.ANNOTATION, "registry.example.com/team/image2:0.9.0"),
    ]
    assert findings.automations[0].policy.filter.text == "semver:~1.4"
    assert findings.skips == []


def test_an_alias_replaces_the_auto_detected_container_of_its_name() -> None:
    annotations = 'fluxcd.io/automated: "true"\nrepository.fluxcd.io/api: api.image.name\n'
    values = "api:\n  image:\n    name: repo/api:2.0.0\n"
    assert found(find_in_file("a.yaml", release(values, annotations))) == [
        ("api", Shape.ANNOTATION, "repo/api:2.0.0")
    ]


def test_setter_markers_with_policies_from_the_file_or_annotations() -> None:
    declared, _ = parse_policy_file(
        {"policies": [{"name": "flux-system:app", "image": "ghcr.io/org/app"}]}, "p.yaml"
    )
    values = """\
        app:
          image:
            repository: ghcr.io/org/app # {"$imagepolicy": "flux-system:app:name"}
            tag: 4.0.6 # {"$imagepolicy": "flux-system:app:tag"}
        proxy: "ghcr.io/org/proxy:1.2.0"  # {"$imagepolicy": "flux-system:proxy"}
        """
    findings = find_in_file("a.yaml", release(values, "filter.fluxcd.io/proxy: semver:^1\n"), declared)
    assert found(findings) == [
        ("flux-system:app", Shape.SETTER, "ghcr.io/org/app:4.0.6"),
        ("flux-system:proxy", Shape.SETTER, "ghcr.io/org/proxy:1.2.0"),
    ]
    assert findings.automations[1].policy.source == "annotation filter.fluxcd.io/proxy"
    assert findings.skips == []  # the auto-detected 'app' is the marked one: not "not automated"


def test_a_marker_without_a_policy_is_explained() -> None:
    values = 'image: ghcr.io/org/app:1.0.0 # {"$imagepolicy": "flux-system:app"}\n'
    findings = find_in_file("a.yaml", release(values, "{}\n"))
    assert findings.automations == []
    reasons = [s.reason for s in findings.skips]
    assert any("no policy flux-system:app: declare it in the agent's policy file" in r for r in reasons)


def test_a_marked_and_automated_image_has_two_policies() -> None:
    declared, _ = parse_policy_file({"policies": [{"name": "ns:app", "image": "ghcr.io/org/app"}]}, "p.yaml")
    values = 'image: ghcr.io/org/app:1.0.0 # {"$imagepolicy": "ns:app"}\n'
    findings = find_in_file("a.yaml", release(values), declared)
    assert found(findings) == [("ns:app", Shape.SETTER, "ghcr.io/org/app:1.0.0")]
    (skip,) = findings.skips
    assert skip.name == "chart-image" and skip.error
    assert "two policies for one image" in skip.reason


def test_an_unquoted_numeric_tag_is_skipped_with_the_fix() -> None:
    findings = find_in_file("apps/a.yaml", release("image: repo/app\ntag: 1.10\n"))
    assert findings.automations == []
    (skip,) = findings.skips
    assert str(skip) == (
        "apps/a.yaml:11: HelmRelease prod/app image 'chart-image': "
        'tag (spec.values.tag: 1.10) is read by YAML as a float; quote it: "1.10"'
    )


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ("image: [a, b]\n", "unknown shape: spec.values.image is a list"),
        ("image:\n  name: repo/app\n", "unknown shape: spec.values.image is a mapping without repository"),
        ('image:\n  repository: repo/app\n  tag: ""\n', "is empty (the chart's appVersion is used)"),
        ("image: repo/app\n", "'repo/app' has no tag"),
        ('image: repo/app:1.0\ntag: "1.1"\n', "holds a tag and spec.values.tag holds one too"),
        ("image: Repo/App:1\n", "is not a repository name"),
        ("base: &b\n  image: repo/app:1.0\ncopy: *b\n", "shared through a YAML alias"),
        ("a:\n  b:\n    c:\n      image: repo/app:1.0\n", "nested deeper than auto-detection looks"),
    ],
)
def test_skip_reasons(values: str, reason: str) -> None:
    findings = find_in_file("a.yaml", release(values))
    assert findings.automations == []
    assert any(reason in s.reason for s in findings.skips), [s.reason for s in findings.skips]


def test_not_automated_is_reported_but_not_as_an_error() -> None:
    findings = find_in_file("a.yaml", release("image: repo/app:1.0\n", "{}\n"))
    (skip,) = findings.skips
    assert not skip.error
    assert 'fluxcd.io/automated: "true"' in skip.reason


def test_an_unquoted_automated_annotation_is_explained() -> None:
    findings = find_in_file("a.yaml", release("image: repo/app:1.0\n", "fluxcd.io/automated: true\n"))
    assert any("fluxcd.io/automated: true must be a quoted string" in s.reason for s in findings.skips)


def test_a_locked_release_decides_locked() -> None:
    annotations = 'fluxcd.io/automated: "true"\nfluxcd.io/locked: "true"\nfluxcd.io/locked_msg: incident 42\n'
    (automation,) = find_in_file("a.yaml", release("image: repo/app:1.0\n", annotations)).automations
    decision = automation.decide([], __import__("datetime").datetime.now(__import__("datetime").UTC))
    assert decision.action.value == "locked"
    assert decision.reason == "locked (fluxcd.io/locked): incident 42"


def test_invalid_filter_is_a_per_image_error_and_other_images_still_count() -> None:
    annotations = 'fluxcd.io/automated: "true"\nfilter.fluxcd.io/api: regex:(\n'
    values = "api:\n  image: repo/api:1.0\nweb:\n  image: repo/web:1.0\n"
    findings = find_in_file("a.yaml", release(values, annotations))
    assert found(findings) == [("web", Shape.IMAGE, "repo/web:1.0")]
    (skip,) = findings.skips
    assert skip.name == "api"
    assert "annotation filter.fluxcd.io/api: invalid regular expression" in skip.reason


def test_chart_version_of_a_helm_repository_release() -> None:
    chart = "chart:\n  repository: https://charts.example.com/\n  name: hello\n  version: 1.2.0\n"
    findings = find_in_file("a.yaml", release("{}\n", "gitops-helm.io/chart-version: semver:~1.2\n", chart))
    (automation,) = findings.automations
    assert automation.image.shape is Shape.CHART
    assert automation.image.ref.tag == "1.2.0"
    assert [(e.path, e.new) for e in automation.image.edits("1.2.7")] == [
        (("spec", "chart", "version"), "1.2.7")
    ]


@pytest.mark.parametrize(
    ("chart", "reason"),
    [
        ("chart:\n  git: https://example.com/c.git\n  path: c\n", "needs spec.chart.repository"),
        ("chart:\n  repository: oci://r.example.com/c\n  name: c\n  version: ~1.2\n", "is a range"),
        (
            "chart:\n  repository: oci://r.example.com/c\n  name: c\n  version: 1.2\n",
            "read by YAML as a float",
        ),
    ],
)
def test_chart_version_skips(chart: str, reason: str) -> None:
    findings = find_in_file("a.yaml", release("{}\n", "gitops-helm.io/chart-version: semver:~1.2\n", chart))
    assert findings.automations == []
    assert any(reason in s.reason for s in findings.skips), [s.reason for s in findings.skips]


def test_other_kinds_and_broken_files() -> None:
    other = b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata:\n  image: nginx:1.0\n"
    assert find_in_file("a.yaml", other) == Findings()
    broken = find_in_file("b.yaml", b"a: [\n")
    assert [s.reason.split(":")[0] for s in broken.skips] == ["cannot read the file"]
    assert "line 2" in broken.skips[0].reason
