"""Profile one resync of a namespace's HelmReleases in-process: ``python -m bench.profile_resync NS``.

Builds the real agent (``gitops_helm.agent.Agent``, reconcile-only, watching ``NS``) without
starting its loops, lists the namespace's HelmReleases and runs the agent's own reconcile of each
twice (the first warms the chart and index caches as a running agent's would be warm), the second
under pyinstrument (``pip install pyinstrument``). Prints the profile and the per-release wall and
CPU time of the profiled pass (``--what-if``: no profile, the CPU per reconcile as run and with
its two requests served from memory). The releases should be in sync (a B1/B4 fleet): then this is
exactly the work a periodic resync does per HelmRelease, in the calling thread.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

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
    parser.add_argument(
        "--what-if",
        action="store_true",
        help="no profile: the CPU per reconcile as run, with the HelmRelease served from memory, "
        "and with its storage list served from memory too (three passes each)",
    )
    args = parser.parse_args(argv)

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
        if args.what_if:
            return _what_if(agent, objects)
        from pyinstrument import Profiler  # a bench-only tool, not a dependency of the package

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


def _cpu_ms_per_reconcile(agent: Agent, objects: list[dict[str, Any]], passes: int = 3) -> list[float]:
    """The process's CPU per reconcile of each pass over ``objects``, in ms."""
    figures = []
    for _ in range(passes):
        cpu = time.process_time()
        for obj in objects:
            agent.controller.reconcile_fn(obj)
        figures.append((time.process_time() - cpu) * 1000 / max(1, len(objects)))
    return figures


def _what_if(agent: Agent, objects: list[dict[str, Any]]) -> int:
    """What a resync in sync would cost if its two requests were served from memory (a watch):
    the agent's own reconcile, with ``Kube.get_helmrelease`` answered by the listed objects and
    then ``Kube.release_revisions`` answered by its first answer per release too."""
    kube = agent.kube
    listed = {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in objects}
    listing = kube.release_revisions
    remembered: dict[tuple[str, str], Any] = {}

    def from_memory(namespace: str, name: str) -> dict[str, Any] | None:
        return listed.get((namespace, name))

    def revisions_from_memory(namespace: str, release: str) -> Any:
        if (namespace, release) not in remembered:
            remembered[(namespace, release)] = listing(namespace, release)
        return remembered[(namespace, release)]

    def show(label: str, figures: list[float]) -> None:
        print(f"{label:<48} " + "  ".join(f"{f:.2f}" for f in figures) + " ms CPU per reconcile")

    show("as run (GET + storage list)", _cpu_ms_per_reconcile(agent, objects))
    kube.get_helmrelease = from_memory  # type: ignore[method-assign]
    show("the HelmRelease from memory, storage listed", _cpu_ms_per_reconcile(agent, objects))
    kube.release_revisions = revisions_from_memory  # type: ignore[method-assign]
    _cpu_ms_per_reconcile(agent, objects, passes=1)  # fills the storage memory
    show("both from memory", _cpu_ms_per_reconcile(agent, objects))
    return 0


if __name__ == "__main__":
    sys.exit(main())
