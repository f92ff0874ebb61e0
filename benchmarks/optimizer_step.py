"""Adam step time on SQRL's learner parameters: the project's fused Adam vs torch's foreach Adam.

SQRL's learner steps four optimizers per SGD step (critics, policy, alpha, safety critic; plus nu
while fine-tuning), each over a few small tensors, so launch overhead dominates. Prints a last line
``RESULT fused_ms=.. foreach_ms=.. foreach_vs_fused=..`` (per SGD step, all four optimizers).

Usage: python benchmarks/optimizer_step.py [--steps N] [--hidden 256] [--threads 1] [--device cpu]
No Ray needed: runs on a GPU machine with only torch installed.
"""

from __future__ import annotations

import argparse

import torch
from timing import ms_per_call

from sqrl_rllib.core.networks import EnsembleQ, SafetyCritic, SquashedGaussianPolicy
from sqrl_rllib.core.optim import adam


def parameter_groups(hidden: int, device: str) -> list[list[torch.Tensor]]:
    """SQRL's optimizer groups on DrunkSpider-sized nets (obs 6, act 2), with random gradients."""
    obs_dim, act_dim, sizes = 6, 2, (hidden, hidden)
    groups = [
        list(EnsembleQ(obs_dim, act_dim, 2, sizes).to(device).parameters()),
        list(SquashedGaussianPolicy(obs_dim, act_dim, sizes).to(device).parameters()),
        [torch.zeros((), device=device, requires_grad=True)],
        list(SafetyCritic(obs_dim, act_dim, sizes).to(device).parameters()),
    ]
    for group in groups:
        for p in group:
            p.grad = torch.randn_like(p)
    return groups


def ms_per_step(optimizers: list[torch.optim.Optimizer], steps: int, device: str) -> float:
    """Mean wall time of stepping every optimizer once, after a warm-up."""

    def step_all():
        for opt in optimizers:
            opt.step()

    return ms_per_call(step_all, steps, device)


def main() -> None:
    """Time both optimizers on the same parameters and print the RESULT line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000, help="timed SGD steps per optimizer kind")
    parser.add_argument("--hidden", type=int, default=256, help="hidden layer width of every net")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    groups = parameter_groups(args.hidden, args.device)
    fused = ms_per_step([adam(g) for g in groups], args.steps, args.device)
    foreach = ms_per_step(
        [torch.optim.Adam(g, lr=3e-4, eps=1e-7, foreach=True) for g in groups], args.steps, args.device
    )
    print(f"RESULT fused_ms={fused:.3f} foreach_ms={foreach:.3f} foreach_vs_fused={foreach / fused:.2f}")


if __name__ == "__main__":
    main()
