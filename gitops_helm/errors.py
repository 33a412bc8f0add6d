"""The one error tree of gitops-helm: every error the package raises on purpose derives from it.

Each error is classified ONCE, where the library below is called (the adapters for helm, git,
Kubernetes and HTTP; the parsers for specs, settings, values and charts), by its ``temporary``
flag:

- temporary: the same call may succeed later (network, timeouts, an API server that restarts):
  retry with backoff, report nothing permanent;
- permanent: nothing but a change of spec, credentials or configuration can fix it: surface it
  (status, Event, exit code) and wait for the change.

    GitopsHelmError (temporary: bool)
    ├── ConfigError                   config: a flag or environment variable        (permanent)
    ├── api.SpecError (APIError)      api: an invalid HelmRelease                   (permanent)
    ├── values.ValuesError            values: a values source that cannot be used
    ├── adapters.kube.KubeError       Kubernetes API (kind: not-found, conflict, temporary, ...)
    ├── adapters.helm.HelmError       helm subprocess (kind: failed, locked, temporary, ...)
    ├── adapters.git.GitError         git (TemporaryGitError / PermanentGitError subclasses)
    ├── adapters.http.HTTPError       HTTP (connection, timeout, status, size, TLS)
    └── charts.errors.ChartError      chart sources (repository, OCI, Git, plugin, archive)

Nothing outside the adapters reads an error's text to decide what to do.
"""

from __future__ import annotations

__all__ = ["ConfigError", "GitopsHelmError"]


class GitopsHelmError(Exception):
    """Base of every error the package raises on purpose. ``temporary``: a retry may help."""

    temporary: bool = False


class ConfigError(GitopsHelmError, ValueError):
    """A flag, environment variable or configuration file has a bad value; the message names it."""
