"""Profile one resync of a namespace's HelmReleases in-process: ``python -m bench.profile_resync NS``.

Builds the real agent (``gitops_helm.agent.Agent``, reconcile-only, watching ``NS``) without
starting its loops, lists the namespace's HelmReleases and runs the agent's own reconcile of each
twice (the first warms the chart and index caches as a running agent's would be warm), the second
under pyinstrument (``pip install pyinstrument``). Prints the profile and the per-release wall and
CPU time of the profiled pass. The releases should be in sync (a B1/B4 fleet): then this is
exactly the work a periodic resync does per HelmRelease, in the calling thread.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT))

from testenvlib.state import State  # noqa: E402

from gitops_helm import log  # noqa: E402
from gitops_helm.agent import Agent  # noqa: E402
from gitops_helm.config import Settings  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.profile_resync", description=__doc__.splitlines()[0])
    parser.add_argument("namespace")
    parser.add_argument("--html", type=Path, help="also write pyinstrument's HTML report here")
    args = parser.parse_args(argv)
    from pyinstrument import Profiler  # a bench-only tool, not a dependency of the package

    state = State.load()
    if state is None:
        print("the test environment is not up", file=sys.stderr)
        return 2
    log.setup("text", "warning")
    with tempfile.TemporaryDirectory(prefix="gitops-helm-profile-") as tmp:
        settings = Settings(
            kubeconfig=state.env["KUBECONFIG"],
            namespace=args.namespace,
            helm_bin=state.env["HELM_BIN"],
            work_dir=Path(tmp),
            listen="127.0.0.1:0",
            reconcile_only=True,
        )
        agent = Agent(settings)
        objects, _ = agent.kube.list_helmreleases(args.namespace)
        for obj in objects:
            agent.controller.reconcile_fn(obj)
        profiler = Profiler(interval=0.0005)
        wall, cpu = time.perf_counter(), time.process_time()
        profiler.start()
        for obj in objects:
            agent.controller.reconcile_fn(obj)
        profiler.stop()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        print(profiler.output_text(unicode=False, color=False))
        if args.html:
            args.html.write_text(profiler.output_html())
        n = max(1, len(objects))
        print(f"{len(objects)} HelmReleases: {wall * 1000 / n:.2f} ms wall, {cpu * 1000 / n:.2f} ms CPU each")
    return 0


if __name__ == "__main__":
    sys.exit(main())
