"""ConfigMaps and Secrets declared as manifests, read as the cluster would return them.

Place in the flow: ``gitops-helm render`` (``render.py``) renders HelmReleases without a cluster;
where the running agent reads a ``valuesFrom`` ConfigMap or Secret (or a ``chartPullSecret``,
``chart.secretRef``) through the Kubernetes adapter, render reads the same object from the
manifests found beside the HelmReleases. :class:`ManifestObjects` answers the adapter's two reads,
``get_configmap_data`` and ``get_secret_data``, with the same shapes, so the values pipeline
(``values.compose_values`` over ``values_reader.ClusterValuesReader``) and the chart sources run
unchanged.

Rules, as the API server would apply them:

* an object without ``metadata.namespace`` lives in the default namespace given (as the Git sync
  applies it);
* a Secret's ``data`` is base64 and decoded here; ``stringData`` is written as is and wins over
  ``data`` for the same key; a ConfigMap's ``data`` values are strings (``binaryData`` is not
  read, as the agent does not read it);
* an object not declared is "not found" (None), which ``optional: true`` forgives; an object whose
  content the API server would refuse (a value that is not a string, bad base64) raises
  :class:`ManifestObjectError` naming the object, its file and the key, never the value.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from gitops_helm.errors import GitopsHelmError

__all__ = ["DeclaredObject", "ManifestObjectError", "ManifestObjects"]

Kind = Literal["ConfigMap", "Secret"]


class ManifestObjectError(GitopsHelmError):
    """A ConfigMap or Secret manifest that the API server would not accept as written."""


@dataclass(frozen=True)
class DeclaredObject:
    """One ConfigMap or Secret manifest and where it was written (``file:line``)."""

    body: Mapping[str, Any]
    origin: str


def _kind_of(body: Mapping[str, Any]) -> Kind | None:
    if body.get("apiVersion") != "v1":
        return None
    kind = body.get("kind")
    if kind == "ConfigMap":
        return "ConfigMap"
    if kind == "Secret":
        return "Secret"
    return None


class ManifestObjects:
    """Reads of ConfigMaps and Secrets answered from manifests (see the module docstring)."""

    def __init__(self, objects: Iterable[DeclaredObject], default_namespace: str) -> None:
        self._objects: dict[tuple[Kind, str, str], DeclaredObject] = {}
        for declared in objects:
            body = declared.body
            kind = _kind_of(body)
            metadata = body.get("metadata")
            if kind is None or not isinstance(metadata, Mapping):
                continue
            name = metadata.get("name")
            namespace = metadata.get("namespace") or default_namespace
            if isinstance(name, str) and isinstance(namespace, str):
                # discovery already refuses duplicates; the first one declared wins regardless
                self._objects.setdefault((kind, namespace, name), declared)

    def __contains__(self, key: tuple[Kind, str, str]) -> bool:
        return key in self._objects

    def get_configmap_data(self, namespace: str, name: str) -> dict[str, str] | None:
        declared = self._objects.get(("ConfigMap", namespace, name))
        if declared is None:
            return None
        what = f"ConfigMap {namespace}/{name} ({declared.origin})"
        data = _mapping(declared.body, "data", what)
        out: dict[str, str] = {}
        for key, value in data.items():
            if not isinstance(value, str):
                raise ManifestObjectError(f"{what}: data.{key} is not a string")
            out[str(key)] = value
        return out

    def get_secret_data(self, namespace: str, name: str) -> dict[str, bytes] | None:
        declared = self._objects.get(("Secret", namespace, name))
        if declared is None:
            return None
        what = f"Secret {namespace}/{name} ({declared.origin})"
        out: dict[str, bytes] = {}
        for key, value in _mapping(declared.body, "data", what).items():
            if not isinstance(value, str):
                raise ManifestObjectError(f"{what}: data.{key} is not a base64 string")
            try:
                out[str(key)] = base64.b64decode("".join(value.split()), validate=True)
            except (binascii.Error, ValueError):
                raise ManifestObjectError(f"{what}: data.{key} is not valid base64") from None
        for key, value in _mapping(declared.body, "stringData", what).items():
            if not isinstance(value, str):
                raise ManifestObjectError(f"{what}: stringData.{key} is not a string")
            out[str(key)] = value.encode("utf-8")
        return out


def _mapping(body: Mapping[str, Any], field: str, what: str) -> Mapping[str, Any]:
    value = body.get(field)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ManifestObjectError(f"{what}: {field} is not a mapping")
    return value
