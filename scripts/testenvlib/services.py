"""Git (HTTP and SSH), chart repositories and the OCI registry of the test environment."""

from __future__ import annotations

import getpass
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import urllib.request
from pathlib import Path

from .state import State, free_port, spawn, wait_for

USER = "testenv"
PASSWORD = "testenv-secret"  # test credentials of a loopback-only service


def _need(binary: str, package: str) -> str:
    found = shutil.which(binary) or (f"/usr/sbin/{binary}" if Path(f"/usr/sbin/{binary}").exists() else None)
    if not found:
        raise RuntimeError(f"{binary} not found: install the Debian package '{package}' "
                           f"(make system-deps does it)")
    return found


def start_http(state: State, root: Path) -> None:
    logs = root / "logs"
    git_root, chart_dir = root / "git", root / "charts"
    git_root.mkdir(parents=True, exist_ok=True)
    chart_dir.mkdir(parents=True, exist_ok=True)
    if not (chart_dir / "index.yaml").exists():
        (chart_dir / "index.yaml").write_text("apiVersion: v1\nentries: {}\n")
    cfg = {
        "git_port": free_port(), "git_tls_port": free_port(), "charts_port": free_port(),
        "charts_tls_port": free_port(),
        "git_root": str(git_root), "chart_dir": str(chart_dir), "user": USER, "password": PASSWORD,
        "tls_cert": str(root / "pki" / "serving.crt"), "tls_key": str(root / "pki" / "serving.key"),
    }
    (root / "servers.json").write_text(json.dumps(cfg))
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    state.record("http-servers", spawn("http-servers", [sys.executable, "-m", "testenvlib.servers",
                                                        str(root / "servers.json")], logs, env))
    git_url = f"http://127.0.0.1:{cfg['git_port']}"
    charts = f"http://127.0.0.1:{cfg['charts_port']}"
    charts_auth = f"https://127.0.0.1:{cfg['charts_tls_port']}"
    ctx = ssl.create_default_context(cafile=str(root / "pki" / "ca.crt"))

    def ready() -> bool:
        urllib.request.urlopen(charts + "/index.yaml", timeout=2).read()
        try:
            urllib.request.urlopen(charts_auth + "/index.yaml", timeout=2, context=ctx)
        except urllib.error.HTTPError as exc:
            return exc.code == 401
        return False

    wait_for("http servers", ready, 30, logs / "http-servers.log", state.pids["http-servers"])
    state.info["git_root"] = str(git_root)
    state.info["chart_dir"] = str(chart_dir)
    state.env.update({
        "TESTENV_GIT_HTTP": git_url,
        "TESTENV_GIT_HTTP_AUTH": f"{git_url}/auth",
        # The same repositories over HTTPS (CA in TESTENV_CA_FILE); /auth/<name>.git needs basic auth.
        "TESTENV_GIT_HTTPS": f"https://127.0.0.1:{cfg['git_tls_port']}",
        "TESTENV_GIT_USER": USER, "TESTENV_GIT_PASSWORD": PASSWORD,
        "TESTENV_CHARTS": charts,
        "TESTENV_CHARTS_AUTH": charts_auth,
        "TESTENV_CHARTS_USER": USER, "TESTENV_CHARTS_PASSWORD": PASSWORD,
        "TESTENV_CA_FILE": str(root / "pki" / "ca.crt"),
    })


