"""Docker image references: parsing, canonical names, writing back in the form they were read."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gitops_helm.images.model import ImageRef, ReferenceError, parse_reference

DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest", "name"),
    [
        ("nginx", "", "nginx", "", "", "docker.io/library/nginx"),
        ("nginx:1.25", "", "nginx", "1.25", "", "docker.io/library/nginx"),
        ("bitnami/redis:7.2.4", "", "bitnami/redis", "7.2.4", "", "docker.io/bitnami/redis"),
        ("docker.io/nginx:1", "docker.io", "nginx", "1", "", "docker.io/library/nginx"),
        ("index.docker.io/org/app:1", "index.docker.io", "org/app", "1", "", "docker.io/org/app"),
        ("localhost/app:dev", "localhost", "app", "dev", "", "localhost/app"),
        (
            "localhost:5000/team/app:1.0.0",
            "localhost:5000",
            "team/app",
            "1.0.0",
            "",
            "localhost:5000/team/app",
        ),
        ("ghcr.io/org/app@" + DIGEST, "ghcr.io", "org/app", "", DIGEST, "ghcr.io/org/app"),
        ("ghcr.io/org/app:1.0.0@" + DIGEST, "ghcr.io", "org/app", "1.0.0", DIGEST, "ghcr.io/org/app"),
        (
            "registry.example.com:5000/a/b/c:v2.3.0",
            "registry.example.com:5000",
            "a/b/c",
            "v2.3.0",
            "",
            "registry.example.com:5000/a/b/c",
        ),
    ],
)
def test_parse_reference(text: str, registry: str, repository: str, tag: str, digest: str, name: str) -> None:
    ref = parse_reference(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (registry, repository, tag, digest)
    assert ref.name == name
    assert str(ref) == text  # written back exactly as it was read


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Nginx:1.0", "is not a repository name"),
        ("nginx:1.0:2", "is not a repository name"),
        ("nginx:-bad", "is not a valid tag"),
        ("nginx@sha256:short", "is not a digest"),
        ("ghcr.io/", "no repository name"),
        ("", "no repository name"),
        ("a@b@c", "more than one '@'"),
    ],
)
def test_bad_references_are_clear_errors(text: str, message: str) -> None:
    with pytest.raises(ReferenceError, match=message):
        parse_reference(text)


def test_a_separate_registry_value_is_used_and_not_repeated() -> None:
    ref = parse_reference("team/app:1.0", registry="quay.io")
    assert ref.name == "quay.io/team/app"
    with pytest.raises(ReferenceError, match=r"names registry 'ghcr.io' while registry 'quay.io' is given"):
        parse_reference("ghcr.io/team/app", registry="quay.io")


def test_with_version_keeps_the_written_form() -> None:
    assert str(parse_reference("nginx:1.25").with_version("1.26")) == "nginx:1.26"
    assert str(parse_reference("nginx:1.25").with_version("1.26", DIGEST)) == f"nginx:1.26@{DIGEST}"


_component = st.from_regex(r"\A[a-z0-9]{1,6}(?:[._-][a-z0-9]{1,4})?\Z")
_host = st.sampled_from(["", "ghcr.io", "localhost:5000", "registry.example.com:443", "docker.io"])
_tag = st.from_regex(r"\A[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}\Z")
_digest = st.sampled_from(["", DIGEST, "sha512:" + "0f" * 64])


@given(_host, st.lists(_component, min_size=1, max_size=3), st.one_of(st.just(""), _tag), _digest)
def test_format_then_parse_round_trips(host: str, parts: list[str], tag: str, digest: str) -> None:
    ref = ImageRef(host, "/".join(parts), tag, digest)
    text = str(ref)
    if not host and "." in parts[0] and len(parts) > 1:
        return  # "a.b/c" reads as registry a.b: that is the reference grammar, not a round trip
    assert parse_reference(text) == ref
