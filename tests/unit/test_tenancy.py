"""Tenancy lockdown, the pure parts: identity, cross-namespace references, flags, adoption and
deletion decisions, where the operator's SSH key may go (the real-environment tests are in
tests/integration/test_tenancy.py)."""

from __future__ import annotations

import argparse
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gitops_helm.adapters.helm import HelmError, HelmErrorKind, UpgradeOptions
from gitops_helm.agent import chart_ssh_hosts, ssh_key_hosts
from gitops_helm.api import (
    HelmRelease,
    SpecError,
    cross_namespace_references,
    parse_helmrelease,
    service_account_of,
    service_account_user,
)
from gitops_helm.charts.access import is_local_git_url, ssh_address, ssh_host_entry, ssh_key_allowed
from gitops_helm.config import (
    ConfigError,
    GitSourceSettings,
    RetrySettings,
    Settings,
    add_git_flags,
    add_run_flags,
    settings_from_args,
)
from gitops_helm.release.desired import desired_state
from gitops_helm.release.identity import ReleaseRef
from gitops_helm.release.plan import (
    Action,
    Desired,
    Memory,
    ObservedRelease,
    ReleaseStatus,
    plan,
    plan_deletion,
)
from tests.unit.test_api_examples import full_manifest, manifest
from tests.unit.test_helm_cancel import _helm, _pid, _wait

ME = "apps.web"


def parse(spec: dict[str, Any], namespace: str = "team-b") -> Any:
    rest = dict(spec)
    obj = manifest(rest.pop("chart"), **rest)
    obj["metadata"]["namespace"] = namespace
    return parse_helmrelease(obj)


def run_settings(*argv: str, environ: dict[str, str] | None = None) -> Any:
    parser = argparse.ArgumentParser()
    add_run_flags(parser)
    add_git_flags(parser)
    return settings_from_args(parser.parse_args(list(argv)), environ or {})


# --- spec.serviceAccountName -------------------------------------------------------------


def test_service_account_name_is_read_and_defaults_from_the_agent() -> None:
    repo = {"repository": "https://charts.example/", "name": "web", "version": "1.0.0"}
    with_sa = parse({"chart": repo, "serviceAccountName": "deployer"})
    without = parse({"chart": repo})
    assert service_account_of(with_sa, "fallback") == "deployer"
    assert service_account_of(without, "fallback") == "fallback"
    assert service_account_of(without, None) is None
    assert service_account_user("team-b", "deployer") == "system:serviceaccount:team-b:deployer"


@pytest.mark.parametrize("bad", ["Deployer", "a b", "-x", "x" * 254])
def test_a_bad_service_account_name_is_a_spec_error_naming_the_field(bad: str) -> None:
    repo = {"repository": "https://charts.example/", "name": "web", "version": "1.0.0"}
    with pytest.raises(SpecError) as caught:
        parse({"chart": repo, "serviceAccountName": bad})
    assert "spec.serviceAccountName" in str(caught.value)


# --- cross-namespace references ------------------------------------------------------------


def test_every_reference_outside_the_namespace_is_named_by_its_field_path() -> None:
    spec = {
        "chart": {
            "git": "https://git.example/r.git",
            "path": "c",
            "secretRef": {"name": "s", "namespace": "a"},
        },
        "valuesFrom": [
            {"secretKeyRef": {"name": "v", "namespace": "a"}},
            {"configMapKeyRef": {"name": "c"}},
            {"configMapKeyRef": {"name": "c", "namespace": "a"}},
            {"externalSourceRef": {"url": "https://values.example/v.yaml"}},
        ],
        "valueFileSecrets": [{"name": "legacy"}],
        "dependsOn": [{"name": "db"}, {"name": "db", "namespace": "a"}],
    }
    assert cross_namespace_references(parse(spec)) == (
        "spec.chart.secretRef.namespace: 'a'",
        "spec.valuesFrom[0].secretKeyRef.namespace: 'a'",
        "spec.valuesFrom[2].configMapKeyRef.namespace: 'a'",
        "spec.dependsOn[1].namespace: 'a'",
    )


def test_references_within_the_namespace_are_not_cross_namespace() -> None:
    spec = {
        "chart": {
            "repository": "https://charts.example/",
            "name": "web",
            "version": "1.0.0",
            "chartPullSecret": {"name": "pull"},
        },
        "valuesFrom": [{"secretKeyRef": {"name": "v", "namespace": "team-b"}}],
        "dependsOn": [{"name": "db", "namespace": "team-b"}],
    }
    assert cross_namespace_references(parse(spec)) == ()
    # the full example names a Git secret, values and a dependency in other namespaces
    assert [
        ref.split(".namespace")[0] for ref in cross_namespace_references(parse_helmrelease(full_manifest()))
    ] == [
        "spec.chart.secretRef",
        "spec.valuesFrom[0].configMapKeyRef",
        "spec.valuesFrom[1].secretKeyRef",
        "spec.dependsOn[0]",
    ]


