"""Wall time of a torch callable, shared by the micro-benchmarks (warm-up, device sync, mean per call)."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch


def ms_per_call(fn: Callable[[], object], steps: int, device: str, warmup: int = 20) -> float:
    """Mean wall time of ``fn()`` in ms over ``steps`` calls, after ``warmup`` calls; syncs CUDA around it."""
    for _ in range(warmup):
        fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps * 1000
