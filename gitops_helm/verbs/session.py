"""What every verb shares: the cluster connection, the namespace, the terminal and its output.

Colour and in-place progress only on a terminal, and never under ``NO_COLOR``
(https://no-color.org); otherwise plain lines a log or CI job can keep.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import TextIO

from gitops_helm.adapters.kube import Kube, KubeSettings, context_namespace

__all__ = ["Progress", "Session", "use_colour"]


def use_colour(stream: TextIO) -> bool:
    return stream.isatty() and not os.environ.get("NO_COLOR")


class Session:
    """The parsed flags of one verb, the cluster client and the namespace they point at."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.kubeconfig: str | None = args.kubeconfig
        self.context: str | None = args.kube_context
        timeout = float(args.request_timeout)
        self.kube = Kube(
            KubeSettings(
                kubeconfig=self.kubeconfig,
                context=self.context,
                request_timeout_s=timeout,
                connect_timeout_s=min(10.0, timeout),
            )
        )
        self.all_namespaces = bool(getattr(args, "all_namespaces", False))
        self.namespace: str = args.namespace or context_namespace(self.kubeconfig, self.context)

    def close(self) -> None:
        self.kube.close()


class Progress:
    """One line that changes in place on a terminal; each new message a plain line otherwise."""

    _SPIN = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"

    def __init__(self, stream: TextIO = sys.stderr) -> None:
        self.stream = stream
        self.live = stream.isatty()
        self.last = ""
        self.started = time.monotonic()
        self.ticks = 0

    def update(self, message: str) -> None:
        if self.live:
            self.ticks += 1
            elapsed = int(time.monotonic() - self.started)
            spin = self._SPIN[self.ticks % len(self._SPIN)]
            self.stream.write(f"\r\033[K{spin} {message} ({elapsed}s)")
            self.stream.flush()
        elif message != self.last:
            self.stream.write(f"◎ {message}\n")
            self.stream.flush()
        self.last = message

    def done(self) -> None:
        if self.live and self.last:
            self.stream.write("\r\033[K")
            self.stream.flush()
