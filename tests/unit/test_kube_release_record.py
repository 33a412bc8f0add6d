"""Decoding a Helm storage record is bounded: a gzip bomb or a deeply nested record planted in a
tenant's namespace is refused with a clear error, never decoded into the agent's memory."""

from __future__ import annotations

import base64
import gzip
import json

import pytest

from gitops_helm.adapters.kube import decode_release_record


def stored(payload: bytes) -> str:
    """As helm writes ``data.release`` (the API then base64-encodes Secret data once more)."""
    return base64.b64encode(base64.b64encode(payload)).decode()


def test_a_gzip_record_decodes() -> None:
    record = {"name": "web", "version": 3, "info": {"status": "deployed"}}
    assert decode_release_record(stored(gzip.compress(json.dumps(record).encode())), 1 << 20) == record


def test_a_plain_json_record_decodes() -> None:
    assert decode_release_record(stored(b'{"name": "web"}'), 1 << 20) == {"name": "web"}


def test_a_gzip_bomb_is_refused_at_the_bound() -> None:
    bomb = gzip.compress(b"{" + b" " * (8 << 20) + b"}")  # 8 MiB of spaces: a few KiB compressed
    assert len(bomb) < 64 * 1024
    with pytest.raises(ValueError, match="decompresses to more than 1048576 bytes"):
        decode_release_record(stored(bomb), 1 << 20)


def test_a_deeply_nested_record_is_refused() -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(ValueError, match="nested too deeply"):
        decode_release_record(stored(gzip.compress(deep)), 1 << 20)


@pytest.mark.parametrize("payload", [b"not json", b"[1, 2]", b"\x1f\x8bnot gzip"])
def test_a_broken_record_is_a_value_error(payload: bytes) -> None:
    with pytest.raises(ValueError):
        decode_release_record(stored(payload), 1 << 20)
