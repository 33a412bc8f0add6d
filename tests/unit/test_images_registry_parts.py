"""The pure parts of the image registry client: challenges and tokens, Link paging, Docker
config / pull Secret parsing, platform selection, build times, and the per-host rate limiter."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gitops_helm.adapters.distribution import (
    Challenge,
    next_page_url,
    parse_challenge,
    read_token,
    token_url,
)
from gitops_helm.images import manifest
from gitops_helm.images.credentials import (
    CredentialsError,
    RegistryCredentials,
    RegistryLogin,
    normalise_registry_host,
    parse_docker_config,
    parse_pull_secret,
    read_pull_secrets,
    registry_credentials,
)
from gitops_helm.images.manifest import ManifestError, Platform
from gitops_helm.images.ratelimit import HostRateLimiter, RateLimitSettings
from gitops_helm.images.registry import ImageRepository

# --- WWW-Authenticate ---------------------------------------------------------------------------


def test_a_bearer_challenge_is_read_with_quoted_commas_and_escapes() -> None:
    header = (
        'Bearer realm="https://auth.example/token",service="registry.example",'
        'scope="repository:team/app:pull,push",error="insufficient_scope", note="say \\"hi\\""'
    )
    challenge = parse_challenge(header)
    assert challenge == Challenge(
        "bearer",
        {
            "realm": "https://auth.example/token",
            "service": "registry.example",
            "scope": "repository:team/app:pull,push",
            "error": "insufficient_scope",
            "note": 'say "hi"',
        },
    )


def test_a_basic_challenge_and_nonsense_are_told_apart() -> None:
    assert parse_challenge('Basic realm="testenv"') == Challenge("basic", {"realm": "testenv"})
    assert parse_challenge("") is None
    assert parse_challenge(None) is None
    assert parse_challenge("=== broken") is None


def test_the_token_request_carries_service_and_scope_and_nothing_else() -> None:
    challenge = parse_challenge('Bearer realm="https://auth.example/token",service="reg",error="x"')
    assert challenge is not None
    assert token_url(challenge, "repository:a/b:pull") == (
        "https://auth.example/token?service=reg&scope=repository%3Aa%2Fb%3Apull"
    )
    with_query = Challenge(
        "bearer", {"realm": "https://auth.example/token?v=2", "scope": "repository:x:pull"}
    )
    assert token_url(with_query, "ignored") == "https://auth.example/token?v=2&scope=repository%3Ax%3Apull"


@pytest.mark.parametrize(
    "challenge",
    [
        Challenge("basic", {"realm": "https://auth.example/token"}),
        Challenge("bearer", {}),
        Challenge("bearer", {"realm": "file:///etc/passwd"}),
        Challenge("bearer", {"realm": "https:///no-host"}),
    ],
)
def test_an_unusable_challenge_asks_for_no_token(challenge: Challenge) -> None:
    assert token_url(challenge, "repository:a:pull") is None


@pytest.mark.parametrize(
    ("body", "token"),
    [
        (b'{"token": "abc"}', "abc"),
        (b'{"access_token": "xyz", "expires_in": 300}', "xyz"),
        (b'{"token": ""}', None),
        (b'{"token": "a b"}', None),
        (b'{"token": 5}', None),
        (b"[]", None),
        (b"not json", None),
    ],
)
def test_token_answers(body: bytes, token: str | None) -> None:
    assert read_token(body) == token


@given(st.text(max_size=200))
def test_reading_any_challenge_never_raises(header: str) -> None:
    parse_challenge(header)


# --- Link paging ----------------------------------------------------------------------------------


def test_the_next_page_is_resolved_against_the_page_just_read() -> None:
    here = "https://reg.example/v2/team/app/tags/list?n=2"
    assert next_page_url(here, "/v2/team/app/tags/list?n=2&last=b") == (
        "https://reg.example/v2/team/app/tags/list?n=2&last=b"
    )
    assert next_page_url(here, "https://reg.example:443/v2/team/app/tags/list?last=b") == (
        "https://reg.example:443/v2/team/app/tags/list?last=b"
    )
    assert next_page_url(here, None) is None
    assert next_page_url(here, "") is None


def test_a_next_page_on_another_host_or_scheme_is_not_followed() -> None:
    here = "https://reg.example/v2/team/app/tags/list"
    assert next_page_url(here, "https://elsewhere.example/v2/team/app/tags/list?last=b") is None
    assert next_page_url(here, "http://reg.example/v2/team/app/tags/list?last=b") is None


# --- Docker config and pull Secrets -------------------------------------------------------------------


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_docker_config_auth_and_username_password_entries() -> None:
    config = {
        "auths": {
            "https://index.docker.io/v1/": {"auth": _b64("hub-user:hub:pw")},
            "GHCR.io": {"username": "octo", "password": "ghp"},
            "localhost:5000": {"auth": _b64("me:secret"), "email": "x@y"},
            "helper.example": {"identitytoken": "refresh"},
        }
    }
    creds = parse_docker_config(json.dumps(config), "test config")
    assert creds.for_host("docker.io") == RegistryLogin("hub-user", "hub:pw")
    assert creds.for_host("registry-1.docker.io") == RegistryLogin("hub-user", "hub:pw")
    assert creds.for_host("ghcr.io") == RegistryLogin("octo", "ghp")
    assert creds.for_host("localhost:5000") == RegistryLogin("me", "secret")
    assert creds.for_host("helper.example") is None
    assert "secret" not in repr(creds) and "hub:pw" not in repr(creds.for_host("docker.io"))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("{", "not valid JSON"),
        ("[]", "not a JSON object"),
        ('{"auths": []}', "'auths' is not an object"),
        ('{"auths": {"r.example": "x"}}', "registry 'r.example': the entry is not an object"),
        ('{"auths": {"r.example": {"auth": "***"}}}', "'auth' is not base64 of user:password"),
        ('{"auths": {"r.example": {"auth": "' + _b64("nocolon") + '"}}}', "is not base64 of user:password"),
        ('{"auths": {"r.example": {"username": "u"}}}', "needs both a user name and a password"),
    ],
)
def test_a_bad_docker_config_names_the_source_and_entry_never_the_secret(data: str, message: str) -> None:
    with pytest.raises(CredentialsError, match=r"^Secret ns/regcred key \.dockerconfigjson") as info:
        parse_pull_secret("ns", "regcred", {".dockerconfigjson": data.encode()})
    assert message in str(info.value)
    assert "nocolon" not in str(info.value)


def test_a_legacy_dockercfg_secret_and_a_secret_without_either_key() -> None:
    legacy = json.dumps({"quay.io": {"auth": _b64("robot:tok")}}).encode()
    assert parse_pull_secret("ns", "old", {".dockercfg": legacy}).for_host("quay.io") == RegistryLogin(
        "robot", "tok"
    )
    with pytest.raises(CredentialsError, match=r"Secret ns/opaque: has no \.dockerconfigjson"):
        parse_pull_secret("ns", "opaque", {"password": b"x"})


class _Secrets:
    def __init__(self, secrets: dict[tuple[str, str], dict[str, bytes]]) -> None:
        self.secrets = secrets

    def get_secret_data(self, namespace: str, name: str) -> dict[str, bytes] | None:
        return self.secrets.get((namespace, name))


def test_pull_secrets_merge_in_order_and_a_missing_one_is_named() -> None:
    def secret(user: str) -> dict[str, bytes]:
        return {
            ".dockerconfigjson": json.dumps({"auths": {"reg.example": {"auth": _b64(f"{user}:pw")}}}).encode()
        }

    reader = _Secrets({("a", "first"): secret("first"), ("b", "second"): secret("second")})
    merged = read_pull_secrets(reader, [("a", "first"), ("b", "second")])
    assert merged.for_host("reg.example") == RegistryLogin("second", "pw")
    with pytest.raises(CredentialsError, match="Secret c/missing not found"):
        read_pull_secrets(reader, [("a", "first"), ("c", "missing")])


def test_the_file_and_the_secrets_together_secrets_winning(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps({"auths": {"reg.example": {"auth": _b64("file:pw")}, "only.file": {"auth": _b64("f:pw")}}})
    )
    secret = {
        ".dockerconfigjson": json.dumps({"auths": {"reg.example": {"auth": _b64("secret:pw")}}}).encode()
    }
    creds = registry_credentials(str(config), [("ns", "s")], _Secrets({("ns", "s"): secret}))
    assert creds.for_host("reg.example") == RegistryLogin("secret", "pw")
    assert creds.for_host("only.file") == RegistryLogin("f", "pw")
    with pytest.raises(CredentialsError, match=r"^--image-docker-config .*missing\.json: cannot read it"):
        registry_credentials(str(tmp_path / "missing.json"), [], _Secrets({}))


@given(st.binary(max_size=300))
def test_any_docker_config_bytes_give_logins_or_a_credentials_error(data: bytes) -> None:
    try:
        creds = parse_docker_config(data, "fuzz")
    except CredentialsError as exc:
        assert str(exc).startswith("fuzz")
    else:
        assert all(login.username for login in creds.logins.values())


def test_registry_host_normalisation() -> None:
    assert normalise_registry_host("https://Index.Docker.io/v1/") == "docker.io"
    assert normalise_registry_host("registry.hub.docker.com") == "docker.io"
    assert normalise_registry_host("http://localhost:5000/v2/") == "localhost:5000"
    assert normalise_registry_host("ghcr.io/org") == "ghcr.io"
    assert RegistryCredentials().for_host("x") is None


# --- repositories -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "host", "path"),
    [
        ("nginx", "docker.io", "library/nginx"),
        ("bitnami/redis", "docker.io", "bitnami/redis"),
        ("index.docker.io/nginx", "docker.io", "library/nginx"),
        ("ghcr.io/org/team/app", "ghcr.io", "org/team/app"),
        ("localhost:5000/app", "localhost:5000", "app"),
        ("127.0.0.1:42883/test/app", "127.0.0.1:42883", "test/app"),
    ],
)
def test_repository_names(text: str, host: str, path: str) -> None:
    repo = ImageRepository.parse(text)
    assert (repo.host, repo.path) == (host, path)


def test_docker_hub_is_scanned_at_its_api_host() -> None:
    assert ImageRepository.parse("nginx").api_host == "registry-1.docker.io"


@pytest.mark.parametrize("text", ["nginx:1.25", "ghcr.io/a/b@sha256:" + "0" * 64, "Upper/Case", "a//b", ""])
def test_a_reference_or_a_bad_name_is_not_a_repository(text: str) -> None:
    with pytest.raises(ValueError, match=repr(text)):
        ImageRepository.parse(text)


# --- manifests -------------------------------------------------------------------------------------

D = {c: "sha256:" + c * 64 for c in "abcdef"}


def _index(*entries: tuple[str, dict[str, str] | None]) -> dict[str, object]:
    manifests = []
    for digest, platform in entries:
        entry: dict[str, object] = {"mediaType": manifest.OCI_MANIFEST, "digest": digest, "size": 1}
        if platform is not None:
            entry["platform"] = platform
        manifests.append(entry)
    return {"schemaVersion": 2, "mediaType": manifest.OCI_INDEX, "manifests": manifests}


def test_linux_amd64_is_picked_from_an_index_with_attestations() -> None:
    index = _index(
        (D["a"], {"os": "linux", "architecture": "arm64", "variant": "v8"}),
        (D["b"], {"os": "unknown", "architecture": "unknown"}),
        (D["c"], None),
        (D["d"], {"os": "linux", "architecture": "amd64"}),
        (D["e"], {"os": "linux", "architecture": "amd64"}),
    )
    assert manifest.select_platform(index, Platform.parse("linux/amd64")) == D["d"]


def test_an_exact_variant_wins_over_an_entry_without_one() -> None:
    index = _index(
        (D["a"], {"os": "linux", "architecture": "arm64"}),
        (D["b"], {"os": "linux", "architecture": "arm64", "variant": "v8"}),
    )
    assert manifest.select_platform(index, Platform.parse("linux/arm64/v8")) == D["b"]
    assert manifest.select_platform(index, Platform.parse("linux/arm64")) == D["a"]
    arm7 = _index((D["c"], {"os": "linux", "architecture": "arm", "variant": "v6"}))
    with pytest.raises(ManifestError, match=r"no image for linux/arm/v7 \(platforms: linux/arm/v6\)"):
        manifest.select_platform(arm7, Platform.parse("linux/arm/v7"))


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"manifests": "x"}, "manifests is not a list"),
        (_index(("sha512:zz", {"os": "linux", "architecture": "amd64"})), "unsupported digest"),
    ],
)
def test_a_malformed_index_is_an_error(doc: dict[str, object], message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        manifest.select_platform(doc, Platform.parse("linux/amd64"))


def test_manifest_kinds_by_field_or_content_type() -> None:
    assert manifest.is_index({"mediaType": manifest.DOCKER_LIST}, None)
    assert not manifest.is_index({"config": {}}, manifest.DOCKER_MANIFEST)
    assert manifest.is_index({"manifests": []}, None)  # an OCI index may omit mediaType
    assert not manifest.is_index({"config": {"digest": D["a"]}}, "")
    with pytest.raises(ManifestError, match="unsupported manifest type"):
        manifest.is_index(
            {"schemaVersion": 1, "fsLayers": []}, "application/vnd.docker.distribution.manifest.v1+prettyjws"
        )


@pytest.mark.parametrize(
    ("created", "expected"),
    [
        ("2026-03-04T05:06:07Z", datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)),
        ("2026-03-04T05:06:07.123456789Z", datetime(2026, 3, 4, 5, 6, 7, 123456, tzinfo=UTC)),
        ("2026-03-04T07:06:07+02:00", datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)),
        ("2026-03-04T03:36:07-01:30", datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)),
        ("1970-01-01T00:00:00Z", None),  # reproducible builds: "unknown"
        (None, None),
    ],
)
def test_build_time_from_the_config_blob(created: str | None, expected: datetime | None) -> None:
    blob = json.dumps({"architecture": "amd64", "os": "linux", **({"created": created} if created else {})})
    assert manifest.created_time(blob.encode()) == expected


@pytest.mark.parametrize("created", ["yesterday", 5, "2026-13-01T00:00:00Z"])
def test_a_malformed_build_time_is_an_error(created: object) -> None:
    with pytest.raises(ManifestError, match="malformed image config"):
        manifest.created_time(json.dumps({"created": created}).encode())


# --- rate limiter ---------------------------------------------------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_the_bucket_allows_a_burst_then_paces_at_the_rate() -> None:
    clock = _Clock()
    limiter = HostRateLimiter(RateLimitSettings(rate_per_s=2.0, burst=3), clock=clock, sleep=clock.sleep)
    waits = [limiter.acquire("reg.example") for _ in range(5)]
    assert waits == [0.0, 0.0, 0.0, 0.5, 0.5]
    assert limiter.acquire("other.example") == 0.0  # per host


def test_a_429_pauses_the_host_for_retry_after_capped_and_halves_its_rate_until_recovery() -> None:
    clock = _Clock()
    settings = RateLimitSettings(
        rate_per_s=4.0, burst=1, max_pause_s=30.0, recovery_s=100.0, default_pause_s=7.0
    )
    limiter = HostRateLimiter(settings, clock=clock, sleep=clock.sleep)
    assert limiter.limited("reg.example", 12.0) == 12.0
    assert limiter.rate("reg.example") == 2.0
    assert limiter.acquire("reg.example") == pytest.approx(12.0)
    assert limiter.limited("reg.example", 3600.0) == 30.0  # capped
    assert limiter.limited("reg.example", None) == 7.0  # no Retry-After
    assert limiter.rate("reg.example") == 0.5
    clock.now += 100.0
    assert limiter.rate("reg.example") == 4.0


def test_the_rate_never_falls_below_its_floor() -> None:
    clock = _Clock()
    limiter = HostRateLimiter(
        RateLimitSettings(rate_per_s=1.0, min_rate_per_s=0.25), clock=clock, sleep=clock.sleep
    )
    for _ in range(10):
        limiter.limited("reg.example", 0.0)
    assert limiter.rate("reg.example") == 0.25


@given(st.lists(st.sampled_from(["acquire", "limited", "tick"]), max_size=60), st.integers(1, 5))
def test_requests_never_go_faster_than_burst_plus_rate_times_time(ops: list[str], burst: int) -> None:
    clock = _Clock()
    start = clock.now
    limiter = HostRateLimiter(RateLimitSettings(rate_per_s=2.0, burst=burst), clock=clock, sleep=clock.sleep)
    sent = 0
    for op in ops:
        if op == "acquire":
            limiter.acquire("h")
            sent += 1
            assert sent <= burst + 2.0 * (clock.now - start) + 1e-6
        elif op == "limited":
            limiter.limited("h", 1.0)
        else:
            clock.now += 0.3


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12,
)


@given(st.dictionaries(st.text(max_size=12), _JSON, max_size=4))
def test_any_auths_shape_gives_logins_or_a_credentials_error(auths: dict[str, object]) -> None:
    try:
        parse_docker_config(json.dumps({"auths": auths}), "fuzz")
    except CredentialsError as exc:
        assert str(exc).startswith("fuzz")
