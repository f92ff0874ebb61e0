"""Does the safety critic see the risk the masked policy runs? DrunkSpider, one checkpoint, no Ray workers.

Loads the RLModule of an SQRL checkpoint (pretraining or fine-tuned) and, on the chosen task:

1. Rolls out N episodes with the safety mask (K samples per step, fine-tuning's selection rule from
   ``sqrl_rllib.core.mask``) and N without it, and reports both failure rates. Their ratio is the
   mask's effect measured in the same run; with a critic that rejects nothing it is the effect of
   resampling the K candidates by pi(a|s), which sharpens the executed distribution.
2. At states the masked policy visits within ``--near-hazard`` of lava or a map edge, scores policy
   samples with Q_safe and estimates each pair's one-step failure probability P1 by Monte Carlo
   (the env restarted at that state with ``reset(options={"position": ...})``). Q_safe estimates a
   discounted failure probability, which is at least P1, so Q_safe < P1 is an underestimate for
   certain. Per bin of P1 it prints the mean Q_safe and the share of pairs the mask rejects
   (Q_safe >= eps_safe).

Usage: python benchmarks/critic_calibration.py CHECKPOINT [--task finetune] [--episodes 4000] [--eps-safe 0.1]
       [--resample-rounds 0]
The last line is ``RESULT masked_failure_rate=.. unmasked_failure_rate=.. mask_ratio=.. risky_rejected=..``
(risky: P1 >= 0.1; ``underestimated``: share of pairs with P1 > 0 whose Q_safe < P1).
"""

from __future__ import annotations

import argparse
import pathlib

import numpy as np
import torch
from ray.rllib.core import DEFAULT_MODULE_ID
from ray.rllib.core.rl_module.rl_module import RLModule

from sqrl_rllib.algorithms.sqrl.sqrl import MODULE_COMPONENT
from sqrl_rllib.envs.drunk_spider import LAVA_COLS, LAVA_ROWS, N_COLS, N_ROWS, DrunkSpiderEnv

P1_BINS = (0.0, 0.01, 0.1, 0.3, 1.0 + 1e-9)
RISKY_P1 = 0.1


def hazard_distance(states: np.ndarray) -> np.ndarray:
    """Distance of each (row, col) to the nearest map edge or lava cell."""
    row, col = states[:, 0], states[:, 1]
    dist = np.minimum.reduce([row, N_ROWS - row, col, N_COLS - col])
    r0, r1 = min(LAVA_ROWS), max(LAVA_ROWS) + 1
    for c in LAVA_COLS:
        dr = np.maximum.reduce([r0 - row, np.zeros_like(row), row - r1])
        dc = np.maximum.reduce([c - col, np.zeros_like(col), col - (c + 1)])
        dist = np.minimum(dist, np.hypot(dr, dc))
    return dist


def load_module(checkpoint: str) -> RLModule:
    """The SQRL RLModule stored in an Algorithm checkpoint."""
    path = pathlib.Path(checkpoint).resolve() / MODULE_COMPONENT / DEFAULT_MODULE_ID  # RLlib wants absolute
    if not path.is_dir():
        raise SystemExit(f"{checkpoint!r} holds no SQRL RLModule at {path}")
    return RLModule.from_checkpoint(path)


def choose_actions(
    module,
    obs: np.ndarray,
    k: int,
    eps_safe: float,
    masked: bool,
    generator,
    resample_rounds: int = 0,
    phase: str = "finetune",
) -> np.ndarray:
    """One action per row of ``obs``: the masked choice among K samples (``phase``'s rule: ``finetune``, a
    uniform pick among the safe ones, or ``pretrain``, the safe-but-risky one; ``resample_rounds`` as the SQRL
    key ``mask_resample_rounds``), or a plain policy sample."""
    obs_t = torch.as_tensor(obs, dtype=torch.float32)
    with torch.no_grad():
        dist_inputs = module.policy.distribution_inputs(obs_t)
        if not masked:
            return module.sample_candidates(dist_inputs, 1)[0][:, 0].numpy()
        actions, _, _ = module.masked_actions(
            obs_t, dist_inputs, k, eps_safe, phase, generator=generator, resample_rounds=resample_rounds
        )
    return actions.numpy()


def rollout(
    module,
    task: str,
    episodes: int,
    k: int,
    eps_safe: float,
    masked: bool,
    seed: int,
    n_envs: int = 200,
    resample_rounds: int = 0,
):
    """Run ``episodes`` episodes on ``n_envs`` envs; returns (failures, episodes, visited states)."""
    envs = [DrunkSpiderEnv(task=task) for _ in range(n_envs)]
    obs = np.stack([env.reset(seed=seed + i)[0] for i, env in enumerate(envs)])
    generator = torch.Generator().manual_seed(seed)
    failures = done = 0
    visited = []
    while done < episodes:
        visited.append(obs.copy())
        actions = choose_actions(module, obs, k, eps_safe, masked, generator, resample_rounds)
        for i, env in enumerate(envs):
            obs[i], _, terminated, truncated, info = env.step(actions[i])
            if terminated or truncated:
                done += 1
                failures += int(info["failure"])
                obs[i] = env.reset()[0]
    return failures, done, np.concatenate(visited)


