"""Reading registry answers for image scans, pure: which manifest of a multi-platform image is
ours, where an image manifest's config blob is, and when the image was built.

Media types understood: Docker schema 2 manifests and manifest lists, OCI image manifests and
OCI image indexes (the ones every current builder writes). Docker schema 1 is not read (it was
removed from Docker Hub and distribution 3): such a tag is reported as an unsupported manifest.

Every function raises :class:`ManifestError` for an answer that is not what the API specifies;
the registry client adds the registry and repository to the message.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = [
    "ACCEPT",
    "INDEX_TYPES",
    "MANIFEST_TYPES",
    "ManifestError",
    "Platform",
    "config_digest",
    "created_time",
    "is_index",
    "parse_json_object",
    "select_platform",
    "verify_digest",
]

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})
MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
ACCEPT = ", ".join((OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST))
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
# RFC 3339 as Go writes it: up to nanoseconds, "Z" or an offset
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))"
)


class ManifestError(ValueError):
    """A registry answer that does not follow the API (the message says what is wrong)."""


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""

    @classmethod
    def parse(cls, text: str) -> Platform:
        """``linux/amd64`` or ``linux/arm64/v8``; ValueError otherwise."""
        parts = text.strip().split("/")
        if len(parts) not in (2, 3) or not all(re.fullmatch(r"[a-z0-9_.-]+", p) for p in parts):
            raise ValueError(f"{text!r} is not a platform (like linux/amd64 or linux/arm/v7)")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else "")

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


def parse_json_object(body: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        raise ManifestError("the answer is not JSON") from None
    if not isinstance(doc, dict):
        raise ManifestError("the answer is not a JSON object")
    return doc


def media_type(doc: dict[str, Any], content_type: str | None) -> str:
    """The manifest's media type: its own ``mediaType`` field, else the response's Content-Type."""
    declared = doc.get("mediaType")
    if isinstance(declared, str) and declared:
        return declared
    return (content_type or "").split(";", 1)[0].strip()


def is_index(doc: dict[str, Any], content_type: str | None) -> bool:
    kind = media_type(doc, content_type)
    if kind in INDEX_TYPES:
        return True
    if kind in MANIFEST_TYPES:
        return False
    # an OCI index may omit mediaType; its "manifests" list tells it from an image manifest
    if not kind and isinstance(doc.get("manifests"), list) and "config" not in doc:
        return True
    if not kind and isinstance(doc.get("config"), dict):
        return False
    raise ManifestError(f"unsupported manifest type {kind[:100]!r}" if kind else "unknown manifest type")


def _digest(value: Any, what: str) -> str:
    if not isinstance(value, str) or not _DIGEST.fullmatch(value):
        raise ManifestError(f"{what}: unsupported digest {str(value)[:80]!r}")
    return value


def select_platform(index: dict[str, Any], wanted: Platform) -> str:
    """The digest of the entry of a manifest list / OCI index for ``wanted``. An entry without
    a variant matches a wanted variant only when no entry names that variant (``linux/arm64``
    images rarely say ``v8``). The first of equal entries wins, as Docker does."""
    entries = index.get("manifests")
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ManifestError("malformed index (manifests is not a list of objects)")
    exact: list[dict[str, Any]] = []
    loose: list[dict[str, Any]] = []
    for entry in entries:
        platform = entry.get("platform")
        if not isinstance(platform, dict):
            continue  # attestations and other artefacts carry no platform
        if platform.get("os") != wanted.os or platform.get("architecture") != wanted.architecture:
            continue
        variant = platform.get("variant") or ""
        if variant == wanted.variant:
            exact.append(entry)
        elif not variant or not wanted.variant:
            loose.append(entry)
    if not exact and not loose:
        available = sorted(
            {
                str(
                    Platform(
                        str(p.get("os", "?")), str(p.get("architecture", "?")), str(p.get("variant") or "")
                    )
                )
                for e in entries
                if isinstance(p := e.get("platform"), dict)
            }
        )
        raise ManifestError(f"no image for {wanted} (platforms: {', '.join(available) or 'none'})")
    return _digest((exact or loose)[0].get("digest"), f"index entry for {wanted}")


def config_digest(manifest: dict[str, Any]) -> str:
    config = manifest.get("config")
    if not isinstance(config, dict):
        raise ManifestError("malformed image manifest (no config descriptor)")
    return _digest(config.get("digest"), "config descriptor")


def created_time(config_blob: bytes) -> datetime | None:
    """The image's ``created`` time from its config blob, or None when the image does not say
    (reproducible builds may leave it out or set it to the epoch: both are "unknown")."""
    doc = parse_json_object(config_blob)
    value = doc.get("created")
    if value is None:
        return None
    if not isinstance(value, str):
        raise ManifestError("malformed image config ('created' is not a string)")
    m = _RFC3339.fullmatch(value.strip())
    if m is None:
        raise ManifestError(f"malformed image config ('created' is not an RFC 3339 time: {value[:40]!r})")
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    micro = int((m.group(7) or "0").ljust(9, "0")[:6])
    try:
        when = datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)
    except ValueError:
        raise ManifestError(
            f"malformed image config ('created' is not a valid time: {value[:40]!r})"
        ) from None
    if m.group(9):  # local time at an offset: UTC is that time minus the offset
        offset = timedelta(hours=int(m.group(10)), minutes=int(m.group(11)))
        when = when - offset if m.group(9) == "+" else when + offset
    if when.timestamp() <= 0:
        return None
    return when


def verify_digest(body: bytes, expected: str, what: str) -> None:
    """Content fetched by digest must hash to that digest (a registry or proxy that serves
    something else is not trusted)."""
    actual = "sha256:" + hashlib.sha256(body).hexdigest()
    if actual != expected:
        raise ManifestError(f"{what}: content does not match its digest {expected}")
