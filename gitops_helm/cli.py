"""The ``gitops-helm`` command: parse arguments, build settings, hand over. Nothing else lives here.

gitops-helm run [--git-url URL ... | --reconcile-only]   the agent
gitops-helm sync --once --git-url URL ...                 one Git sync, then exit (non-zero on errors)
gitops-helm diff --git-url URL ...                        what a sync would create, change or delete
gitops-helm get [hr] [NAME] [-n NS | -A] [-o table|wide|json|yaml]   HelmReleases as a table
gitops-helm status [-n NS] [-o ...]                       HelmReleases, the Git sync state, the leader
gitops-helm reconcile NAME [-n NS] [--with-source]        reconcile now, wait, exit 0 Ready / 1 not / 2 error
gitops-helm suspend NAME | resume NAME                    spec.suspend (resume waits like reconcile)
gitops-helm events [NAME] [-n NS | -A]                    Events of HelmReleases, newest last
gitops-helm check [--as USER]                             API server, CRD, helm, git, RBAC
gitops-helm images list --git-url URL ...                 images and chart versions found, and their updates
gitops-helm images update [--dry-run] --git-url URL ...   one image update pass (commit, or print the diff)
gitops-helm crd                                           print the HelmRelease CRD
gitops-helm version
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from gitops_helm import log as logging
from gitops_helm.config import (
    add_common_flags,
    add_git_flags,
    add_image_automation_flag,
    add_image_commit_flags,
    add_image_scan_flags,
    add_image_source_flags,
    add_run_flags,
    settings_from_args,
)
from gitops_helm.errors import ConfigError, GitopsHelmError
from gitops_helm.verbs.flags import VERBS, add_verbs

# Nothing heavy is imported at start: ``--help`` and ``version`` never load the Kubernetes client;
# ``commands`` (and through it the agent) is imported only for a command that needs it.


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gitops-helm", description="Keep Helm releases equal to a Git repository."
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the agent (Git sync + release reconciler)")
    add_common_flags(run)
    add_run_flags(run)
    add_git_flags(run)
    add_image_scan_flags(run)
    add_image_commit_flags(run)
    add_image_automation_flag(run)

    sync = sub.add_parser("sync", help="one Git sync (apply + garbage collection), then exit")
    sync.add_argument("--once", action="store_true", required=True, help="required: sync once and exit")
    add_common_flags(sync)
    add_git_flags(sync)

    diff = sub.add_parser("diff", help="show what a sync of the Git head would change (server-side dry run)")
    add_common_flags(diff)
    add_git_flags(diff)

    add_verbs(sub)

    images = sub.add_parser("images", help="image and chart version automation, one pass")
    images_sub = images.add_subparsers(dest="images_command", required=True, metavar="ACTION")
    listing = images_sub.add_parser(
        "list", help="print every image and chart version found, its policy and the update it would get"
    )
    update = images_sub.add_parser("update", help="one pass: commit the updates (or print them)")
    update.add_argument("--dry-run", action="store_true", help="print the unified diff, commit nothing")
    for parser in (listing, update):
        add_common_flags(parser)
        add_git_flags(parser)
        add_image_scan_flags(parser)
        add_image_source_flags(parser)
    add_image_commit_flags(update)

    sub.add_parser("crd", help="print the HelmRelease CustomResourceDefinition (YAML)")
    sub.add_parser("version", help="print the version")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "version":
        from gitops_helm import __version__

        print(f"gitops-helm {__version__}")
        return 0
    if args.command == "crd":
        from gitops_helm.commands import crd

        return crd()
    if args.command in VERBS:
        from gitops_helm.verbs.dispatch import run_verb

        return run_verb(args)
    try:
        settings = settings_from_args(args)
    except ConfigError as exc:
        print(f"gitops-helm: {exc}", file=sys.stderr)
        return 2
    logging.setup(settings.log_format, settings.log_level)
    try:
        from gitops_helm import commands

        if args.command == "run":
            return commands.run(settings)
        if args.command == "images":
            update = args.images_command == "update"
            return commands.images(settings, update=update, dry_run=update and args.dry_run)
        return commands.sync_once(settings, diff_only=args.command == "diff")
    except ConfigError as exc:
        print(f"gitops-helm: {exc}", file=sys.stderr)
        return 2
    except GitopsHelmError as exc:
        print(f"gitops-helm: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
