"""The field reference page: every CRD field described, and the committed page equals the generated one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gitops_helm.api.crd import load_crd
from gitops_helm.api.reference import fields, render_reference, split_default

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "helmrelease-reference.md"


def schema() -> dict[str, Any]:
    result: dict[str, Any] = load_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return result


def test_every_field_of_the_crd_has_a_description() -> None:
    undescribed = [f.path for f in fields(schema()) if not f.description]
    assert undescribed == []


def test_the_committed_reference_is_the_generated_one() -> None:
    assert PAGE.read_text(encoding="utf-8") == render_reference(), (
        "docs/helmrelease-reference.md is stale: run "
        "`python -m gitops_helm.api.reference > docs/helmrelease-reference.md`"
    )


def test_the_page_lists_every_field_with_its_default() -> None:
    page = PAGE.read_text(encoding="utf-8")
    rows = {
        line.split(" | ")[0].removeprefix("| ").split(" ")[0].strip("`"): line for line in page.splitlines()
    }
    for path in (
        "spec.timeout",
        "spec.rollback.maxRetries",
        "spec.valuesFrom[].secretKeyRef.key",
        "status.phase",
    ):
        assert path in rows
    assert "| `300` |" in rows["spec.timeout"]
    assert "| `5` |" in rows["spec.rollback.maxRetries"]
    assert "| `values.yaml` |" in rows["spec.valuesFrom[].secretKeyRef.key"]
    assert (
        len([f for f in fields(schema())]) == len([r for r in rows if r.startswith(("spec", "status"))]) + 3
    )


def test_a_default_is_the_last_sentence() -> None:
    assert split_default("Seconds for the rollback. Default: 300.") == ("Seconds for the rollback.", "300")
    assert split_default("Name of the Secret.") == ("Name of the Secret.", "")
    assert split_default("Retries.\n  Default: true when retries is not 0.") == (
        "Retries.",
        "true when retries is not 0",
    )
