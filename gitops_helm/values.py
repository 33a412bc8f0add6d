"""Compose a release's values from every source a HelmRelease names.

Place in the data flow: after the chart is fetched and before planning. The reconciler calls
:func:`compose_values` with the HelmRelease's value sources and a :class:`ValuesSourceReader`
(an adapter that reads ConfigMaps, Secrets, URLs and chart files). The result carries the
merged values (given to ``helm`` as the user-supplied values), their :attr:`digest` (one input
of the release digest that ``release.plan`` compares), a provenance map for debugging, and the
ConfigMaps/Secrets referenced, which the controller watches to re-reconcile when they change.

This module does no I/O itself: everything is read through the injected reader.

Merge order, lowest precedence first (Helm Operator semantics):
``valueFileSecrets`` (each is a ``secretKeyRef`` with key ``values.yaml``), then ``valuesFrom``
in list order, then the inline ``values``. Deep merge: map over map recurses; any other value
(scalars, lists, null) replaces; a map over a non-map replaces; a missing key is copied.

Failure rules:

* ConfigMap/Secret not found (the reader returns None): skipped when ``optional``, else an
  error. Any other read error (the reader raises) fails even when ``optional``.
* Key missing from the object: skipped when ``optional``, else an error.
* URL and chart file: the reader raises :class:`SourceNotFound` for "does not exist" (HTTP 404,
  missing file), which ``optional`` forgives; any other failure is an error even when
  ``optional``. The Helm Operator let ``optional`` forgive every failure of these two
  sources; a transient network error would then silently drop values and upgrade the release
  without them, so we deliberately do not copy that.
* Content that is not YAML, or is YAML but not a mapping, or holds something JSON cannot
  represent (``!!binary`` included: helm would see other bytes than we would), or breaks a limit
  of ``yamlio``: an error unless ``optional`` (then skipped). An empty document is ``{}``.
  Decoding is ``yamlio``'s, as for manifests (timestamps stay strings, keys become strings by
  Kubernetes' rule), except that a key written twice is not an error: the last one wins, as in
  helm.
* ``chartFileRef.path`` must stay inside the chart directory: an absolute path or one whose
  ``..`` parts leave the directory is an error (never optional) and is never read.
* With ``allow_cross_namespace=False`` a ConfigMap/Secret in another namespace than the
  HelmRelease's is an error (never optional).

Every failure raises one :class:`ValuesError` whose message names the source, for example
``valuesFrom[1] configMapKeyRef default/app-values key values.yaml: not valid YAML: line 3,
column 7: mapping values are not allowed here``. Errors about Secret content give only the
position, never the text. :class:`ComposedValues` keeps the values out of its ``repr``.

Provenance (``gitops-helm explain values``): :func:`read_layers` reads the sources into
:class:`ValuesLayer` documents in merge order, which :func:`compose_values` merges; :func:`explain_values`
puts the chart's own ``values.yaml`` under them (helm applies the chart defaults under the
user-supplied values) and merges the same layers with :func:`merge_values` while recording, for
every leaf of the result, which layer set it and which earlier settings it replaced. A value a
Secret gave is kept out of the explanation: it shows :data:`REDACTED` and the Secret's name and key.
"""

from __future__ import annotations

import hashlib
import json
import math
import posixpath
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from gitops_helm import yamlio
from gitops_helm.adapters.http import redact_url
from gitops_helm.api.spec import (
    ConfigMapValuesSource,
    ExternalValuesSource,
    SecretValuesSource,
    ValuesSource,
)
from gitops_helm.errors import GitopsHelmError

__all__ = [
    "CHART_DEFAULTS_FILE",
    "REDACTED",
    "ComposedValues",
    "ExplainedLeaf",
    "Setting",
    "SourceNotFound",
    "ValuesError",
    "ValuesExplanation",
    "ValuesLayer",
    "ValuesLayers",
    "ValuesSourceReader",
    "ValuesSpec",
    "WatchedObject",
    "compose_values",
    "explain_layers",
    "explain_values",
    "merge_values",
    "read_layers",
    "referenced_objects",
    "values_digest",
]

_MAX_NODES = yamlio.LIMITS.max_nodes  # bounds inline values as YAML sources are bounded


