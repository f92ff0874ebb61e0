"""DrunkSpider transfer: pretrain SQRL, then fine-tune with (i) SQRL and (ii) SAC (same pretrained policy, no mask).

Per seed: one pretraining run (spec defaults, 5e4 steps), then two fine-tuning runs on the finetune task
starting from that checkpoint: SQRL (mask + Lagrangian) and SAC fine-tuning (``mask_enabled=False``,
``lagrangian=False``). Reports fine-tuning failures, failure rate and final return per run and the mean
per method, and a last line ``RESULT sqrl_failure_rate=.. sac_failure_rate=.. ...``.

Usage: python benchmarks/drunk_spider_transfer.py [--pretrain-steps N] [--finetune-steps N] [--seeds N]
       [--first-seed S] [--pretrained CKPT] [--csv PATH] [--methods SQRL,SAC] [--checkpoint-dir DIR]

With ``--checkpoint-dir`` the pretraining checkpoints (``pretrain_S``) and the fine-tuned ones (``SQRL_S``,
``SAC_S``) are kept there, e.g. for ``benchmarks/critic_calibration.py``.

Seeds can run as separate processes (``--first-seed S --seeds 1 --csv rows_S.csv``) and be merged after.
"""

from __future__ import annotations

import argparse
import pathlib
import tempfile

import pandas as pd
import ray
from ray.rllib.core import DEFAULT_MODULE_ID

from sqrl_rllib.algorithms.sqrl import SQRLConfig
from sqrl_rllib.envs.rllib import register_rllib_envs

# Fine-tuning methods: SQRL (mask + Lagrangian) and SAC fine-tuning of the same pretrained policy.
METHODS = {"SQRL": {}, "SAC": {"mask_enabled": False, "lagrangian": False}}


def config(phase: str, task: str, seed: int, **sqrl) -> SQRLConfig:
    """SQRL on DrunkSpider with the paper's DrunkSpider settings (gamma_safe 0.65, eps_safe 0.1)."""
    return (
        SQRLConfig()
        .environment("sqrl/DrunkSpider-v0", env_config={"task": task})
        .env_runners(num_env_runners=0, rollout_fragment_length=32)
        .reporting(min_sample_timesteps_per_iteration=1000, metrics_num_episodes_for_smoothing=50)
        .sqrl(phase=phase, gamma_safe=0.65, eps_safe=0.1, **sqrl)
        .debugging(seed=seed)
    )


def train(algo, steps: int, label: str) -> dict:
    """Train until ``steps`` env steps; print progress; return the last result."""
    while True:
        result = algo.train()
        done = result["env_runners"]["num_env_steps_sampled_lifetime"]
        sq = result["sqrl"]
        runners = result["env_runners"]
        learner = result.get("learners", {}).get(DEFAULT_MODULE_ID, {})
        print(
            f"[{label}] steps={done:.0f} return={runners.get('episode_return_mean', float('nan')):.2f} "
            f"failures={sq['cumulative_failures']:.0f}/{sq['cumulative_episodes']:.0f} "
            f"rejected={runners.get('mask_rejection_rate', float('nan')):.2f} "
            f"fallback={runners.get('mask_fallback_rate', float('nan')):.2f} nu={learner.get('nu', float('nan')):.3g}",
            flush=True,
        )
        if done >= steps:
            return result


def main() -> None:
    """Run every seed and method and print the table and RESULT line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pretrain-steps", type=int, default=50_000, help="pretraining env steps (paper: 5e4)")
    parser.add_argument("--finetune-steps", type=int, default=50_000, help="fine-tuning env steps per run")
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds")
    parser.add_argument("--first-seed", type=int, default=0, help="seeds are first-seed .. first-seed+seeds-1")
    parser.add_argument(
        "--pretrained", default=None, help="reuse this pretraining checkpoint instead of pretraining (one seed only)"
    )
    parser.add_argument("--csv", default=None, help="also write the per-run rows to this CSV file")
    parser.add_argument(
        "--checkpoint-dir",
        default=None,
        help="keep pretraining (pretrain_S) and fine-tuned (METHOD_S) checkpoints here (default: a temporary dir)",
    )
    parser.add_argument(
        "--methods", default="SQRL,SAC", help="comma-separated fine-tuning methods to run (SQRL, SAC; empty: none)"
    )
    args = parser.parse_args()
    if args.pretrained and args.seeds != 1:
        parser.error("--pretrained needs --seeds 1")
    methods = [m for m in args.methods.split(",") if m]
    unknown = set(methods) - set(METHODS)
    if unknown:
        parser.error(f"--methods: unknown {sorted(unknown)}; choose from {sorted(METHODS)}")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    register_rllib_envs()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint_dir = pathlib.Path(args.checkpoint_dir or tmp)
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            if args.pretrained:
                checkpoint = args.pretrained
            else:
                pre = config("pretrain", "pretrain", seed).build_algo()
                train(pre, args.pretrain_steps, f"pretrain seed={seed}")
                checkpoint = pre.save_to_path(str(checkpoint_dir / f"pretrain_{seed}"))
                pre.stop()
            for method in methods:
                extra = METHODS[method]
                algo = config("finetune", "finetune", seed, pretrained_checkpoint=checkpoint, **extra).build_algo()
                result = train(algo, args.finetune_steps, f"{method} seed={seed}")
                if args.checkpoint_dir:
                    algo.save_to_path(str(checkpoint_dir / f"{method}_{seed}"))
                algo.stop()
                sq = result["sqrl"]
                rows.append(
                    {
                        "method": method,
                        "seed": seed,
                        "failures": int(sq["cumulative_failures"]),
                        "episodes": int(sq["cumulative_episodes"]),
                        "failure_rate": sq["cumulative_failures"] / max(sq["cumulative_episodes"], 1),
                        "final_return": result["env_runners"].get("episode_return_mean", float("nan")),
                    }
                )
    if not rows:
        return
    table = pd.DataFrame(rows)
    print(table.to_string(index=False))
    if args.csv:
        table.to_csv(args.csv, index=False)
    mean = table.groupby("method")[["failure_rate", "final_return"]].mean()
    print(mean.to_string())
    if set(mean.index) != {"SQRL", "SAC"}:
        return
    print(
        f"RESULT sqrl_failure_rate={mean.loc['SQRL', 'failure_rate']:.4f} "
        f"sac_failure_rate={mean.loc['SAC', 'failure_rate']:.4f} "
        f"sqrl_return={mean.loc['SQRL', 'final_return']:.2f} sac_return={mean.loc['SAC', 'final_return']:.2f}"
    )


if __name__ == "__main__":
    main()
