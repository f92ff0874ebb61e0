"""Which actions failed during a DrunkSpider run, and what did the safety critic say about them?

Reads a fine-tuning (or pretraining) checkpoint saved with its buffers: D_offline holds every transition of
the run with its failure flag. For each failing (state, action) pair it prints the state, the action,
Q_safe from the checkpoint's critic (frozen in fine-tuning by default, so this is the value the mask saw)
and the pair's Monte-Carlo one-step failure probability P1 under the task's noise. Q_safe estimates a
discounted failure probability, which is at least P1; a failing pair with P1 >= eps_safe but
Q_safe < eps_safe is one the mask would have rejected with a calibrated critic.

With ``--critic OTHER`` the pairs are scored by another checkpoint's critic instead (e.g. another seed's
pretrained one), to tell whether a run failed because of its critic or of where its policy went.

Usage: python benchmarks/failure_pairs.py CHECKPOINT [--critic CHECKPOINT] [--task finetune] [--mc-samples 1000]
       [--eps-safe 0.1]
The last line is ``RESULT failures=.. p1_at_least_eps=.. q_below_eps=.. maskable=.. false_alarms=..``
(maskable: failing pairs with P1 >= eps_safe and Q_safe < eps_safe; false_alarms: share of the run's
non-failing transitions with Q_safe >= eps_safe, pairs the mask would have rejected without need).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from critic_calibration import hazard_distance, load_module, one_step_failure

from sqrl_rllib.algorithms.sqrl.keys import sqrl_defaults
from sqrl_rllib.algorithms.sqrl.sqrl import stored_replay


def stored_transitions(checkpoint: str) -> dict[str, np.ndarray]:
    """The columns of the checkpoint's D_offline (obs, actions, failure, ...), one row per transition."""
    try:
        return stored_replay(checkpoint)["columns"]
    except ValueError as err:
        raise SystemExit(str(err)) from None


def score(module, states: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """Q_safe of each (state, action) row."""
    with torch.no_grad():
        return module.q_safe(torch.as_tensor(states), torch.as_tensor(actions)[:, None]).numpy()[:, 0]


def main() -> None:
    """Print one line per failing pair and the RESULT line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="SQRL Algorithm checkpoint saved with its buffers")
    parser.add_argument("--critic", default=None, help="score with this checkpoint's critic (default: CHECKPOINT's)")
    parser.add_argument("--task", default="finetune", choices=["pretrain", "finetune"], help="DrunkSpider task for P1")
    parser.add_argument("--mc-samples", type=int, default=1000, help="env steps per pair for P1")
    parser.add_argument(
        "--eps-safe", type=float, default=sqrl_defaults()["eps_safe"], help="mask threshold to judge the pairs by"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the Monte-Carlo env steps")
    args = parser.parse_args()
    columns = stored_transitions(args.checkpoint)
    failed = columns["failure"] > 0
    states, actions = columns["obs"][failed], columns["actions"][failed]
    module = load_module(args.critic or args.checkpoint)
    eps = args.eps_safe
    false_alarms = float(np.mean(score(module, columns["obs"][~failed], columns["actions"][~failed]) >= eps))
    if len(states) == 0:
        print(f"RESULT failures=0 p1_at_least_eps=0 q_below_eps=0 maskable=0 false_alarms={false_alarms:.4f}")
        return
    q_safe = score(module, states, actions)
    p1 = one_step_failure(args.task, states, actions, args.mc_samples, args.seed)
    distance = hazard_distance(states)
    print("  state (row, col)   action          Q_safe   P1     distance to hazard")
    for s, a, q, p, d in zip(states, actions, q_safe, p1, distance, strict=True):
        print(f"  ({s[0]:5.2f}, {s[1]:5.2f})     ({a[0]:+.2f}, {a[1]:+.2f})   {q:.3f}   {p:.3f}  {d:.2f}")
    print(
        f"RESULT failures={len(p1)} p1_at_least_eps={int(np.sum(p1 >= eps))} q_below_eps={int(np.sum(q_safe < eps))} "
        f"maskable={int(np.sum((p1 >= eps) & (q_safe < eps)))} false_alarms={false_alarms:.4f}"
    )


if __name__ == "__main__":
    main()
