"""``gitops-helm version``: the agent's version, and the helm and git it would run.

helm is ``--helm-bin`` (or ``GITOPS_HELM_HELM_BIN``, or ``helm`` on PATH) and git is ``git`` on
PATH, as the agent finds them. A missing or broken one is reported on its line; the command still
exits 0, since the agent's own version was printed (``gitops-helm check`` is where missing
prerequisites fail). ``--short`` prints the agent's version alone, without running anything;
``-o json`` prints one JSON object.
"""

from __future__ import annotations

import json

from gitops_helm import __version__
from gitops_helm.adapters.probe import ProbeError, ProgramVersion, git_version, helm_version


def _describe(found: ProgramVersion | ProbeError) -> dict[str, str]:
    if isinstance(found, ProbeError):
        return {"error": str(found)}
    return {"version": found.version, "path": found.path}


def version(helm_bin: str, *, short: bool, output: str) -> int:
    if short:
        print(json.dumps({"gitopsHelm": __version__}) if output == "json" else __version__)
        return 0
    programs: dict[str, dict[str, str]] = {}
    for name, probe in (("helm", helm_version), ("git", git_version)):
        try:
            programs[name] = _describe(probe(helm_bin if name == "helm" else "git"))
        except ProbeError as exc:
            programs[name] = _describe(exc)
    if output == "json":
        print(json.dumps({"gitopsHelm": __version__, **programs}, indent=2))
        return 0
    print(f"gitops-helm {__version__}")
    for name, found in programs.items():
        if "error" in found:
            print(f"{name}: unavailable: {found['error']}")
        else:
            print(f"{name} {found['version']} ({found['path']})")
    return 0
