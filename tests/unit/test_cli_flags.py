"""The command line as people type it (issue #11): bare and valued booleans, comma lists, no
abbreviations, the Helm Operator's and Flux v1's flags, each flag's variable in --help."""

from __future__ import annotations

import argparse

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gitops_helm.cli import build_parser, main
from gitops_helm.cli_flags import LEGACY_FLAGS, Legacy
from gitops_helm.config import FALSE_WORDS, TRUE_WORDS, Settings, settings_from_args


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


def settings(*argv: str, environ: dict[str, str] | None = None) -> Settings:
    return settings_from_args(parse(*argv), environ or {})


def test_booleans_bare_valued_and_spaced() -> None:
    assert settings("run", "--leader-elect").leader_elect
    assert settings("run", "--leader-elect=true").leader_elect
    assert not settings("run", "--leader-elect=false").leader_elect
    assert settings("run", "--leader-elect", "true").leader_elect  # the older spaced form
    assert not settings("run", "--install-crd", "false").install_crd
    assert settings("run", "--sync-garbage-collection").sync.garbage_collection
    s = settings("run", "--sync-garbage-collection", "--reconcile-only", "--install-crd=0")
    assert s.sync.garbage_collection and s.reconcile_only and not s.install_crd


def test_bare_boolean_never_takes_a_positional() -> None:
    parser = build_parser()
    # a bare boolean followed by any other word leaves it to the positionals: here none, an error
    with pytest.raises(SystemExit) as exc:
        parser.parse_args(["run", "--leader-elect", "myrelease"])
    assert exc.value.code == 2


@given(st.sampled_from(sorted(TRUE_WORDS | FALSE_WORDS)), st.booleans())
def test_every_boolean_word_in_any_case(word: str, upper: bool) -> None:
    text = word.upper() if upper else word
    assert settings("run", f"--leader-elect={text}").leader_elect is (word in TRUE_WORDS)
    env = settings("run", environ={"GITOPS_HELM_LEADER_ELECT": text})
    assert env.leader_elect is (word in TRUE_WORDS)


def test_flag_beats_variable_and_bad_boolean_names_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    environ = {"GITOPS_HELM_LEADER_ELECT": "true"}
    assert not settings("run", "--leader-elect=false", environ=environ).leader_elect
    assert settings("run", environ={"GITOPS_HELM_LEADER_ELECT": "yes"}).leader_elect
    assert main(["run", "--leader-elect=maybe"]) == 2
    assert "gitops-helm: --leader-elect: 'maybe' is not a boolean" in capsys.readouterr().err


def test_store_true_flags_of_any_verb_are_booleans() -> None:
    assert parse("images", "update", "--dry-run", "--git-url", "x").dry_run is True
    assert parse("images", "update", "--dry-run=false", "--git-url", "x").dry_run is False
    assert parse("version", "--short").short is True


def test_lists_repeated_and_comma_separated() -> None:
    s = settings("run", "--git-path", "a,b", "--git-path", "c", "--git-path=d,,")
    assert s.git.paths == ("a", "b", "c", "d")
    assert settings("run", environ={"GITOPS_HELM_GIT_PATH": "x,y"}).git.paths == ("x", "y")
    s = settings("run", "--oci-plain-http", "r1:5000,r2:5000", "--git-ssh-key-hosts", "h1,h2")
    assert s.oci_plain_http_hosts == ("r1:5000", "r2:5000") and s.git.ssh_key_hosts == ("h1", "h2")
    s = settings("run", "--image-pull-secrets", "ns/a", "--image-pull-secrets", "ns/b,ns/c")
    assert s.images.pull_secrets == (("ns", "a"), ("ns", "b"), ("ns", "c"))


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--git-u", "https://example.com/r.git"],
        ["run", "--leader"],
        ["run", "--work", "/tmp/x"],
        ["status", "--name", "x"],
    ],
)
def test_abbreviations_are_refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        parse(*argv)
    assert exc.value.code == 2
    assert "unrecognized arguments" in capsys.readouterr().err


def test_renamed_flags_work_with_a_notice(capsys: pytest.CaptureFixture[str]) -> None:
    ns = parse("run", "--charts-sync-interval", "7m", "--allow-namespace=team", "--sync-interval", "2m")
    s = settings_from_args(ns, {})
    assert (s.resync_interval_s, s.namespace, s.git.poll_interval_s) == (420.0, "team", 120.0)
    assert any(
        "--charts-sync-interval (a Helm Operator flag) is deprecated: use --resync-interval" in n
        for n in ns.flag_notices
    )
    s = settings("run", "--k8s-allow-namespace", "apps", "--sync-garbage-collection-dry")
    assert s.namespace == "apps" and s.sync.gc_dry_run and s.sync.garbage_collection
    s = settings("run", "--registry-rps=2", "--automation-interval", "10m", "--docker-config", "/d.json")
    assert (s.images.rate_per_s, s.images.scan_interval_s, s.images.docker_config) == (2.0, 600.0, "/d.json")
    assert settings("run", "-l", "127.0.0.1:9090").listen == "127.0.0.1:9090"
    assert settings("run", "--log-format", "fmt").log_format == "text"
    assert (
        settings("run", "--helm-repository-import", "v3:/etc/repos.yaml").repositories_file
        == "/etc/repos.yaml"
    )


