"""Experiment 8: forged webhooks.

Injects: requests to the webhook receiver (``POST /hooks/git``) of a real ``gitops-helm run``
subprocess whose Git poll is an hour away (so any fetch can only come from a delivery), of five
kinds, ``count`` of each (full 50, quick 5):

- ``wrong signature``: a GitHub push signed with another secret (expected 401);
- ``replayed body``: a correctly signed push the agent already acted on, sent again byte for byte
  (same delivery id: 409) or under a new delivery id (the id header is not signed: 202 "already
  synced"), alternately;
- ``oversized body``: a head announcing one byte more than the body limit (5 MiB), followed by
  part of the body (expected 413, the body unread);
- ``wrong content type``: a correctly signed push sent as ``text/plain``, ``application/xml``,
  ``multipart/form-data`` or without a type (expected 415);
- ``slow client``: ``20`` connections (more than the 16 answering threads) send a complete head
  and then one body byte per second, past the read deadline (``--http-read-timeout 2s``) (each
  expected cut off with 408); during it ``/healthz`` must answer 200.

Checks, per trial: the status code; the agent's ``gitops_helm_git_fetches_total`` unchanged (also
after a settling pause at the end of each kind); ``/healthz`` 200 and the process running. A
trial is ``violated`` when a request is answered otherwise, a fetch is counted, or the agent stops
answering; ``error`` when the request could not be sent.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

from chaos.framework import Context, Trial, experiment
from tests.integration.syncfix import (
    AgentProcess,
    ConfigRepo,
    configmap,
    start_agent,
    synced_revision,
    unique_name,
)

SECRET = "chaos-webhook-secret"  # noqa: S105 - the test agent's webhook secret
MAX_BODY = 5 * 1024 * 1024  # config.HTTPServerSettings.max_body_bytes
READ_TIMEOUT_S = 2.0
SLOW_CONNECTIONS = 20  # beyond max_active (16): a thread held per slow client would starve probes
WAIT_S = 30.0  # a bound on every wait; only reached when the agent misbehaves


def _sign(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _raw(port: int, request: bytes, timeout: float = WAIT_S) -> int | None:
    """Send ``request`` on a fresh connection; the status code answered, or None if closed silently."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        with contextlib.suppress(OSError):  # the server may answer and close before all is sent
            sock.sendall(request)
        return _status(sock)


def _status(sock: socket.socket) -> int | None:
    data = b""
    with contextlib.suppress(OSError):
        while b"\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    parts = data.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None


def _post(body: bytes, headers: dict[str, str], length: int | None = None) -> bytes:
    lines = [b"POST /hooks/git HTTP/1.1", b"Host: 127.0.0.1"]
    lines += [f"{k}: {v}".encode() for k, v in headers.items()]
    lines.append(f"Content-Length: {len(body) if length is None else length}".encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def _fetches(agent: AgentProcess) -> float:
    text = agent.request("GET", "/metrics")[1]
    prefix = "gitops_helm_git_fetches_total{"
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix))


def _healthy(agent: AgentProcess) -> bool:
    if agent.proc.poll() is not None:
        return False
    try:
        return agent.request("GET", "/healthz")[0] == 200
    except OSError:
        return False


class _Slow:
    """A client that sends its head at once, then one body byte a second until cut off."""

    def __init__(self, port: int, head: bytes) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT_S)
        self.sock.sendall(head)
        self.status: int | None = None
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._trickle, daemon=True)
        self._thread.start()

    def _trickle(self) -> None:
        try:
            self.sock.settimeout(1.0)
            for _ in range(int(WAIT_S)):
                try:
                    self.sock.sendall(b" ")
                except OSError:
                    break
                try:
                    self.sock.recv(4096, socket.MSG_PEEK)  # an answer, or the end of the connection
                except TimeoutError:
                    continue  # a second passed: the next byte
                except OSError:
                    pass
                break
            self.sock.settimeout(WAIT_S)
            self.status = _status(self.sock)
        finally:
            self.done.set()

    def close(self) -> None:
        self.sock.close()
        self._thread.join(WAIT_S)


@experiment(
    8,
    "webhooks",
    "Forged webhooks: refused, and none triggers a fetch",
    injects="wrong signature, replayed body, oversized body, wrong content type, slow client",
    quick=5,
    full=50,
    budget_seconds=1200,
)
def run(ctx: Context, count: int) -> Iterator[Trial]:
    env = ctx.env
    work = ctx.scratch("webhooks")
    url = f"{env['TESTENV_GIT_HTTP']}/{unique_name('chaos-webhooks')}.git"
    repo = ConfigRepo(work / "repo", url)
    first = repo.replace({"cm.yaml": configmap("hooked", {"value": "one"})})
    secret_file = work / "secret"
    secret_file.write_text(SECRET + "\n")
    with ctx.namespace("webhooks") as namespace:
        agent = start_agent(
            env, work / "agent", namespace, url,
            "--git-webhook-secret-file", str(secret_file),
            "--http-read-timeout", f"{READ_TIMEOUT_S:g}s",
            poll="1h",
        )  # fmt: skip
        try:
            synced_revision(env, namespace, agent.sync_name, first)
            # one genuine delivery, acted on: the body the replays send again
            second = repo.replace({"cm.yaml": configmap("hooked", {"value": "two"})})
            push = {"ref": "refs/heads/main", "after": second, "repository": {"clone_url": url}}
            genuine_body = json.dumps(push).encode()
            genuine = {
                "Content-Type": "application/json",
                "X-GitHub-Event": "push",
                "X-GitHub-Delivery": str(uuid.uuid4()),
                "X-Hub-Signature-256": _sign(genuine_body),
            }
            if _raw(agent.port, _post(genuine_body, genuine)) != 202:
                yield Trial("(setup)", "error", "the genuine delivery was not accepted")
                return
            synced_revision(env, namespace, agent.sync_name, second)
            yield from _kinds(agent, count, genuine_body, genuine)
        finally:
            agent.stop()


