"""A Git server whose TLS certificate is not trusted is a configuration problem with a reason
that names the fix, not "remote unreachable" or an unknown failure retried as a network error."""

from __future__ import annotations

import pytest

from gitops_helm.adapters.git import GitTLSError, PermanentGitError, classify_failure


@pytest.mark.parametrize(
    "stderr",
    [
        # git built with gnutls (Debian's)
        "fatal: unable to access 'https://h/r.git/': server certificate verification failed. "
        "CAfile: none CRLfile: none",
        # git built with openssl
        "fatal: unable to access 'https://h/r.git/': SSL certificate problem: self-signed certificate",
        "fatal: unable to access 'https://h/r.git/': SSL certificate problem: unable to get local issuer "
        "certificate",
        "fatal: unable to access 'https://h/': OpenSSL: error:0A000086:SSL routines::"
        "certificate verify failed",
    ],
)
def test_untrusted_certificates_are_a_permanent_tls_error(stderr: str) -> None:
    assert classify_failure(stderr) is GitTLSError


def test_the_reason_names_the_fix() -> None:
    assert issubclass(GitTLSError, PermanentGitError) and not GitTLSError.temporary
    err = GitTLSError("clone", "https://bot:secret@h/r.git", "server certificate verification failed")
    assert "TLS certificate verification failed" in str(err) and "GIT_SSL_CAINFO" in str(err)
    assert "secret" not in str(err)


def test_other_ssl_trouble_stays_a_network_error() -> None:
    assert classify_failure("fatal: unable to access 'https://h/': gnutls_handshake() failed").temporary
    assert classify_failure("fatal: unable to access 'https://h/': SSL_read: Connection reset").temporary
