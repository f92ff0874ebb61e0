"""Stock RLlib PPO on DrunkSpider's fine-tuning task, with and without SQRL's safety shield (issue 18).

Per seed, two PPO runs from scratch on ``sqrl/DrunkSpider-v0`` (``task="finetune"``) with the same env-step
budget: plain PPO, and PPO with ``sqrl_rllib.shield.add_safety_shield`` using a pretrained SQRL checkpoint's
frozen Q_safe. Reports failures / episodes during training (the fine-tuning failures SQRL is about), the
last iteration's return and the shield's rejection / fallback rates; writes one CSV per seed (one row per
iteration and run) under ``--out`` and ends with a line ``RESULT ppo_failures=.. shield_failures=..``.

Usage: python benchmarks/shield.py CHECKPOINT [--seeds 0,1,2] [--env-steps N] [--eps-safe EPS]
       [--num-action-samples K] [--failure-penalty authors|below_timeout] [--out DIR]
"""

from __future__ import annotations

import argparse
import pathlib
import time

import pandas as pd
import ray
from ray.rllib.algorithms.ppo import PPOConfig

from sqrl_rllib.envs.rllib import register_rllib_envs
from sqrl_rllib.shield import add_safety_shield, log_failure

RESULTS = pathlib.Path(__file__).parent / "results" / "shield"


def ppo_config(seed: int, failure_penalty: str = "authors") -> PPOConfig:
    """Stock PPO (RLlib's defaults but a batch sized for 30-step episodes), one local EnvRunner x 4 envs."""
    return (
        PPOConfig()
        .environment("sqrl/DrunkSpider-v0", env_config={"task": "finetune", "failure_penalty": failure_penalty})
        .env_runners(num_env_runners=0, num_envs_per_env_runner=4)
        .training(train_batch_size_per_learner=1000, minibatch_size=250, num_epochs=5, lr=3e-4)
        .debugging(seed=seed)
    )


def run(seed: int, env_steps: int, checkpoint: str | None, eps_safe: float, k: int, failure_penalty: str) -> list[dict]:
    """One PPO run (shielded when ``checkpoint`` is given); one row per training iteration."""
    config = ppo_config(seed, failure_penalty)
    if checkpoint is None:
        config.callbacks(on_episode_end=log_failure)  # the shield run gets the same counter from the shield
    else:
        config = add_safety_shield(config, checkpoint, eps_safe, num_action_samples=k)
    algo = config.build_algo()
    rows, start = [], time.time()
    try:
        while True:
            result = algo.train()
            runners = result["env_runners"]
            rows.append(
                {
                    "seed": seed,
                    "method": "PPO" if checkpoint is None else "PPO+shield",
                    "iteration": result["training_iteration"],
                    "env_steps": int(runners["num_env_steps_sampled_lifetime"]),
                    "episodes": int(runners["num_episodes_lifetime"]),
                    "failures": int(runners.get("cumulative_failures", 0)),
                    "return_mean": float(runners.get("episode_return_mean", float("nan"))),
                    "mask_rejection_rate": float(runners.get("mask_rejection_rate", float("nan"))),
                    "mask_fallback_rate": float(runners.get("mask_fallback_rate", float("nan"))),
                    "mask_chosen_q_safe": float(runners.get("mask_chosen_q_safe", float("nan"))),
                    "wall_s": round(time.time() - start, 1),
                }
            )
            if rows[-1]["env_steps"] >= env_steps:
                return rows
    finally:
        algo.stop()


def main() -> None:
    """Parse the arguments, run both methods per seed, print the table and the RESULT line."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="an SQRL checkpoint with a trained Q_safe")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    parser.add_argument("--env-steps", type=int, default=20_000, help="env-step budget of every run")
    parser.add_argument("--eps-safe", type=float, default=0.1)
    parser.add_argument("--num-action-samples", type=int, default=100)
    parser.add_argument(
        "--failure-penalty",
        default="authors",
        choices=["authors", "below_timeout"],
        help="DrunkSpider's failure_penalty: the authors' shaping pays failing early better than a timeout",
    )
    parser.add_argument("--out", default=str(RESULTS), help="folder of the per-seed CSVs")
    args = parser.parse_args()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    register_rllib_envs()
    finals = []
    try:
        for seed in (int(s) for s in args.seeds.split(",")):
            common = (args.eps_safe, args.num_action_samples, args.failure_penalty)
            rows = run(seed, args.env_steps, None, *common)
            rows += run(seed, args.env_steps, args.checkpoint, *common)
            frame = pd.DataFrame(rows)
            frame.to_csv(out / f"seed_{seed}.csv", index=False)
            finals += [group.iloc[-1] for _, group in frame.groupby("method")]
            print(frame.groupby("method").last().to_string(), flush=True)
    finally:
        ray.shutdown()
    table = pd.DataFrame(finals)[
        ["seed", "method", "env_steps", "failures", "episodes", "return_mean", "mask_rejection_rate", "wall_s"]
    ]
    table["failure_rate"] = table["failures"] / table["episodes"]
    print(table.to_string(index=False))
    mean = table.groupby("method")["failures"].mean()
    print(f"RESULT ppo_failures={mean['PPO']:.1f} shield_failures={mean['PPO+shield']:.1f}")


if __name__ == "__main__":
    main()