# ---------------------------------------------------------------------------------------------
# inputs


@dataclass(frozen=True)
class ValuesSpec:
    """The value sources of one HelmRelease.

    ``values_from`` may hold None for an entry that sets no source (a no-op that keeps the
    indices in messages equal to the user's list).
    """

    namespace: str  # the HelmRelease's namespace (not targetNamespace)
    values_from: Sequence[ValuesSource | None] = ()
    value_file_secrets: Sequence[SecretValuesSource] = ()  # deprecated spec.valueFileSecrets
    values: Mapping[str, Any] | None = None  # spec.values


class SourceNotFound(Exception):
    """Raised by a reader's ``url``/``chart_file`` when the source does not exist."""


class ValuesSourceReader(Protocol):
    """What :func:`compose_values` needs from the outside world (implemented by an adapter)."""

    def configmap(self, namespace: str, name: str) -> Mapping[str, str] | None:
        """The ConfigMap's ``data``, or None when it does not exist. Other errors raise."""
        ...

    def secret(self, namespace: str, name: str) -> Mapping[str, bytes] | None:
        """The Secret's decoded ``data``, or None when it does not exist. Other errors raise."""
        ...

    def url(self, url: str) -> bytes:
        """The body of a GET; raises :class:`SourceNotFound` for 404, other errors otherwise."""
        ...

    def chart_file(self, path: str) -> bytes:
        """A file of the chart; ``path`` is normalised, relative, and inside the chart."""
        ...


# ---------------------------------------------------------------------------------------------
# outputs


@dataclass(frozen=True, order=True)
class WatchedObject:
    """A ConfigMap or Secret the values depend on (for watches)."""

    kind: Literal["ConfigMap", "Secret"]
    namespace: str
    name: str


@dataclass(frozen=True)
class ComposedValues:
    """The result of :func:`compose_values`."""

    values: dict[str, Any] = field(repr=False)  # may hold Secret data: never logged
    digest: str  # "sha256:<hex>" of the canonical JSON of ``values``
    provenance: Mapping[str, tuple[str, ...]]  # top-level key -> sources that set it, in order
    references: tuple[WatchedObject, ...]  # ConfigMaps/Secrets to watch, in first-use order
    skipped: tuple[str, ...] = ()  # optional sources that were absent or unusable


class ValuesError(GitopsHelmError):
    """Values could not be composed. ``references`` still lists what to watch."""

    def __init__(self, message: str, references: tuple[WatchedObject, ...] = ()) -> None:
        super().__init__(message)
        self.references = references


class _SourceFailure(Exception):
    """Internal: a failure of one source, with whether ``optional`` may forgive it."""

    def __init__(self, message: str, *, forgivable: bool) -> None:
        super().__init__(message)
        self.forgivable = forgivable


# ---------------------------------------------------------------------------------------------
# merging and hashing


#: Stands for an absent key in a :data:`ReplaceHook` call.
_ABSENT: Any = object()

#: Told of every key a merge sets without recursing: (path, value before or ``_ABSENT``, new value).
ReplaceHook = Callable[[tuple[str, ...], Any, Any], None]


def merge_values(
    base: Mapping[str, Any], overlay: Mapping[str, Any], on_replace: ReplaceHook | None = None
) -> dict[str, Any]:
    """Deep-merge ``overlay`` onto ``base`` and return a new dict (inputs are not changed).

    ``on_replace`` (for provenance) is called for every key the overlay sets without recursing."""
    return _merge(base, overlay, (), on_replace)


def _merge(
    base: Mapping[str, Any], overlay: Mapping[str, Any], path: tuple[str, ...], on_replace: ReplaceHook | None
) -> dict[str, Any]:
    out = dict(base)
    for key, value in overlay.items():
        current = out.get(key, _ABSENT)
        if isinstance(value, Mapping) and isinstance(current, Mapping):
            out[key] = _merge(current, value, (*path, key), on_replace)
        else:
            if on_replace is not None:
                on_replace((*path, key), current, value)
            out[key] = value
    return out