# --- flags -------------------------------------------------------------------------------


def test_lockdown_flags() -> None:
    default = run_settings()
    assert default.allow_cross_namespace_refs is True
    assert default.default_service_account is None
    assert default.allow_adoption_across_namespaces is False
    locked = run_settings("--no-cross-namespace-refs", "--default-service-account", "deployer")
    assert locked.allow_cross_namespace_refs is False
    assert locked.default_service_account == "deployer"
    assert run_settings("--allow-cross-namespace-refs", "false").allow_cross_namespace_refs is False
    from_env = run_settings(
        environ={
            "GITOPS_HELM_NO_CROSS_NAMESPACE_REFS": "true",
            "GITOPS_HELM_DEFAULT_SERVICE_ACCOUNT": "deployer",
            "GITOPS_HELM_ALLOW_ADOPTION_ACROSS_NAMESPACES": "true",
        }
    )
    assert (
        from_env.allow_cross_namespace_refs,
        from_env.default_service_account,
        from_env.allow_adoption_across_namespaces,
    ) == (False, "deployer", True)


def test_contradicting_or_bad_lockdown_flags_are_clear_errors() -> None:
    with pytest.raises(ConfigError, match="contradicts"):
        run_settings("--no-cross-namespace-refs", "--allow-cross-namespace-refs", "true")
    with pytest.raises(ConfigError, match="--default-service-account"):
        run_settings("--default-service-account", "Not A Name")


# --- adoption and deletion -----------------------------------------------------------------


def _unowned(status: ReleaseStatus = ReleaseStatus.DEPLOYED) -> ObservedRelease:
    return ObservedRelease(revision=1, status=status, owner=None)


def _desired(namespace: str, target: str, *, across: bool = False) -> Desired:
    hr = parse(
        {"chart": {"repository": "https://charts.example/", "name": "web", "version": "1.0.0"}}, namespace
    )
    hr = parse(
        {
            "chart": {"repository": "https://charts.example/", "name": "web", "version": "1.0.0"},
            "targetNamespace": target,
        },
        namespace,
    )
    return desired_state(
        ReleaseRef.of(hr),
        hr.policy,
        1,
        "sha256:c",
        "sha256:v",
        RetrySettings(),
        b"installation-key",
        adopt_across_namespaces=across,
    )


def test_an_unowned_release_is_adopted_in_the_helmreleases_own_namespace_only() -> None:
    own = plan(_unowned(), Memory(), _desired("team-b", "team-b"), now=0.0)
    assert (own.action, own.adopt) == (Action.UPGRADE, True)
    foreign = plan(_unowned(), Memory(), _desired("team-b", "team-a"), now=0.0)
    assert foreign.action is Action.REFUSE
    assert "--allow-adoption-across-namespaces" in foreign.reason
    allowed = plan(_unowned(), Memory(), _desired("team-b", "team-a", across=True), now=0.0)
    assert (allowed.action, allowed.adopt) == (Action.UPGRADE, True)


@given(st.sampled_from(list(ReleaseStatus)), st.booleans())
@settings(max_examples=100)
def test_an_unowned_release_that_may_not_be_adopted_is_never_touched(
    status: ReleaseStatus, suspended: bool
) -> None:
    want = Desired(digest="sha256:d", generation=1, owner=ME, suspended=suspended, adoptable=False)
    assert plan(_unowned(status), Memory(), want, now=0.0).action is Action.REFUSE


def test_deletion_uninstalls_only_what_this_helmrelease_owns() -> None:
    assert plan_deletion(ObservedRelease(1, ReleaseStatus.DEPLOYED, owner=ME), ME).action is Action.UNINSTALL
    for owner in (None, "apps.other"):
        decision = plan_deletion(ObservedRelease(1, ReleaseStatus.DEPLOYED, owner=owner), ME)
        assert decision.action is Action.REFUSE
        assert "left in place" in decision.reason


# --- operator credentials and local chart sources ------------------------------------------


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("file:///srv/charts.git", True),
        ("FILE:///srv/charts.git", True),
        ("/var/lib/gitops-helm/gitcharts/mirrors/abc", True),
        ("charts/app", True),
        ("./x:y", True),
        ("https://git.example/charts.git", False),
        ("ssh://git@git.example/charts.git", False),
        ("git@git.example:org/charts.git", False),
    ],
)
def test_local_chart_git_urls(url: str, local: bool) -> None:
    assert is_local_git_url(url) is local


