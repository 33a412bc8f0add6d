"""Credential fingerprints (charts.identity, RepositoryAuth.fingerprint, Identity.key): different
credentials give different keys, anonymous is an identity of its own, and no secret is ever part
of a key or a cache file name."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gitops_helm.adapters.http import Identity
from gitops_helm.charts.auth import RepositoryAuth
from gitops_helm.charts.helmrepo import HelmRepoClient, HelmRepoSettings
from gitops_helm.charts.identity import FingerprintKey

KEY = FingerprintKey(b"k" * 32)
# secrets long enough that finding one inside a 64-digit hex string by chance is negligible
secret = st.text(min_size=8, max_size=40).filter(
    lambda s: s.strip() != "" and s not in ".meta.json.entries.json"
)
pem = st.binary(min_size=8, max_size=64)


@st.composite
def auths(draw: st.DrawFn) -> RepositoryAuth:
    basic = draw(st.booleans())
    cert = draw(st.booleans())
    return RepositoryAuth(
        username=draw(secret) if basic else None,
        password=draw(secret) if basic else None,
        ca=draw(st.none() | pem),
        cert=draw(pem) if cert else None,
        key=draw(pem) if cert else None,
        insecure_skip_tls_verify=draw(st.booleans()),
        pass_credentials=draw(st.booleans()),
    )


def _fields(auth: RepositoryAuth) -> tuple[object, ...]:
    return (
        auth.username,
        auth.password,
        auth.ca,
        auth.cert,
        auth.key,
        auth.insecure_skip_tls_verify,
        auth.pass_credentials,
    )


@given(auths(), auths())
def test_different_credentials_have_different_fingerprints(a: RepositoryAuth, b: RepositoryAuth) -> None:
    assert (a.fingerprint(KEY) == b.fingerprint(KEY)) == (_fields(a) == _fields(b))


@given(auths())
def test_anonymous_is_an_identity_of_its_own(auth: RepositoryAuth) -> None:
    anonymous = RepositoryAuth().fingerprint(KEY)
    assert (auth.fingerprint(KEY) == anonymous) == (_fields(auth) == _fields(RepositoryAuth()))


@given(auths())
def test_no_secret_is_in_a_fingerprint(auth: RepositoryAuth) -> None:
    fingerprint = auth.fingerprint(KEY)
    for value in (auth.username, auth.password):
        assert value is None or value not in fingerprint
    for material in (auth.ca, auth.cert, auth.key):
        assert material is None or material.hex() not in fingerprint
    assert "k" * 32 not in repr(KEY) and "kkkk" not in repr(KEY)


@given(secret, secret)
def test_the_fingerprint_depends_on_the_installations_key(user: str, password: str) -> None:
    auth = RepositoryAuth(username=user, password=password)
    assert auth.fingerprint(KEY) != auth.fingerprint(FingerprintKey(b"j" * 32))


def test_parts_do_not_run_into_each_other() -> None:
    assert KEY.fingerprint(["ab", "c"]) != KEY.fingerprint(["a", "bc"])
    assert (
        len({KEY.fingerprint([None]), KEY.fingerprint([""]), KEY.fingerprint([b""]), KEY.fingerprint([])})
        == 4
    )
    assert KEY.fingerprint([False]) != KEY.fingerprint([b"\x00"])


@given(
    st.tuples(st.none() | secret, st.none() | secret, st.none() | secret, st.booleans()),
    st.tuples(st.none() | secret, st.none() | secret, st.none() | secret, st.booleans()),
)
def test_http_sessions_are_keyed_by_every_credential_field(
    a: tuple[str | None, str | None, str | None, bool], b: tuple[str | None, str | None, str | None, bool]
) -> None:
    def identity(fields: tuple[str | None, str | None, str | None, bool]) -> Identity:
        user, password, ca, verify = fields
        if (user is None) != (password is None):
            password = user  # both or neither
        return Identity(username=user, password=password, ca_file=ca, verify=verify)

    first, second = identity(a), identity(b)
    assert (first.key == second.key) == (first == second)
    for value in (first.username, first.password):
        assert value is None or value not in first.key


def test_the_key_is_created_once_private_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "cache" / "identity.key"
    first = FingerprintKey.load_or_create(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    again = FingerprintKey.load_or_create(path)
    assert first.fingerprint(["x"]) == again.fingerprint(["x"])  # file names survive a restart
    path.write_bytes(b"short")  # damaged: replaced by a new key
    assert FingerprintKey.load_or_create(path).fingerprint(["x"]) != first.fingerprint(["x"])
    assert len(path.read_bytes()) == 32


@settings(max_examples=25, deadline=None)
@given(secret, secret)
def test_index_cache_files_are_per_identity_and_name_no_secret(user: str, password: str) -> None:
    import tempfile

    with (
        tempfile.TemporaryDirectory() as tmp,
        HelmRepoClient(HelmRepoSettings(cache_dir=Path(tmp))) as client,
    ):
        repo = "https://charts.example.com/private"
        mine = client.index_files(repo, RepositoryAuth(username=user, password=password))
        anonymous = client.index_files(repo)
        other = client.index_files(repo, RepositoryAuth(username=user, password=password + "x"))
        assert len({mine[0], anonymous[0], other[0]}) == 3
        for path in (*mine, *anonymous, *other):
            assert user not in path.name and password not in path.name


def test_the_key_is_never_shown() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        FingerprintKey(b"short")
    assert repr(FingerprintKey.random()) == "FingerprintKey(...)"
