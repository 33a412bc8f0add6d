"""Unit tests of webhook verification and push parsing (gitops_helm.source.webhook)."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gitops_helm.source.webhook import (
    Provider,
    PushInfo,
    Verdict,
    detect_provider,
    parse_push,
    same_repository,
    verify_generic,
    verify_gitea,
    verify_github,
    verify_gitlab,
    verify_webhook,
)

SECRET = "s3cr3t-webhook-value"
URL = "https://git.example.com/team/config.git"


def sig(body: bytes, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def github_push(ref: str = "refs/heads/main") -> bytes:
    return json.dumps(
        {
            "ref": ref,
            "after": "a" * 40,
            "repository": {
                "clone_url": URL,
                "ssh_url": "git@git.example.com:team/config.git",
                "html_url": "https://git.example.com/team/config",
            },
        }
    ).encode()


def gitlab_push(ref: str = "refs/heads/main") -> bytes:
    return json.dumps(
        {
            "object_kind": "push",
            "ref": ref,
            "checkout_sha": "b" * 40,
            "project": {"git_http_url": URL, "git_ssh_url": "git@git.example.com:team/config.git"},
        }
    ).encode()


def github_headers(body: bytes, event: str = "push", secret: str = SECRET) -> dict[str, str]:
    return {"X-GitHub-Event": event, "X-Hub-Signature-256": f"sha256={sig(body, secret)}"}


def gitea_headers(body: bytes, secret: str = SECRET, forgejo: bool = False) -> dict[str, str]:
    prefix = "X-Forgejo" if forgejo else "X-Gitea"
    return {f"{prefix}-Event": "push", f"{prefix}-Signature": sig(body, secret)}


def gitlab_headers(token: str = SECRET, event: str = "Push Hook") -> dict[str, str]:
    return {"X-Gitlab-Event": event, "X-Gitlab-Token": token}


def generic_headers(body: bytes, secret: str = SECRET) -> dict[str, str]:
    return {"X-Signature": f"sha256={sig(body, secret)}"}


def assert_no_secret(verdict: Verdict, body: bytes) -> None:
    assert SECRET not in verdict.reason
    assert sig(body) not in verdict.reason
    assert SECRET not in repr(verdict)


# --- GitHub -----------------------------------------------------------------------------------


def test_github_valid_push() -> None:
    body = github_push()
    verdict = verify_github(github_headers(body), body, SECRET)
    assert verdict.verified, verdict.reason
    assert verdict.provider is Provider.GITHUB
    assert verdict.event == "push"
    assert verdict.push == PushInfo(
        ref="refs/heads/main",
        after="a" * 40,
        repo_urls=(URL, "git@git.example.com:team/config.git", "https://git.example.com/team/config"),
    )
    assert verdict.push.branch == "main"
    assert verdict.concerns(URL, "main")
    assert not verdict.concerns(URL, "dev")
    assert not verdict.concerns("https://git.example.com/team/other.git", "main")


def test_github_headers_are_case_insensitive() -> None:
    body = github_push()
    headers = {k.lower(): v for k, v in github_headers(body).items()}
    assert verify_github(headers, body, SECRET).verified


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({"X-GitHub-Event": "push"}, "missing X-Hub-Signature-256"),
        ({"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha1=abc"}, "malformed"),
        ({"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256="}, "malformed"),
        ({"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + "0" * 64}, "does not match"),
        ({"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=not-hex"}, "does not match"),
    ],
)
def test_github_rejects_bad_or_missing_signature(headers: dict[str, str], reason: str) -> None:
    body = github_push()
    verdict = verify_github(headers, body, SECRET)
    assert not verdict.verified
    assert reason in verdict.reason
    assert verdict.push is None
    assert not verdict.concerns(URL, "main")
    assert_no_secret(verdict, body)


def test_github_wrong_secret_and_tampered_body() -> None:
    body = github_push()
    wrong = verify_github(github_headers(body, secret="another-secret"), body, SECRET)
    assert not wrong.verified
    assert_no_secret(wrong, body)
    tampered = body.replace(b"refs/heads/main", b"refs/heads/evil")
    assert not verify_github(github_headers(body), tampered, SECRET).verified


def test_github_legacy_sha1_only_is_refused() -> None:
    body = github_push()
    sha1 = hmac.new(SECRET.encode(), body, hashlib.sha1).hexdigest()
    verdict = verify_webhook({"X-GitHub-Event": "push", "X-Hub-Signature": f"sha1={sha1}"}, body, SECRET)
    assert verdict.provider is Provider.GITHUB
    assert not verdict.verified


def test_github_ping_is_verified_but_triggers_nothing() -> None:
    body = json.dumps({"zen": "Keep it logically awesome.", "hook_id": 1}).encode()
    verdict = verify_webhook(github_headers(body, event="ping"), body, SECRET)
    assert verdict.verified
    assert verdict.ping
    assert verdict.push is None
    assert not verdict.concerns(URL, "main")


def test_github_form_encoded_payload() -> None:
    body = ("payload=" + quote(github_push().decode())).encode()
    verdict = verify_webhook(github_headers(body), body, SECRET)
    assert verdict.verified
    assert verdict.push is not None and verdict.push.branch == "main"


def test_other_events_are_not_pushes() -> None:
    body = b'{"action": "opened"}'
    verdict = verify_webhook(github_headers(body, event="pull_request"), body, SECRET)
    assert verdict.verified
    assert verdict.push is None
    assert not verdict.concerns(URL, "main")


# --- Gitea / Forgejo --------------------------------------------------------------------------


@pytest.mark.parametrize("forgejo", [False, True], ids=["gitea", "forgejo"])
def test_gitea_valid_push(forgejo: bool) -> None:
    body = github_push()
    headers = gitea_headers(body, forgejo=forgejo)
    assert detect_provider(headers) is Provider.GITEA
    verdict = verify_webhook(headers, body, SECRET)
    assert verdict.verified, verdict.reason
    assert verdict.provider is Provider.GITEA
    assert verdict.concerns("git@git.example.com:team/config.git", "main")


def test_gitea_headers_win_over_the_github_ones_it_also_sends() -> None:
    body = github_push()
    headers = {**github_headers(body, secret="unrelated"), **gitea_headers(body)}
    verdict = verify_webhook(headers, body, SECRET)
    assert verdict.provider is Provider.GITEA
    assert verdict.verified


def test_gitea_rejections() -> None:
    body = github_push()
    missing = verify_gitea({"X-Gitea-Event": "push"}, body, SECRET)
    assert not missing.verified and "missing X-Gitea-Signature" in missing.reason
    wrong = verify_gitea(gitea_headers(body, secret="nope"), body, SECRET)
    assert not wrong.verified and "does not match" in wrong.reason
    assert not verify_gitea(gitea_headers(body), body + b" ", SECRET).verified
    assert_no_secret(wrong, body)


# --- GitLab -----------------------------------------------------------------------------------


def test_gitlab_valid_push_and_tag_push() -> None:
    body = gitlab_push()
    verdict = verify_webhook(gitlab_headers(), body, SECRET)
    assert verdict.verified and verdict.provider is Provider.GITLAB
    assert verdict.push is not None
    assert verdict.push.after == "b" * 40
    assert verdict.concerns(URL, "main")

    tag_body = gitlab_push("refs/tags/v1.0.0")
    tag = verify_webhook(gitlab_headers(event="Tag Push Hook"), tag_body, SECRET)
    assert tag.verified and tag.push is not None and tag.push.tag == "v1.0.0"
    assert not tag.concerns(URL, "main")


def test_gitlab_rejections() -> None:
    body = gitlab_push()
    missing = verify_gitlab({"X-Gitlab-Event": "Push Hook"}, body, SECRET)
    assert not missing.verified and "missing X-Gitlab-Token" in missing.reason
    wrong = verify_gitlab(gitlab_headers(token="guess"), body, SECRET)
    assert not wrong.verified and "does not match" in wrong.reason
    assert "guess" not in wrong.reason
    assert_no_secret(wrong, body)


def test_gitlab_token_does_not_sign_the_body() -> None:
    # GitLab sends the secret itself; a changed body still verifies (documented limitation).
    assert verify_gitlab(gitlab_headers(), gitlab_push() + b"\n", SECRET).verified


# --- generic ----------------------------------------------------------------------------------


def test_generic_with_and_without_body() -> None:
    body = json.dumps({"repository": [URL], "branch": "main"}).encode()
    verdict = verify_webhook(generic_headers(body), body, SECRET)
    assert verdict.verified and verdict.provider is Provider.GENERIC
    assert verdict.push == PushInfo(ref="refs/heads/main", repo_urls=(URL,))
    assert verdict.concerns(URL, "main") and not verdict.concerns(URL, "prod")

    empty = verify_webhook(generic_headers(b""), b"", SECRET)
    assert empty.verified and empty.push == PushInfo()
    assert empty.concerns(URL, "anything")


def test_generic_rejections() -> None:
    body = b'{"branch": "main"}'
    assert "missing X-Signature" in verify_generic({"X-Event": "push"}, body, SECRET).reason
    assert "malformed" in verify_generic({"X-Signature": sig(body)}, body, SECRET).reason
    wrong = verify_generic(generic_headers(body, secret="x"), body, SECRET)
    assert not wrong.verified and "does not match" in wrong.reason
    assert not verify_generic(generic_headers(body), b'{"branch": "prod"}', SECRET).verified


# --- common rules -----------------------------------------------------------------------------


@pytest.mark.parametrize("secret", ["", b""])
def test_empty_secret_verifies_nothing(secret: str | bytes) -> None:
    body = github_push()
    for headers in (
        github_headers(body, secret=""),
        gitea_headers(body, secret=""),
        gitlab_headers(token=""),
        generic_headers(body, secret=""),
    ):
        verdict = verify_webhook(headers, body, secret)
        assert not verdict.verified
        assert "no webhook secret" in verdict.reason or "missing" in verdict.reason


def test_unknown_provider() -> None:
    verdict = verify_webhook({"Content-Type": "application/json"}, b"{}", SECRET)
    assert not verdict.verified
    assert verdict.provider is None


def test_bytes_secret_and_forced_provider() -> None:
    body = github_push()
    headers = github_headers(body)
    assert verify_webhook(headers, body, SECRET.encode(), Provider.GITHUB).verified
    assert not verify_webhook(headers, body, SECRET, Provider.GITLAB).verified


def test_verified_push_without_json_still_concerns_everyone() -> None:
    body = b"not json"
    verdict = verify_webhook(github_headers(body), body, SECRET)
    assert verdict.verified and verdict.push == PushInfo()
    assert verdict.concerns(URL, "main")


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("https://github.com/Org/Repo.git", "git@github.com:org/repo", True),
        ("https://user:pw@github.com/org/repo/", "ssh://git@github.com:22/org/repo.git", True),
        ("https://github.com/org/repo", "https://github.com/org/repo2", False),
        ("https://github.com/org/repo", "https://gitlab.com/org/repo", False),
        ("/srv/git/repo.git", "/srv/git/repo", True),
        ("", "", False),
    ],
)
def test_same_repository(a: str, b: str, same: bool) -> None:
    assert same_repository(a, b) is same
    assert same_repository(b, a) is same


def test_parse_push_ignores_non_string_fields() -> None:
    payload: dict[str, Any] = {"ref": 5, "after": None, "repository": {"clone_url": ["x"], "html_url": URL}}
    push = parse_push(Provider.GITHUB, "push", json.dumps(payload).encode())
    assert push == PushInfo(ref=None, after=None, repo_urls=(URL,))


@given(body=st.binary(max_size=256), secret=st.text(min_size=1, max_size=32))
def test_property_only_the_right_signature_verifies(body: bytes, secret: str) -> None:
    good = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert verify_github({"X-Hub-Signature-256": f"sha256={good}"}, body, secret).verified
    assert verify_gitea({"X-Gitea-Signature": good.upper()}, body, secret).verified
    flipped = good[:-1] + ("0" if good[-1] != "0" else "1")
    assert not verify_github({"X-Hub-Signature-256": f"sha256={flipped}"}, body, secret).verified
    assert not verify_generic({"X-Signature": f"sha256={flipped}"}, body, secret).verified
