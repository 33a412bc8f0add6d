"""Find the images (and chart versions) to automate in the HelmReleases of one YAML file.

Place in the data flow: the caller reads a file of the Git checkout (the same files
``sync.discover`` reads) and hands its bytes to :func:`find_in_file` with the agent's declared
policies; the result lists each :class:`Automation` (an image, its policy, the release's
settings) and each :class:`~gitops_helm.images.model.Skip` (what looks automatable but is not,
and why). Pure: bytes in, records out; nothing is raised for bad content.

Shapes (Flux v1's ``resource/helmrelease.go``, README table), inside ``spec.values`` (container
``chart-image``) or one level down under a key ``K`` (container ``K``):

- ``image: repo:tag``; ``image: repo`` + ``tag``; ``registry`` + ``image`` (+ ``tag``);
- ``image: {repository, tag}``; ``image: {registry, repository, tag}`` (a tag may sit inside
  ``repository`` when there is no ``tag``).

Explicit mappings: ``repository.fluxcd.io/<alias>`` (required), ``tag.fluxcd.io/<alias>``,
``registry.fluxcd.io/<alias>``, each a dotted path into ``spec.values``; an alias replaces the
auto-detected container of the same name. Flux v2 setter markers: a line comment
``# {"$imagepolicy": "ns:name"}`` (whole reference), ``"ns:name:tag"``, ``"ns:name:name"``
(repository, never rewritten) or ``"ns:name:digest"`` on any scalar of the HelmRelease; the policy
``ns:name`` comes from the agent's policy file or, failing that, ``filter.fluxcd.io/<name>`` on the
HelmRelease. Auto-detected and mapped images need ``fluxcd.io/automated: "true"``; markers are
their own opt-in. ``gitops-helm.io/chart-version: semver:<range>`` automates ``spec.chart.version``.

A scalar that is not a string (``tag: 1.10`` is the float 1.1 to YAML), reached through an alias
or merge key, a block scalar, or claimed by two policies is skipped with the reason; so is an image
nested deeper than auto-detection looks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from gitops_helm.api import API_VERSION, KIND
from gitops_helm.charts.semver import is_exact
from gitops_helm.images.locate import LocateError, YamlFile, compose, scalar_text, setter_marker, tag_of
from gitops_helm.images.model import (
    Candidate,
    FoundImage,
    ImageRef,
    ReferenceError,
    ReleaseId,
    Role,
    ScalarField,
    Shape,
    Skip,
    parse_reference,
)
from gitops_helm.images.policy import (
    AUTOMATED,
    CHART_VERSION,
    Decision,
    DeclaredPolicy,
    Policy,
    PolicyError,
    ReleaseSettings,
    decide,
    image_policy,
    locked,
    release_settings,
)

__all__ = ["TOP_LEVEL_NAME", "Automation", "Findings", "find_in_file"]

#: Flux v1's container name for an image at the top of ``spec.values``.
TOP_LEVEL_NAME = "chart-image"
_REPOSITORY_PREFIX = "repository.fluxcd.io/"
_TAG_PREFIX = "tag.fluxcd.io/"
_REGISTRY_PREFIX = "registry.fluxcd.io/"
_DEEPEST_REPORTED = 8  # how deep images below auto-detection are looked for (to explain them)

Path = tuple[str | int, ...]
_VALUES: Path = ("spec", "values")


@dataclass(frozen=True)
class Automation:
    """An image (or chart version) to keep up to date: where it is, its policy, its release's
    settings (lock). :meth:`decide` gives the decision for the registry's candidates."""

    image: FoundImage
    policy: Policy
    settings: ReleaseSettings

    def decide(self, candidates: Sequence[Candidate], now: datetime) -> Decision:
        if self.settings.locked:
            return locked(self.settings)
        return decide(self.policy, self.image.ref.tag, candidates, now, current_digest=self.image.ref.digest)


