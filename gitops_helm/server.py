"""The agent's HTTP endpoint: ``/healthz``, ``/readyz``, ``/metrics`` and the Git webhook.

Place in the flow: beside the controller and the Git source. ``POST /hooks/git`` accepts GitHub,
GitLab, Gitea/Forgejo and a generic format; a delivery is acted on only when its signature (or
token) verifies against the configured secret, and only when it concerns the synced repository
and branch; anything else gets 401 (bad or missing signature) or 202 with no action. Without a
configured secret the webhook answers 404: an unauthenticated trigger is never offered.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gitops_helm import log as logging
from gitops_helm.metrics import REGISTRY
from gitops_helm.source.webhook import verify_webhook

log = logging.get(__name__)

MAX_BODY = 5 * 1024 * 1024


@dataclass
class Hooks:
    """What the server asks of the rest of the agent."""

    ready: Callable[[], tuple[bool, str]]
    git_trigger: Callable[[], None] | None = None
    git_url: str = ""
    git_branch: Callable[[], str] | None = None
    webhook_secret: str | None = None
    before_metrics: Callable[[], None] | None = None
    alive: Callable[[], tuple[bool, str]] | None = None  # /healthz: every loop making progress


def make_handler(hooks: Hooks) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "gitops-helm"
        timeout = 15

        def log_message(self, format: str, *args: object) -> None:
            log.debug("http", request=format % args)

        def _reply(self, code: int, body: bytes, ctype: str = "text/plain; charset=utf-8") -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                ok, why = hooks.alive() if hooks.alive else (True, "ok")
                self._reply(200 if ok else 503, (why + "\n").encode())
            elif path == "/readyz":
                ok, why = hooks.ready()
                self._reply(200 if ok else 503, (why + "\n").encode())
            elif path == "/metrics":
                if hooks.before_metrics:
                    hooks.before_metrics()
                self._reply(200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST)
            else:
                self._reply(404, b"not found\n")

        def do_POST(self) -> None:
            path = self.path.split("?", 1)[0]
            if path != "/hooks/git" or not hooks.webhook_secret or hooks.git_trigger is None:
                self._reply(404, b"not found\n")
                return
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if length < 0 or length > MAX_BODY:
                self._reply(413, b"body too large\n")
                return
            body = self.rfile.read(length)
            headers = {k: v for k, v in self.headers.items()}
            verdict = verify_webhook(headers, body, hooks.webhook_secret)
            if not verdict.verified:
                log.warning("webhook refused", reason=verdict.reason, peer=self.client_address[0])
                self._reply(401, b"signature verification failed\n")
                return
            branch = hooks.git_branch() if hooks.git_branch else ""
            if verdict.ping:
                self._reply(200, b"pong\n")
                return
            if not verdict.concerns(hooks.git_url, branch):
                log.info("webhook ignored: not for this repository/branch", event=verdict.event)
                self._reply(202, b"ignored\n")
                return
            log.info("webhook: fetching now", provider=str(verdict.provider), event=verdict.event)
            hooks.git_trigger()
            self._reply(202, b"sync triggered\n")

    return Handler


class Server:
    def __init__(self, host: str, port: int, hooks: Hooks) -> None:
        self.httpd = ThreadingHTTPServer((host, port), make_handler(hooks))
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="http", daemon=True)

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