def _kinds(agent: AgentProcess, count: int, genuine_body: bytes, genuine: dict[str, str]) -> Iterator[Trial]:
    port = agent.port
    content_types = ["text/plain", "application/xml", "multipart/form-data; boundary=x", None]

    def wrong_signature(i: int) -> tuple[set[int | None], int | None]:
        body = json.dumps({"ref": "refs/heads/main", "after": uuid.uuid4().hex, "n": i}).encode()
        headers = {
            **genuine,
            "X-GitHub-Delivery": str(uuid.uuid4()),
            "X-Hub-Signature-256": _sign(body, "forged"),
        }
        return {401}, _raw(port, _post(body, headers))

    def replayed_body(i: int) -> tuple[set[int | None], int | None]:
        if i % 2 == 0:
            return {409}, _raw(port, _post(genuine_body, genuine))
        return {202}, _raw(port, _post(genuine_body, {**genuine, "X-GitHub-Delivery": str(uuid.uuid4())}))

    def oversized_body(i: int) -> tuple[set[int | None], int | None]:
        body = b"{" + b" " * 65536
        headers = {**genuine, "X-GitHub-Delivery": str(uuid.uuid4())}
        return {413}, _raw(port, _post(body, headers, length=MAX_BODY + 1))

    def wrong_content_type(i: int) -> tuple[set[int | None], int | None]:
        body = json.dumps({"ref": "refs/heads/main", "after": uuid.uuid4().hex, "n": i}).encode()
        headers = {**genuine, "X-GitHub-Delivery": str(uuid.uuid4()), "X-Hub-Signature-256": _sign(body)}
        chosen = content_types[i % len(content_types)]
        if chosen is None:
            del headers["Content-Type"]
        else:
            headers["Content-Type"] = chosen
        return {415}, _raw(port, _post(body, headers))

    kinds: dict[str, Any] = {
        "wrong signature": wrong_signature,
        "replayed body": replayed_body,
        "oversized body": oversized_body,
        "wrong content type": wrong_content_type,
    }
    for kind, send in kinds.items():
        before = _fetches(agent)
        for i in range(count):
            started = time.monotonic()
            try:
                expected, got = send(i)
            except OSError as exc:
                yield Trial(kind, "error", f"could not send: {exc}")
                continue
            yield _judge(agent, kind, expected, got, before, time.monotonic() - started)
        yield from _settled(agent, kind, before)

    before = _fetches(agent)
    for i in range(count):
        started = time.monotonic()
        yield _slow_trial(agent, genuine, before, i, started)
    yield from _settled(agent, "slow client", before)


def _judge(
    agent: AgentProcess, kind: str, expected: set[int | None], got: int | None, before: float, seconds: float
) -> Trial:
    problems = []
    if got not in expected:
        problems.append(f"answered {got}, expected {sorted(str(e) for e in expected)}")
    if not _healthy(agent):
        problems.append("/healthz does not answer 200")
    elif _fetches(agent) != before:
        problems.append("a Git fetch was counted")
    outcome = "violated" if problems else "survived"
    return Trial(kind, outcome, "; ".join(problems) or f"answered {got}", seconds=seconds)


def _settled(agent: AgentProcess, kind: str, before: float) -> Iterator[Trial]:
    """A fetch a refused request triggered may be counted a moment later: look once more."""
    time.sleep(2.0)
    after = _fetches(agent) if _healthy(agent) else None
    if after != before:
        yield Trial(f"{kind} (after settling)", "violated", f"fetches {before:g} -> {after}", injected=0)


def _slow_trial(agent: AgentProcess, genuine: dict[str, str], before: float, i: int, started: float) -> Trial:
    head = _post(b"", {**genuine, "X-GitHub-Delivery": str(uuid.uuid4())}, length=4096)
    clients: list[_Slow] = []
    try:
        clients = [_Slow(agent.port, head) for _ in range(SLOW_CONNECTIONS)]
        time.sleep(0.5)  # every head is in; the bodies trickle
        probe_ok = _healthy(agent)  # answered while every slow client is still being read
        all_done = all(c.done.wait(WAIT_S) for c in clients)
    except OSError as exc:
        return Trial("slow client", "error", f"could not connect: {exc}")
    finally:
        for c in clients:
            c.close()
    statuses = sorted({str(c.status) for c in clients})
    problems = []
    if not probe_ok:
        problems.append("/healthz did not answer 200 during the slow clients")
    if not all_done:
        problems.append("a slow client was not cut off")
    if statuses != ["408"]:
        problems.append(f"answered {statuses}, expected 408")
    if not _healthy(agent):
        problems.append("/healthz does not answer 200 after")
    elif _fetches(agent) != before:
        problems.append("a Git fetch was counted")
    outcome = "violated" if problems else "survived"
    detail = "; ".join(problems) or f"{SLOW_CONNECTIONS} connections cut off with 408, /healthz answered"
    return Trial(
        "slow client", outcome, detail, injected=SLOW_CONNECTIONS, seconds=time.monotonic() - started
    )
