"""Repository credentials: pull Secrets, repositories.yaml, URL identity, the HTTP identity per request."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from gitops_helm.adapters.http import Identity
from gitops_helm.charts.auth import (
    RepositoryAuth,
    SecretFiles,
    auth_from_secret,
    http_identity,
    load_repositories_file,
    normalise_url,
    redact_url,
)
from gitops_helm.charts.errors import AuthConfigError

CA, CERT, KEY = b"-----CA-----\n", b"-----CERT-----\n", b"-----KEY-----\n"


@pytest.mark.parametrize(
    "data",
    [
        {"username": b"u", "password": b"s3cret", "ca.crt": CA, "tls.crt": CERT, "tls.key": KEY},
        {
            "username": b"u",
            "password": b"s3cret",
            "caFile": CA,
            "certFile": CERT,
            "keyFile": KEY,
            "other": b"x",
        },
    ],
    ids=["flux-v2-keys", "legacy-keys"],
)
def test_auth_from_secret(data: dict[str, bytes]) -> None:
    auth = auth_from_secret(data, secret_ref="apps/repo-creds")
    assert (auth.username, auth.password, auth.ca, auth.cert, auth.key) == ("u", "s3cret", CA, CERT, KEY)
    assert "s3cret" not in repr(auth) and "KEY" not in repr(auth)


def test_auth_from_secret_prefers_the_current_key_names() -> None:
    assert auth_from_secret({"ca.crt": CA, "caFile": b"old"}).ca == CA


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"username": b"u"}, 'username and password must be given together in Secret "ns/s"'),
        ({"password": b"s3cret"}, "username and password"),
        ({"tls.crt": CERT}, "client certificate and its key"),
        ({"username": b"u", "password": b"\xff"}, "key 'password' of Secret \"ns/s\" is not UTF-8"),
    ],
)
def test_unusable_secret_is_a_permanent_error_without_values(data: dict[str, bytes], message: str) -> None:
    with pytest.raises(AuthConfigError, match=message) as exc:
        auth_from_secret(data, secret_ref="ns/s")
    assert not exc.value.temporary
    assert "s3cret" not in str(exc.value)


def test_url_identity_and_redaction() -> None:
    assert normalise_url("HTTPS://Charts.Example.com:443/a/b/#frag") == "https://charts.example.com/a/b"
    assert normalise_url("http://user:pw@h:8080/") == "http://h:8080"
    assert normalise_url("http://[::1]:80/x/") == "http://[::1]/x"
    assert redact_url("https://user:pw@h/x?token=abc") == "https://h/x?..."


def test_repositories_file(tmp_path: Path) -> None:
    path = tmp_path / "repositories.yaml"
    path.write_text(
        """
apiVersion: ""
repositories:
- name: private
  url: https://Charts.example.com/private/
  username: u
  password: s3cret
  caFile: ca.pem
  certFile: /abs/cert.pem
  keyFile: /abs/key.pem
  insecure_skip_tls_verify: true
  pass_credentials_all: true
- name: public
  url: https://charts.example.com/public
"""
    )
    repos = load_repositories_file(path)
    auth = repos.auth_for("https://charts.example.com:443/private")
    assert auth is not None
    assert (auth.username, auth.password, auth.ca, auth.cert, auth.key) == (
        "u",
        "s3cret",
        tmp_path / "ca.pem",
        Path("/abs/cert.pem"),
        Path("/abs/key.pem"),
    )
    assert auth.insecure_skip_tls_verify and auth.pass_credentials
    assert repos.auth_for("https://charts.example.com/public") == RepositoryAuth(
        source=f'{path} entry "public"'
    )
    assert repos.auth_for("https://charts.example.com/other") is None


@pytest.mark.parametrize("text", ["repositories: {}", "repositories:\n- name: x\n", ": :"])
def test_invalid_repositories_file(tmp_path: Path, text: str) -> None:
    path = tmp_path / "repositories.yaml"
    path.write_text(text)
    with pytest.raises(AuthConfigError, match=str(path)):
        load_repositories_file(path)


def test_http_identity_withholds_credentials_but_keeps_the_ca(tmp_path: Path) -> None:
    files = SecretFiles(tmp_path)
    auth = RepositoryAuth(username="u", password="p", ca=CA, cert=CERT, key=KEY)
    sent = http_identity(auth, files, send_credentials=True)
    assert (sent.username, sent.password) == ("u", "p") and sent.client_cert is not None
    assert Path(sent.client_cert[1]).read_bytes() == KEY
    withheld = http_identity(auth, files, send_credentials=False)
    assert withheld.username is None and withheld.password is None and withheld.client_cert is None
    assert withheld.ca_file == sent.ca_file and withheld.key != sent.key
    assert Path(str(sent.ca_file)).read_bytes() == CA
    assert http_identity(None, files, send_credentials=True) == Identity()
    insecure = RepositoryAuth(ca=CA, insecure_skip_tls_verify=True)
    assert http_identity(insecure, files, send_credentials=True).verify is False


def test_secret_files_are_private_deduplicated_and_removed(tmp_path: Path) -> None:
    files = SecretFiles(tmp_path)
    first, again = files.path(KEY), files.path(KEY)
    assert first == again
    assert stat.S_IMODE(Path(first).stat().st_mode) == 0o600
    assert stat.S_IMODE(Path(first).parent.stat().st_mode) == 0o700
    files.close()
    assert not Path(first).parent.exists()


def test_missing_tls_file_is_a_config_error(tmp_path: Path) -> None:
    auth = RepositoryAuth(ca=tmp_path / "nope.pem", source="repositories.yaml entry x")
    with pytest.raises(
        AuthConfigError, match=r"CA bundle of repositories.yaml entry x .*nope\.pem does not exist"
    ):
        http_identity(auth, SecretFiles(tmp_path), send_credentials=True)
