"""Learning test: a short DrunkSpider pretraining teaches Q_safe which moves fail, and where.

Probe (state, action) pairs sit at the map edge behind the start (0, 3), which every episode passes and
where the early policy fails most (its data is there after 6000 steps; the bridge is not: see below):
  * EDGE_BACK: one cell backward (-1, 0) from row 0.5 leaves the map: a certain failure;
  * INSIDE_BACK: the *same* backward move from row 1.5 lands on row 0.5: safe;
  * EDGE_FORWARD: forward (+1, 0) from the same row-0.5 states: safe.
A critic that ignores the state ("backward is risky") scores EDGE_BACK = INSIDE_BACK; one that ignores
the action scores EDGE_BACK = EDGE_FORWARD; a constant critic both. Q_safe is compared with eps_safe, as
the mask compares it, and the calibration diagnostic must find the mask rejecting the actions that fail
and the masked policy failing no more than the unmasked one. Two seeds: one could be luck.
"""

import pathlib
import subprocess
import sys

import numpy as np
import pytest
import ray
import torch

from sqrl_rllib.algorithms.sqrl import SQRLConfig
from sqrl_rllib.envs.drunk_spider import DrunkSpiderEnv

pytestmark = [pytest.mark.slow, pytest.mark.learning]

EPS_SAFE = 0.1
SEEDS = (0, 1)
BACK, FORWARD = (-1.0, 0.0), (1.0, 0.0)
COLS = (2.5, 3.0, 3.5)
EDGE_BACK = [((0.5, c), BACK) for c in COLS]
INSIDE_BACK = [((1.5, c), BACK) for c in COLS]
EDGE_FORWARD = [((0.5, c), FORWARD) for c in COLS]

CALIBRATION_SCRIPT = pathlib.Path(__file__).parents[2] / "benchmarks" / "critic_calibration.py"


def fails(state, action) -> bool:
    """The noise-free move of ``action`` from ``state`` fails (checks the probes' geometry)."""
    env = DrunkSpiderEnv(task="pretrain", action_noise=0.0)
    env.reset(options={"position": state})
    return env.step(np.array(action, np.float32))[4]["failure"]


def test_probe_geometry():
    assert all(fails(s, a) for s, a in EDGE_BACK)
    assert not any(fails(s, a) for s, a in INSIDE_BACK + EDGE_FORWARD)


def q_safe(module, pairs) -> np.ndarray:
    """Q_safe of each (state, action) pair."""
    obs = torch.tensor([s for s, _ in pairs], dtype=torch.float32)
    actions = torch.tensor([a for _, a in pairs], dtype=torch.float32)
    with torch.no_grad():
        return module.safety_critic(obs, actions).numpy()


def pretrain(seed: int, directory: pathlib.Path) -> tuple[dict[str, np.ndarray], str]:
    """6000 steps of SQRL pretraining; returns the probes' Q_safe and the checkpoint's path."""
    algo = (
        SQRLConfig()
        .environment("sqrl/DrunkSpider-v0", env_config={"task": "pretrain"})
        .env_runners(num_env_runners=0, rollout_fragment_length=32)
        .training(num_steps_sampled_before_learning_starts=256, train_batch_size_per_learner=128)
        .reporting(min_sample_timesteps_per_iteration=500)
        # Masked from the first step (mask_warmup_steps=0), not the default unmasked warm-up: with the
        # warm-up this short pretraining falls into the failing-on-purpose stall of issue 21 on seeds
        # 0 and 1 (return -28 at 15k steps); measured 2026-12-03, benchmarks/README.md "Pretraining seed
        # robustness".
        .sqrl(
            eps_safe=EPS_SAFE,
            num_action_samples=20,
            hidden=(64, 64),
            gamma_safe=0.65,
            online_buffer_episodes=50,
            mask_warmup_steps=0,
        )
        .debugging(seed=seed)
        .build_algo()
    )
    try:
        while algo.train()["env_runners"]["num_env_steps_sampled_lifetime"] < 6000:
            pass
        module = algo.learner_group._learner.module["default_policy"]
        probes = {
            "edge_back": q_safe(module, EDGE_BACK),
            "inside_back": q_safe(module, INSIDE_BACK),
            "edge_forward": q_safe(module, EDGE_FORWARD),
        }
        return probes, algo.save_to_path(str(directory / f"seed_{seed}"))
    finally:
        algo.stop()


