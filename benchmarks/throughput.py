"""Env steps per second at one update per env step (batch 256, 2 x 256 nets) on DrunkSpider.

In ONE run: (a) SQRL pretraining through RLlib (mask with K samples, safety critic), (b) stock RLlib
SAC with its default episode replay, (c) the project's plain PyTorch SAC loop (no Ray, same nets) as
the reference. Prints a last line
``RESULT sqrl_steps_per_s=.. rllib_sac_steps_per_s=.. lean_sac_steps_per_s=.. sqrl_vs_lean=.. sqrl_vs_rllib=..``.

With ``--methods sac,esac,wcpg`` it also times those baselines (the pipeline's method registry: each
method's config class and pretraining keys, same env, nets, batch and update ratio; one row each, and a
``<method>_steps_per_s`` / ``<method>_vs_lean`` pair in the RESULT line).

Usage: python benchmarks/throughput.py [--steps N] [--rllib-sac-steps N] [--k K] [--methods a,b]
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import ray
import torch

import sqrl_rllib.envs  # noqa: F401
from sqrl_rllib.core.lean_sac import run_lean_sac

WARMUP = 256
BATCH = 256


def rllib_rate(config, steps: int) -> float:
    """Env steps/s of ``config``'s Algorithm after WARMUP steps, over at least ``steps`` steps."""
    algo = config.build_algo()
    key = "num_env_steps_sampled_lifetime"
    result = algo.train()  # reaches learning starts
    while result["env_runners"][key] < WARMUP:
        result = algo.train()
    start_steps, start = result["env_runners"][key], time.perf_counter()
    while result["env_runners"][key] - start_steps < steps:
        result = algo.train()
    rate = (result["env_runners"][key] - start_steps) / (time.perf_counter() - start)
    algo.stop()
    return rate


def sqrl_config(k: int):
    """SQRL pretraining on DrunkSpider, local sampling, one update per env step."""
    from sqrl_rllib.algorithms.sqrl import SQRLConfig

    return (
        SQRLConfig()
        .environment("sqrl/DrunkSpider-v0", env_config={"task": "pretrain"})
        .env_runners(num_env_runners=0, rollout_fragment_length=32)
        .training(num_steps_sampled_before_learning_starts=WARMUP, train_batch_size_per_learner=BATCH)
        .reporting(min_sample_timesteps_per_iteration=64)
        .sqrl(num_action_samples=k, updates_per_env_step=1.0)
        .debugging(seed=0)
    )


def method_config(name: str):
    """Baseline ``name`` (``sqrl_rllib.methods.METHODS``) pretraining on DrunkSpider, set up like
    :func:`sqrl_config`: its own config class and pretraining keys, one update per env step."""
    from sqrl_rllib.methods import METHODS, load_object

    method = METHODS[name]
    return (
        load_object(method.config_class)()
        .environment("sqrl/DrunkSpider-v0", env_config={"task": "pretrain"})
        .env_runners(num_env_runners=0, rollout_fragment_length=32)
        .training(num_steps_sampled_before_learning_starts=WARMUP, train_batch_size_per_learner=BATCH)
        .reporting(min_sample_timesteps_per_iteration=64)
        .sqrl(**method.keys("pretrain"), method=name, updates_per_env_step=1.0)
        .debugging(seed=0)
    )


def rllib_sac_config():
    """Stock RLlib SAC, default replay, 2 x 256 nets, one update per env step."""
    from ray.rllib.algorithms.sac import SACConfig

    return (
        SACConfig()
        .environment("sqrl/DrunkSpider-v0", env_config={"task": "pretrain"})
        .env_runners(num_env_runners=0, rollout_fragment_length=1)
        .training(
            num_steps_sampled_before_learning_starts=WARMUP,
            train_batch_size_per_learner=BATCH,
            actor_lr=3e-4,
            critic_lr=3e-4,
            alpha_lr=3e-4,
        )
        .rl_module(model_config={"fcnet_hiddens": [256, 256], "fcnet_activation": "relu"})
        .reporting(min_sample_timesteps_per_iteration=16)
        .debugging(seed=0)
    )


def main() -> None:
    """Run the three measurements and print the RESULT line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000, help="measured env steps for SQRL and lean SAC")
    parser.add_argument("--rllib-sac-steps", type=int, default=100, help="measured env steps for stock SAC (slow)")
    parser.add_argument("--k", type=int, default=100, help="SQRL's K (action samples per step)")
    parser.add_argument(
        "--methods", default="", help="comma-separated off-policy baselines to time as well (e.g. sac,esac,wcpg)"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    from sqrl_rllib.envs.rllib import register_rllib_envs

    register_rllib_envs()
    lean = run_lean_sac(gym.make("sqrl/DrunkSpider-v0", task="pretrain"), WARMUP + args.steps)
    print(f"lean SAC (plain PyTorch): {lean:.1f} env steps/s", flush=True)
    sqrl = rllib_rate(sqrl_config(args.k), args.steps)
    print(f"SQRL via RLlib (K={args.k}): {sqrl:.1f} env steps/s", flush=True)
    rllib_sac = rllib_rate(rllib_sac_config(), args.rllib_sac_steps)
    print(f"stock RLlib SAC: {rllib_sac:.1f} env steps/s", flush=True)
    extra = ""
    for name in filter(None, args.methods.split(",")):
        rate = rllib_rate(method_config(name), args.steps)
        print(f"{name} via RLlib: {rate:.1f} env steps/s", flush=True)
        extra += f" {name}_steps_per_s={rate:.1f} {name}_vs_lean={rate / lean:.2f}"
    print(
        f"RESULT sqrl_steps_per_s={sqrl:.1f} rllib_sac_steps_per_s={rllib_sac:.1f} lean_sac_steps_per_s={lean:.1f} "
        f"sqrl_vs_lean={sqrl / lean:.2f} sqrl_vs_rllib={sqrl / rllib_sac:.2f}{extra}"
    )


if __name__ == "__main__":
    main()
