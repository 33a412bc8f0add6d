"""Integration tests of the sync source (gitops_helm.source.gitsource) against real Git servers:
the environment's, and a private one that the test stops and restarts."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from testenvlib.servers import start_git_server

from gitops_helm.adapters.git import GitUnreachableError, HTTPAuth
from gitops_helm.config import RetrySettings
from gitops_helm.source.gitsource import Checkout, GitSource, GitSourceConfig, SourceSettings
from tests.conftest import Env
from tests.integration.test_git_mirror import Work


def test_source_keeps_the_last_checkout_while_the_server_is_down_and_recovers(tmp_path: Path) -> None:
    root = tmp_path / "srv"
    root.mkdir()
    server = start_git_server(root)
    port = server.server_address[1]
    work = Work(tmp_path / "work")
    first = work.commit({"apps/a.yaml": "a: 1\n"}, "one")
    url = f"http://127.0.0.1:{port}/config.git"
    work.push(url)

    settings = SourceSettings(retry=RetrySettings(base_s=3, factor=2, max_s=60))
    # A stopped wall clock: the next poll is then exactly the backoff after the attempt, however
    # long the failing fetch itself took on a busy machine.
    stopped = datetime(2030, 1, 1, tzinfo=UTC)
    source = GitSource(
        GitSourceConfig(url, paths=("apps",)), tmp_path / "state", settings, now=lambda: stopped
    )
    try:
        good = source.poll_once()
        assert good is not None and good.sha == first

        server.shutdown()
        server.server_close()
        second = work.commit({"apps/a.yaml": "a: 2\n"}, "two")
        work.push(str(root / "config.git"))  # the repository moves on while the server is away
        for attempt, delay in ((1, 3), (2, 6)):
            assert source.poll_once() is None
            status = source.status()
            assert isinstance(status.last_error, GitUnreachableError), status.last_error
            assert status.last_error.temporary
            assert url in str(status.last_error)
            assert status.failures == attempt
            assert status.last_attempt_time is not None and status.next_poll is not None
            assert status.next_poll - status.last_attempt_time == timedelta(seconds=delay)
            assert source.checkout == good
            assert (good.path / "apps" / "a.yaml").read_text() == "a: 1\n"

        server = start_git_server(root, port=port)
        recovered = source.poll_once()
        assert recovered is not None and recovered.sha == second
        assert (recovered.path / "apps" / "a.yaml").read_text() == "a: 2\n"
        assert recovered.changed
        assert source.last_error is None and source.status().failures == 0
        assert good.path.is_dir(), "the previous checkout is kept for readers still using it"
    finally:
        server.shutdown()
        server.server_close()


def test_source_thread_follows_pushes_over_basic_auth(env: Env, tmp_path: Path) -> None:
    name = f"source-{uuid.uuid4().hex[:8]}.git"
    work = Work(tmp_path / "work")
    work.commit({"apps/a.yaml": "a: 1\n", "docs/readme.md": "hi\n"}, "one")
    work.push(f"{env['TESTENV_GIT_HTTP']}/{name}")
    arrived = threading.Event()
    seen: list[Checkout] = []

    def on_checkout(checkout: Checkout) -> None:
        seen.append(checkout)
        arrived.set()

    config = GitSourceConfig(
        f"{env['TESTENV_GIT_HTTP_AUTH']}/{name}",
        paths=("apps",),
        poll_interval_s=3600,
        auth=HTTPAuth(env["TESTENV_GIT_USER"], env["TESTENV_GIT_PASSWORD"]),
    )
    source = GitSource(config, tmp_path / "state", on_checkout=on_checkout)
    source.start()
    try:
        assert arrived.wait(60), source.last_error
        arrived.clear()
        docs_only = work.commit({"docs/readme.md": "hello\n"}, "docs only")
        work.push(f"{env['TESTENV_GIT_HTTP']}/{name}")
        source.trigger()
        assert arrived.wait(60), source.last_error
    finally:
        source.stop(timeout=30)
    assert [c.sha for c in seen][-1] == docs_only
    assert seen[0].changed and not seen[1].changed, "nothing under apps/ changed"
    assert seen[1].commit.subject == "docs only"
    mirror_config = (tmp_path / "state" / "mirror" / "config").read_text()
    assert env["TESTENV_GIT_PASSWORD"] not in mirror_config


def test_source_reports_a_missing_branch(env: Env, tmp_path: Path) -> None:
    name = f"branch-{uuid.uuid4().hex[:8]}.git"
    work = Work(tmp_path / "work")
    work.commit({"a.yaml": "a: 1\n"}, "one")
    work.push(f"{env['TESTENV_GIT_HTTP']}/{name}")
    source = GitSource(GitSourceConfig(f"{env['TESTENV_GIT_HTTP']}/{name}", branch="master"), tmp_path / "s")
    assert source.poll_once() is None
    err = source.last_error
    assert err is not None and not getattr(err, "temporary", True)
    assert "branches: main" in str(err)
