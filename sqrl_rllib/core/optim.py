"""The optimizer every SQRL network uses: Adam with eps 1e-7, in its fused kernel where it exists.

On this project's nets (2 x 256) an Adam step is a few dozen small tensors, so its cost is kernel
launches, not arithmetic: the fused kernel does a whole parameter list in one pass and measured
2.6-3.6x faster than ``foreach=True`` on CPU (``benchmarks/optimizer_step.py``). Devices without a fused Adam
fall back to ``foreach``.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

# Device types for which torch ships a fused Adam kernel.
FUSED_ADAM_DEVICES = ("cpu", "cuda")


def adam(params: Iterable[torch.Tensor], lr: float = 3e-4) -> torch.optim.Adam:
    """Adam over ``params`` (eps 1e-7, as in the paper's TF-Agents code), fused where supported."""
    params = list(params)
    fused = all(p.device.type in FUSED_ADAM_DEVICES for p in params)
    return torch.optim.Adam(params, lr=lr, eps=1e-7, fused=fused, foreach=None if fused else True)
