"""Allocator settings for SAM's big tensors and the encoder precision choice."""

from __future__ import annotations

import sys

import pytest

from endolite import allocator
from endolite.segment import sam


def test_environment_adds_one_arena_but_keeps_what_the_user_set():
    assert allocator.with_environment({"A": "1"}) == {"A": "1", "MALLOC_ARENA_MAX": "1"}
    assert allocator.with_environment({"MALLOC_ARENA_MAX": "4"})["MALLOC_ARENA_MAX"] == "4"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_thresholds_are_accepted_and_applying_twice_is_harmless():
    assert allocator.keep_large_allocations() is True
    assert allocator.keep_large_allocations() is True


def test_auto_precision_is_float32_without_amx_tiles(monkeypatch):
    monkeypatch.setattr(sam, "_has_amx_bf16", lambda: False)
    assert sam.resolve_precision("auto") == "fp32"
    monkeypatch.setattr(sam, "_has_amx_bf16", lambda: True)
    assert sam.resolve_precision("auto") == ("bf16" if sam._bf16_supported() else "fp32")
    assert sam.resolve_precision("bf16") == "bf16"
    with pytest.raises(Exception, match="precision"):
        sam.resolve_precision("fp8")
