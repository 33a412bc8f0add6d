"""``gitops-helm events --limit`` and the verbs' ``--request-timeout``, run as the installed
command against the real API server."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from tests.conftest import Env
from tests.integration.syncfix import cli

VERBS_WITH_CLUSTER = (
    ("get",),
    ("status",),
    ("reconcile", "web"),
    ("suspend", "web"),
    ("resume", "web"),
    ("events",),
    ("check",),
)


def event(namespace: str, name: str, reason: str, when: datetime, *, micro: bool) -> dict[str, object]:
    """An Event about HelmRelease ``web`` as any writer may create it: ``lastTimestamp`` in whole
    seconds (core/v1 writers) or ``eventTime`` with microseconds (events/v1 writers)."""
    obj: dict[str, object] = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": namespace},
        "involvedObject": {
            "apiVersion": "helm.fluxcd.io/v1",
            "kind": "HelmRelease",
            "name": "web",
            "namespace": namespace,
        },
        "reason": reason,
        "message": f"step {reason}",
        "type": "Normal",
        "source": {"component": "test"},
    }
    if micro:
        obj.update(
            eventTime=when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            action="Test",
            reportingComponent="test",
            reportingInstance="test",
        )
    else:
        obj.update(
            firstTimestamp=when.strftime("%Y-%m-%dT%H:%M:%SZ"),
            lastTimestamp=when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
    return obj


def test_events_limit_shows_the_newest(env: Env, namespace: str) -> None:
    """The API server lists Events by name; ``--limit 3`` must still show the three newest."""
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    # names sort as time does: the API server's first page holds the oldest
    plan = [
        ("web.a", "Oldest", start, False),
        ("web.b", "Second", start + timedelta(minutes=1), True),
        ("web.c", "Third", start + timedelta(minutes=2), False),
        ("web.d", "Fourth", start + timedelta(minutes=3), False),
        # one second's Events: the one with microseconds is the later, though "...:00.5Z" sorts
        # before "...:00Z" as text
        ("web.e", "Fifth", start + timedelta(minutes=4), False),
        ("web.f", "Newest", start + timedelta(minutes=4, microseconds=500000), True),
    ]
    items = [event(namespace, name, reason, when, micro=micro) for name, reason, when, micro in plan]
    listed = {"apiVersion": "v1", "kind": "List", "items": items}
    env.kubectl("apply", "-f", "-", input_text=json.dumps(listed))
    base = ("events", "web", "-n", namespace, "--kubeconfig", env["KUBECONFIG"])

    out = cli(env, *base, "--limit", "3")
    assert out.returncode == 0, out.stderr
    header, *rows = out.stdout.splitlines()
    assert header.split()[:4] == ["LAST", "SEEN", "TYPE", "REASON"], header
    assert [row.split()[2] for row in rows] == ["Fourth", "Fifth", "Newest"], out.stdout

    every = cli(env, *base)
    assert [row.split()[2] for row in every.stdout.splitlines()[1:]] == [
        "Oldest", "Second", "Third", "Fourth", "Fifth", "Newest",
    ]  # fmt: skip

    bad = cli(env, *base, "--limit", "0")
    assert bad.returncode == 2 and "argument --limit: '0': must be at least 1" in bad.stderr, bad.stderr


def test_request_timeout_must_be_a_deadline(env: Env) -> None:
    """kubectl reads 0 as "no timeout"; here every request has a deadline: each verb refuses 0 (and
    a negative value), naming the flag, before it talks to the cluster."""
    tries = [(words, "0") for words in VERBS_WITH_CLUSTER] + [(("get",), "-5"), (("events",), "0.0")]
    for words, value in tries:
        out = cli(env, *words, "--kubeconfig", env["KUBECONFIG"], "--request-timeout", value)
        assert out.returncode == 2, (words, out.stdout, out.stderr)
        assert f"argument --request-timeout: '{value}': must be more than 0 seconds" in out.stderr, out.stderr
        assert "Traceback" not in out.stderr
    ok = cli(env, "get", "-A", "--kubeconfig", env["KUBECONFIG"], "--request-timeout", "2.5")
    assert ok.returncode == 0, ok.stderr
