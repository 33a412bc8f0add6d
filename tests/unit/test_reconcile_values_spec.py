"""The reconciler hands the parsed spec to values composition without renumbering sources."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from gitops_helm.api import parse_helmrelease
from gitops_helm.release.values_reader import values_spec
from gitops_helm.values import SourceNotFound, ValuesError, compose_values


class Reader:
    def configmap(self, namespace: str, name: str) -> Mapping[str, str] | None:
        return None

    def secret(self, namespace: str, name: str) -> Mapping[str, bytes] | None:
        return {"values.yaml": b"a: 1\n"}

    def url(self, url: str) -> bytes:
        raise SourceNotFound(url)

    def chart_file(self, path: str) -> bytes:
        raise SourceNotFound(path)


def test_errors_name_the_users_valuesfrom_index_even_with_value_file_secrets() -> None:
    hr = parse_helmrelease(
        {
            "apiVersion": "helm.fluxcd.io/v1",
            "kind": "HelmRelease",
            "metadata": {"name": "web", "namespace": "apps"},
            "spec": {
                "chart": {"repository": "https://charts.example.invalid", "name": "web", "version": "1.0.0"},
                "valueFileSecrets": [{"name": "legacy"}],
                "valuesFrom": [{"configMapKeyRef": {"name": "missing"}}],
            },
        }
    )
    with pytest.raises(ValuesError) as info:
        compose_values(values_spec(hr.namespace, hr.spec), Reader())
    assert str(info.value).startswith("valuesFrom[0] configMapKeyRef apps/missing key values.yaml")
