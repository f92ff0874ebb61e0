"""Does the mask's pick explain a pretrained SQRL policy falling more at fine-tuning's start than it did at
pretraining's end? Stochastic episodes of one pretraining checkpoint on its own pretraining env, under each
action rule: ``pretrain`` (the pretraining mask: among K samples of pi the safe one with the highest Q_safe,
"safe but risky"), ``finetune`` (the fine-tuning mask: a uniform pick among the safe samples, i.e. pi
restricted to the safe set) and ``unmasked`` (one sample of pi). Before fine-tuning's first update (Minitaur:
10k steps) the same weights act, and on MinitaurVelocity the dynamics are pretraining's too, so the rule is
the one thing that changes there (`methods.py handover` counts both windows).

    python benchmarks/mask_rule_probe.py benchmarks/runs/methods_minitaur_velocity_seed2 --episodes 10 \\
        --out benchmarks/results/methods/minitaur_velocity_mask_rules_seed_2.csv
"""

from __future__ import annotations

import argparse
import json
import pathlib

import numpy as np
import pandas as pd
import torch
from critic_calibration import choose_actions, load_module
from final_policy import to_env, trial_dirs, write_table

from sqrl_rllib.envs.own_env import make_base_env

RULES = ("pretrain", "finetune", "unmasked")


def choose(module, obs: np.ndarray, rule: str, eps_safe: float, k: int) -> np.ndarray:
    """One stochastic action in [-1, 1] for one observation under ``rule`` (RULES), from torch's global RNG."""
    masked = rule != "unmasked"
    return choose_actions(module, obs.reshape(1, -1), k, eps_safe, masked, None, phase=rule if masked else "finetune")[
        0
    ]


def probe(trial_dir: pathlib.Path, episodes: int, seed: int, rules=RULES) -> pd.DataFrame:
    """Falls, episodes and mean return per rule for the last checkpoint of the pretraining trial ``trial_dir``,
    on its own env and env_config; episode i uses env seed ``seed + i`` and torch seed ``seed + i`` for
    every rule, so the rules meet the same starts."""
    params = json.loads((trial_dir / "params.json").read_text())
    checkpoint = sorted(trial_dir.glob("checkpoint_*"))[-1]
    module = load_module(str(checkpoint))
    eps_safe, k = float(params["eps_safe"]), int(params.get("num_action_samples") or 100)
    env = make_base_env(params["env"], params.get("env_config") or {})
    rows = []
    try:
        for rule in rules:
            falls, returns = 0, []
            for episode in range(episodes):
                torch.manual_seed(seed + episode)
                obs, _ = env.reset(seed=seed + episode)
                total, done, info = 0.0, False, {}
                while not done:
                    obs, reward, terminated, truncated, info = env.step(
                        to_env(choose(module, obs, rule, eps_safe, k), env.action_space)
                    )
                    total, done = total + float(reward), terminated or truncated
                falls += int(bool(info.get("failure")))
                returns.append(total)
            rows.append(
                {
                    "seed": int(params["seed"]),
                    "rule": rule,
                    "episodes": episodes,
                    "failures": falls,
                    "mean_return": float(np.mean(returns)),
                    "checkpoint": checkpoint.name,
                }
            )
            print(f"{rule:>9}: {falls}/{episodes} falls, mean return {np.mean(returns):.1f}", flush=True)
    finally:
        env.close()
    return pd.DataFrame(rows)


def main() -> None:
    """Probe the SQRL pretraining trial of RUN_DIR's results.csv; print the table, optionally write it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=pathlib.Path, help="a pipeline run with an SQRL pretraining trial")
    parser.add_argument("--episodes", type=int, default=10, help="episodes per rule")
    parser.add_argument("--seed", type=int, default=20_000, help="the first episode's env and torch seed")
    parser.add_argument("--out", type=pathlib.Path, help="write the table to this CSV")
    args = parser.parse_args()
    frame = probe(trial_dirs(args.run_dir, "pretrain", "sqrl")[0], args.episodes, args.seed)
    write_table(frame, args.out)


if __name__ == "__main__":
    main()
