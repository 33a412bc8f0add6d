"""What image automation talks about: image references, registry candidates, found images, skips.

Place in the data flow: ``images.find`` produces :class:`FoundImage` and :class:`Skip` records
from a file's bytes; the registry client turns each image's :attr:`ImageRef.name` into
:class:`Candidate` lists; ``images.policy`` decides; :meth:`FoundImage.edits` turns the decision
into :class:`ScalarEdit` records that ``images.edit`` applies byte-exactly.

Pure data and parsing, no I/O.

Docker references (``distribution/reference`` rules): ``[host[:port]/]path[:tag][@algo:hex]``.
The first path component is a registry host only when it contains ``.`` or ``:`` or is
``localhost``; otherwise the registry is Docker Hub (``docker.io``) and a one-component path gets
``library/``. :class:`ImageRef` keeps what was written (so a new tag is written back in the same
form: ``nginx:1.25`` becomes ``nginx:1.26``, never ``docker.io/library/nginx:1.26``) and exposes
the canonical :attr:`ImageRef.name` for scanning.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

__all__ = [
    "DOCKER_HUB",
    "Candidate",
    "FoundImage",
    "ImageRef",
    "ReferenceError",
    "ReleaseId",
    "Role",
    "ScalarEdit",
    "ScalarField",
    "Shape",
    "Skip",
    "parse_reference",
]

DOCKER_HUB = "docker.io"
_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_PATH_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_HOST_RE = re.compile(
    r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
    r"|\[[0-9A-Fa-f:.]+\])(?::[0-9]+)?$"
)
TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$")


class ReferenceError(ValueError):
    """Text that is not a Docker image reference; the message quotes it and says why."""


@dataclass(frozen=True)
class ImageRef:
    """An image reference as written: ``registry`` may be empty (Docker Hub), ``tag``/``digest`` too."""

    registry: str
    repository: str
    tag: str = ""
    digest: str = ""

    @property
    def canonical_registry(self) -> str:
        """The registry host (``docker.io`` for Docker Hub and its aliases)."""
        return DOCKER_HUB if not self.registry or self.registry in _HUB_ALIASES else self.registry

    @property
    def canonical_repository(self) -> str:
        """The repository path (``library/`` added to one-component Docker Hub names)."""
        if self.canonical_registry == DOCKER_HUB and "/" not in self.repository:
            return "library/" + self.repository
        return self.repository

    @property
    def name(self) -> str:
        """The canonical repository name, the identity a registry scan is keyed by."""
        return f"{self.canonical_registry}/{self.canonical_repository}"

    def with_version(self, tag: str, digest: str = "") -> ImageRef:
        """This reference with another tag and digest (same registry and repository as written)."""
        return replace(self, tag=tag, digest=digest)

    def __str__(self) -> str:
        text = f"{self.registry}/{self.repository}" if self.registry else self.repository
        if self.tag:
            text += ":" + self.tag
        if self.digest:
            text += "@" + self.digest
        return text


def _shown(text: str) -> str:
    return repr(text if len(text) <= 80 else text[:77] + "...")


def parse_reference(text: str, *, registry: str = "") -> ImageRef:
    """Parse ``[host[:port]/]path[:tag][@digest]``; ``registry`` given apart (a ``registry`` value
    beside the image) must not be repeated inside ``text``. Raises :class:`ReferenceError`."""
    rest, _, digest = text.partition("@")
    if "@" in digest:
        raise ReferenceError(f"{_shown(text)}: more than one '@'")
    if digest and not DIGEST_RE.match(digest):
        raise ReferenceError(f"{_shown(text)}: {_shown(digest)} is not a digest (algorithm:hex)")
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    tag = ""
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1 :]
        if not TAG_RE.match(tag):
            raise ReferenceError(f"{_shown(text)}: {_shown(tag)} is not a valid tag")
    host = ""
    first, sep, remainder = rest.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        host, rest = first, remainder
    if host and registry:
        raise ReferenceError(f"{_shown(text)}: names registry {host!r} while registry {registry!r} is given")
    if host and not _HOST_RE.match(host):
        raise ReferenceError(f"{_shown(text)}: {_shown(host)} is not a registry host")
    if registry and not _HOST_RE.match(registry):
        raise ReferenceError(f"registry {_shown(registry)} is not a registry host")
    if not rest:
        raise ReferenceError(f"{_shown(text)}: no repository name")
    if not _PATH_RE.match(rest):
        raise ReferenceError(
            f"{_shown(text)}: {_shown(rest)} is not a repository name (lower-case letters, digits, "
            "separators . _ __ -, components joined by /)"
        )
    return ImageRef(registry or host, rest, tag, digest)


@dataclass(frozen=True)
class Candidate:
    """One tag a registry lists for a repository: its digest and build time when known."""

    tag: str
    digest: str = ""
    created: datetime | None = None  # timezone-aware; None when not fetched or not known


class Shape(StrEnum):
    """How an image is written in a HelmRelease (README table: one example per shape)."""

    IMAGE = "image"  # image: repo:tag
    IMAGE_TAG = "image+tag"  # image: repo, tag: "1.0"
    REGISTRY_IMAGE_TAG = "registry+image+tag"  # registry: r, image: repo[, tag: "1.0"]
    IMAGE_MAP = "image.repository+tag"  # image: {repository: repo[, tag: "1.0"]}
    IMAGE_MAP_REGISTRY = "image.registry+repository+tag"  # image: {registry, repository[, tag]}
    ANNOTATION = "annotation"  # repository.fluxcd.io/<name> (+ tag., registry.)
    SETTER = "setter"  # # {"$imagepolicy": "ns:name[:tag|:name|:digest]"}
    CHART = "chart-version"  # spec.chart.version with gitops-helm.io/chart-version


class Role(StrEnum):
    """What one scalar holds: the part of the reference a new version rewrites, or not."""

    REF = "ref"  # a whole reference (maybe with registry, tag, digest)
    REGISTRY = "registry"
    REPOSITORY = "repository"  # a repository, maybe with its tag inside
    TAG = "tag"  # a tag, maybe tag@digest
    DIGEST = "digest"  # a digest alone (setter ``:digest``)
    VERSION = "version"  # a chart version


Path = tuple[str | int, ...]


@dataclass(frozen=True)
class ReleaseId:
    """A HelmRelease document of a file: namespace as written (None when absent), name, and its
    index among the file's documents (a hint; edits find the document by namespace and name)."""

    namespace: str | None
    name: str
    document: int

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name


