"""Continue a saved DrunkSpider pretraining with changed keys: does a stalled run leave its trap?

Restores a pretraining checkpoint (``benchmarks/drunk_spider_transfer.py``'s ``pretrain_S`` or
``benchmarks/seeds.py``'s) into the transfer benchmark's pretraining config (the authors' SAC settings and
the pretraining Lagrangian, as ``drunk_spider.yaml``) with ``--set`` overrides on top, trains ``--steps``
more env steps and prints one line per iteration (``seeds.py``'s traced metrics). Nothing is saved: it is
a probe of what a key does to a run in a known state, e.g. ``--set nu_max=10`` on seed 26's stalled run
(benchmarks/README.md, "Session 17"). Run the same command without ``--set`` as the control.

Usage: python benchmarks/continue_pretraining.py CHECKPOINT --seed 26 --steps 12000 [--set nu_max=10]
"""

from __future__ import annotations

import argparse

import ray
from drunk_spider_transfer import (
    AUTHORS_SAC,
    NOISE_LEVELS,
    PRETRAIN_LAGRANGIAN,
    config,
    noise_levels,
    parse_sets,
    with_overrides,
)
from seeds import trace_row

from sqrl_rllib.envs.rllib import register_rllib_envs

SHOWN = ("steps", "return", "cumulative_failures", "cumulative_episodes", "fallback_rate", "q_safe_safe_mean", "nu")


def main() -> None:
    """Restore, train ``--steps`` more env steps, print the trace."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="a pretraining checkpoint directory")
    parser.add_argument("--seed", type=int, required=True, help="the seed the checkpoint was pretrained with")
    parser.add_argument("--steps", type=int, default=12000, help="env steps to train after the restore")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="an SQRL key override")
    args = parser.parse_args()
    overrides = AUTHORS_SAC | PRETRAIN_LAGRANGIAN | parse_sets(args.set)
    env_extra = {"action_noise_levels": noise_levels(NOISE_LEVELS)}
    cfg = with_overrides(config("pretrain", "pretrain", args.seed, env_extra=env_extra), overrides)
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    register_rllib_envs()
    algo = cfg.build_algo()
    algo.restore_from_path(args.checkpoint)
    start = None
    try:
        while True:
            row = trace_row(algo.train())
            start = start if start is not None else row["steps"]
            print(" ".join(f"{key}={row[key]:.4g}" for key in SHOWN), flush=True)
            if row["steps"] - start >= args.steps:
                break
    finally:
        algo.stop()


if __name__ == "__main__":
    main()
