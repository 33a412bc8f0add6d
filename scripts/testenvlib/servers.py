"""HTTP servers of the test environment, run as one background process.

* a Git server over smart HTTP (``git http-backend`` as CGI); a repository is created on the first
  push to ``/<name>.git``; ``/auth/<name>.git`` is the same repository behind basic auth;
* a Helm chart repository over plain HTTP, and the same directory over HTTPS with basic auth.

Run: ``python3 -m testenvlib.servers CONFIG.json``. Also importable, so a test can start a private
Git server of its own (for instance to stop it and see the agent cope).
"""

from __future__ import annotations

import base64
import hmac
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

GIT_BACKEND = shutil.which("git-http-backend") or "/usr/lib/git-core/git-http-backend"
_REPO_RE = re.compile(r"^/(?:auth/)?([A-Za-z0-9._-]+(?:/[A-Za-z0-9._-]+)*\.git)(/.*)?$")
_CGI_TIMEOUT = 300


def _check_basic(header: str | None, user: str, password: str) -> bool:
    if not header or not header.startswith("Basic "):
        return False
    try:
        got = base64.b64decode(header[6:]).decode()
    except ValueError:
        return False
    return hmac.compare_digest(got, f"{user}:{password}")


def _read_body(handler: SimpleHTTPRequestHandler) -> bytes:
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size = int(handler.rfile.readline().strip().split(b";")[0], 16)
            if size == 0:
                handler.rfile.readline()
                break
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline()
        return b"".join(chunks)
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length else b""


def make_git_handler(repo_root: Path, user: str, password: str) -> type[SimpleHTTPRequestHandler]:
    class GitHandler(SimpleHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            sys.stderr.write("git-http: " + (format % args) + "\n")

        def do_GET(self) -> None:
            self._cgi()

        def do_POST(self) -> None:
            self._cgi()

        def _cgi(self) -> None:
            path, _, query = self.path.partition("?")
            m = _REPO_RE.match(path)
            if not m or ".." in path:
                self.send_error(404)
                return
            if path.startswith("/auth/") and not _check_basic(self.headers.get("Authorization"), user, password):
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="testenv-git"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            repo, rest = m.group(1), m.group(2) or ""
            pushing = "service=git-receive-pack" in query or rest == "/git-receive-pack"
            repo_dir = repo_root / repo
            if not repo_dir.exists():
                if not pushing:
                    self.send_error(404, "no such repository")
                    return
                init_bare(repo_dir)
            body = _read_body(self) if self.command == "POST" else b""
            env = {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "GIT_PROJECT_ROOT": str(repo_root), "GIT_HTTP_EXPORT_ALL": "1",
                "PATH_INFO": f"/{repo}{rest}", "QUERY_STRING": query, "REQUEST_METHOD": self.command,
                "CONTENT_TYPE": self.headers.get("Content-Type", ""), "CONTENT_LENGTH": str(len(body)),
                "REMOTE_USER": "testenv", "REMOTE_ADDR": self.client_address[0],
                "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(repo_root),
            }
            if self.headers.get("Content-Encoding"):
                env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
            if self.headers.get("Git-Protocol"):
                env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
            proc = subprocess.run([GIT_BACKEND], input=body, env=env, capture_output=True, timeout=_CGI_TIMEOUT)
            head, _, payload = proc.stdout.partition(b"\r\n\r\n")
            if not _:
                head, _, payload = proc.stdout.partition(b"\n\n")
            status = 200
            headers: list[tuple[str, str]] = []
            for line in head.decode("latin-1").splitlines():
                if not line.strip():
                    continue
                key, _, value = line.partition(":")
                if key.lower() == "status":
                    status = int(value.strip().split()[0])
                else:
                    headers.append((key.strip(), value.strip()))
            self.send_response(status)
            for key, value in headers:
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            if proc.returncode != 0:
                sys.stderr.write(f"git-http-backend failed: {proc.stderr.decode(errors='replace')}\n")

    return GitHandler


def make_chart_handler(chart_dir: Path, auth: tuple[str, str] | None) -> type[SimpleHTTPRequestHandler]:
    class ChartHandler(SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(chart_dir), **kwargs)

        def log_message(self, format: str, *args: Any) -> None:
            sys.stderr.write("charts: " + (format % args) + "\n")

        def send_head(self):  # type: ignore[no-untyped-def]
            if auth and not _check_basic(self.headers.get("Authorization"), *auth):
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="testenv-charts"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
            return super().send_head()

    return ChartHandler


def init_bare(repo_dir: Path) -> None:
    repo_dir.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "--quiet", "--bare", "--initial-branch=main", str(repo_dir)],
                   check=True, timeout=30)
    subprocess.run(["git", "-C", str(repo_dir), "config", "http.receivepack", "true"], check=True, timeout=30)


def serve(server: ThreadingHTTPServer) -> threading.Thread:
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    return t


def start_git_server(repo_root: Path, port: int = 0, user: str = "testenv",
                     password: str = "testenv") -> ThreadingHTTPServer:
    """Start a Git smart-HTTP server in a thread of this process; returns it (``.shutdown()`` stops it)."""
    server = ThreadingHTTPServer(("127.0.0.1", port), make_git_handler(repo_root, user, password))
    serve(server)
    return server


def main(config_path: str) -> None:
    cfg = json.loads(Path(config_path).read_text())
    git = ThreadingHTTPServer(("127.0.0.1", cfg["git_port"]),
                              make_git_handler(Path(cfg["git_root"]), cfg["user"], cfg["password"]))
    charts = ThreadingHTTPServer(("127.0.0.1", cfg["charts_port"]), make_chart_handler(Path(cfg["chart_dir"]), None))
    charts_tls = ThreadingHTTPServer(("127.0.0.1", cfg["charts_tls_port"]),
                                     make_chart_handler(Path(cfg["chart_dir"]), (cfg["user"], cfg["password"])))
    git_tls = ThreadingHTTPServer(("127.0.0.1", cfg["git_tls_port"]),
                                  make_git_handler(Path(cfg["git_root"]), cfg["user"], cfg["password"]))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cfg["tls_cert"], cfg["tls_key"])
    for server in (charts_tls, git_tls):
        server.socket = ctx.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    threads = [serve(s) for s in (git, git_tls, charts, charts_tls)]
    sys.stderr.write(f"testenv servers up: git :{cfg['git_port']} charts :{cfg['charts_port']} "
                     f"charts-tls :{cfg['charts_tls_port']}\n")
    for t in threads:
        t.join()


if __name__ == "__main__":
    main(sys.argv[1])
