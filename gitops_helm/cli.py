"""The ``gitops-helm`` command: parse arguments, build settings, hand over. Nothing else lives here.

gitops-helm run [--git-url URL ... | --reconcile-only]   the agent
gitops-helm sync --once --git-url URL ...                 one Git sync, then exit (non-zero on errors)
gitops-helm diff --git-url URL ...                        what a sync would create, change or delete
gitops-helm plan DIR | --git-url URL --ref REF [-o text|markdown|json]   what a commit does to each release
gitops-helm get [hr] [NAME] [-n NS | -A] [-o table|wide|json|yaml]   HelmReleases as a table
gitops-helm status [-n NS] [-o ...]                       HelmReleases, the Git sync state, the leader
gitops-helm reconcile NAME [-n NS] [--with-source]        reconcile now, wait, exit 0 Ready / 1 not / 2 error
gitops-helm suspend NAME | resume NAME                    spec.suspend (resume waits like reconcile)
gitops-helm events [NAME] [-n NS | -A]                    Events of HelmReleases, newest last
gitops-helm history NAME [-n NS] [-o table|json]          last attempts: Helm revision beside Git commit
gitops-helm check [--as USER]                             API server, CRD, helm, git, RBAC
gitops-helm images list --git-url URL ...                 images and chart versions found, and their updates
gitops-helm images update [--dry-run] --git-url URL ...   one image update pass (commit, or print the diff)
gitops-helm render PATH [--output-dir DIR]                every HelmRelease under PATH rendered offline
gitops-helm explain values NS/NAME [KEY.PATH] [--path DIR]  each value and the source that set it
gitops-helm crd                                           print the HelmRelease CRD
gitops-helm version [--short] [-o text|json]           the agent's, helm's and git's versions
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from gitops_helm import __version__
from gitops_helm import log as logging
from gitops_helm.cli_flags import FlagParser, document_flags
from gitops_helm.config import (
    ENV_PREFIX,
    Settings,
    add_common_flags,
    add_git_flags,
    add_image_automation_flag,
    add_image_commit_flags,
    add_image_scan_flags,
    add_image_source_flags,
    add_plan_flags,
    add_render_flags,
    add_run_flags,
    add_shard_flags,
    settings_from_args,
)
from gitops_helm.errors import ConfigError, GitopsHelmError
from gitops_helm.verbs.flags import EXPLAIN, VERBS, add_verbs

# Nothing heavy is imported at start: ``--help`` and ``version`` never load the Kubernetes client;
# ``commands`` (and through it the agent) is imported only for a command that needs it.


def build_parser() -> argparse.ArgumentParser:
    p = FlagParser(
        prog="gitops-helm",
        description="Keep Helm releases equal to a Git repository. Boolean flags: --flag, "
        "--flag=true|false (also 1/0, yes/no, on/off); list flags: repeat them or separate with commas.",
    )
    p.add_argument("--version", action="version", version=f"gitops-helm {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the agent (Git sync + release reconciler)")
    add_common_flags(run)
    add_run_flags(run)
    add_shard_flags(run)
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

    plan = sub.add_parser(
        "plan", help="what a commit would do to each Helm release and manifest (server-side dry run)"
    )
    add_plan_flags(plan)
    add_common_flags(plan)
    add_git_flags(plan)
    add_image_source_flags(plan)

    add_verbs(sub)

    images = sub.add_parser("images", help="image and chart version automation, one pass")
    images_sub = images.add_subparsers(dest="images_command", required=True, metavar="ACTION")
    listing = images_sub.add_parser(
        "list", help="print every image and chart version found, its policy and the update it would get"
    )
    listing.add_argument(
        "-o",
        "--output",
        choices=("table", "json"),
        default="table",
        help="table (default) or json: one machine-readable document of images, skips and errors",
    )
    update = images_sub.add_parser("update", help="one pass: commit the updates (or print them)")
    update.add_argument("--dry-run", action="store_true", help="print the unified diff, commit nothing")
    for parser in (listing, update):
        add_common_flags(parser)
        add_git_flags(parser)
        add_image_scan_flags(parser)
        add_image_source_flags(parser)
    add_image_commit_flags(update)

    render = sub.add_parser(
        "render",
        help="render every HelmRelease under PATH to manifests with helm template (offline: no cluster)",
    )
    add_render_flags(render)

    sub.add_parser("crd", help="print the HelmRelease CustomResourceDefinition (YAML)")
    version = sub.add_parser("version", help="print the agent's version and the helm and git it would run")
    version.add_argument("--short", action="store_true", help="the agent's version only")
    version.add_argument("-o", "--output", choices=("text", "json"), default="text", help="default: text")
    version.add_argument("--helm-bin", help="helm 3 or helm 4 binary (default: helm on PATH)")
    document_flags(p)
    return p


def _show_notices(args: argparse.Namespace) -> None:
    """Deprecated and ignored flags, said before anything else happens."""
    for notice in getattr(args, "flag_notices", None) or ():
        print(f"gitops-helm: warning: {notice}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _show_notices(args)
    if args.command == "version":  # before the settings: a bad variable must not hide the version
        from gitops_helm.cli_version import version

        helm_bin = args.helm_bin or os.environ.get(f"{ENV_PREFIX}HELM_BIN") or Settings.helm_bin
        return version(helm_bin, short=bool(args.short), output=args.output)
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
    if args.command == "render":
        return _render(args, settings)
    if args.command == EXPLAIN:
        from gitops_helm.verbs.explain import explain_values

        logging.setup(settings.log_format, args.log_level or "warning")  # stderr is for the problems
        return explain_values(args, settings)
    logging.setup(settings.log_format, settings.log_level)
    try:
        from gitops_helm import commands

        if args.command == "run":
            return commands.run(settings)
        if args.command == "images":
            update = args.images_command == "update"
            output = "table" if update else args.output
            return commands.images(
                settings, update=update, dry_run=update and bool(args.dry_run), output=output
            )
        if args.command == "diff":
            return commands.diff(settings)
        if args.command == "plan":
            return _plan(args, settings)
        if args.command == "sync":
            return commands.sync_once(settings, diff_only=False)
        print(f"gitops-helm: unknown command {args.command!r}", file=sys.stderr)
        return 2
    except ConfigError as exc:
        print(f"gitops-helm: {exc}", file=sys.stderr)
        return 2
    except GitopsHelmError as exc:
        print(f"gitops-helm: {exc}", file=sys.stderr)
        # diff and plan, like kubectl diff: 1 means "there are differences", so an error is 2
        return 2 if args.command in ("diff", "plan") else 1


def _plan(args: argparse.Namespace, settings: Settings) -> int:
    from gitops_helm.preview.command import run_plan

    logging.setup(settings.log_format, args.log_level or "warning")  # stdout is the report
    if args.ref is not None and not settings.git.url:
        raise ConfigError("plan --ref needs --git-url")
    return run_plan(
        settings,
        directory=args.directory,
        ref=args.ref,
        include_unchanged=bool(args.all),
        output=args.output,
        since=args.since,
    )


def _render(args: argparse.Namespace, settings: Settings) -> int:
    from pathlib import Path

    from gitops_helm.render import RenderOptions, render

    logging.setup(settings.log_format, args.log_level or "warning")  # stderr is for the problems
    options = RenderOptions(
        path=Path(args.path),
        output_dir=Path(args.output_dir) if args.output_dir else None,
        include_crds=bool(args.include_crds),
        kube_version=args.kube_version,
        api_versions=tuple(args.api_versions or ()),
    )
    try:
        return render(settings, options)
    except ConfigError as exc:
        print(f"gitops-helm: {exc}", file=sys.stderr)
        return 2
    except GitopsHelmError as exc:
        print(f"gitops-helm: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