def one_step_failure(task: str, states: np.ndarray, actions: np.ndarray, samples: int, seed: int) -> np.ndarray:
    """Monte-Carlo P(failure on the next step) of each (state, action) pair under the task's noise."""
    env = DrunkSpiderEnv(task=task)
    env.reset(seed=seed)
    p1 = np.empty(len(states))
    for j, (state, action) in enumerate(zip(states, actions, strict=True)):
        fails = 0
        for _ in range(samples):
            env.reset(options={"position": tuple(state)})
            fails += env.step(action)[4]["failure"]
        p1[j] = fails / samples
    return p1


def main() -> None:
    """Print the failure rates, the calibration table and the RESULT line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="SQRL Algorithm checkpoint (pretraining or fine-tuned)")
    parser.add_argument("--task", default="finetune", choices=["pretrain", "finetune"], help="DrunkSpider task")
    parser.add_argument("--episodes", type=int, default=4000, help="episodes per rollout (masked and unmasked)")
    parser.add_argument("--num-action-samples", type=int, default=100, help="K candidates per step")
    parser.add_argument("--eps-safe", type=float, default=0.1, help="mask threshold")
    parser.add_argument(
        "--resample-rounds",
        type=int,
        default=0,
        help="the masked rollout's widened resampling rounds before the fallback (SQRL's mask_resample_rounds)",
    )
    parser.add_argument("--states", type=int, default=300, help="visited states scored for the calibration table")
    parser.add_argument(
        "--near-hazard", type=float, default=0.5, help="only score visited states this close to lava or a map edge"
    )
    parser.add_argument("--pairs-per-state", type=int, default=20, help="policy samples scored per state")
    parser.add_argument("--mc-samples", type=int, default=100, help="env steps per pair for P1")
    parser.add_argument("--seed", type=int, default=0, help="seed of envs, samples and state choice")
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    module = load_module(args.checkpoint)
    k, eps = args.num_action_samples, args.eps_safe

    f_mask, n_mask, visited = rollout(
        module, args.task, args.episodes, k, eps, True, args.seed, resample_rounds=args.resample_rounds
    )
    f_plain, n_plain, _ = rollout(module, args.task, args.episodes, k, eps, False, args.seed)
    rate_mask, rate_plain = f_mask / n_mask, f_plain / n_plain
    print(f"masked:   {f_mask}/{n_mask} episodes failed ({rate_mask:.4%})")
    print(f"unmasked: {f_plain}/{n_plain} episodes failed ({rate_plain:.4%})")

    rng = np.random.default_rng(args.seed)
    # Risk lives next to hazards; states far from them would only fill the P1 = 0 bin.
    near = np.unique(visited[hazard_distance(visited) <= args.near_hazard], axis=0)
    states = near[rng.choice(len(near), size=min(args.states, len(near)), replace=False)]
    obs_t = torch.as_tensor(states, dtype=torch.float32)
    with torch.no_grad():
        actions, _ = module.sample_candidates(module.policy.distribution_inputs(obs_t), args.pairs_per_state)
        q_safe = module.q_safe(obs_t, actions).numpy().ravel()
    pair_states = np.repeat(states, args.pairs_per_state, axis=0)
    p1 = one_step_failure(args.task, pair_states, actions.numpy().reshape(-1, 2), args.mc_samples, args.seed)
    print(f"calibration on {len(p1)} (state, policy sample) pairs, task={args.task}, eps_safe={eps}:")
    print("  P1 bin        pairs  mean P1  mean Q_safe  rejected (Q_safe >= eps)")
    for lo, hi in zip(P1_BINS[:-1], P1_BINS[1:], strict=True):
        sel = (p1 >= lo) & (p1 < hi)
        if sel.any():
            print(
                f"  [{lo:.2f}, {min(hi, 1):.2f})  {sel.sum():6d}  {p1[sel].mean():7.3f}  {q_safe[sel].mean():11.4f}"
                f"  {np.mean(q_safe[sel] >= eps):.2f}"
            )
    risky = p1 >= RISKY_P1
    risky_rejected = float(np.mean(q_safe[risky] >= eps)) if risky.any() else float("nan")
    can_fail = p1 > 0
    underestimated = float(np.mean(q_safe[can_fail] < p1[can_fail])) if can_fail.any() else float("nan")
    print(
        f"RESULT masked_failure_rate={rate_mask:.5f} unmasked_failure_rate={rate_plain:.5f} "
        f"mask_ratio={rate_mask / max(rate_plain, 1e-12):.3f} risky_pairs={int(risky.sum())} "
        f"risky_rejected={risky_rejected:.3f} underestimated={underestimated:.3f}"
    )


if __name__ == "__main__":
    main()