def values_digest(values: Mapping[str, Any]) -> str:
    """``sha256:`` of canonical JSON: key order does not matter, value types do (1 != "1")."""
    canonical = json.dumps(values, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _key_text(key: object, where: str) -> str:
    try:
        return yamlio.key_text(key)  # the one rule, shared with manifests (Kubernetes' own)
    except TypeError:
        raise _SourceFailure(
            f"unsupported map key of type {type(key).__name__} at {where or '.'}", forgivable=True
        ) from None


def _normalise(value: object, where: str, budget: list[int]) -> Any:
    """Copy ``value`` into plain JSON types, or raise naming the path of the bad node."""
    budget[0] -= 1
    if budget[0] < 0:
        raise _SourceFailure(f"more than {_MAX_NODES} nodes (alias expansion?)", forgivable=True)
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            text = _key_text(k, where)
            out[text] = _normalise(v, f"{where}.{text}", budget)
        return out
    if isinstance(value, list | tuple):
        return [_normalise(v, f"{where}[{i}]", budget) for i, v in enumerate(value)]
    if isinstance(value, float) and not math.isfinite(value):
        raise _SourceFailure(f"{value} is not representable in JSON at {where or '.'}", forgivable=True)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise _SourceFailure(
        f"unsupported value of type {type(value).__name__} at {where or '.'}", forgivable=True
    )


def _parse_document(raw: bytes | str, *, sensitive: bool) -> dict[str, Any]:
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _SourceFailure(f"not valid UTF-8 at byte {exc.start}", forgivable=True) from None
    else:
        text = raw
    try:
        # helm's rule for values files: a key written twice is not an error, the last one wins
        doc = yamlio.load(text, unique_keys=False)
    except yamlio.YAMLError as exc:
        what = "not valid YAML" if exc.syntax else "unusable YAML"
        where = exc.position or "unknown position"
        detail = "" if sensitive else f": {exc.problem}"  # the problem may quote the text
        raise _SourceFailure(f"{what}: {where}{detail}", forgivable=True) from None
    if doc is None:
        return {}
    if not isinstance(doc, Mapping):
        raise _SourceFailure(f"YAML is a {type(doc).__name__}, not a mapping", forgivable=True)
    try:
        normalised: dict[str, Any] = _normalise(doc, "", [_MAX_NODES])
    except _SourceFailure:
        if sensitive:  # the path could name secret material: say only what kind of problem
            raise _SourceFailure("holds a value that JSON cannot represent", forgivable=True) from None
        raise
    return normalised


# ---------------------------------------------------------------------------------------------
# composing


@dataclass(frozen=True)
class _Resolved:
    label: str
    source: ValuesSource
    namespace: str | None  # for ConfigMap/Secret
    key: str | None


def _resolve(spec: ValuesSpec) -> list[_Resolved]:
    """Turn the spec into labelled sources in merge order, defaults applied."""
    out: list[_Resolved] = []
    for i, ref in enumerate(spec.value_file_secrets):
        label = f"valueFileSecrets[{i}] secretKeyRef {ref.namespace}/{ref.name} key {ref.key}"
        out.append(_Resolved(label, ref, ref.namespace, ref.key))
    for i, src in enumerate(spec.values_from):
        if src is None:
            continue
        if isinstance(src, ConfigMapValuesSource | SecretValuesSource):
            ns, key = src.namespace, src.key
            kind = "configMapKeyRef" if isinstance(src, ConfigMapValuesSource) else "secretKeyRef"
            out.append(_Resolved(f"valuesFrom[{i}] {kind} {ns}/{src.name} key {key}", src, ns, key))
        elif isinstance(src, ExternalValuesSource):
            # the URL may carry credentials or a token in its query: never into status or logs
            shown = redact_url(src.url)
            out.append(_Resolved(f"valuesFrom[{i}] externalSourceRef {shown}", src, None, None))
        else:
            out.append(_Resolved(f"valuesFrom[{i}] chartFileRef {src.path}", src, None, None))
    return out


def referenced_objects(spec: ValuesSpec, *, allow_cross_namespace: bool = True) -> tuple[WatchedObject, ...]:
    """The ConfigMaps and Secrets ``spec`` reads, without reading them (for watches)."""
    seen: dict[WatchedObject, None] = {}
    for r in _resolve(spec):
        if r.namespace is None or (not allow_cross_namespace and r.namespace != spec.namespace):
            continue
        if isinstance(r.source, ConfigMapValuesSource):
            seen.setdefault(WatchedObject("ConfigMap", r.namespace, r.source.name), None)
        elif isinstance(r.source, SecretValuesSource):
            seen.setdefault(WatchedObject("Secret", r.namespace, r.source.name), None)
    return tuple(seen)


def _safe_chart_path(path: str) -> str | None:
    """The normalised relative path, or None when it would leave the chart directory."""
    if not path or "\x00" in path or path.startswith(("/", "\\")) or "\\" in path:
        return None
    norm = posixpath.normpath(path)
    if norm == ".." or norm.startswith("../") or norm == ".":
        return None
    return norm


def _describe_read_error(exc: Exception) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _read(r: _Resolved, reader: ValuesSourceReader) -> dict[str, Any] | None:
    """Read and parse one source; None means "absent and optional: skip"."""
    src = r.source
    if isinstance(src, ConfigMapValuesSource | SecretValuesSource):
        assert r.namespace is not None and r.key is not None  # noqa: S101 - set by _resolve
        is_secret = isinstance(src, SecretValuesSource)
        kind = "Secret" if is_secret else "ConfigMap"
        try:
            data: Mapping[str, str] | Mapping[str, bytes] | None = (
                reader.secret(r.namespace, src.name) if is_secret else reader.configmap(r.namespace, src.name)
            )
        except Exception as exc:  # the adapter's error, whatever it is, fails the source
            raise _SourceFailure(
                f"cannot read {kind}: {_describe_read_error(exc)}", forgivable=False
            ) from None
        if data is None:
            if src.optional:
                return None
            raise _SourceFailure(f"{kind} not found", forgivable=False)
        if r.key not in data:
            if src.optional:
                return None
            raise _SourceFailure(f"{kind} has no key {r.key!r}", forgivable=False)
        return _parse_document(data[r.key], sensitive=is_secret)
    if isinstance(src, ExternalValuesSource):
        try:
            body = reader.url(src.url)
        except SourceNotFound:
            if src.optional:
                return None
            raise _SourceFailure("not found", forgivable=False) from None
        except Exception as exc:
            raise _SourceFailure(f"cannot fetch: {_describe_read_error(exc)}", forgivable=False) from None
        return _parse_document(body, sensitive=False)
    path = _safe_chart_path(src.path)
    if path is None:
        raise _SourceFailure(f"path {src.path!r} leaves the chart directory", forgivable=False)
    try:
        body = reader.chart_file(path)
    except SourceNotFound:
        if src.optional:
            return None
        raise _SourceFailure("file not found in chart", forgivable=False) from None
    except Exception as exc:
        raise _SourceFailure(
            f"cannot read chart file: {_describe_read_error(exc)}", forgivable=False
        ) from None
    return _parse_document(body, sensitive=False)


@dataclass(frozen=True)
class ValuesLayer:
    """One source's document, as merged: ``label`` names the source (as in error messages)."""

    label: str
    doc: dict[str, Any] = field(repr=False)
    sensitive: bool = False  # a Secret's: its values are never shown


@dataclass(frozen=True)
class ValuesLayers:
    """The result of :func:`read_layers`: the documents in merge order, lowest precedence first."""

    layers: tuple[ValuesLayer, ...]
    references: tuple[WatchedObject, ...]
    skipped: tuple[str, ...] = ()


def read_layers(
    spec: ValuesSpec, reader: ValuesSourceReader, *, allow_cross_namespace: bool = True
) -> ValuesLayers:
    """Read every source of ``spec`` through ``reader``, in merge order (see module doc).

    Raises :class:`ValuesError` naming the failing source; never another exception type
    for bad input (a bug in the reader is reported as a read error of that source).
    """
    references = referenced_objects(spec, allow_cross_namespace=allow_cross_namespace)
    layers: list[ValuesLayer] = []
    skipped: list[str] = []
    for r in _resolve(spec):
        if r.namespace is not None and not allow_cross_namespace and r.namespace != spec.namespace:
            raise ValuesError(
                f"{r.label}: references namespace {r.namespace!r}; cross-namespace references are "
                f"disabled (the HelmRelease is in {spec.namespace!r})",
                references,
            )
        try:
            doc = _read(r, reader)
        except _SourceFailure as failure:
            optional = r.source.optional
            if optional and failure.forgivable:
                skipped.append(f"{r.label}: {failure}")
                continue
            raise ValuesError(f"{r.label}: {failure}", references) from None
        if doc is None:
            skipped.append(f"{r.label}: not found")
            continue
        layers.append(ValuesLayer(r.label, doc, sensitive=isinstance(r.source, SecretValuesSource)))

    if spec.values:
        try:
            inline = _normalise(dict(spec.values), "", [_MAX_NODES])
        except _SourceFailure as failure:
            raise ValuesError(f"values: {failure}", references) from None
        layers.append(ValuesLayer("values", inline))
    return ValuesLayers(tuple(layers), references, tuple(skipped))


def compose_values(
    spec: ValuesSpec, reader: ValuesSourceReader, *, allow_cross_namespace: bool = True
) -> ComposedValues:
    """Read every source of ``spec`` through ``reader`` and merge them (see module doc).

    Raises :class:`ValuesError` naming the failing source; never another exception type
    for bad input (a bug in the reader is reported as a read error of that source).
    """
    read = read_layers(spec, reader, allow_cross_namespace=allow_cross_namespace)
    merged: dict[str, Any] = {}
    provenance: dict[str, tuple[str, ...]] = {}
    for layer in read.layers:
        merged = merge_values(merged, layer.doc)
        for key in layer.doc:
            provenance[key] = (*provenance.get(key, ()), layer.label)
    return ComposedValues(
        values=merged,
        digest=values_digest(merged),
        provenance=provenance,
        references=read.references,
        skipped=read.skipped,
    )


# ---------------------------------------------------------------------------------------------
# provenance: which source set each value, and which settings it replaced

#: What is shown instead of a value a Secret gave.
REDACTED = "<redacted>"
#: The chart's own defaults, read from the fetched chart directory.
CHART_DEFAULTS_FILE = "values.yaml"


@dataclass(frozen=True)
class Setting:
    """One source setting one place of the values: ``value`` is :data:`REDACTED` when
    ``sensitive``. ``path`` may differ from the leaf it explains: a map replaced by a scalar
    (or the reverse) is explained by every setting under or above it."""

    layer: int  # index of the source in :attr:`ValuesExplanation.sources`
    source: str
    path: tuple[str, ...]
    value: Any
    sensitive: bool


@dataclass(frozen=True)
class ExplainedLeaf:
    """A leaf of the final values (a scalar, a list, null or an empty map) and its chain: every
    setting of it (or of a place above or below it) in merge order; the last one is in effect."""

    path: tuple[str, ...]
    chain: tuple[Setting, ...]
    removed: bool = False  # null over a chart default: helm drops the key from the final values

    @property
    def winner(self) -> Setting:
        return self.chain[-1]

    @property
    def value(self) -> Any:
        return self.winner.value

    @property
    def overridden(self) -> tuple[Setting, ...]:
        return self.chain[:-1]


@dataclass(frozen=True)
class ValuesExplanation:
    """Where each value of a release comes from (:func:`explain_values`)."""

    sources: tuple[ValuesLayer, ...]  # merge order, lowest precedence first
    leaves: tuple[ExplainedLeaf, ...]  # in the order of the merged values
    merged: dict[str, Any] = field(repr=False)  # the real values: may hold Secret data
    skipped: tuple[str, ...] = ()

    def shown(self) -> dict[str, Any]:
        """The final values as they may be shown: Secret-given leaves redacted, removed ones out."""
        out: dict[str, Any] = {}
        for leaf in self.leaves:
            if leaf.removed:
                continue
            node = out
            for key in leaf.path[:-1]:
                node = node.setdefault(key, {})
            node[leaf.path[-1]] = leaf.value
        return out


def _leaves(value: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
    """The leaves of ``value`` placed at ``path``: an empty map is a leaf, a list is one."""
    if isinstance(value, Mapping) and value:
        for key, child in value.items():
            yield from _leaves(child, (*path, key))
    else:
        yield path, value


Chains = dict[tuple[str, ...], list[Setting]]


def _setting(index: int, layer: ValuesLayer, path: tuple[str, ...], value: Any) -> Setting:
    shown = REDACTED if layer.sensitive else value
    return Setting(index, layer.label, path, shown, layer.sensitive)


def _merge_explained(
    base: Mapping[str, Any], base_chains: Chains, overlay: Mapping[str, Any], overlay_chains: Chains
) -> tuple[dict[str, Any], Chains]:
    """:func:`merge_values` of ``overlay`` onto ``base``, and the chain of every leaf of the
    result: a leaf the overlay set inherits the chains of the base's leaves it replaced."""
    chains = dict(base_chains)

    def on_replace(path: tuple[str, ...], before: Any, after: Any) -> None:
        inherited: list[Setting] = []
        for depth in range(1, len(path)):  # an empty map above, now holding a key
            inherited += chains.pop(path[:depth], [])
        if before is not _ABSENT:
            for old_path, _old in _leaves(before, path):
                inherited += chains.pop(old_path, [])
        # one setting may have been inherited by several leaves that are replaced together
        unique = list({id(setting): setting for setting in inherited}.values())
        for new_path, _value in _leaves(after, path):
            chains[new_path] = sorted([*unique, *overlay_chains[new_path]], key=lambda s: s.layer)

    return merge_values(base, overlay, on_replace), chains


def _explained_layer(index: int, layer: ValuesLayer) -> Chains:
    return {path: [_setting(index, layer, path, value)] for path, value in _leaves(layer.doc, ()) if path}


def explain_layers(
    layers: Sequence[ValuesLayer], skipped: Sequence[str] = (), *, chart_defaults: bool = False
) -> ValuesExplanation:
    """Merge ``layers`` as the release gets them, recording every leaf's chain.

    The user-supplied values are the layers merged in order, as :func:`compose_values` merges
    them. With ``chart_defaults`` the first layer is the chart's ``values.yaml``, which helm puts
    *under* those composed values (not under the first source: a source's scalar that a later
    source's map replaced does not hide the chart's defaults below that map); a null set over a
    chart default is marked ``removed`` (helm deletes that key)."""
    user = list(enumerate(layers))[1:] if chart_defaults else list(enumerate(layers))
    merged: dict[str, Any] = {}
    chains: Chains = {}
    for index, layer in user:
        merged, chains = _merge_explained(merged, chains, layer.doc, _explained_layer(index, layer))
    if chart_defaults and layers:
        merged, chains = _merge_explained(layers[0].doc, _explained_layer(0, layers[0]), merged, chains)
    leaves = []
    for path, value in _leaves(merged, ()):
        if not path:  # nothing was set at all
            continue
        chain = tuple(chains[path])
        removed = chart_defaults and value is None and any(s.layer == 0 for s in chain)
        leaves.append(ExplainedLeaf(path, chain, removed))
    return ValuesExplanation(tuple(layers), tuple(leaves), merged, tuple(skipped))


def explain_values(
    spec: ValuesSpec,
    reader: ValuesSourceReader,
    *,
    chart: str | None = None,
    allow_cross_namespace: bool = True,
) -> ValuesExplanation:
    """The values of a release and where each comes from: the chart's ``values.yaml`` (read
    through ``reader.chart_file``; ``chart`` names it, None leaves the chart defaults out),
    under the sources of ``spec`` in merge order. Errors as :func:`compose_values`."""
    read = read_layers(spec, reader, allow_cross_namespace=allow_cross_namespace)
    layers = list(read.layers)
    has_defaults = False
    if chart is not None:
        label = f"chart default ({chart} {CHART_DEFAULTS_FILE})"
        try:
            body = reader.chart_file(CHART_DEFAULTS_FILE)
        except SourceNotFound:
            body = None  # a chart without values.yaml has no defaults
        except Exception as exc:
            raise ValuesError(f"{label}: cannot read: {_describe_read_error(exc)}", read.references) from None
        if body is not None:
            try:
                defaults = _parse_document(body, sensitive=False)
            except _SourceFailure as failure:
                raise ValuesError(f"{label}: {failure}", read.references) from None
            layers.insert(0, ValuesLayer(label, defaults))
            has_defaults = True
    return explain_layers(layers, read.skipped, chart_defaults=has_defaults)
