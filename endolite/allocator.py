"""glibc malloc settings that keep big short-lived tensors in the heap.

SAM's image encoder (vit_b) allocates and frees attention maps of ~800 MB per global-attention
block.  With glibc's defaults each of those is a fresh ``mmap`` whose pages the kernel zeroes
on first touch and unmaps on free: on the 2-core lab machine half of a 17-26 s float32
embedding was system time.  Serving them from the heap and keeping freed memory for reuse
brings the same embedding to about 6 s (bench/sam_click.py prints both, measured in one run).

Two parts, because glibc reads them at different times:

- :data:`ENVIRONMENT` (``MALLOC_ARENA_MAX=1``) must be in the environment when a process
  starts: threads otherwise get their own arenas, whose 64 MB heaps cannot hold such blocks,
  so a background job would still ``mmap`` them.  ``endolite serve`` starts the dashboard
  with it (unless the variable is already set).
- :func:`keep_large_allocations` sets the mmap and trim thresholds with ``mallopt`` in the
  running process (idempotent; a no-op returning False where glibc is not the C library).

Cost: the process keeps its peak heap (about 3 GB after a vit_b embedding) resident for reuse
instead of returning freed memory to the system.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

ENVIRONMENT = {"MALLOC_ARENA_MAX": "1"}
MMAP_THRESHOLD = 1 << 30        # bytes: blocks below this come from the heap
TRIM_THRESHOLD = -1             # never give the heap top back (a threshold of even 2 GB
                                # was crossed by vit_b and its pages faulted in again)

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8
_done: bool | None = None


def with_environment(env: dict[str, str]) -> dict[str, str]:
    """``env`` plus :data:`ENVIRONMENT` where ``env`` does not set the variable already."""
    return {**ENVIRONMENT, **env}


def keep_large_allocations() -> bool:
    """Apply the thresholds (and one arena, effective only before other threads allocate) to
    this process.  Returns True when glibc accepted them."""
    global _done
    if _done is not None:
        return _done
    _done = False
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    ok = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    ok = mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1 and ok
    mallopt(_M_ARENA_MAX, 1)
    _done = ok
    return ok
