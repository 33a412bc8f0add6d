"""The identity recorded with the sync inventory: built from the settings, never a credential."""

from __future__ import annotations

import argparse
from pathlib import Path

from gitops_helm.agent import sync_identity
from gitops_helm.config import Settings, add_git_flags, settings_from_args


def settings(*argv: str, environ: dict[str, str] | None = None) -> Settings:
    parser = argparse.ArgumentParser()
    add_git_flags(parser)
    return settings_from_args(parser.parse_args(list(argv)), environ or {})


def test_the_identity_never_holds_credentials() -> None:
    s = settings("--git-url", "https://user:s3cret-token@git.example.com/org/config.git", "--git-path", "b")
    identity = sync_identity(s)
    assert identity.url == "https://git.example.com/org/config.git"
    assert "s3cret" not in identity.dump() and "user" not in identity.dump()
    assert (identity.branch, identity.paths, identity.only_helmreleases) == ("main", ("b",), False)
    scp = sync_identity(settings("--git-url", "git@github.com:org/config.git", "--git-branch", "master"))
    assert (scp.url, scp.branch) == ("github.com:org/config.git", "master")


def test_a_local_path_is_its_file_url(tmp_path: Path) -> None:
    assert sync_identity(settings("--git-url", str(tmp_path))).url == tmp_path.resolve().as_uri()


def test_take_over_flag_and_variable() -> None:
    assert not settings("--git-url", "u").sync.take_over_inventory
    assert settings("--git-url", "u", "--sync-take-over-inventory", "true").sync.take_over_inventory
    env = {"GITOPS_HELM_SYNC_TAKE_OVER_INVENTORY": "true"}
    assert settings("--git-url", "u", environ=env).sync.take_over_inventory