@dataclass
class Findings:
    """Everything :func:`find_in_file` found in one file."""

    automations: list[Automation] = field(default_factory=list)
    skips: list[Skip] = field(default_factory=list)


class _Skipped(Exception):
    """One image cannot be automated; the message says why."""

    def __init__(self, reason: str, line: int | None = None, *, error: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.line = line
        self.error = error


def find_in_file(
    path: str,
    data: bytes,
    declared: Mapping[str, DeclaredPolicy] | None = None,
) -> Findings:
    """The automations and skips of every ``helm.fluxcd.io/v1`` HelmRelease of a file's bytes.

    ``path`` names the file in messages; ``declared``: the agent's policy file (setter markers).
    """
    findings = Findings()
    try:
        yaml_file = compose(data)
    except LocateError as exc:
        findings.skips.append(Skip(path, None, "", None, f"cannot read the file: {exc}"))
        return findings
    for index, root in enumerate(yaml_file.documents):
        if not isinstance(root, MappingNode) or not _is_helmrelease(yaml_file, index):
            continue
        try:
            _Release(path, yaml_file, index, declared or {}, findings).scan()
        except LocateError as exc:
            line = yaml_file.line(root)
            findings.skips.append(Skip(path, None, "", line, f"HelmRelease document: {exc}"))
    return findings


def _is_helmrelease(yaml_file: YamlFile, index: int) -> bool:
    kind = yaml_file.lookup(index, ("kind",))
    api = yaml_file.lookup(index, ("apiVersion",))
    return (
        kind is not None
        and api is not None
        and scalar_text(kind.node) == KIND
        and scalar_text(api.node) == API_VERSION
    )


@dataclass(frozen=True)
class _Plain:
    """An annotation written as a YAML number or bool (Kubernetes refuses it: it must be quoted)."""

    text: str

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return self.text


_Annotations = Mapping[str, "str | _Plain"]


class _Release:
    """The scan of one HelmRelease document."""

    def __init__(
        self,
        path: str,
        yaml_file: YamlFile,
        index: int,
        declared: Mapping[str, DeclaredPolicy],
        findings: Findings,
    ) -> None:
        self.path = path
        self.file = yaml_file
        self.index = index
        self.declared = declared
        self.findings = findings
        self.release = ReleaseId(None, "", index)
        self.claimed: dict[Path, str] = {}  # scalar path -> image name that claimed it

    # -- helpers ------------------------------------------------------------------------------

    def lookup(self, path: Path) -> Node | None:
        located = self.file.lookup(self.index, path)
        return located.node if located is not None else None

    def skip(self, name: str, reason: str, line: int | None, *, error: bool = True) -> None:
        self.findings.skips.append(Skip(self.path, self.release, name, line, reason, error))

    def field(self, role: Role, path: Path, what: str) -> ScalarField:
        """The string scalar at ``path`` as a field an edit may rewrite; _Skipped otherwise."""
        located = self.file.lookup(self.index, path)
        if located is None:
            raise _Skipped(f"{what} ({_dotted(path)}) is not there")
        node = located.node
        line = self.file.line(node)
        if not isinstance(node, ScalarNode):
            raise _Skipped(f"{what} ({_dotted(path)}) is not a single value", line)
        value = scalar_text(node)
        if value is None:
            kind = tag_of(node).rsplit(":", 1)[-1]
            quote = f'; quote it: "{node.value}"' if kind in ("float", "int", "bool") else ""
            raise _Skipped(f"{what} ({_dotted(path)}: {node.value}) is read by YAML as a {kind}{quote}", line)
        if located.shared is not None:
            raise _Skipped(f"{located.shared}; editing it would change other places too", line)
        if node.style in ("|", ">"):
            raise _Skipped(f"{what} ({_dotted(path)}) is a block scalar", line)
        start, end = self.file.value_span(node)
        if "\n" in self.file.text[start:end]:
            raise _Skipped(f"{what} ({_dotted(path)}) spans several lines", line)
        return ScalarField(role, path, value, line)

    # -- the scan -----------------------------------------------------------------------------

    def scan(self) -> None:
        name = scalar_text(self.lookup(("metadata", "name")))
        namespace = scalar_text(self.lookup(("metadata", "namespace")))
        root = self.file.documents[self.index]
        assert root is not None  # noqa: S101 - find_in_file passes mapping documents only
        if not name:
            self.skip("", "HelmRelease without a metadata.name string", self.file.line(root))
            return
        self.release = ReleaseId(namespace, name, self.index)
        annotations = self.annotations()
        settings = release_settings(annotations)
        for problem in settings.problems:
            self.skip("", problem, self.file.line(root))
        self.setters(annotations, settings)
        aliases = self.mapped(annotations, settings)
        self.detected(annotations, settings, aliases)
        self.chart(settings)

    def annotations(self) -> dict[str, str | _Plain]:
        node = self.lookup(("metadata", "annotations"))
        out: dict[str, str | _Plain] = {}
        if not isinstance(node, MappingNode):
            return out
        for key, value in node.value:
            if isinstance(key, ScalarNode) and isinstance(value, ScalarNode):
                text = scalar_text(value)
                out[str(key.value)] = text if text is not None else _Plain(value.value)
        return out

    def add(self, image: FoundImage, policy: Policy, settings: ReleaseSettings) -> None:
        for f in image.fields:
            if f.role is not Role.REGISTRY:
                self.claimed.setdefault(f.path, image.name)
        self.findings.automations.append(Automation(image, policy, settings))

    def clash(self, image: FoundImage) -> str | None:
        for f in image.fields:
            other = self.claimed.get(f.path)
            if other is not None and other != image.name and f.role is not Role.REGISTRY:
                return other
        return None

    # -- Flux v2 setter markers ---------------------------------------------------------------

    def setters(self, annotations: _Annotations, settings: ReleaseSettings) -> None:
        marked: dict[str, list[tuple[str, ScalarNode, Path]]] = {}
        root = self.file.documents[self.index]
        for node, path in _scalars(root):
            marker = setter_marker(self.file.comment_after(node))
            if marker is None:
                continue
            parts = marker.split(":")
            field_name = parts[2] if len(parts) == 3 else ""
            policy_name = ":".join(parts[:2])
            if len(parts) not in (2, 3) or not all(parts) or field_name not in ("", "tag", "name", "digest"):
                self.skip(
                    marker,
                    f"setter marker {marker!r}: expected 'ns:name' + optional :tag, :name or :digest",
                    self.file.line(node),
                )
                continue
            marked.setdefault(policy_name, []).append((field_name, node, path))
        for policy_name, marks in marked.items():
            line = min(self.file.line(node) for _, node, _ in marks)
            try:
                image, policy = self.setter_image(policy_name, marks, annotations, settings)
            except (_Skipped, PolicyError) as exc:
                reason = exc.reason if isinstance(exc, _Skipped) else str(exc)
                self.skip(policy_name, reason, getattr(exc, "line", None) or line)
                continue
            self.add(image, policy, settings)

    def setter_image(
        self,
        policy_name: str,
        marks: list[tuple[str, ScalarNode, Path]],
        annotations: _Annotations,
        settings: ReleaseSettings,
    ) -> tuple[FoundImage, Policy]:
        roles = {"": Role.REF, "tag": Role.TAG, "name": Role.REPOSITORY, "digest": Role.DIGEST}
        fields: list[ScalarField] = []
        for field_name, _, path in marks:
            if any(f.role is roles[field_name] for f in fields):
                raise _Skipped(f"setter marker {policy_name}:{field_name or 'ref'} is written twice")
            fields.append(self.field(roles[field_name], path, f"value marked {policy_name}"))
        declared = self.declared.get(policy_name)
        alias = policy_name.split(":")[1]
        has_annotation = any(
            k in annotations for k in (f"filter.fluxcd.io/{alias}", f"fluxcd.io/tag.{alias}")
        )
        if declared is None and not has_annotation:
            raise _Skipped(
                f"no policy {policy_name}: declare it in the agent's policy file or annotate the "
                f"HelmRelease with filter.fluxcd.io/{alias}"
            )
        policy = image_policy(annotations, settings, alias, declared)
        by_role = {f.role: f for f in fields}
        try:
            if Role.REF in by_role:
                ref = parse_reference(by_role[Role.REF].value)
            elif Role.TAG in by_role:
                tag, _, digest = by_role[Role.TAG].value.partition("@")
                base = (
                    parse_reference(by_role[Role.REPOSITORY].value)
                    if Role.REPOSITORY in by_role
                    else declared.image
                    if declared is not None
                    else None
                )
                if base is None:
                    raise _Skipped(
                        f"{policy_name}: a :tag marker needs a :name marker or a policy file entry"
                    )
                ref = base.with_version(
                    tag, digest or (by_role[Role.DIGEST].value if Role.DIGEST in by_role else "")
                )
            else:
                raise _Skipped(f"{policy_name}: no marker with the tag (ns:name or ns:name:tag)")
        except ReferenceError as exc:
            raise _Skipped(f"{policy_name}: {exc}") from None
        if declared is not None and ref.name != declared.image.name:
            raise _Skipped(
                f"{policy_name}: the file holds {ref.name}, the policy is for {declared.image.name}"
            )
        if not ref.tag:
            raise _Skipped(f"{policy_name}: the marked reference has no tag")
        return FoundImage(self.path, self.release, policy_name, Shape.SETTER, ref, tuple(fields)), policy

    # -- explicit mappings (annotations) ------------------------------------------------------

    def mapped(self, annotations: _Annotations, settings: ReleaseSettings) -> set[str]:
        aliases = {k[len(_REPOSITORY_PREFIX) :] for k in annotations if k.startswith(_REPOSITORY_PREFIX)}
        for prefix in (_TAG_PREFIX, _REGISTRY_PREFIX):
            for key in annotations:
                alias = key[len(prefix) :]
                if key.startswith(prefix) and alias not in aliases:
                    self.skip(alias, f"annotation {key} without {_REPOSITORY_PREFIX}{alias}", None)
        for alias in sorted(aliases):
            try:
                fields = []
                for role, prefix in (
                    (Role.REGISTRY, _REGISTRY_PREFIX),
                    (Role.REPOSITORY, _REPOSITORY_PREFIX),
                    (Role.TAG, _TAG_PREFIX),
                ):
                    dotted = annotations.get(prefix + alias)
                    if dotted is None:
                        continue
                    steps = tuple(s for s in str(dotted).split("."))
                    if not all(steps):
                        raise _Skipped(f"annotation {prefix}{alias}: {dotted!r} is not a dotted path")
                    fields.append(self.field(role, _VALUES + steps, f"annotation {prefix}{alias}"))
                image = self.image_from(alias, Shape.ANNOTATION, fields)
                self.automate(image, annotations, settings)
            except (_Skipped, PolicyError) as exc:
                reason = exc.reason if isinstance(exc, _Skipped) else str(exc)
                self.skip(alias, reason, getattr(exc, "line", None), error=getattr(exc, "error", True))
        return aliases

    def image_from(self, name: str, shape: Shape, fields: list[ScalarField]) -> FoundImage:
        by_role = {f.role: f for f in fields}
        registry = by_role[Role.REGISTRY].value if Role.REGISTRY in by_role else ""
        main = by_role.get(Role.REPOSITORY) or by_role[Role.REF]
        try:
            ref = parse_reference(main.value, registry=registry)
        except ReferenceError as exc:
            raise _Skipped(str(exc), main.line) from None
        if Role.TAG in by_role:
            if ref.tag or ref.digest:
                raise _Skipped(
                    f"{_dotted(main.path)} ({main.value}) holds a tag and {_dotted(by_role[Role.TAG].path)} "
                    "holds one too",
                    main.line,
                )
            tag, _, digest = by_role[Role.TAG].value.partition("@")
            if not tag:
                raise _Skipped(
                    f"{_dotted(by_role[Role.TAG].path)} is empty (the chart's appVersion is used); "
                    "write a tag to automate it",
                    by_role[Role.TAG].line,
                )
            ref = ref.with_version(tag, digest)
        if not ref.tag:
            raise _Skipped(f"{main.value!r} has no tag", main.line)
        return FoundImage(self.path, self.release, name, shape, ref, tuple(fields))

    def automate(self, image: FoundImage, annotations: _Annotations, settings: ReleaseSettings) -> None:
        other = self.clash(image)
        if other is not None and not settings.automated:
            return  # a setter marker automates these scalars; that is the only policy
        if other is not None:
            raise _Skipped(
                f"two policies for one image: {AUTOMATED} and {other!r} (a setter marker); keep one",
                image.line,
            )
        if not settings.automated:
            raise _Skipped(
                f'not automated: annotate the HelmRelease {AUTOMATED}: "true"', image.line, error=False
            )
        self.add(image, image_policy(annotations, settings, image.name), settings)

    # -- auto-detected shapes -----------------------------------------------------------------

    def detected(self, annotations: _Annotations, settings: ReleaseSettings, aliases: set[str]) -> None:
        values = self.lookup(_VALUES)
        if not isinstance(values, MappingNode):
            return
        places: list[tuple[str, Path]] = []
        if _has_key(values, "image"):
            places.append((TOP_LEVEL_NAME, _VALUES))
        for key, value in values.value:
            if isinstance(key, ScalarNode) and isinstance(value, MappingNode) and _has_key(value, "image"):
                places.append((str(key.value), (*_VALUES, str(key.value))))
        for name, path in places:
            if name in aliases:
                continue  # the annotation mapping of this name wins, as in Flux v1
            try:
                image = self.detect(name, path)
                self.automate(image, annotations, settings)
            except (_Skipped, PolicyError) as exc:
                reason = exc.reason if isinstance(exc, _Skipped) else str(exc)
                line = getattr(exc, "line", None) or self.file.line(values)
                self.skip(name, reason, line, error=getattr(exc, "error", True))
        self.deeper(values)

    def detect(self, name: str, path: Path) -> FoundImage:
        image_node = self.lookup((*path, "image"))
        parent = self.lookup(path)
        assert isinstance(parent, MappingNode)  # noqa: S101 - detected() passes mappings holding image
        fields: list[ScalarField] = []
        if isinstance(image_node, MappingNode):
            if not _has_key(image_node, "repository"):
                raise _Skipped(
                    f"unknown shape: {_dotted((*path, 'image'))} is a mapping without repository",
                    self.file.line(image_node),
                )
            shape = Shape.IMAGE_MAP_REGISTRY if _has_key(image_node, "registry") else Shape.IMAGE_MAP
            base = (*path, "image")
        elif isinstance(image_node, ScalarNode):
            base = path
            if _has_key(parent, "registry"):
                shape = Shape.REGISTRY_IMAGE_TAG
            elif _has_key(parent, "tag"):
                shape = Shape.IMAGE_TAG
            else:
                shape = Shape.IMAGE
        else:
            line = self.file.line(image_node) if image_node is not None else None
            raise _Skipped(f"unknown shape: {_dotted((*path, 'image'))} is a list", line)
        repository_key = "repository" if isinstance(image_node, MappingNode) else "image"
        container = self.lookup(base)
        assert isinstance(container, MappingNode)  # noqa: S101 - checked above
        if _has_key(container, "registry"):
            fields.append(self.field(Role.REGISTRY, (*base, "registry"), "registry"))
        role = Role.REF if shape is Shape.IMAGE else Role.REPOSITORY
        fields.append(self.field(role, (*base, repository_key), repository_key))
        if _has_key(container, "tag"):
            fields.append(self.field(Role.TAG, (*base, "tag"), "tag"))
        return self.image_from(name, shape, fields)

    def deeper(self, values: MappingNode) -> None:
        """Explain images nested deeper than auto-detection looks (a top Flux v1 support question)."""
        stack: list[tuple[Node, Path]] = [
            (v, (*_VALUES, str(k.value), str(kk.value)))
            for k, v0 in values.value
            if isinstance(v0, MappingNode)
            for kk, v in v0.value
            if isinstance(v, MappingNode)
        ]
        seen: set[int] = set()
        while stack:
            node, path = stack.pop()
            if id(node) in seen or not isinstance(node, MappingNode) or len(path) - 2 > _DEEPEST_REPORTED:
                continue
            seen.add(id(node))
            if _has_key(node, "image") and not any(p[: len(path)] == path for p in self.claimed):
                self.skip(
                    _dotted(path[2:]),
                    f"image at {_dotted((*path, 'image'))} is nested deeper than auto-detection looks; "
                    f"map it with {_REPOSITORY_PREFIX}<name> annotations or a setter marker",
                    self.file.line(node),
                    error=False,
                )
            stack.extend((v, (*path, str(k.value))) for k, v in node.value if isinstance(v, MappingNode))

    # -- chart version ------------------------------------------------------------------------

    def chart(self, settings: ReleaseSettings) -> None:
        if settings.chart_filter is None:
            return
        chart = self.lookup(("spec", "chart"))
        line = self.file.line(chart) if chart is not None else None
        try:
            if not isinstance(chart, MappingNode) or not _has_key(chart, "repository"):
                raise _Skipped(
                    f"{CHART_VERSION} needs spec.chart.repository (a Helm repository or oci:// chart)", line
                )
            repository = self.field(Role.REGISTRY, ("spec", "chart", "repository"), "spec.chart.repository")
            chart_name = self.field(Role.REPOSITORY, ("spec", "chart", "name"), "spec.chart.name")
            version = self.field(Role.VERSION, ("spec", "chart", "version"), "spec.chart.version")
            if not is_exact(version.value):
                raise _Skipped(
                    f"spec.chart.version {version.value!r} is a range; {CHART_VERSION} writes exact "
                    "versions (write the current one)",
                    version.line,
                )
            ref = ImageRef(repository.value.rstrip("/"), chart_name.value, version.value)
            image = FoundImage(
                self.path, self.release, "chart", Shape.CHART, ref, (repository, chart_name, version)
            )
            policy = Policy(settings.chart_filter, settings.min_age, False, f"annotation {CHART_VERSION}")
            self.add(image, policy, settings)
        except _Skipped as exc:
            self.skip("chart", exc.reason, exc.line or line)


def _has_key(node: Node, key: str) -> bool:
    return isinstance(node, MappingNode) and any(
        isinstance(k, ScalarNode) and k.value == key for k, _ in node.value
    )


def _dotted(path: Path) -> str:
    return ".".join(str(p) if isinstance(p, str) else f"[{p}]" for p in path)


def _scalars(root: Node | None) -> list[tuple[ScalarNode, Path]]:
    """Every scalar value of a document with its path (each node once: aliases not followed)."""
    out: list[tuple[ScalarNode, Path]] = []
    seen: set[int] = set()
    stack: list[tuple[Node, Path]] = [(root, ())] if root is not None else []
    while stack:
        node, path = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, ScalarNode):
            out.append((node, path))
        elif isinstance(node, MappingNode):
            stack.extend((v, (*path, str(k.value))) for k, v in node.value if isinstance(k, ScalarNode))
        elif isinstance(node, SequenceNode):
            stack.extend((v, (*path, i)) for i, v in enumerate(node.value))
    out.sort(key=lambda item: item[0].start_mark.index)
    return out
