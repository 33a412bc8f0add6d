"""``gitops-helm plan``: where the commit comes from, which sync it is planned as, the output.

``plan DIR`` plans a directory or checkout on disk as the sync that the cluster's sync state
records (``--git-url``/``--git-branch``/``--git-path`` name another); ``plan --git-url URL
--ref REF`` fetches REF (a branch, tag or commit) with the sync's own Git source and credentials
and plans it as the sync of ``--git-url`` and ``--git-branch``. Output: ``-o text|markdown|json``
on stdout, progress and problems on stderr; exit 0 no change, 1 changes, 2 errors.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, TextIO

from gitops_helm.adapters.git import GitError
from gitops_helm.adapters.kube import Kube, KubeError
from gitops_helm.agent import build_kube, build_source, sync_identity
from gitops_helm.config import ConfigError, Settings
from gitops_helm.preview import report as rp
from gitops_helm.preview.planner import PlanOptions, plan
from gitops_helm.sync.apply import state_configmap_name
from gitops_helm.sync.plan import SourceIdentity, load_identity

FORMATS = ("text", "markdown", "json")


def _recorded_identity(kube: Kube, settings: Settings) -> SourceIdentity | None:
    """The source the cluster's sync state records (what the running agent syncs)."""
    state = kube.get_configmap_data(settings.sync.state_namespace, state_configmap_name(settings.sync.name))
    return load_identity((state or {}).get("source", ""))


def _saved_plan(path: str) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--since {path}: not a plan saved with -o json: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("releases"), list):
        raise ConfigError(f"--since {path}: not a plan saved with -o json (no releases list)")
    return data


def format_report(report: rp.PlanReport, output: str) -> str:
    if output == "json":
        return json.dumps(rp.document(report), indent=2, sort_keys=True) + "\n"
    if output == "markdown":
        return rp.markdown(report)
    return rp.text(report)


def run_plan(
    settings: Settings,
    *,
    directory: str | None,
    ref: str | None,
    include_unchanged: bool,
    output: str,
    since: str | None = None,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    """The ``plan`` verb (see the module docstring); the exit status."""
    if (directory is None) == (ref is None):
        raise ConfigError("plan: give a directory (plan DIR) or --git-url URL --ref REF, not both")
    saved = _saved_plan(since) if since else None
    kube = build_kube(settings)
    try:
        if directory is not None:
            root = Path(directory)
            if not root.is_dir():
                raise ConfigError(f"plan: {directory}: no such directory")
            recorded = None if settings.git.url else _recorded_identity(kube, settings)
            identity = recorded or sync_identity(settings)
            options = PlanOptions(root, identity.paths, str(root), None, include_unchanged)
        else:
            assert ref is not None  # noqa: S101 - checked above
            source = build_source(settings)
            try:
                checkout = source.checkout_ref(ref)
            except GitError as exc:
                print(f"gitops-helm: plan: cannot fetch {ref} of {settings.git.url}: {exc}", file=err)
                return rp.EXIT_ERROR
            identity = sync_identity(settings)
            source_name = f"{identity.url} {ref}"
            options = PlanOptions(
                checkout.path, settings.git.paths, source_name, checkout.sha, include_unchanged
            )
        report = plan(settings, kube, identity, options, lambda line: print(line, file=err))
    except KubeError as exc:
        print(f"gitops-helm: plan: {exc}", file=err)
        return rp.EXIT_ERROR
    if saved is not None:
        report.since_saved = rp.explain_against(report, saved)
    out.write(format_report(report, output))
    out.flush()
    return report.exit_code()
