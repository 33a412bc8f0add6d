"""The generic parts of the OCI distribution (Docker Registry HTTP API v2) protocol, shared by
the chart source (``charts.oci``) and the image scanner (``images.registry``): reading an
authentication challenge, building the token request it asks for, reading the token answer, and
following tag-list pagination. Pure functions: no I/O, no state (the callers own their caches).

Token flow (``distribution/distribution`` ``docs/spec/auth/token.md``): a request without a
usable credential is answered 401 with ``WWW-Authenticate: Bearer realm="https://auth.example/token",
service="registry.example",scope="repository:team/app:pull"``. The client asks the realm for a
token (``GET realm?service=...&scope=...``, with basic credentials when it has them, anonymously
otherwise) and repeats the request with ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from urllib.parse import urlencode, urljoin, urlsplit

from gitops_helm.adapters.http import origin

__all__ = ["Challenge", "next_page_url", "parse_challenge", "read_token", "token_url"]

# one auth-param: token68-free ``name=value`` where value is a token or a quoted string with escapes
_PARAM = re.compile(r'\s*([A-Za-z0-9_.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]*))\s*(?:,|$)')
_SCHEME = re.compile(r"\s*([A-Za-z][A-Za-z0-9_-]*)(?:\s+|$)")


@dataclass(frozen=True)
class Challenge:
    """One ``WWW-Authenticate`` challenge: its scheme (lower-case) and parameters (names lower-case)."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict)

    @property
    def realm(self) -> str:
        return self.params.get("realm", "")


def parse_challenge(header: str | None) -> Challenge | None:
    """The first challenge of a ``WWW-Authenticate`` header, or None when there is none or it
    cannot be read. Quoted values may hold commas and escaped quotes."""
    if not header:
        return None
    m = _SCHEME.match(header)
    if m is None:
        return None
    params: dict[str, str] = {}
    pos = m.end()
    while pos < len(header):
        p = _PARAM.match(header, pos)
        if p is None or p.end() == pos:
            break  # a second challenge, or text we do not understand: keep what was read
        quoted, bare = p.group(2), p.group(3)
        value = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else (bare or "")
        params.setdefault(p.group(1).lower(), value)
        pos = p.end()
    return Challenge(m.group(1).lower(), params)


def token_url(challenge: Challenge, default_scope: str) -> str | None:
    """The token request a Bearer challenge asks for, or None when it is not a usable one (not
    Bearer, no realm, or a realm that is not an http(s) URL). ``default_scope`` is used when the
    challenge names none (some registries answer ``/v2/`` without a scope)."""
    if challenge.scheme != "bearer" or not challenge.realm:
        return None
    if origin(challenge.realm)[0] not in ("http", "https") or not urlsplit(challenge.realm).hostname:
        return None
    query = {k: v for k, v in challenge.params.items() if k in ("service", "scope") and v}
    query.setdefault("scope", default_scope)
    separator = "&" if urlsplit(challenge.realm).query else "?"
    return f"{challenge.realm}{separator}{urlencode(query)}"


def read_token(body: bytes) -> str | None:
    """The bearer token of a token endpoint's JSON answer (``token`` or ``access_token``), or
    None when the answer holds no usable token."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(doc, dict):
        return None
    token = doc.get("token") or doc.get("access_token")
    if not isinstance(token, str) or not token or not token.isprintable() or any(c.isspace() for c in token):
        return None
    return token


def next_page_url(current_url: str, link_next: str | None) -> str | None:
    """The absolute URL of the next page from a ``Link: <...>; rel="next"`` target, resolved
    against the page just read. None when there is no next page, or when the target leaves the
    registry's origin (credentials are never sent to another host by following a link)."""
    if not link_next:
        return None
    target = urljoin(current_url, link_next)
    if origin(target) != origin(current_url):
        return None
    return target
