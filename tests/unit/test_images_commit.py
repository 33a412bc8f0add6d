"""The pure parts of committing image updates (gitops_helm.images.commit) and their settings:
applying edits, the message template, the unified diff, author, branch and signing-key checks."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gitops_helm.adapters.git import check_branch_name
from gitops_helm.config import ConfigError, add_image_commit_flags, parse_author, settings_from_args
from gitops_helm.images.commit import (
    DEFAULT_TEMPLATE,
    EditNotApplicable,
    FileChange,
    PlannedUpdate,
    apply_updates,
    check_signing_key,
    check_template,
    render_message,
    unified_diff,
)


def swap(old: bytes, new: bytes):  # type: ignore[no-untyped-def]
    def rewrite(path: str, content: bytes) -> bytes:
        if old in content:
            return content.replace(old, new, 1)
        if new in content:
            return content
        raise EditNotApplicable(f"{old!r} not found")

    return rewrite


def update(path: str, old: str, new: str, release: str = "apps/web", kind: str = "image") -> PlannedUpdate:
    return PlannedUpdate(
        path=path,
        release=release,
        subject="ghcr.io/acme/web" if kind == "image" else "web",
        old=old,
        new=new,
        rewrite=swap(old.encode(), new.encode()),
        kind=kind,
    )


FILES = {"a.yaml": b"tag: 1.0.0\nother: 2.0.0\n", "b.yaml": b"tag: 3.0.0\n"}


def read(path: str) -> bytes:
    if path not in FILES:
        raise EditNotApplicable("no such file")
    return FILES[path]


def test_updates_of_one_file_apply_in_turn_and_failures_are_dropped_alone() -> None:
    result = apply_updates(
        [
            update("a.yaml", "1.0.0", "1.1.0"),
            update("a.yaml", "2.0.0", "2.1.0", release="apps/other"),
            update("a.yaml", "9.9.9", "10.0.0", release="apps/gone"),
            update("b.yaml", "3.0.0", "3.0.0", release="apps/same"),
            update("c.yaml", "1", "2", release="apps/nofile"),
        ],
        read,
    )
    assert result.files == (FileChange("a.yaml", FILES["a.yaml"], b"tag: 1.1.0\nother: 2.1.0\n"),)
    assert [u.release for u in result.applied] == ["apps/web", "apps/other"]
    assert [u.release for u in result.unchanged] == ["apps/same"]
    assert [(d.update.release, d.error) for d in result.dropped] == [
        ("apps/gone", "a.yaml: b'9.9.9' not found"),
        ("apps/nofile", "c.yaml: no such file"),
    ]


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a.yaml", "b.yaml"]), st.sampled_from(["1.0.0", "2.0.0", "3.0.0", "4.0.0"])
        ),
        max_size=8,
    )
)
def test_every_update_is_accounted_for_once_and_files_change_only_when_an_update_applied(
    plan: list[tuple[str, str]],
) -> None:
    updates = [
        update(path, old, old.replace(".0.0", ".5.0"), release=f"r/{i}") for i, (path, old) in enumerate(plan)
    ]
    result = apply_updates(updates, read)
    seen = [*result.applied, *result.unchanged, *(d.update for d in result.dropped)]
    assert sorted(u.release for u in seen) == sorted(u.release for u in updates)
    assert {c.path for c in result.files} == {u.path for u in result.applied}
    for change in result.files:
        assert change.old == FILES[change.path] and change.new != change.old


def test_default_message_for_one_and_several_updates() -> None:
    one = render_message(DEFAULT_TEMPLATE, [update("a.yaml", "1.0.0", "1.1.0")])
    assert one == (
        "Update apps/web: ghcr.io/acme/web 1.0.0 -> 1.1.0\n\n- apps/web: ghcr.io/acme/web 1.0.0 -> 1.1.0\n"
    )
    several = render_message(
        DEFAULT_TEMPLATE,
        [
            update("a.yaml", "1.0.0", "1.1.0"),
            update("a.yaml", "1.2.0", "1.3.0", kind="chart"),
            update("b.yaml", "3.0.0", "3.1.0", release="apps/api"),
        ],
    )
    assert several.splitlines() == [
        "Update 1 chart and 2 images in 2 HelmReleases",
        "",
        "- apps/web: ghcr.io/acme/web 1.0.0 -> 1.1.0",
        "- apps/web: chart web 1.2.0 -> 1.3.0",
        "- apps/api: ghcr.io/acme/web 3.0.0 -> 3.1.0",
    ]


@pytest.mark.parametrize(
    ("template", "error"),
    [
        ("Bump $image", "unknown field $image (known: $summary, $changes, $count, $releases, $files)"),
        ("Costs 5$", "a $ must start a field name or be written $$"),
        ("${summary", "a $ must start a field name or be written $$"),
        ("  \n", "renders an empty message"),
    ],
)
def test_bad_templates_are_refused_naming_the_flag(template: str, error: str) -> None:
    with pytest.raises(ConfigError, match=r"^--image-commit-template: ") as info:
        check_template(template)
    assert str(info.value).endswith(error)


def test_template_values_are_not_code() -> None:
    evil = update("a.yaml", "${summary}", "$count")
    assert render_message("$changes", [evil]) == "- apps/web: ghcr.io/acme/web ${summary} -> $count\n"


def test_unified_diff_like_git() -> None:
    diff = unified_diff(
        [
            FileChange("z.yaml", b"a: 1\n", b"a: 2\n"),
            FileChange("a.yaml", b"x\ny: 1", b"x\ny: 2"),
        ]
    )
    assert diff == (
        "diff --git a/a.yaml b/a.yaml\n--- a/a.yaml\n+++ b/a.yaml\n@@ -1,2 +1,2 @@\n x\n"
        "-y: 1\n\\ No newline at end of file\n+y: 2\n\\ No newline at end of file\n"
        "diff --git a/z.yaml b/z.yaml\n--- a/z.yaml\n+++ b/z.yaml\n@@ -1 +1 @@\n-a: 1\n+a: 2\n"
    )
    assert unified_diff([]) == ""


@pytest.mark.parametrize("path", ["/etc/passwd", "../x.yaml", "a/../../x", ".git/config", ""])
def test_paths_outside_the_repository_are_refused(path: str) -> None:
    with pytest.raises(ValueError, match="must be relative, inside the repository"):
        update(path, "1", "2")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Image Bot <bot@example.com>", ("Image Bot", "bot@example.com")),
        ("  flux  <flux@weave.works> ", ("flux", "flux@weave.works")),
    ],
)
def test_author(text: str, expected: tuple[str, str]) -> None:
    assert parse_author(text) == expected


@pytest.mark.parametrize("text", ["bot@example.com", "<bot@example.com>", "Bot <no-at>", "Bot <a@b> x"])
def test_bad_author_is_refused(text: str) -> None:
    with pytest.raises(ConfigError, match=r'--image-commit-author: .* is not "Name <email>"'):
        parse_author(text)


@pytest.mark.parametrize("name", ["main", "image-updates", "auto/images", "release-1.2"])
def test_branch_names(name: str) -> None:
    assert check_branch_name(name) == name


@pytest.mark.parametrize(
    "name", ["", "-x", "a..b", "a b", "a:b", "x.lock", "a/", "/a", ".a", "a/.b", "a@{1}", "@"]
)
def test_bad_branch_names(name: str) -> None:
    with pytest.raises(ValueError, match="is not a valid branch name"):
        check_branch_name(name)


def test_signing_key_must_be_an_openssh_private_key(tmp_path: Path) -> None:
    gpg = tmp_path / "key.asc"
    gpg.write_text("-----BEGIN PGP PRIVATE KEY BLOCK-----\n...\n")
    with pytest.raises(ConfigError, match="is a GPG key; give an SSH private key"):
        check_signing_key(gpg)
    pub = tmp_path / "id.pub"
    pub.write_text("ssh-ed25519 AAAA bot\n")
    with pytest.raises(ConfigError, match="is not an OpenSSH private key"):
        check_signing_key(pub)
    with pytest.raises(ConfigError, match="cannot read"):
        check_signing_key(tmp_path / "missing")
    ok = tmp_path / "id"
    ok.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nb3Bl\n-----END OPENSSH PRIVATE KEY-----\n")
    check_signing_key(ok)


def _settings(*argv: str, environ: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    parser = argparse.ArgumentParser()
    add_image_commit_flags(parser)
    return settings_from_args(parser.parse_args(list(argv)), environ or {}).image_commit


def test_flags_and_environment(tmp_path: Path) -> None:
    key = tmp_path / "id"
    key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    s = _settings(
        "--image-commit-author",
        "Bot <bot@example.com>",
        "--image-commit-template",
        "$summary [ci skip]",
        "--image-signing-key",
        str(key),
        "--image-push-branch",
        "image-updates",
        environ={"GITOPS_HELM_IMAGE_PUSH_ATTEMPTS": "3"},
    )
    assert (s.author_name, s.author_email) == ("Bot", "bot@example.com")
    assert s.message_template == "$summary [ci skip]"
    assert s.signing_key == key and s.push_branch == "image-updates" and s.push_attempts == 3
    defaults = _settings()
    assert defaults.message_template is None and defaults.signing_key is None and defaults.push_branch is None
    with pytest.raises(ConfigError, match="--image-push-attempts: must be at least 1"):
        _settings("--image-push-attempts", "0")
    with pytest.raises(ConfigError, match=r"--image-signing-key: .* is not a readable file"):
        _settings("--image-signing-key", str(tmp_path / "nope"))