def start_sshd(state: State, root: Path) -> None:
    sshd = _need("sshd", "openssh-server")
    ssh_dir = root / "ssh"
    ssh_dir.mkdir(parents=True, exist_ok=True)
    host_key, client_key = ssh_dir / "host_ed25519", ssh_dir / "client_ed25519"
    for key in (host_key, client_key):
        if not key.exists():
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "gitops-helm-testenv",
                            "-f", str(key)], check=True, timeout=30)
    (ssh_dir / "authorized_keys").write_text(Path(f"{client_key}.pub").read_text())
    (ssh_dir / "authorized_keys").chmod(0o600)
    port = free_port()
    gitshell = Path(__file__).with_name("gitshell.py")
    git_root = Path(state.info["git_root"])
    (ssh_dir / "sshd_config").write_text("\n".join([
        f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {host_key}",
        f"PidFile {ssh_dir / 'sshd.pid'}", f"AuthorizedKeysFile {ssh_dir / 'authorized_keys'}",
        "PasswordAuthentication no", "KbdInteractiveAuthentication no", "PermitRootLogin prohibit-password",
        "StrictModes no", "UsePAM no", "PrintMotd no", "AllowTcpForwarding no", "X11Forwarding no",
        f"ForceCommand {sys.executable} {gitshell} {git_root}",
        f"SetEnv PATH={os.environ.get('PATH', '/usr/bin:/bin')}",
        "LogLevel INFO", "",
    ]))
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)
    state.record("sshd", spawn("sshd", [sshd, "-D", "-e", "-f", str(ssh_dir / "sshd_config")], root / "logs"))
    host_pub = Path(f"{host_key}.pub").read_text().split()
    (ssh_dir / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")

    def listening() -> bool:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            return s.recv(4).startswith(b"SSH-")

    wait_for("sshd", listening, 20, root / "logs" / "sshd.log", state.pids["sshd"])
    state.env.update({
        "TESTENV_GIT_SSH": f"ssh://{getpass.getuser()}@127.0.0.1:{port}{git_root}",
        "TESTENV_GIT_SSH_KEY": str(client_key),
        "TESTENV_KNOWN_HOSTS": str(ssh_dir / "known_hosts"),
    })


def _bcrypt(password: str) -> str:
    """A bcrypt hash for the registry's htpasswd file (the registry accepts bcrypt only)."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # libxcrypt's bcrypt; the module exists up to Python 3.12
    return crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH))  # noqa: S324 (bcrypt, not a weak hash)


def _registry(state: State, root: Path, name: str, *, htpasswd: Path | None) -> str:
    """Start one docker-registry; returns its host:port. With ``htpasswd``, every request needs basic auth."""
    registry = _need("docker-registry", "docker-registry")
    d = root / name
    d.mkdir(parents=True, exist_ok=True)
    port, debug_port = free_port(), free_port()
    auth = f"auth: {{htpasswd: {{realm: testenv, path: {htpasswd}}}}}\n" if htpasswd else ""
    (d / "config.yml").write_text(
        "version: 0.1\nlog: {level: warn}\n"
        f"storage: {{filesystem: {{rootdirectory: {d / 'data'}}}, delete: {{enabled: true}}}}\n"
        f"http: {{addr: '127.0.0.1:{port}', debug: {{addr: '127.0.0.1:{debug_port}'}}}}\n" + auth
    )
    state.record(name, spawn(name, [registry, "serve", str(d / "config.yml")], root / "logs"))

    def ready() -> bool:
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=2).status == 200 and not htpasswd
        except urllib.error.HTTPError as exc:
            return exc.code == 401 and htpasswd is not None

    wait_for(name, ready, 30, root / "logs" / f"{name}.log", state.pids[name])
    return f"127.0.0.1:{port}"


def start_registry(state: State, root: Path) -> None:
    open_registry = _registry(state, root, "registry", htpasswd=None)
    state.env["TESTENV_REGISTRY"] = open_registry
    state.env["TESTENV_OCI_CHARTS"] = f"oci://{open_registry}/charts"
    # A second registry behind htpasswd (basic auth on every request), for private charts and images.
    htpasswd = root / "registry-htpasswd"
    htpasswd.write_text(f"{USER}:{_bcrypt(PASSWORD)}\n")
    private = _registry(state, root, "registry-auth", htpasswd=htpasswd)
    state.env.update({
        "TESTENV_REGISTRY_AUTH": private,
        "TESTENV_OCI_CHARTS_AUTH": f"oci://{private}/charts",
        "TESTENV_REGISTRY_USER": USER, "TESTENV_REGISTRY_PASSWORD": PASSWORD,
    })
