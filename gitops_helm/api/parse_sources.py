"""Parsing of the input sources of a release: `spec.chart` and the values sources.

Place in the data flow: called by `gitops_helm.api.parse` for `spec.chart`, `spec.valuesFrom`
and `spec.valueFileSecrets`; returns the typed sources of `gitops_helm.api.spec`.

Chart source selection (the Helm Operator's rule, made strict): a Git source is `git` + `path`;
a repository source is `repository` + `name` + `version`, and an `oci://` repository makes it an
OCI source. Exactly one complete source is required; setting both is an error (the operator
silently preferred Git). Fields of the other kind next to a complete source are ignored with a
warning, as the operator ignored them.

`valuesFrom` entries: each sets one of `configMapKeyRef`, `secretKeyRef`, `externalSourceRef`,
`chartFileRef`; when several are set the first in that order wins (the operator's rule) and the
others draw a warning. An entry that sets none is an error (the operator skipped it silently).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from gitops_helm.api.checks import (
    check_config_key,
    check_dns_label,
    check_dns_subdomain,
    check_no_credentials,
    check_plain,
    check_relative_path,
    check_repository_url,
    check_web_url,
)
from gitops_helm.api.fields import Reader, join, json_type
from gitops_helm.api.spec import (
    DEFAULT_VALUES_KEY,
    ChartFileValuesSource,
    ChartSource,
    ConfigMapValuesSource,
    ExternalValuesSource,
    GitChartSource,
    ObjectRef,
    OciChartSource,
    RepoChartSource,
    SecretValuesSource,
    ValuesSource,
)

__all__ = [
    "checked",
    "parse_chart",
    "parse_object_ref",
    "parse_ref_mapping",
    "parse_value_file_secrets",
    "parse_values_from",
]

_GIT_KEYS = ("git", "path")
_REPO_KEYS = ("repository", "name", "version")


def checked(r: Reader, value: str | None, path: str, *checks: Callable[[str], str | None]) -> str | None:
    """Run value checks on a string that was read; the first failing check records a problem."""
    if value is None:
        return None
    for check in checks:
        message = check(value)
        if message is not None:
            r.error(path, message)
            return None
    return value


def parse_object_ref(
    r: Reader, parent: Mapping[str, Any], key: str, at: str, namespace: str
) -> ObjectRef | None:
    """`{name, namespace?}`; the namespace defaults to `namespace` (the HelmRelease's)."""
    raw = r.mapping(parent, key, at)
    if raw is None:
        return None
    return parse_ref_mapping(r, raw, join(at, key), namespace)


def parse_ref_mapping(r: Reader, raw: Mapping[str, Any], at: str, namespace: str) -> ObjectRef | None:
    """`{name, namespace?}` read from `raw`, which lives at path `at`."""
    name = checked(r, r.string(raw, "name", at), join(at, "name"), check_dns_subdomain)
    ns = checked(r, r.optional_string(raw, "namespace", at), join(at, "namespace"), check_dns_label)
    return None if name is None else ObjectRef(name, ns or namespace)


def parse_chart(r: Reader, spec: Mapping[str, Any], namespace: str) -> ChartSource | None:
    at = "spec.chart"
    chart = r.mapping(spec, "chart", "spec", required=True)
    if chart is None:
        return None
    text = {k: r.optional_string(chart, k, at) for k in (*_GIT_KEYS, "ref", *_REPO_KEYS)}
    git_complete = all(text[k] for k in _GIT_KEYS)
    repo_complete = all(text[k] for k in _REPO_KEYS)

    if git_complete and repo_complete:
        r.error(
            at,
            "sets both a Git source (git, path) and a Helm repository source (repository, name, "
            "version); set only one",
        )
        return None
    if git_complete:
        _warn_unused(r, chart, at, (*_REPO_KEYS, "chartPullSecret", "plainHTTP"), "a Git chart source")
        return _git_chart(r, chart, at, text, namespace)
    if repo_complete:
        _warn_unused(
            r, chart, at, ("git", "path", "ref", "secretRef", "skipDepUpdate"), "a repository chart source"
        )
        return _repo_chart(r, chart, at, text)

    git_started = any(text[k] for k in _GIT_KEYS)
    repo_started = any(text[k] for k in _REPO_KEYS)
    for keys, started, kind in ((_GIT_KEYS, git_started, "Git"), (_REPO_KEYS, repo_started, "repository")):
        for key in keys if started else ():
            if not text[key] and chart.get(key) in (None, ""):
                r.error(join(at, key), f"required for a {kind} chart source")
    if not git_started and not repo_started:
        r.error(
            at,
            "no chart source: set git and path (a chart in Git), or repository, name and version "
            "(a chart in a Helm or OCI repository)",
        )
    return None


def _warn_unused(r: Reader, chart: Mapping[str, Any], at: str, keys: tuple[str, ...], kind: str) -> None:
    for key in keys:
        if chart.get(key) not in (None, "", False):
            r.warn(join(at, key), f"ignored for {kind}")


def _git_chart(
    r: Reader, chart: Mapping[str, Any], at: str, text: Mapping[str, str | None], namespace: str
) -> GitChartSource | None:
    git = checked(r, text["git"], join(at, "git"), check_plain, check_no_credentials)
    path = checked(r, text["path"], join(at, "path"), check_relative_path)
    ref = checked(r, text["ref"], join(at, "ref"), check_plain)
    secret_ref = parse_object_ref(r, chart, "secretRef", at, namespace)
    skip = r.boolean(chart, "skipDepUpdate", at, False)
    if git is None or path is None:
        return None
    return GitChartSource(git=git, path=path, ref=ref, secret_ref=secret_ref, skip_dep_update=skip)


def _repo_chart(
    r: Reader, chart: Mapping[str, Any], at: str, text: Mapping[str, str | None]
) -> RepoChartSource | OciChartSource | None:
    repository = checked(
        r, text["repository"], join(at, "repository"), check_repository_url, check_no_credentials
    )
    name = checked(r, text["name"], join(at, "name"), check_plain, _check_chart_name)
    version = checked(r, text["version"], join(at, "version"), _check_version)
    pull_secret: str | None = None
    raw_secret = r.mapping(chart, "chartPullSecret", at)
    if raw_secret is not None:
        secret_at = join(at, "chartPullSecret")
        pull_secret = checked(
            r, r.string(raw_secret, "name", secret_at), join(secret_at, "name"), check_dns_subdomain
        )
    if repository is None or name is None or version is None:
        return None
    if repository.lower().startswith("oci://"):
        plain_http = r.boolean(chart, "plainHTTP", at, False)
        return OciChartSource(repository, name, version, pull_secret, plain_http)
    if chart.get("plainHTTP") not in (None, False):
        r.warn(join(at, "plainHTTP"), "ignored for a Helm repository: its URL's scheme says http or https")
    return RepoChartSource(repository, name, version, pull_secret)


def _check_chart_name(value: str) -> str | None:
    return "must be a chart name without a repository prefix or '/'" if "/" in value else None


def _check_version(value: str) -> str | None:
    if value.startswith("-") or any(ord(ch) < 32 for ch in value):
        return "must be a chart version or version range"
    return None


# --- values sources -----------------------------------------------------------------------------


def parse_values_from(r: Reader, spec: Mapping[str, Any], namespace: str) -> tuple[ValuesSource, ...]:
    result: list[ValuesSource] = []
    for index, item in enumerate(r.array(spec, "valuesFrom", "spec")):
        at = f"spec.valuesFrom[{index}]"
        if not isinstance(item, Mapping):
            r.error(at, f"must be an object, got {json_type(item)}")
            continue
        source = _values_entry(r, item, at, namespace)
        if source is not None:
            result.append(source)
    return tuple(result)


def _values_entry(r: Reader, item: Mapping[str, Any], at: str, namespace: str) -> ValuesSource | None:
    chosen: str | None = None
    source: ValuesSource | None = None
    for key in ("configMapKeyRef", "secretKeyRef", "externalSourceRef", "chartFileRef"):
        if item.get(key) is None:
            continue
        if chosen is not None:
            r.warn(join(at, key), f"ignored: {chosen} is set first in this entry")
            continue
        chosen = key
        raw = r.mapping(item, key, at)
        if raw is None:
            continue
        sub = join(at, key)
        if key in ("configMapKeyRef", "secretKeyRef"):
            source = _key_ref(r, raw, sub, namespace, secret=key == "secretKeyRef")
        elif key == "externalSourceRef":
            url = checked(r, r.string(raw, "url", sub), join(sub, "url"), check_web_url, check_no_credentials)
            optional = r.boolean(raw, "optional", sub, False)
            source = None if url is None else ExternalValuesSource(url, optional)
        else:
            path = checked(r, r.string(raw, "path", sub), join(sub, "path"), check_relative_path)
            optional = r.boolean(raw, "optional", sub, False)
            source = None if path is None else ChartFileValuesSource(path, optional)
    if chosen is None:
        r.error(at, "must set one of configMapKeyRef, secretKeyRef, externalSourceRef, chartFileRef")
    return source


def _key_ref(
    r: Reader, raw: Mapping[str, Any], at: str, namespace: str, *, secret: bool
) -> ValuesSource | None:
    ref = parse_ref_mapping(r, raw, at, namespace)
    key = checked(r, r.optional_string(raw, "key", at), join(at, "key"), check_config_key)
    optional = r.boolean(raw, "optional", at, False)
    if ref is None:
        return None
    kind = SecretValuesSource if secret else ConfigMapValuesSource
    return kind(ref.name, ref.namespace, key or DEFAULT_VALUES_KEY, optional)


def parse_value_file_secrets(
    r: Reader, spec: Mapping[str, Any], namespace: str
) -> tuple[SecretValuesSource, ...]:
    """Deprecated `valueFileSecrets: [{name}]`: secret refs with key values.yaml, same namespace."""
    items = r.array(spec, "valueFileSecrets", "spec")
    result: list[SecretValuesSource] = []
    for index, item in enumerate(items):
        at = f"spec.valueFileSecrets[{index}]"
        if not isinstance(item, Mapping):
            r.error(at, f"must be an object, got {json_type(item)}")
            continue
        name = checked(r, r.string(item, "name", at), join(at, "name"), check_dns_subdomain)
        if name is not None:
            result.append(SecretValuesSource(name, namespace))
    if items:
        r.warn("spec.valueFileSecrets", "deprecated: use valuesFrom with secretKeyRef instead")
    return tuple(result)
