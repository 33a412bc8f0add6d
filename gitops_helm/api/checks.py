"""Value checks for names, paths and URLs in a HelmRelease.

Place in the data flow: used by `gitops_helm.api.parse` after a field's type is known. Each
check returns None when the value is fine, or the problem message. Besides catching typos early,
they keep values that reach git/helm argv or the filesystem safe: nothing may start with `-`
(it would read as an option) and chart paths may not leave their directory.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

__all__ = [
    "check_config_key",
    "check_dns_label",
    "check_dns_subdomain",
    "check_json_pointer",
    "check_no_credentials",
    "check_plain",
    "check_relative_path",
    "check_release_name",
    "check_repository_url",
    "check_web_url",
]

RELEASE_NAME_MAX = 53
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://\S+$")
_POINTER = re.compile(r"^(/([^~/]|~[01])*)+$")


def check_plain(value: str) -> str | None:
    """No leading `-`, no whitespace or control characters (URLs, refs, chart names)."""
    if value.startswith("-"):
        return "must not start with '-'"
    if any(ch.isspace() or ord(ch) < 32 for ch in value):
        return "must not contain whitespace or control characters"
    return None


def check_dns_label(value: str) -> str | None:
    """A namespace: RFC 1123 label, at most 63 characters."""
    if len(value) > 63 or not _DNS_LABEL.match(value):
        return "must be a valid namespace name (lowercase letters, digits and '-', at most 63 characters)"
    return None


def check_dns_subdomain(value: str) -> str | None:
    """An object name: RFC 1123 subdomain, at most 253 characters."""
    if len(value) > 253 or not _DNS_SUBDOMAIN.match(value):
        return "must be a valid object name (lowercase letters, digits, '-' and '.')"
    return None


def check_release_name(value: str) -> str | None:
    """Helm's rule for release names: a DNS subdomain of at most 53 characters."""
    if len(value) > RELEASE_NAME_MAX:
        return f"'{value}' is {len(value)} characters; Helm allows at most {RELEASE_NAME_MAX}"
    if not _DNS_SUBDOMAIN.match(value):
        return f"'{value}' is not a valid Helm release name (lowercase letters, digits, '-' and '.')"
    return None


def check_config_key(value: str) -> str | None:
    """A ConfigMap/Secret data key."""
    if len(value) > 253 or not _CONFIG_KEY.match(value):
        return "must consist of letters, digits, '-', '_' or '.'"
    return None


def check_relative_path(value: str) -> str | None:
    """A path that stays inside its base directory (a Git checkout or a chart)."""
    if value.startswith(("/", "\\")):
        return "must be a relative path"
    if ".." in re.split(r"[/\\]", value):
        return "must not contain '..'"
    return check_plain(value)


def check_repository_url(value: str) -> str | None:
    """A chart repository: `<scheme>://...` (https, http, oci, or a downloader plugin's scheme)."""
    if not _SCHEME.match(value):
        return "must be a URL such as https://charts.example.com or oci://registry.example.com/charts"
    return None


def check_web_url(value: str) -> str | None:
    """An http(s) URL with a host."""
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError:
        host = None
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not host:
        return "must be an http:// or https:// URL"
    return check_plain(value)


_SCP_LIKE = re.compile(r"^[^/@:]+@[^/:]+:")  # git's `user@host:path` (SSH, no password possible)


def check_no_credentials(value: str) -> str | None:
    """No secret in a URL: a password (`user:password@`), or any user part of an http(s) or OCI
    URL (`https://TOKEN@host`, how tokens are usually written in). A URL travels through logs,
    Events, status and helm's argv; a Secret reference does not. An SSH user name (`git@`) is
    not a secret and stays allowed."""
    if _SCP_LIKE.match(value):
        return None
    try:
        parts = urlsplit(value)
        password, username = parts.password, parts.username
    except ValueError:
        return None  # not a URL this check can read: the field's own check reports it
    scheme = parts.scheme.lower()
    if password is not None or (username is not None and scheme not in ("ssh", "git+ssh", "ssh+git")):
        return (
            "must not carry credentials in the URL (user:password@ or token@): they would show in "
            "logs, Events, status and helm's arguments; give them in a Secret (chartPullSecret or "
            "chart.secretRef) instead"
        )
    return None


def check_json_pointer(value: str) -> str | None:
    """An RFC 6901 JSON pointer into an object, e.g. `/spec/replicas` (`~0` = `~`, `~1` = `/`)."""
    if not _POINTER.match(value):
        return "must be a JSON pointer such as /spec/replicas"
    return None
