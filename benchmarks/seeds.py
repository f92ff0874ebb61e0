"""Seed robustness of SQRL pretraining on DrunkSpider: does pretraining learn the task on every seed?

One seed per process (``--seed S``), resumable from periodic checkpoints (``--checkpoint-dir DIR
--resume``). The pretraining settings are the transfer benchmark's (``drunk_spider_transfer.config``:
the spec's eps_safe 0.1 and gamma_safe 0.65, action noise domain-randomised over [0, 0.4]), at
``--steps`` env steps (default 5e4, the paper's DrunkSpider pretraining budget). Writes to ``--out``:

* ``pretrain_seed{S}.csv``: one row: seed, steps, failures, episodes, failure_rate,
  ``last_failure_rate`` (failed / finished episodes over the last ``--last-steps`` env steps),
  final_return (RLlib's mean over the last iteration's episodes, at most 50: Ray 2.60 empties the
  smoothing window every iteration), and the deterministic masked policy's evaluation on
  the pretrain task (``eval_successes`` of ``eval_episodes``, ``eval_failures``, mean ``eval_return``).
* ``pretrain_seed{S}_trace.csv``: one row per training iteration (env steps, return, cumulative
  failures and episodes, mask rejection / fallback rates, mask_active, Q_safe on failing and safe
  rows of the last minibatch), for the diagnosis plots.

Usage: python benchmarks/seeds.py --seed S [--steps 50000] [--checkpoint-dir DIR] [--resume]
       [--out benchmarks/results/seeds] [--set KEY=VALUE ...] [--env-set KEY=VALUE ...] [--label L]
The last line is ``RESULT seed=S reached_goal=.. last_failure_rate=.. final_return=..``.
"""

from __future__ import annotations

import argparse
import json
import pathlib

import numpy as np
import pandas as pd
import ray
import torch
from drunk_spider_transfer import AUTHORS_SAC, NOISE_LEVELS, config, noise_levels, parse_sets, with_overrides
from ray.rllib.core import DEFAULT_MODULE_ID

from sqrl_rllib.envs.drunk_spider import DrunkSpiderEnv
from sqrl_rllib.envs.rllib import register_rllib_envs

TRACE_KEYS = {
    "return": ("env_runners", "episode_return_mean"),
    "cumulative_failures": ("sqrl", "cumulative_failures"),
    "cumulative_episodes": ("sqrl", "cumulative_episodes"),
    "mask_active": ("sqrl", "mask_active"),
    "rejection_rate": ("env_runners", "mask_rejection_rate"),
    "fallback_rate": ("env_runners", "mask_fallback_rate"),
    "chosen_q_safe": ("env_runners", "mask_chosen_q_safe"),
    "q_safe_failing_mean": ("learners", DEFAULT_MODULE_ID, "q_safe_failing_mean"),
    "q_safe_safe_mean": ("learners", DEFAULT_MODULE_ID, "q_safe_safe_mean"),
    "nu": ("learners", DEFAULT_MODULE_ID, "nu"),
}


def trace_row(result: dict) -> dict:
    """The traced metrics of one training result (NaN where a metric is absent)."""
    row = {"steps": int(result["env_runners"]["num_env_steps_sampled_lifetime"])}
    for name, path in TRACE_KEYS.items():
        value = result
        for key in path:
            value = value.get(key, {}) if isinstance(value, dict) else {}
        row[name] = float(value) if isinstance(value, int | float) else float("nan")
    return row


def evaluate(algo, episodes: int, seed: int) -> dict:
    """Deterministic masked policy (the mean if safe, else the safest of K samples) on the pretrain task."""
    cfg = algo.config
    module = algo.learner_group._learner.module[DEFAULT_MODULE_ID].unwrapped()
    env = DrunkSpiderEnv(task="pretrain")
    low, high = env.action_space.low, env.action_space.high
    successes = failures = 0
    returns = []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed * 1000 + episode)
        total, done = 0.0, False
        while not done:
            obs_t = torch.as_tensor(obs, dtype=torch.float32).unsqueeze(0)
            with torch.no_grad():
                inputs = module.policy.distribution_inputs(obs_t)
                action, _, _ = module.masked_actions(
                    obs_t, inputs, cfg.num_action_samples, cfg.eps_safe, "pretrain", explore=False
                )
            action = low + (action[0].numpy() + 1.0) * 0.5 * (high - low)
            obs, reward, terminated, truncated, info = env.step(action)
            total += reward
            done = terminated or truncated
        successes += bool(info["success"])
        failures += bool(info["failure"])
        returns.append(total)
    return {
        "eval_episodes": episodes,
        "eval_successes": successes,
        "eval_failures": failures,
        "eval_return": float(np.mean(returns)),
    }


def last_failure_rate(trace: pd.DataFrame, last_steps: int) -> float:
    """Failed / finished episodes over the last ``last_steps`` env steps of the trace."""
    end = trace.iloc[-1]
    before = trace[trace["steps"] <= end["steps"] - last_steps]
    start = before.iloc[-1] if len(before) else {"cumulative_failures": 0.0, "cumulative_episodes": 0.0}
    episodes = end["cumulative_episodes"] - start["cumulative_episodes"]
    return float((end["cumulative_failures"] - start["cumulative_failures"]) / max(episodes, 1.0))


