"""SQRL vs SAC after a SHORT pretraining, each method from its own pretraining (issue 20's end-to-end check).

Per seed: SAC pretrained (no safety critic) and SQRL pretrained (mask, safety critic, pretraining Lagrangian)
for ``--pretrain-steps`` with drunk_spider.yaml's keys (the authors' SAC settings, the pretraining noise
randomised over [0, 0.4]) at a reduced size (``--hidden``, ``--k``); SQRL's Q_safe fitted 500 steps at
failure fraction 0.2; then each fine-tuned ``--finetune-steps`` on the finetune task (noise 0.2). Prints one
line per run: return (mean of the last episodes), cumulative failures and episodes.

Usage: python benchmarks/short_transfer.py --pretrain-steps 4000 --finetune-steps 2000 --seeds 0,1
"""

from __future__ import annotations

import argparse
import tempfile
import time

import ray

from sqrl_rllib.algorithms.sqrl import SQRLConfig
from sqrl_rllib.algorithms.sqrl.sqrl import fit_checkpoint_safety_critic
from sqrl_rllib.methods import METHODS

NOISE_LEVELS = [round(0.4 * i / 9, 6) for i in range(10)]


def config(method: str, stage: str, seed: int, hidden: tuple[int, ...], k: int, **extra) -> SQRLConfig:
    """``method``'s ``stage`` config with drunk_spider.yaml's keys at the given size."""
    env_config = {"task": "finetune"}
    if stage == "pretrain":
        env_config = {"task": "pretrain", "action_noise_levels": NOISE_LEVELS}
    keys = {"eps_safe": 0.1, "gamma_safe": 0.65, "num_action_samples": k, "hidden": hidden, "reward_scale": 10.0}
    if stage == "pretrain":
        keys.update(policy_mean_init_scale=0.01, pretrain_lagrangian=True, nu_lr=0.003)
    keys.update(METHODS[method].keys(stage))
    return (
        SQRLConfig()
        .environment("sqrl/DrunkSpider-v0", env_config=env_config)
        .env_runners(num_env_runners=0, rollout_fragment_length=32)
        .training(gamma=1.0, num_steps_sampled_before_learning_starts=256, train_batch_size_per_learner=256)
        .reporting(min_sample_timesteps_per_iteration=500)
        .sqrl(phase=stage, method=method, **keys, **extra)
        .debugging(seed=seed)
    )


def train(cfg: SQRLConfig, steps: int, save_to: str | None = None) -> tuple[dict, str | None]:
    """Train for ``steps`` env steps; returns (return, failures, episodes) and the checkpoint if ``save_to``."""
    algo = cfg.build_algo()
    try:
        while (result := algo.train())["env_runners"]["num_env_steps_sampled_lifetime"] < steps:
            pass
        sqrl = result["sqrl"]
        row = {
            "return": round(float(result["env_runners"]["episode_return_mean"]), 2),
            "failures": int(sqrl["cumulative_failures"]),
            "episodes": int(sqrl["cumulative_episodes"]),
        }
        return row, algo.save_to_path(save_to) if save_to else None
    finally:
        algo.stop()


def main() -> None:
    """Run the four runs per seed and print them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pretrain-steps", type=int, default=4000, help="pretraining env steps per method")
    parser.add_argument("--finetune-steps", type=int, default=2000, help="fine-tuning env steps per method")
    parser.add_argument("--seeds", default="0,1", help="comma-separated seeds")
    parser.add_argument("--hidden", default="128,128", help="hidden layer sizes of every network")
    parser.add_argument("--k", type=int, default=50, help="SQRL's K (action samples per step)")
    args = parser.parse_args()
    hidden = tuple(int(h) for h in args.hidden.split(","))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    root = tempfile.mkdtemp(prefix="short_transfer_")
    for seed in (int(s) for s in args.seeds.split(",")):
        start = time.time()
        sac_pre, sac_ckpt = train(
            config("sac", "pretrain", seed, hidden, args.k), args.pretrain_steps, f"{root}/sac_{seed}"
        )
        sqrl_pre, sqrl_ckpt = train(
            config("sqrl", "pretrain", seed, hidden, args.k), args.pretrain_steps, f"{root}/sqrl_{seed}"
        )
        fitted = fit_checkpoint_safety_critic(
            config("sqrl", "pretrain", seed, hidden, args.k), sqrl_ckpt, f"{root}/sqrl_fit_{seed}", 500, 0.2
        )
        sqrl_ft, _ = train(
            config("sqrl", "finetune", seed, hidden, args.k, pretrained_checkpoint=fitted), args.finetune_steps
        )
        sac_ft, _ = train(
            config("sac", "finetune", seed, hidden, args.k, pretrained_checkpoint=sac_ckpt), args.finetune_steps
        )
        for name, row in (("sac_pretrain", sac_pre), ("sqrl_pretrain", sqrl_pre), ("sqrl_finetune", sqrl_ft)):
            print(f"seed {seed} {name}: {row}")
        print(f"seed {seed} sac_finetune: {sac_ft} ({time.time() - start:.0f} s for the seed)", flush=True)


if __name__ == "__main__":
    main()
