"""B6 image scan: R image repositories of T tags each in the environment's open registry.

The images are real: per repository one config blob and one layer blob uploaded, and one OCI
manifest naming them pushed under each of the T tags (``PUT /v2/<name>/manifests/<tag>``); the
registry stores and serves them as it would any image. The repositories keep their names
(``bench-scan/t<T>-<i>``) so a later run on the same environment reuses them.

Measured with the agent's own ``images.registry.RegistryClient`` (plain HTTP to the local
registry, as ``--oci-plain-http`` does), its requests counted by the agent's own
``gitops_helm_registry_requests_total``: a first scan (cold caches), then a scan of the unchanged
repositories by the same client (target: one request per repository), each at the default
per-host rate limit (5 requests/s, burst 10) and at 1000 requests/s.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urljoin

import requests

from bench.framework import Context, Figure, benchmark
from gitops_helm import metrics
from gitops_helm.adapters.http import HTTPClient
from gitops_helm.config import ImageScanSettings
from gitops_helm.images.registry import ImageRepository, RegistryClient

TIMEOUT = (10, 60)
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _blob(session: requests.Session, base: str, repo: str, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    started = session.post(f"{base}/v2/{repo}/blobs/uploads/", timeout=TIMEOUT)
    started.raise_for_status()
    location = urljoin(f"{base}/v2/", started.headers["Location"])
    sep = "&" if "?" in location else "?"
    done = session.put(
        f"{location}{sep}digest={digest}",
        data=data,
        timeout=TIMEOUT,
        headers={"Content-Type": "application/octet-stream"},
    )
    done.raise_for_status()
    return digest


def _populate(host: str, repo: str, tags: int) -> None:
    """Give ``repo`` ``tags`` tags of one small image, unless it has them already."""
    base = f"http://{host}"
    with requests.Session() as session:
        listed = session.get(f"{base}/v2/{repo}/tags/list?n=10000", timeout=TIMEOUT)
        if listed.status_code == 200 and len(listed.json().get("tags") or []) >= tags:
            return
        config = json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "config": {},
                "rootfs": {"type": "layers", "diff_ids": []},
            }
        ).encode()
        layer = f"the layer of {repo}".encode()
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": _blob(session, base, repo, config),
                    "size": len(config),
                },
                "layers": [
                    {
                        "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                        "digest": _blob(session, base, repo, layer),
                        "size": len(layer),
                    }
                ],
            }
        ).encode()
        for t in range(tags):
            put = session.put(
                f"{base}/v2/{repo}/manifests/1.{t // 100}.{t % 100}",
                data=manifest,
                headers={"Content-Type": OCI_MANIFEST},
                timeout=TIMEOUT,
            )
            put.raise_for_status()


def _requests_total(host: str) -> float:
    total = 0.0
    for family in metrics.REGISTRY.collect():
        for sample in family.samples:
            if sample.name == "gitops_helm_registry_requests_total" and sample.labels.get("host") == host:
                total += sample.value
    return total


@benchmark(
    "B6",
    "images",
    "Image scan: R repositories x T tags, unchanged rescan",
    quick=(20,),
    full=(200,),
    repeats=(1, 3),
)
def run(ctx: Context, size: int) -> Iterator[Figure]:
    tags = 50 if ctx.quick else 300
    host = ctx.env["TESTENV_REGISTRY"]
    names = [f"bench-scan/t{tags}-{i:03d}" for i in range(size)]
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda name: _populate(host, name, tags), names))
    ctx.log(f"  {size} repositories of {tags} tags ready in {time.monotonic() - started:.0f}s")
    repositories = [ImageRepository.parse(f"{host}/{name}") for name in names]
    where = f"R={size} T={tags}"
    for label, rate in (("default rate limit", None), ("1000 req/s", 1000.0)):
        settings = ImageScanSettings() if rate is None else ImageScanSettings(rate_per_s=rate, burst=100)
        cold_s, cold_req, again_s, again_req = [], [], [], []
        for _ in range(ctx.repeats):
            with HTTPClient() as http:
                client = RegistryClient(settings, http, plain_http_hosts=[host])
                before = _requests_total(host)
                began = time.perf_counter()
                first = client.scan(repositories)
                cold_s.append(time.perf_counter() - began)
                middle = _requests_total(host)
                began = time.perf_counter()
                second = client.scan(repositories)
                again_s.append(time.perf_counter() - began)
                after = _requests_total(host)
            # both scans checked (a merge of the two keeps only the second's result per repository,
            # so a first scan that failed, then a rescan that succeeded, looked like two good scans)
            failed = [str(r) for scan in (first, second) for r, res in scan.items() if res.error is not None]
            if failed:
                raise RuntimeError(f"scan failed for {failed[:3]}")
            cold_req.append((middle - before) / size)
            again_req.append((after - middle) / size)
        yield Figure(f"first scan ({label}): time", "s", cold_s, size=where)
        yield Figure(f"first scan ({label}): requests per repository", "requests", cold_req, size=where)
        yield Figure(f"unchanged rescan ({label}): time", "s", again_s, size=where)
        yield Figure(
            f"unchanged rescan ({label}): requests per repository",
            "requests",
            again_req,
            size=where,
            target="1",
            met=max(again_req) <= 1.0,
            note="gitops_helm_registry_requests_total of the registry's host during the second "
            "scan by the same client / R",
        )
