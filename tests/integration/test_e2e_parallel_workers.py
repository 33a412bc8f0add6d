"""Parallel workers, seen from the process table: with ``workers=4``, four slow installs (each
helm waits for a pod that is never Ready) run at the same moment, and through those installs,
their failure and the upgrades that fix them, no release ever has two helm processes at once."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

from gitops_helm.config import RetrySettings
from tests.conftest import Env
from tests.integration.proctable import helm_processes
from tests.integration.reconcile_helpers import apply, hr_manifest, patch_spec, repo_chart, wait_ready

RELEASES = ("one", "two", "three", "four")


class Sampler:
    """Reads the helm processes acting in a namespace from the process table until stopped."""

    def __init__(self, helm: str, namespace: str) -> None:
        self.helm, self.namespace = helm, namespace
        self.samples: list[list[tuple[str, str, int]]] = []  # (release, action, pid) per sample
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            procs = helm_processes({self.helm}, self.namespace)
            self.samples.append(sorted((p.release, p.action, p.pid) for p in procs))
            self._stop.wait(0.1)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def installing_at_once(self) -> set[str]:
        """The most releases seen with a helm install running in one sample."""
        best: set[str] = set()
        for sample in self.samples[-20:]:
            now = {release for release, action, _ in sample if action == "install"}
            best = now if len(now) > len(best) else best
        return best


def test_four_workers_run_four_installs_at_once_and_never_one_release_twice(
    env: Env, namespace: str, start_agent: Any
) -> None:
    helm = env["HELM_BIN"]
    agent = start_agent(namespace, helm, workers=4, retry=RetrySettings(base_s=1.0, max_s=3.0))
    with Sampler(helm, namespace) as sampler:
        for name in RELEASES:
            values = {"message": name, "unready": True}  # helm waits for the pod until its timeout
            apply(env, hr_manifest(name, namespace, repo_chart(env), values=values, wait=True, timeout=20))
        seen = agent.wait_for(
            "four helm installs running at the same moment",
            lambda: sampler.installing_at_once() if len(sampler.installing_at_once()) == 4 else None,
            timeout=120,
        )
        assert seen == set(RELEASES)

        # the declared state is fixed: each release ends Ready (a failed install is retried, or
        # remediated, by the same workers)
        for name in RELEASES:
            patch_spec(env, namespace, name, {"values": {"message": name, "unready": None}})
        for name in RELEASES:
            wait_ready(agent, name, namespace, timeout=180)
        time.sleep(0.3)  # a few more samples after the last helm call

    assert len(sampler.samples) > 10, "the process table was hardly sampled"
    twice = [s for s in sampler.samples if any(n > 1 for n in Counter(r for r, _, _ in s).values())]
    assert not twice, f"a release had two helm processes at once: {twice[:3]}"
    for name in RELEASES:
        assert agent.condition(name, namespace, "Ready")["status"] == "True"