def test_the_ssh_key_is_allowed_only_for_listed_hosts() -> None:
    assert ssh_address("ssh://git@Git.Example:2222/r.git") == ("git.example", 2222)
    assert ssh_address("git@git.example:org/r.git") == ("git.example", None)
    assert ssh_address("https://git.example/r.git") is None
    assert ssh_key_allowed("ssh://git@git.example/r.git", ["git.example"])
    assert ssh_key_allowed("git@git.example:org/r.git", ["git.example:22"])
    assert ssh_key_allowed("ssh://git@git.example:2222/r.git", ["git.example"])
    assert not ssh_key_allowed("ssh://git@git.example:2222/r.git", ["git.example:22"])
    assert not ssh_key_allowed("ssh://git@attacker.example/r.git", ["git.example"])
    assert not ssh_key_allowed("ssh://git@git.example.attacker.example/r.git", ["git.example"])
    assert not ssh_key_allowed("https://git.example/r.git", ["git.example"])
    assert not ssh_key_allowed("ssh://git@git.example/r.git", [])


def test_by_default_the_key_serves_the_synced_repositorys_host_only() -> None:
    def hosts(url: str | None, listed: tuple[str, ...] = ()) -> tuple[str, ...]:
        return ssh_key_hosts(Settings(git=GitSourceSettings(url=url, ssh_key_hosts=listed)))

    assert hosts("ssh://git@git.example:2222/config.git") == ("git.example:2222",)
    assert hosts("git@git.example:org/config.git") == ("git.example",)
    assert hosts("https://git.example/config.git") == ()
    assert hosts(None) == ()
    assert hosts("ssh://git@git.example/config.git", ("charts.example",)) == ("charts.example",)
    assert run_settings().git.ssh_key_hosts == ()
    listed = run_settings("--git-ssh-key-hosts", "a.example", "--git-ssh-key-hosts", "b.example:2222")
    assert listed.git.ssh_key_hosts == ("a.example", "b.example:2222")
    from_env = run_settings(environ={"GITOPS_HELM_GIT_SSH_KEY_HOSTS": "a.example,b.example"})
    assert from_env.git.ssh_key_hosts == ("a.example", "b.example")
    assert run_settings("--allow-local-chart-git", "true").allow_local_chart_git is True
    assert run_settings().allow_local_chart_git is False


def test_a_one_shot_command_gives_the_key_to_the_hosts_its_helmreleases_name() -> None:
    def release(chart: dict[str, str]) -> HelmRelease:
        return parse({"chart": chart})  # type: ignore[no-any-return]

    releases = [
        release({"git": "ssh://git@b.example:2222/charts.git", "path": "c"}),
        release({"git": "git@a.example:org/charts.git", "path": "c"}),
        release({"git": "ssh://git@[::1]:2222/charts.git", "path": "c"}),
        release({"git": "https://c.example/charts.git", "path": "c"}),
        release({"repository": "https://charts.example/", "name": "c", "version": "1.0.0"}),
        release({"git": "git@a.example:other/charts.git", "path": "c"}),
    ]
    assert chart_ssh_hosts(releases) == ("[::1]:2222", "a.example", "b.example:2222")
    assert chart_ssh_hosts([]) == ()
    assert ssh_host_entry("ssh://git@[::1]:2222/r.git") == "[::1]:2222"
    assert ssh_key_allowed("ssh://git@[::1]:2222/r.git", ["[::1]:2222"])
    assert ssh_host_entry("https://a.example/r.git") is None


# --- helm acting as a ServiceAccount stays under the agent's fence --------------------------


def test_cancel_all_also_stops_the_helm_copies_acting_as_service_accounts(tmp_path: Path) -> None:
    helm = _helm(tmp_path)
    as_b = helm.impersonating("system:serviceaccount:team-b:deployer")
    assert as_b is helm.impersonating("system:serviceaccount:team-b:deployer")
    assert as_b.user == "system:serviceaccount:team-b:deployer" and helm.user is None
    errors: list[HelmError] = []

    def upgrade() -> None:
        try:
            as_b.upgrade("app", "team-b", "/charts/hello", {}, UpgradeOptions(timeout_s=300), install=False)
        except HelmError as exc:
            errors.append(exc)

    worker = threading.Thread(target=upgrade)
    worker.start()
    _wait("helm to start its child", lambda: _pid(tmp_path / "child.pid") and _pid(tmp_path / "helm.pid"))
    killed = helm.cancel_all("this replica lost the leader Lease")
    worker.join(30)
    assert not worker.is_alive()
    assert len(killed) == 1 and [e.kind for e in errors] == [HelmErrorKind.INTERRUPTED]
    # after the cancel, no copy starts an acting operation: neither this one nor a new one
    for copy in (as_b, helm.impersonating("system:serviceaccount:team-a:deployer")):
        with pytest.raises(HelmError) as refused:
            copy.uninstall("app", "team-b", 30)
        assert refused.value.kind is HelmErrorKind.INTERRUPTED
