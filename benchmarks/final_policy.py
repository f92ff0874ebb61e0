"""What the fine-tuned policies of a pipeline run do at the end: deterministic evaluation episodes of each
fine-tuning trial's last checkpoint, on the trial's own env and env_config.

SQRL-family trials act with the mask (``masked_actions`` with ``explore=False``: the policy mean if
Q_safe(s, mean) < the trial's eps_safe, else the safest of K samples); trials without a mask act with the
policy mean. Prints and writes one row per trial: episodes, failures, mean return and length, and the mean
over every step of each numeric ``info`` entry the env reports (Minitaur: ``forward_velocity``, the
velocity reached, beside ``goal_velocity``).

    python benchmarks/final_policy.py benchmarks/runs/methods_minitaur_velocity_seed0 --episodes 5 \\
        --out benchmarks/results/methods/minitaur_velocity_final_policy_seed_0.csv
"""

from __future__ import annotations

import argparse
import json
import pathlib

import numpy as np
import pandas as pd
import torch
from critic_calibration import load_module

from sqrl_rllib.core.networks import sample_squashed
from sqrl_rllib.envs.own_env import make_base_env


def act(module, obs: np.ndarray, masked: bool, eps_safe: float, k: int) -> np.ndarray:
    """The deterministic action in [-1, 1] for one observation (masked or the policy mean)."""
    obs_t = torch.as_tensor(obs.reshape(1, -1), dtype=torch.float32)
    with torch.no_grad():
        dist_inputs = module.policy.distribution_inputs(obs_t)
        if masked:
            action, _, _ = module.masked_actions(obs_t, dist_inputs, k, eps_safe, "finetune", explore=False)
        else:
            action = sample_squashed(dist_inputs, 1, mean_first=True)[0][:, 0]
    return action[0].numpy()


def to_env(action: np.ndarray, space) -> np.ndarray:
    """[-1, 1] -> the env's box, as RLlib's default ``normalize_actions`` unsquashes."""
    return np.clip(space.low + (action + 1.0) * (space.high - space.low) / 2.0, space.low, space.high)


def evaluate_trial(trial_dir: pathlib.Path, episodes: int, seed: int) -> dict | None:
    """Deterministic episodes of the trial's last checkpoint; returns the row described in the docstring,
    None (with a note) for a module without SQRL's tanh-Gaussian policy (WCPG's, CPO's)."""
    params = json.loads((trial_dir / "params.json").read_text())
    checkpoints = sorted(trial_dir.glob("checkpoint_*"))
    if not checkpoints:
        raise SystemExit(f"trial {trial_dir} kept no checkpoint")
    module = load_module(str(checkpoints[-1]))
    if not hasattr(module, "masked_actions"):
        print(f"skipped {params.get('method')} seed {params['seed']}: {type(module).__name__} has no SQRL policy")
        return None
    module.eval()
    masked = bool(params.get("mask_enabled", False))
    eps_safe = float(params.get("eps_safe") or 1.0)
    k = int(params.get("num_action_samples") or 100)
    env = make_base_env(params["env"], params.get("env_config") or {})
    returns, lengths, failures, info_sums, steps = [], [], 0, {}, 0
    try:
        for episode in range(episodes):
            obs, _ = env.reset(seed=seed + episode)
            total, length, done = 0.0, 0, False
            while not done:
                action = to_env(act(module, obs, masked, eps_safe, k), env.action_space)
                obs, reward, terminated, truncated, info = env.step(action)
                total, length, done = total + float(reward), length + 1, terminated or truncated
                for key, value in info.items():
                    if isinstance(value, (int, float)) and not isinstance(value, bool):
                        info_sums[key] = info_sums.get(key, 0.0) + float(value)
            steps += length
            failures += int(bool(info.get("failure")))
            returns.append(total)
            lengths.append(length)
    finally:
        env.close()
    row = {
        "method": params.get("method", "sqrl"),
        "eps_safe": params.get("eps_safe") if masked else None,
        "seed": int(params["seed"]),
        "episodes": episodes,
        "failures": failures,
        "mean_return": float(np.mean(returns)),
        "mean_length": float(np.mean(lengths)),
    }
    row.update({f"mean_{key}": value / steps for key, value in sorted(info_sums.items())})
    row["checkpoint"] = checkpoints[-1].name
    return row


def trial_dirs(run_dir: pathlib.Path, stage: str, method: str | None = None) -> list[pathlib.Path]:
    """The trial directories of ``stage`` (and ``method``) listed in ``run_dir``'s results.csv; exits with a
    message when there are none."""
    table = pd.read_csv(run_dir / "results.csv")
    trials = table[(table["stage"] == stage) & (table["kind"] == "trial")]
    if method is not None:
        trials = trials[trials["method"] == method]
    if trials.empty:
        raise SystemExit(f"{run_dir / 'results.csv'} lists no {method or ''} {stage} trials".replace("  ", " "))
    return [pathlib.Path(d) for d in trials["trial_dir"]]


def write_table(frame: pd.DataFrame, out: pathlib.Path | None) -> None:
    """Write ``frame`` to the CSV ``out`` (its folder made), when given."""
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(out, index=False, float_format="%.6g")
        print(f"wrote {out}")


def main() -> None:
    """Evaluate every fine-tuning trial of RUN_DIR's results.csv; print the table, optionally write it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=pathlib.Path, help="a finished pipeline run (has results.csv)")
    parser.add_argument("--episodes", type=int, default=5, help="evaluation episodes per trial")
    parser.add_argument("--seed", type=int, default=10_000, help="the first evaluation episode's env seed")
    parser.add_argument("--out", type=pathlib.Path, help="write the table to this CSV")
    args = parser.parse_args()
    rows = [evaluate_trial(d, args.episodes, args.seed) for d in trial_dirs(args.run_dir, "finetune")]
    frame = pd.DataFrame([row for row in rows if row is not None])
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(frame.drop(columns="checkpoint").to_string(index=False))
    write_table(frame, args.out)


if __name__ == "__main__":
    main()
