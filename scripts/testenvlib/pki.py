"""A throw-away PKI made with the openssl CLI: a CA, a loopback serving certificate, client certs."""

from __future__ import annotations

import subprocess
from pathlib import Path

_TIMEOUT = 60


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, timeout=_TIMEOUT,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def make_pki(d: Path) -> None:
    """Create ca.{crt,key}, serving.{crt,key} (127.0.0.1/localhost), admin.{crt,key}, sa.key."""
    d.mkdir(parents=True, exist_ok=True)
    if (d / "admin.crt").exists():
        return
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650", "-keyout", "ca.key",
             "-out", "ca.crt", "-subj", "/CN=gitops-helm-testenv-ca", cwd=d)
    (d / "serving.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"
        "keyUsage=digitalSignature,keyEncipherment\n"
    )
    (d / "client.ext").write_text("extendedKeyUsage=clientAuth\nkeyUsage=digitalSignature,keyEncipherment\n")
    for name, subj, ext in (
        ("serving", "/CN=127.0.0.1", "serving.ext"),
        ("admin", "/O=system:masters/CN=testenv-admin", "client.ext"),
    ):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", subj, cwd=d)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-days", "3650", "-out", f"{name}.crt", "-extfile", ext, cwd=d)
    _openssl("genrsa", "-out", "sa.key", "2048", cwd=d)
    for p in d.glob("*.key"):
        p.chmod(0o600)