def test_the_new_name_wins_over_its_old_one() -> None:
    ns = parse("run", "--sync-interval", "9m", "--git-poll-interval", "3m")
    assert settings_from_args(ns, {}).git.poll_interval_s == 180.0
    assert any("--sync-interval" in n and "--git-poll-interval is given too" in n for n in ns.flag_notices)


def test_ignored_flags_are_dropped_with_their_values() -> None:
    ns = parse(
        "run",
        "--status-update-interval",
        "10s",
        "--log-release-diffs",
        "--git-readonly=true",
        "--enabled-helm-versions",
        "v3",
        "--workers",
        "3",
    )
    assert settings_from_args(ns, {}).workers == 3
    assert len(ns.flag_notices) == 4 and all("is ignored" in n for n in ns.flag_notices)


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (
            ["--tiller-namespace", "kube-system"],
            "--tiller-namespace (a Helm Operator flag) is no longer supported: Helm 2",
        ),
        (["--tiller-tls-enable"], "Tiller"),
        (["--enabled-helm-versions", "v2,v3"], "enables Helm 2"),
        (["--helm-version=v2"], "enables Helm 2"),
        (["--helm-repository-import", "v2:/r.yaml"], "Helm 2"),
        (["--memcached-hostname", "memcached.flux"], "there is no memcached"),
        (["--registry-exclude-image", "k8s.gcr.io/*"], "scans only the images of HelmReleases"),
        (["--git-verify-signatures"], "not verified"),
        (["--master", "https://k8s:6443"], "--kubeconfig"),
    ],
)
def test_refused_flags_say_which_and_why(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        parse("run", *argv)
    assert exc.value.code == 2
    assert said in capsys.readouterr().err


def test_every_renamed_flag_names_a_flag_of_run() -> None:
    run = build_parser()._subparsers._group_actions[0].choices["run"]  # type: ignore[union-attr]
    for old, legacy in LEGACY_FLAGS.items():
        if legacy.kind is Legacy.RENAMED:
            assert legacy.new in run._option_string_actions, old


def test_legacy_flag_of_another_verb_is_unrecognized_there(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse("crd", "--charts-sync-interval", "3m")
    assert "unrecognized arguments: --charts-sync-interval" in capsys.readouterr().err


def test_positional_after_double_dash_is_left_alone() -> None:
    parser = build_parser()
    flag_parser = parser._subparsers._group_actions[0].choices["run"]  # type: ignore[union-attr]
    words, notices = flag_parser.rewrite(["--leader-elect", "--", "--tiller-namespace"])
    assert words == ["--leader-elect=true", "--", "--tiller-namespace"] and notices == []


def test_help_names_variables_and_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "[env GITOPS_HELM_LEADER_ELECT]" in out
    assert (
        "--git-url GIT_URL config repository (ssh://, https://, file:// or a path) (default: unset) "
        "[env GITOPS_HELM_GIT_URL]"
    ) in out
    assert "(default: 3m) [env GITOPS_HELM_RESYNC_INTERVAL]" in out


def test_help_names_a_variable_only_when_it_is_read() -> None:
    parser = build_parser()
    sync = parser._subparsers._group_actions[0].choices["sync"]  # type: ignore[union-attr]
    once = sync._option_string_actions["--once"]
    assert once.help is not None and "GITOPS_HELM_ONCE" not in once.help


def test_namespace_list_is_refused_with_the_way_out() -> None:
    from gitops_helm.errors import ConfigError

    with pytest.raises(ConfigError, match="one namespace or all"):
        settings("run", "--k8s-allow-namespace", "a,b")


def test_bad_log_format_variable_is_named() -> None:
    from gitops_helm.errors import ConfigError

    with pytest.raises(ConfigError, match="--log-format: 'yaml' is not one of text, json"):
        settings("run", environ={"GITOPS_HELM_LOG_FORMAT": "yaml"})


def test_deprecation_notice_is_said_before_anything_else(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--charts-sync-interval", "3m", "--workers", "0"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == (
        "gitops-helm: warning: --charts-sync-interval (a Helm Operator flag) is deprecated: "
        "use --resync-interval"
    )
    assert err[1] == "gitops-helm: --workers: must be at least 1"


def test_get_name_without_kind_and_short_booleans_take_no_positional() -> None:
    """`get podinfo` names a HelmRelease as `get hr podinfo` does; a bare `-A` never swallows the
    next word (`events -A podinfo` lists podinfo's Events in every namespace)."""
    from gitops_helm.verbs.flags import get_words

    for argv, name in (
        (["get", "podinfo"], "podinfo"),
        (["get", "hr", "podinfo"], "podinfo"),
        (["get"], None),
    ):
        args = parse(*argv)
        assert get_words(args) is None and args.name == name
    args = parse("get", "pods", "x")
    assert "only HelmReleases" in (get_words(args) or "")
    args = parse("get", "-A", "hr", "podinfo")
    assert args.all_namespaces is True and args.name == "podinfo"
    args = parse("events", "-A", "podinfo")
    assert args.all_namespaces is True and args.name == "podinfo"
    assert parse("events", "-A", "false").all_namespaces is False
    assert parse("events", "-A=false", "x").all_namespaces is False


def test_a_verb_refuses_a_boolean_flag_whose_value_is_not_a_boolean(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # the verbs read no settings, so the value must be refused before one runs (not taken as true)
    from gitops_helm.cli import main

    assert main(["reconcile", "web", "--no-wait=maybe"]) == 2
    assert "--no-wait: 'maybe' is not a boolean" in capsys.readouterr().err
