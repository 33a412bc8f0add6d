"""Errors of the HelmRelease API layer.

Place in the data flow: raised by `gitops_helm.api.parse` when a HelmRelease object (from the
cluster or from a manifest in Git) cannot be turned into the typed model. The reconciler treats a
`SpecError` as permanent: it is surfaced on the object's status and nothing is retried until the
spec changes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from gitops_helm.errors import GitopsHelmError

__all__ = ["APIError", "Problem", "SpecError"]


class APIError(GitopsHelmError, ValueError):
    """Base class of every error raised by `gitops_helm.api`."""


@dataclass(frozen=True)
class Problem:
    """One finding about one field.

    `path` is the field path inside the object, e.g. `spec.valuesFrom[2].configMapKeyRef.name`.
    Used both for validation errors (inside `SpecError`) and for the non-fatal warnings that
    `parse_helmrelease` attaches to the model.
    """

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class SpecError(APIError):
    """A HelmRelease object is invalid; `problems` lists every problem found, not only the first.

    `object_ref` is `namespace/name` (with placeholders when the object has no usable name).
    `str(error)` renders one line per problem, so it can go straight into a status message.
    """

    def __init__(self, object_ref: str, problems: Iterable[Problem]) -> None:
        self.object_ref = object_ref
        self.problems: tuple[Problem, ...] = tuple(problems)
        super().__init__(self._render())

    def _render(self) -> str:
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        lines = [f"HelmRelease {self.object_ref} is invalid ({count} {noun}):"]
        lines.extend(f"  - {problem}" for problem in self.problems)
        return "\n".join(lines)
