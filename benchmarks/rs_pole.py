"""RS (the paper's risk-sensitive baseline) on InvertedPendulum-v5, where failing never pays: does it learn?

The pole falling ends the episode and is the failure (``failure: terminated``, the own-env plug-in), so a
policy only scores (1 per step alive, at most 1000) by not failing. SQRL pretrains ``--pretrain-steps``
(64 x 64 nets, K 20, eps_safe 0.1, gamma_safe 0.7), then RS (``methods.METHODS["rs"]``: SQRL's policy and
Q_safe, no mask, critic target r - lambda * Q_safe, lambda by dual ascent against eps_safe) fine-tunes
``--finetune-steps`` on the same env; ``--set KEY=VALUE`` adds SQRL keys to the fine-tuning (e.g.
``finetune_safety_critic=true``). One line per training iteration: env steps, return (mean of the last 5
episodes; nan when none ended), cumulative failures / episodes and lambda.

Usage: python benchmarks/rs_pole.py --seed 0 [--pretrain-steps 1000] [--finetune-steps 14000] [--set k=v]
"""

from __future__ import annotations

import argparse
import tempfile

import ray
from drunk_spider_transfer import parse_sets
from ray.rllib.core import DEFAULT_MODULE_ID

from sqrl_rllib.algorithms.sqrl import SQRLConfig
from sqrl_rllib.envs.own_env import register_own_env
from sqrl_rllib.methods import METHODS


def config(env: str, stage: str, seed: int, **extra) -> SQRLConfig:
    """RS's ``stage`` on ``env`` (SQRL's keys when pretraining, RS's when fine-tuning) at a small size."""
    rs = METHODS["rs"]
    keys = {"eps_safe": 0.1, "gamma_safe": 0.7, "num_action_samples": 20, "hidden": (64, 64)}
    keys.update(METHODS[rs.pretrained_by].keys("pretrain") if stage == "pretrain" else rs.keys("finetune"))
    keys.update(extra)
    return (
        SQRLConfig()
        .environment(env)
        .env_runners(num_env_runners=0, rollout_fragment_length=32)
        .training(num_steps_sampled_before_learning_starts=256, train_batch_size_per_learner=256)
        .reporting(min_sample_timesteps_per_iteration=500, metrics_num_episodes_for_smoothing=5)
        .sqrl(phase=stage, **keys)
        .debugging(seed=seed)
    )


def train(cfg: SQRLConfig, steps: int, label: str, save_to: str | None = None) -> list[dict]:
    """Train ``steps`` env steps, printing one line per iteration; save to ``save_to`` if given.

    Returns one row per iteration: env steps, return, cumulative failures and episodes, lambda.
    """
    algo = cfg.build_algo()
    rows: list[dict] = []
    try:
        while not rows or rows[-1]["steps"] < steps:
            result = algo.train()
            runners, sq = result["env_runners"], result["sqrl"]
            row = {
                "steps": int(runners["num_env_steps_sampled_lifetime"]),
                "return": float(runners.get("episode_return_mean", float("nan"))),
                "failures": int(sq["cumulative_failures"]),
                "episodes": int(sq["cumulative_episodes"]),
                "lambda": float(result.get("learners", {}).get(DEFAULT_MODULE_ID, {}).get("nu", float("nan"))),
            }
            rows.append(row)
            print(
                f"[{label}] steps={row['steps']} return={row['return']:.1f} "
                f"failures={row['failures']}/{row['episodes']} lambda={row['lambda']:.3g}",
                flush=True,
            )
        if save_to:
            algo.save_to_path(save_to)
    finally:
        algo.stop()
    return rows


def main() -> None:
    """Pretrain SQRL, then fine-tune RS from it, printing progress."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="the seed of both stages")
    parser.add_argument("--pretrain-steps", type=int, default=1000, help="SQRL pretraining env steps")
    parser.add_argument("--finetune-steps", type=int, default=14000, help="RS fine-tuning env steps")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="an SQRL key for the RS fine-tuning"
    )
    args = parser.parse_args()
    try:
        extra = parse_sets(args.set)
        config("InvertedPendulum-v5", "finetune", 0, **extra).validate()
    except (argparse.ArgumentTypeError, TypeError, ValueError) as err:
        parser.error(f"--set: {err}")
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    env = register_own_env("InvertedPendulum-v5", "terminated")
    with tempfile.TemporaryDirectory() as tmp:
        train(config(env, "pretrain", args.seed), args.pretrain_steps, "SQRL pretrain", save_to=tmp)
        train(config(env, "finetune", args.seed, pretrained_checkpoint=tmp, **extra), args.finetune_steps, "RS")


if __name__ == "__main__":
    main()
