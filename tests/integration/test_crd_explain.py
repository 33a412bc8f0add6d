"""`kubectl explain helmrelease.spec.X` shows the CRD's descriptions (the field reference's source).

The test installs a copy of the packaged CRD under a group of its own, so that agents of other tests,
which install the real CRD at start, cannot replace the schema under it; the schema is the same.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from gitops_helm.api.crd import load_crd
from gitops_helm.api.reference import fields
from tests.conftest import Env
from tests.integration.syncfix import wait_for


@pytest.fixture
def crd_group(env: Env) -> Iterator[str]:
    group = f"t{uuid.uuid4().hex[:8]}.docs.gitops-helm.io"
    crd = load_crd()
    crd["metadata"] = {"name": f"helmreleases.{group}"}
    crd["spec"]["group"] = group
    env.kubectl("apply", "-f", "-", input_text=json.dumps(crd))
    env.kubectl("wait", "--for=condition=Established", f"crd/helmreleases.{group}", "--timeout=60s")
    yield group
    env.kubectl("delete", "crd", f"helmreleases.{group}", "--wait=false", check=False)


def words(text: str) -> str:
    return " ".join(text.split())


def published_schema(env: Env, group: str) -> dict[str, Any] | None:
    """The HelmRelease schema as the API server publishes it to kubectl (OpenAPI v3)."""
    raw = env.run([env["KUBECTL_BIN"], "get", "--raw", f"/openapi/v3/apis/{group}/v1"], check=False)
    if raw.returncode != 0:
        return None
    schemas: dict[str, Any] = json.loads(raw.stdout)["components"]["schemas"]
    return next((s for name, s in schemas.items() if name.endswith(".v1.HelmRelease")), None)


def at(schema: dict[str, Any], path: str) -> dict[str, Any]:
    node = schema
    for part in path.split("."):
        node = node["properties"][part.removesuffix("[]")]
        if part.endswith("[]"):
            node = node["items"]
    return node


def test_kubectl_explain_shows_every_description(env: Env, crd_group: str) -> None:
    published = wait_for("the CRD's OpenAPI schema", lambda: published_schema(env, crd_group), timeout=120)
    ours = [f for f in fields(load_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"])]
    spec_and_status = [f for f in ours if f.path.startswith(("spec", "status"))]
    assert len(spec_and_status) > 100
    schema = load_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    differ = [
        f.path
        for f in spec_and_status
        if words(at(published, f.path).get("description", "")) != words(at(schema, f.path)["description"])
    ]
    assert differ == []

    def explain(field: str) -> str:
        # The API server's discovery document can name the new group a moment after its OpenAPI
        # schema is published, and kubectl answers "couldn't find resource" until it does.
        return str(
            wait_for(
                f"kubectl explain helmreleases.{field}",
                lambda: env.kubectl("explain", f"helmreleases.{field}", f"--api-version={crd_group}/v1"),
                timeout=60,
            )
        )

    for path in ("spec", "spec.chart.ref", "spec.rollback.maxRetries", "spec.valuesFrom.configMapKeyRef.key"):
        shown = words(explain(path))
        expected = words(at(schema, path.replace("valuesFrom.", "valuesFrom[].")).get("description", ""))
        assert expected and expected in shown, (path, shown)
    assert "Default: 5." in words(explain("spec.rollback.maxRetries"))
