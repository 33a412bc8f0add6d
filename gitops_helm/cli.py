"""The ``gitops-helm`` command: parse arguments, build settings, hand over. Nothing else lives here.

gitops-helm run [--git-url URL ... | --reconcile-only]   the agent
gitops-helm sync --once --git-url URL ...                 one Git sync, then exit (non-zero on errors)
gitops-helm diff --git-url URL ...                        what a sync would create, change or delete
gitops-helm status                                        HelmReleases and the Git sync state
gitops-helm crd                                           print the HelmRelease CRD
gitops-helm version
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

import yaml

from gitops_helm import __version__
from gitops_helm import log as logging
from gitops_helm.adapters.helm import HelmError
from gitops_helm.adapters.kube import KubeError
from gitops_helm.config import (
    ConfigError,
    Settings,
    add_common_flags,
    add_git_flags,
    add_run_flags,
    settings_from_args,
)

log = logging.get(__name__)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gitops-helm", description="Keep Helm releases equal to a Git repository."
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the agent (Git sync + release reconciler)")
    add_common_flags(run)
    add_run_flags(run)
    add_git_flags(run)

    sync = sub.add_parser("sync", help="one Git sync (apply + garbage collection), then exit")
    sync.add_argument("--once", action="store_true", required=True, help="required: sync once and exit")
    add_common_flags(sync)
    add_git_flags(sync)

    diff = sub.add_parser("diff", help="show what a sync of the Git head would change (server-side dry run)")
    add_common_flags(diff)
    add_git_flags(diff)

    status = sub.add_parser("status", help="show HelmReleases and the Git sync state")
    add_common_flags(status)
    status.add_argument("--sync-name", help="sync source to show (default: default)")
    status.add_argument("--state-namespace", help="namespace of the sync-state ConfigMap (default: default)")

    sub.add_parser("crd", help="print the HelmRelease CustomResourceDefinition (YAML)")
    sub.add_parser("version", help="print the version")
    return p


def _stop_on_signals(stop: threading.Event) -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        del frame
        log.info("signal received: finishing in-flight work", signal=signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def cmd_run(settings: Settings) -> int:
    from gitops_helm.runner import run_agent

    stop = threading.Event()
    _stop_on_signals(stop)
    return run_agent(settings, stop)


def cmd_sync(settings: Settings, *, dry_run: bool) -> int:
    from gitops_helm.runner import run_sync_once

    return run_sync_once(settings, diff_only=dry_run)


def cmd_status(settings: Settings) -> int:
    from gitops_helm.runner import print_status

    return print_status(settings)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "version":
        print(f"gitops-helm {__version__}")
        return 0
    if args.command == "crd":
        from gitops_helm.api import load_crd

        print(yaml.safe_dump(load_crd(), sort_keys=False), end="")
        return 0
    try:
        settings = settings_from_args(args)
    except ConfigError as exc:
        print(f"gitops-helm: {exc}", file=sys.stderr)
        return 2
    logging.setup(settings.log_format, settings.log_level)
    try:
        if args.command == "run":
            return cmd_run(settings)
        if args.command == "sync":
            return cmd_sync(settings, dry_run=False)
        if args.command == "diff":
            return cmd_sync(settings, dry_run=True)
        return cmd_status(settings)
    except ConfigError as exc:
        print(f"gitops-helm: {exc}", file=sys.stderr)
        return 2
    except (KubeError, HelmError) as exc:
        print(f"gitops-helm: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