def main() -> None:
    """Pretrain one seed (resumably), evaluate it and write its CSV row and trace."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, required=True, help="the seed (Algorithm, env and torch)")
    parser.add_argument("--steps", type=int, default=50_000, help="pretraining env steps (paper: 5e4)")
    parser.add_argument("--last-steps", type=int, default=10_000, help="window of last_failure_rate, env steps")
    parser.add_argument("--eval-episodes", type=int, default=10, help="deterministic evaluation episodes")
    parser.add_argument("--out", default="benchmarks/results/seeds", help="directory of the CSV files")
    parser.add_argument("--checkpoint-dir", default=None, help="save the run here every --checkpoint-every steps")
    parser.add_argument("--checkpoint-every", type=int, default=5000, help="env steps between checkpoints")
    parser.add_argument("--resume", action="store_true", help="continue the run saved in --checkpoint-dir")
    parser.add_argument(
        "--pretrain-noise-levels",
        type=noise_levels,
        default=NOISE_LEVELS,
        help="action-noise domain randomisation (LO:HI:N or a comma list; '' keeps the fixed 0.1)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an SQRL key, or a SAC training key such as gamma, for pretraining (repeatable)",
    )
    parser.add_argument(
        "--env-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a DrunkSpider env_config key for pretraining, e.g. failure_penalty=below_timeout (repeatable)",
    )
    parser.add_argument(
        "--authors-sac",
        action="store_true",
        help="the SQRL authors' SAC settings for DrunkSpider (gamma 1, reward_scale 10, policy_mean_init_scale "
        "0.01); --set wins over them",
    )
    parser.add_argument("--label", default="", help="suffix of the output file names (a variant's name)")
    args = parser.parse_args()
    if args.resume and not args.checkpoint_dir:
        parser.error("--resume needs --checkpoint-dir")
    try:
        overrides = (AUTHORS_SAC if args.authors_sac else {}) | parse_sets(args.set)
        env_overrides = parse_sets(args.env_set)
    except argparse.ArgumentTypeError as err:
        parser.error(str(err))
    levels = args.pretrain_noise_levels
    env_extra = ({"action_noise_levels": levels} if levels else {}) | env_overrides
    try:
        DrunkSpiderEnv(task="pretrain", **env_extra)
    except (TypeError, ValueError) as err:
        parser.error(f"--env-set: {err}")
    cfg = config("pretrain", "pretrain", args.seed, env_extra=env_extra)
    try:
        cfg = with_overrides(cfg, overrides)
    except (TypeError, ValueError) as err:
        parser.error(f"--set: {err}")
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"pretrain_seed{args.seed}{'_' + args.label if args.label else ''}"
    ckpt = pathlib.Path(args.checkpoint_dir) if args.checkpoint_dir else None

    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    register_rllib_envs()
    algo = cfg.build_algo()
    rows: list[dict] = []
    if args.resume and (ckpt / "rllib_checkpoint.json").exists():
        algo.restore_from_path(str(ckpt))
        rows = pd.read_csv(ckpt / "trace.csv").to_dict("records")
        print(f"[seed {args.seed}] resumed from {ckpt} at {rows[-1]['steps'] if rows else 0} steps", flush=True)
    next_save = (rows[-1]["steps"] // args.checkpoint_every + 1) * args.checkpoint_every if rows else 0
    while not rows or rows[-1]["steps"] < args.steps:
        row = trace_row(algo.train())
        rows.append(row)
        print(
            f"[seed {args.seed}] steps={row['steps']} return={row['return']:.2f} "
            f"failures={row['cumulative_failures']:.0f}/{row['cumulative_episodes']:.0f} "
            f"mask={row['mask_active']:.0f} fallback={row['fallback_rate']:.2f} "
            f"q_fail={row['q_safe_failing_mean']:.2f} q_safe={row['q_safe_safe_mean']:.3f}",
            flush=True,
        )
        if ckpt is not None and row["steps"] >= next_save:
            algo.save_to_path(str(ckpt))
            pd.DataFrame(rows).to_csv(ckpt / "trace.csv", index=False)
            next_save = (row["steps"] // args.checkpoint_every + 1) * args.checkpoint_every
    trace = pd.DataFrame(rows)
    end = trace.iloc[-1]
    summary = {
        "seed": args.seed,
        "label": args.label,
        "settings": json.dumps(overrides | {f"env.{k}": v for k, v in env_overrides.items()}, sort_keys=True),
        "steps": int(end["steps"]),
        "failures": int(end["cumulative_failures"]),
        "episodes": int(end["cumulative_episodes"]),
        "failure_rate": end["cumulative_failures"] / max(end["cumulative_episodes"], 1),
        "last_failure_rate": last_failure_rate(trace, args.last_steps),
        "final_return": end["return"],
        **evaluate(algo, args.eval_episodes, args.seed),
    }
    if ckpt is not None:
        algo.save_to_path(str(ckpt))
        trace.to_csv(ckpt / "trace.csv", index=False)
    algo.stop()
    trace.to_csv(out / f"{stem}_trace.csv", index=False)
    pd.DataFrame([summary]).to_csv(out / f"{stem}.csv", index=False)
    print(pd.DataFrame([summary]).to_string(index=False))
    reached = summary["eval_successes"] >= 0.8 * summary["eval_episodes"]
    print(
        f"RESULT seed={args.seed} reached_goal={reached} last_failure_rate={summary['last_failure_rate']:.4f} "
        f"final_return={summary['final_return']:.2f}"
    )


if __name__ == "__main__":
    main()
