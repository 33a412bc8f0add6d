"""Webhook verification and push parsing: pure functions, no I/O.

Place in the data flow: the HTTP server (``server.py``) receives a webhook POST and calls
:func:`verify_webhook` with the request headers, the raw body and the shared secret; when the
:class:`Verdict` is verified and :meth:`Verdict.concerns` the source's URL and branch, the server
calls ``GitSource.trigger()`` so the push is fetched at once instead of at the next poll.

Formats (the provider is recognised from the headers, or forced by the caller):

- GitHub: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>``, ``X-GitHub-Event``
  (``push``, ``ping``, ...). The legacy SHA-1 ``X-Hub-Signature`` is not accepted.
- Gitea / Forgejo: ``X-Gitea-Signature`` or ``X-Forgejo-Signature: <hex HMAC-SHA256>``,
  ``X-Gitea-Event`` / ``X-Forgejo-Event``. (They also send GitHub's headers; theirs win.)
- GitLab: ``X-Gitlab-Token: <the shared secret itself>`` (compared in constant time),
  ``X-Gitlab-Event`` (``Push Hook``, ``Tag Push Hook``, ...).
- Generic (scripts, CI): ``X-Signature: sha256=<hex HMAC-SHA256 of the body>``, optional
  ``X-Event`` (default ``push``), optional JSON body ``{"repository": URL or [URL, ...],
  "branch": "main"}`` (or ``"ref": "refs/heads/main"``); an empty body means "something changed".

Rules: an empty secret verifies nothing; the signature is checked on the raw bytes before the
body is parsed; reasons name headers, never the secret or the expected signature. The caller
should bound the body size before calling.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = [
    "Provider",
    "PushInfo",
    "Verdict",
    "detect_provider",
    "parse_push",
    "same_repository",
    "verify_generic",
    "verify_gitea",
    "verify_github",
    "verify_gitlab",
    "verify_webhook",
]


class Provider(enum.StrEnum):
    GITHUB = "github"
    GITEA = "gitea"
    GITLAB = "gitlab"
    GENERIC = "generic"


@dataclass(frozen=True)
class PushInfo:
    """What a push event says; every field is ``None``/empty when the payload does not tell."""

    ref: str | None = None
    after: str | None = None
    repo_urls: tuple[str, ...] = ()

    @property
    def branch(self) -> str | None:
        return (
            self.ref.removeprefix("refs/heads/") if self.ref and self.ref.startswith("refs/heads/") else None
        )

    @property
    def tag(self) -> str | None:
        return self.ref.removeprefix("refs/tags/") if self.ref and self.ref.startswith("refs/tags/") else None


@dataclass(frozen=True)
class Verdict:
    verified: bool
    reason: str
    provider: Provider | None = None
    event: str | None = None
    push: PushInfo | None = None
    """Set for verified push events only."""

    @property
    def ping(self) -> bool:
        return self.verified and (self.event or "").lower() == "ping"

    def concerns(self, url: str, branch: str) -> bool:
        """Whether this delivery should trigger a fetch of ``branch`` of ``url``.

        Unverified deliveries, pings and non-push events never do; a push naming other
        repositories, another branch or a tag does not; a push that names neither does.
        """
        if not self.verified or self.push is None:
            return False
        push = self.push
        if push.repo_urls and not any(same_repository(url, other) for other in push.repo_urls):
            return False
        if push.ref is None:
            return True
        return push.branch == branch


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {key.lower(): value.strip() for key, value in headers.items()}


def _key(secret: str | bytes) -> bytes:
    return secret.encode() if isinstance(secret, str) else secret


def _hmac_hex(secret: str | bytes, body: bytes) -> str:
    return hmac.new(_key(secret), body, hashlib.sha256).hexdigest()


def _hex_matches(given: str, secret: str | bytes, body: bytes) -> bool:
    return hmac.compare_digest(given.lower().encode(), _hmac_hex(secret, body).encode())


def _reject(provider: Provider, reason: str, event: str | None = None) -> Verdict:
    return Verdict(verified=False, reason=reason, provider=provider, event=event)


def _accept(provider: Provider, event: str, body: bytes) -> Verdict:
    push = parse_push(provider, event, body)
    return Verdict(verified=True, reason="verified", provider=provider, event=event, push=push)


def verify_github(headers: Mapping[str, str], body: bytes, secret: str | bytes) -> Verdict:
    h = _lower(headers)
    event = h.get("x-github-event") or None
    if not secret:
        return _reject(Provider.GITHUB, "no webhook secret configured", event)
    signature = h.get("x-hub-signature-256")
    if not signature:
        return _reject(Provider.GITHUB, "missing X-Hub-Signature-256 header", event)
    algorithm, _, digest = signature.partition("=")
    if algorithm != "sha256" or not digest:
        return _reject(Provider.GITHUB, "malformed X-Hub-Signature-256 header (expected sha256=<hex>)", event)
    if not _hex_matches(digest, secret, body):
        return _reject(Provider.GITHUB, "X-Hub-Signature-256 does not match the body", event)
    return _accept(Provider.GITHUB, event or "push", body)


def verify_gitea(headers: Mapping[str, str], body: bytes, secret: str | bytes) -> Verdict:
    h = _lower(headers)
    event = h.get("x-gitea-event") or h.get("x-forgejo-event") or None
    if not secret:
        return _reject(Provider.GITEA, "no webhook secret configured", event)
    signature = h.get("x-gitea-signature") or h.get("x-forgejo-signature")
    if not signature:
        return _reject(Provider.GITEA, "missing X-Gitea-Signature (or X-Forgejo-Signature) header", event)
    if not _hex_matches(signature, secret, body):
        return _reject(Provider.GITEA, "X-Gitea-Signature does not match the body", event)
    return _accept(Provider.GITEA, event or "push", body)


def verify_gitlab(headers: Mapping[str, str], body: bytes, secret: str | bytes) -> Verdict:
    h = _lower(headers)
    event = h.get("x-gitlab-event") or None
    if not secret:
        return _reject(Provider.GITLAB, "no webhook secret configured", event)
    token = h.get("x-gitlab-token")
    if not token:
        return _reject(Provider.GITLAB, "missing X-Gitlab-Token header", event)
    if not hmac.compare_digest(token.encode(), _key(secret)):
        return _reject(Provider.GITLAB, "X-Gitlab-Token does not match the secret", event)
    return _accept(Provider.GITLAB, event or "Push Hook", body)


def verify_generic(headers: Mapping[str, str], body: bytes, secret: str | bytes) -> Verdict:
    h = _lower(headers)
    event = h.get("x-event") or None
    if not secret:
        return _reject(Provider.GENERIC, "no webhook secret configured", event)
    signature = h.get("x-signature")
    if not signature:
        return _reject(Provider.GENERIC, "missing X-Signature header", event)
    algorithm, _, digest = signature.partition("=")
    if algorithm != "sha256" or not digest:
        return _reject(Provider.GENERIC, "malformed X-Signature header (expected sha256=<hex>)", event)
    if not _hex_matches(digest, secret, body):
        return _reject(Provider.GENERIC, "X-Signature does not match the body", event)
    return _accept(Provider.GENERIC, event or "push", body)


_VERIFIERS: dict[Provider, Callable[[Mapping[str, str], bytes, str | bytes], Verdict]] = {
    Provider.GITHUB: verify_github,
    Provider.GITEA: verify_gitea,
    Provider.GITLAB: verify_gitlab,
    Provider.GENERIC: verify_generic,
}


def detect_provider(headers: Mapping[str, str]) -> Provider | None:
    h = _lower(headers)
    if "x-gitlab-token" in h or "x-gitlab-event" in h:
        return Provider.GITLAB
    if any(k in h for k in ("x-gitea-signature", "x-forgejo-signature", "x-gitea-event", "x-forgejo-event")):
        return Provider.GITEA
    if "x-github-event" in h or "x-hub-signature-256" in h or "x-hub-signature" in h:
        return Provider.GITHUB
    if "x-signature" in h or "x-event" in h:
        return Provider.GENERIC
    return None


def verify_webhook(
    headers: Mapping[str, str], body: bytes, secret: str | bytes, provider: Provider | None = None
) -> Verdict:
    """Verify a delivery of ``provider`` (recognised from the headers when not given)."""
    chosen = provider or detect_provider(headers)
    if chosen is None:
        return Verdict(verified=False, reason="no recognised webhook signature or event header")
    return _VERIFIERS[chosen](headers, body, secret)


# --- payloads -----------------------------------------------------------------------------------

_PUSH_EVENTS = {
    Provider.GITHUB: {"push"},
    Provider.GITEA: {"push"},
    Provider.GITLAB: {"push hook", "tag push hook"},
    Provider.GENERIC: {"push"},
}
_URL_KEYS = ("clone_url", "ssh_url", "git_url", "html_url", "url", "git_http_url", "git_ssh_url", "web_url")


def _load(body: bytes) -> Any:
    if not body.strip():
        return None
    try:
        return json.loads(body)
    except ValueError:
        pass
    # GitHub's "application/x-www-form-urlencoded" content type: payload=<JSON>
    form = parse_qs(body.decode("utf-8", "replace"))
    if "payload" in form:
        try:
            return json.loads(form["payload"][0])
        except ValueError:
            return None
    return None


def _urls(*objects: Any) -> tuple[str, ...]:
    found: list[str] = []
    for obj in objects:
        if isinstance(obj, dict):
            values = [obj.get(key) for key in _URL_KEYS]
        elif isinstance(obj, list):
            values = list(obj)
        else:
            values = [obj]
        found += [v for v in values if isinstance(v, str) and v and v not in found]
    return tuple(found)


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def parse_push(provider: Provider, event: str, body: bytes) -> PushInfo | None:
    """The push described by a (verified) body, or ``None`` when the event is not a push."""
    if event.lower() not in _PUSH_EVENTS[provider]:
        return None
    payload = _load(body)
    if not isinstance(payload, dict):
        return PushInfo()
    if provider is Provider.GENERIC:
        branch = _str(payload.get("branch"))
        ref = f"refs/heads/{branch}" if branch else _str(payload.get("ref"))
        return PushInfo(ref=ref, after=_str(payload.get("after")), repo_urls=_urls(payload.get("repository")))
    if provider is Provider.GITLAB:
        urls = _urls(payload.get("project"), payload.get("repository"))
        after = _str(payload.get("checkout_sha")) or _str(payload.get("after"))
        return PushInfo(ref=_str(payload.get("ref")), after=after, repo_urls=urls)
    return PushInfo(
        ref=_str(payload.get("ref")),
        after=_str(payload.get("after")),
        repo_urls=_urls(payload.get("repository")),
    )


def _repo_key(url: str) -> tuple[str, str]:
    """(host, path) of a repository URL: no scheme, user, port, ``.git`` or case."""
    text = url.strip()
    if "://" in text:
        parts = urlsplit(text)
        host, path = parts.hostname or "", parts.path
    elif ":" in text and not text.startswith("/"):
        userhost, _, path = text.partition(":")
        host = userhost.rpartition("@")[2]
    else:
        host, path = "", text
    path = path.strip("/").removesuffix(".git").strip("/")
    return host.lower(), path.lower()


def same_repository(a: str, b: str) -> bool:
    """Whether two URLs name the same repository (``https://h/o/r`` = ``git@h:o/r.git``)."""
    key_a, key_b = _repo_key(a), _repo_key(b)
    return bool(key_a[1]) and key_a == key_b