@dataclass(frozen=True)
class ScalarField:
    """One scalar of the file that an image is made of: path from the document root, current text."""

    role: Role
    path: Path
    value: str
    line: int


@dataclass(frozen=True)
class ScalarEdit:
    """Replace the scalar at ``path`` of ``release``'s document, which must still read ``old``."""

    release: ReleaseId
    path: Path
    old: str
    new: str


@dataclass(frozen=True)
class FoundImage:
    """An image (or chart version) found in a HelmRelease and the scalars it is written in.

    ``name``: the container name Flux v1 gives it (``chart-image`` at the top level, the key one
    level down, the annotation alias) or the setter's policy ``ns:name``. ``ref`` is the current
    reference (for a chart: ``repository`` = chart URL + name, ``tag`` = version).
    """

    file: str
    release: ReleaseId
    name: str
    shape: Shape
    ref: ImageRef
    fields: tuple[ScalarField, ...]

    @property
    def line(self) -> int:
        return min(f.line for f in self.fields)

    def edits(self, tag: str, digest: str = "") -> tuple[ScalarEdit, ...]:
        """The scalar edits that write ``tag`` (and ``digest``, when pinning) in the image's own
        decomposition; registry and repository scalars are never rewritten."""
        out: list[ScalarEdit] = []
        pinned = f"{tag}@{digest}" if digest else tag
        for f in self.fields:
            if f.role is Role.REF:
                new = str(parse_reference(f.value).with_version(tag, digest))
            elif f.role is Role.TAG or f.role is Role.VERSION:
                new = pinned
            elif f.role is Role.DIGEST:
                new = digest
            elif f.role is Role.REPOSITORY and not any(
                g.role in (Role.TAG, Role.VERSION) for g in self.fields
            ):
                new = str(parse_reference(f.value).with_version(tag, digest))
            else:
                continue
            if new and new != f.value:
                out.append(ScalarEdit(self.release, f.path, f.value, new))
        return tuple(out)


@dataclass(frozen=True)
class Skip:
    """Something that looks like an image (or a policy) but is not automated, and why.

    ``error`` is true for what the user must fix (an invalid range, two policies for one image,
    an unquoted numeric tag) and false for what is simply not automated (no ``fluxcd.io/automated``).
    """

    file: str
    release: ReleaseId | None
    name: str
    line: int | None
    reason: str
    error: bool = True

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        who = f" HelmRelease {self.release}" if self.release else ""
        what = f" image {self.name!r}" if self.name else ""
        return f"{where}:{who}{what}: {self.reason}"
