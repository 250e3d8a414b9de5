"""Allocator settings for SAM's big tensors (the precision choice: test_segment_precision.py)."""

from __future__ import annotations

import sys

import pytest

from endolite import allocator


def test_environment_adds_one_arena_but_keeps_what_the_user_set():
    assert allocator.with_environment({"A": "1"}) == {"A": "1", "MALLOC_ARENA_MAX": "1"}
    assert allocator.with_environment({"MALLOC_ARENA_MAX": "4"})["MALLOC_ARENA_MAX"] == "4"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_thresholds_are_accepted_and_applying_twice_is_harmless():
    assert allocator.keep_large_allocations() is True
    assert allocator.keep_large_allocations() is True
