"""Webhook replays (``source.replay``) through the real HTTP endpoint: a correctly signed delivery
sent again triggers no fetch, whether it repeats its delivery id or only its commit; a new commit
does, and so does a force-push back to a commit the source has moved away from."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import uuid
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gitops_helm.config import HTTPServerSettings
from gitops_helm.server import Hooks, Server
from gitops_helm.source.replay import DeliveryMemory, ReplayKind, delivery_id

SECRET = "webhook-secret"
URL = "https://git.example/org/config.git"


class Source:
    """What the endpoint sees of the Git source: its head, and how often it was triggered."""

    def __init__(self) -> None:
        self.head: str | None = None
        self.triggers = 0

    def trigger(self) -> None:
        self.triggers += 1


@pytest.fixture
def served() -> Iterator[tuple[Server, Source]]:
    source = Source()
    hooks = Hooks(
        ready=lambda: (True, "ready"),
        git_trigger=source.trigger,
        git_url=URL,
        git_branch=lambda: "main",
        webhook_secret=SECRET,
        git_head=lambda: source.head,
    )
    server = Server("127.0.0.1", 0, hooks, HTTPServerSettings(remembered_deliveries=8))
    server.start()
    yield server, source
    server.stop()


def deliver(server: Server, after: str, delivery: str | None = None) -> tuple[int, str]:
    body = json.dumps({"ref": "refs/heads/main", "after": after, "repository": {"clone_url": URL}}).encode()
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest(),
    }
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        conn.request("POST", "/hooks/git", body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def test_a_replayed_delivery_triggers_no_fetch(served: tuple[Server, Source]) -> None:
    server, source = served
    first, second = "a" * 40, "b" * 40
    assert deliver(server, first, "delivery-1") == (202, "sync triggered\n")
    assert source.triggers == 1
    # the same request again (same delivery id): 409
    assert deliver(server, first, "delivery-1")[0] == 409
    # the same body under a new id (the id header is not signed), while the fetch is under way
    assert deliver(server, first)[1] == "already being fetched: no fetch\n"
    source.head = first  # the fetch landed
    assert deliver(server, first) == (202, "already synced: no fetch\n")
    assert source.triggers == 1
    # a new commit is fetched; a force-push back to the first commit too
    assert deliver(server, second)[1] == "sync triggered\n"
    source.head = second
    assert deliver(server, first)[1] == "sync triggered\n"
    assert source.triggers == 3


def test_delivery_ids_of_each_provider_are_read() -> None:
    assert delivery_id({"X-GitHub-Delivery": " 72d3162e "}) == "x-github-delivery:72d3162e"
    assert delivery_id({"X-Gitlab-Event-UUID": "u"}) == "x-gitlab-event-uuid:u"
    assert delivery_id({"X-Gitea-Delivery": "g"}) == "x-gitea-delivery:g"
    assert delivery_id({"X-Delivery": "d"}) == "x-delivery:d"
    assert delivery_id({"Content-Type": "application/json"}) is None


COMMITS = ("a" * 40, "b" * 40, "c" * 64)


@given(
    st.lists(
        st.tuples(st.sampled_from("abcdef"), st.sampled_from(COMMITS), st.sampled_from(COMMITS)), max_size=60
    )
)
def test_memory_acts_on_each_id_at_most_once_and_never_on_the_head(
    deliveries: list[tuple[str, str, str]],
) -> None:
    memory = DeliveryMemory(capacity=100)
    acted: list[str] = []
    for delivery, commit, head in deliveries:
        replay = memory.replay(delivery, commit, head)
        if commit == head:
            assert replay is not None
        if replay is None:
            assert delivery not in acted
            acted.append(delivery)
        elif replay.kind is ReplayKind.DUPLICATE:
            assert delivery in acted


def test_memory_is_bounded() -> None:
    memory = DeliveryMemory(capacity=2)
    for n in range(3):
        assert memory.replay(f"id{n}", None, None) is None
    assert memory.replay("id0", None, None) is None  # forgotten: the oldest went first
    assert memory.replay("id2", None, None) is not None


def test_only_commit_ids_are_remembered_not_any_string_a_body_names() -> None:
    """A verified body's "after" is any string up to the body's 5 MiB (GitLab's token is a plain
    header: who saw one delivery can write any body); 1024 of them were kept."""
    from gitops_helm.source.replay import DeliveryMemory

    memory = DeliveryMemory(4)
    assert memory.replay(None, "x" * 1_000_000, None) is None
    assert memory.replay(None, "x" * 1_000_000, None) is None  # not a commit: not remembered
    assert not memory._commits
    commit = "AB" * 20
    assert memory.replay(None, commit, None) is None
    assert memory.replay(None, commit.lower(), None) is not None
