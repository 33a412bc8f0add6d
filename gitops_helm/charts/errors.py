"""Errors of the chart sources, classified once: temporary (retry with backoff) or permanent.

Place in the data flow: raised by the chart sources (`helmrepo`, `auth`, `cache`) and read by
the reconciler, which looks only at `ChartError.temporary` (and `retry_after`): a temporary
error is retried with backoff, a permanent one is surfaced on the HelmRelease status and waits
for a change. Messages name the chart, the constraint and the repository URL (with any userinfo
removed) and never contain a credential. The HTTP adapter's `HTTPError` that caused one is
chained as `__cause__`; the chart sources choose the class from its type and status code.
"""

from __future__ import annotations

from gitops_helm.errors import GitopsHelmError

__all__ = [
    "AddressRefusedError",
    "ArchiveError",
    "AuthConfigError",
    "ChartError",
    "ChartNotFoundError",
    "DigestMismatchError",
    "IndexFormatError",
    "RepositoryAuthError",
    "RepositoryError",
    "RepositoryUnavailableError",
    "SizeLimitError",
    "VersionConstraintError",
]


class ChartError(GitopsHelmError):
    """Base class of every chart source error. `temporary` says whether a retry may help."""

    temporary: bool = False

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after  # seconds the server asked us to wait (429/503), if any


class ChartNotFoundError(ChartError):
    """The chart, or no version of it matching the constraint, is not in the repository."""


class RepositoryAuthError(ChartError):
    """The repository refused the credentials (HTTP 401 or 403), or none were given."""


class VersionConstraintError(ChartError):
    """`chart.version` is not a valid version or Helm semver constraint."""


class AuthConfigError(ChartError):
    """A pull Secret or a `repositories.yaml` entry is unusable (e.g. a password without a user)."""


class RepositoryError(ChartError):
    """Any other permanent repository failure: HTTP 404/4xx, a TLS verification failure, a bad URL."""


class IndexFormatError(ChartError):
    """The repository index is not a valid Helm index."""


class DigestMismatchError(ChartError):
    """A downloaded chart does not match the digest the index promised."""


class SizeLimitError(ChartError):
    """An index, a chart archive or its content is larger than the configured limit."""


class ArchiveError(ChartError):
    """A chart archive is unreadable or unsafe (absolute paths, `..`, outside links, devices)."""


class RepositoryUnavailableError(ChartError):
    """Connection error, timeout, HTTP 429 or 5xx: the repository may answer later."""

    temporary = True


class AddressRefusedError(RepositoryError):
    """The chart source's host resolves to an address the agent may not reach (link-local and
    cloud metadata always; loopback and private addresses in lockdown)."""

    @classmethod
    def of(cls, field: str, detail: str) -> AddressRefusedError:
        """``field``: the HelmRelease field that names the address (``spec.chart.repository``)."""
        return cls(
            f"{field}: {detail}; chart sources may not reach link-local (metadata) addresses, "
            "nor loopback or private ones in lockdown mode (--allow-internal-urls lifts this)"
        )
