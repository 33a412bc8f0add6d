"""Push synthetic images to the test environment's real registries (docker-registry 2.8).

An image here is what a registry stores for a real one: a config blob (with a chosen ``created``
time), one small layer blob, and an OCI image manifest naming both; a multi-platform image is an
OCI index over such manifests. Blobs go up with the monolithic upload of the distribution API
(``POST /v2/<name>/blobs/uploads/`` then one ``PUT <location>&digest=...`` with the whole body).
The registry computes and checks every digest itself, so what a scan reads is what a registry
really serves.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urljoin

import requests

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
TIMEOUT = (10, 60)


@dataclass
class Registry:
    """A registry of the test environment: ``host:port`` over plain HTTP, with optional login."""

    host: str
    username: str | None = None
    password: str | None = None
    _uploaded_layers: dict[str, str] = field(default_factory=dict)

    def _auth(self) -> tuple[str, str] | None:
        return (self.username, self.password) if self.username and self.password else None

    def _url(self, path: str) -> str:
        return f"http://{self.host}/v2/{path}"

    def _layer(self, repo: str) -> tuple[bytes, str]:
        """One small layer per repository, uploaded once: every request to the htpasswd registry
        costs a bcrypt check, so a test pushes no more than it needs. (Images still differ: each
        has its own config.)"""
        layer = f"the layer of {repo}".encode()
        if repo not in self._uploaded_layers:
            self._uploaded_layers[repo] = self.push_blob(repo, layer)
        return layer, self._uploaded_layers[repo]

    def push_blob(self, repo: str, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        started = requests.post(self._url(f"{repo}/blobs/uploads/"), auth=self._auth(), timeout=TIMEOUT)
        assert started.status_code == 202, (
            f"upload of a blob to {repo}: HTTP {started.status_code} {started.text}"
        )
        location = urljoin(self._url(""), started.headers["Location"])
        separator = "&" if "?" in location else "?"
        done = requests.put(
            f"{location}{separator}digest={digest}",
            data=data,
            headers={"Content-Type": "application/octet-stream"},
            auth=self._auth(),
            timeout=TIMEOUT,
        )
        assert done.status_code == 201, f"upload of a blob to {repo}: HTTP {done.status_code} {done.text}"
        return digest

    def push_manifest(self, repo: str, reference: str, manifest: dict, media_type: str) -> str:  # type: ignore[type-arg]
        body = json.dumps(manifest).encode()
        resp = requests.put(
            self._url(f"{repo}/manifests/{reference}"),
            data=body,
            headers={"Content-Type": media_type},
            auth=self._auth(),
            timeout=TIMEOUT,
        )
        assert resp.status_code == 201, f"manifest {repo}:{reference}: HTTP {resp.status_code} {resp.text}"
        return "sha256:" + hashlib.sha256(body).hexdigest()

    def push_image(
        self, repo: str, tag: str | None, created: datetime | None, *, os: str = "linux", arch: str = "amd64"
    ) -> tuple[str, int]:
        """Push one image (tagged when ``tag`` is given); returns (manifest digest, manifest size)."""
        config: dict[str, object] = {
            "architecture": arch,
            "os": os,
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": []},
        }
        if created is not None:
            config["created"] = created.isoformat().replace("+00:00", "Z")
        config_bytes = json.dumps(config).encode()
        layer, layer_digest = self._layer(repo)
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": OCI_CONFIG,
                "digest": self.push_blob(repo, config_bytes),
                "size": len(config_bytes),
            },
            "layers": [{"mediaType": OCI_LAYER, "digest": layer_digest, "size": len(layer)}],
        }
        body = json.dumps(manifest).encode()
        reference = tag or "sha256:" + hashlib.sha256(body).hexdigest()
        digest = self.push_manifest(repo, reference, manifest, OCI_MANIFEST)
        return digest, len(body)

    def push_multi_platform(
        self, repo: str, tag: str, created_by_platform: dict[tuple[str, str], datetime]
    ) -> str:
        """Push one image per (os, arch) with its own ``created`` time, and an OCI index over them
        tagged ``tag``; returns the index digest."""
        entries = []
        for (os, arch), created in created_by_platform.items():
            digest, size = self.push_image(repo, None, created, os=os, arch=arch)
            entries.append(
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": digest,
                    "size": size,
                    "platform": {"os": os, "architecture": arch},
                }
            )
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
        return self.push_manifest(repo, tag, index, OCI_INDEX)


def unique_repo(prefix: str) -> str:
    """A repository name no other test (or branch tested at the same time) uses."""
    return f"{prefix}/app-{uuid.uuid4().hex[:10]}"
