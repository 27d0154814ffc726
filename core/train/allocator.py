"""The host allocator tuned for training on a CPU. glibc's malloc hands every large freed buffer (a CNN's
activations and their gradients, tens of MB at 128-224 px) back to the kernel and faults it in again on the next
step: on 2 cores a MobileNetV2 step at 224 px spent as long in the kernel as in PyTorch (sys time = user time).
Keeping freed memory in the process's heap gives 1.6-1.8x steps/s there, leaves text encoders unchanged, and costs
about 0.1-0.6 GB of peak memory (benchmarks/bench_engine.py, "allocator"). PyTorch's CPU tuning guide reaches the
same end by preloading jemalloc or tcmalloc; glibc's own mallopt needs nothing installed."""
from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc malloc.h
KEEP_BYTES = 1 << 30  # below this a freed block stays in the heap, and the heap's top is returned above it
_tuned: bool | None = None


def tune_allocator() -> bool:
    """Set once per process; True where the allocator is glibc's and took the settings (Linux), else False."""
    global _tuned
    if _tuned is None:
        _tuned = False
        if sys.platform.startswith("linux"):
            try:
                libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                _tuned = bool(libc.mallopt(M_MMAP_THRESHOLD, KEEP_BYTES)) and \
                    bool(libc.mallopt(M_TRIM_THRESHOLD, KEEP_BYTES))
            except (OSError, AttributeError):  # musl and others: no mallopt, nothing to tune
                _tuned = False
    return _tuned