def calibration(checkpoint: str) -> dict[str, float]:
    """The RESULT line of benchmarks/critic_calibration.py on the pretraining task (a short run)."""
    args = ["--task", "pretrain", "--episodes", "100", "--states", "40", "--pairs-per-state", "10"]
    args += ["--mc-samples", "20", "--num-action-samples", "20", "--eps-safe", str(EPS_SAFE)]
    out = subprocess.run([sys.executable, str(CALIBRATION_SCRIPT), checkpoint, *args], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    print(out.stdout)
    line = out.stdout.strip().splitlines()[-1].removeprefix("RESULT ")
    return {key: float(value) for key, value in (kv.split("=") for kv in line.split())}


def test_safety_critic_learns_which_moves_fail_and_where(tmp_path):
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        runs = {seed: pretrain(seed, tmp_path) for seed in SEEDS}
    finally:
        ray.shutdown()
    ratios, risky_pairs = [], 0
    for seed, (q, checkpoint) in runs.items():
        print(f"seed {seed}: " + " ".join(f"{k} {np.round(v, 3)}" for k, v in q.items()))
        # Measured 2026-12-04 (seed 0 / seed 1, cols 2.5-3.5): edge_back 0.97-0.98 / 0.70-0.79, inside_back
        # 0.34-0.48 / 0.03-0.06, edge_forward 0.21-0.34 / 0.13-0.16: smallest gaps 0.50 / 0.63 and
        # 0.64 / 0.57. Measured 2026-12-06 on the session-15 box (same code and seeds; the run is
        # deterministic on one machine, not across machines' float arithmetic): seed 0 edge_back 0.97-0.99,
        # inside_back 0.22-0.50, edge_forward 0.08-0.12; seed 1 0.55, 0.07-0.15, 0.19-0.38: smallest gaps
        # 0.48 / 0.39 (state) and 0.87 / 0.17 (action; mean over the columns 0.26). A constant or state-blind
        # critic scores a gap of 0 in the first, an action-blind one in the second; an untrained critic
        # reads ~0.5 for all three.
        assert (q["edge_back"] > q["inside_back"] + 0.3).all(), (seed, q)
        assert (q["edge_back"] > q["edge_forward"] + 0.1).all(), (seed, q)
        assert (q["edge_back"] - q["edge_forward"]).mean() > 0.2, (seed, q)
        # The mask rejects the moves off the map (Q_safe >= eps_safe); a critic fitted to no failure reads ~0.
        assert (q["edge_back"] >= EPS_SAFE).all(), (seed, q)

        fields = calibration(checkpoint)
        # Of the policy's own actions near hazards that fail within one step with probability >= 0.1, the
        # share the mask rejects. Measured 1.0 on both seeds (192 / 18 such pairs; on the session-15 box
        # 28 / 3: its seed-1 policy keeps off the hazards, and fails 0 of 100 masked episodes); a critic that
        # reads everything as safe scores 0. Enough pairs to judge: at least one per seed, ten in all.
        assert fields["risky_pairs"] >= 1, (seed, fields)
        risky_pairs += fields["risky_pairs"]
        assert fields["risky_rejected"] >= 0.9
        # Measured: seed 0 fails every episode masked or not (1.0 / 1.0: at 6000 steps it is still in the
        # failing-on-purpose phase, and its critic rejects 100% of the safe pairs too), seed 1 0.005 masked
        # vs 1.0 unmasked. A mask on a useless critic falls back to random samples: ratio ~1.
        assert fields["masked_failure_rate"] <= fields["unmasked_failure_rate"], (seed, fields)
        ratios.append(fields["masked_failure_rate"] / max(fields["unmasked_failure_rate"], 1e-9))
    # Not luck on one seed only, but not on both yet either: at least one seed's mask cuts its failures
    # tenfold (measured ratios 1.0 and 0.005; on the session-15 box 0.036 and 0.0).
    assert min(ratios) <= 0.1, ratios
    assert risky_pairs >= 10
    # Not asserted: the bridge. In 6000 steps the policies rarely reach it (seed 1 fails off the map's
    # right edge), and Q_safe there is extrapolation: measured on seed 1, the move into the lava scores
    # 0.12-0.26 at col 3.15 against 0.54-0.72 for the safe forward move; on seed 0 the forward move reads
    # 0.49-0.69, above eps_safe, so the mask would reject it.
