"""Learning test: a short DrunkSpider pretraining teaches Q_safe that stepping into lava is risky."""

import pathlib
import subprocess
import sys

import numpy as np
import ray
import torch

from sqrl_rllib.algorithms.sqrl import SQRLConfig

# States next to a lava column, with one action into the lava and one toward the goal (row +1).
# Bridge cells are col 3 of rows 2-5 (lava at cols 2 and 4); left of lava col 2 is free col 1.
STATES_AND_LAVA_ACTIONS = [
    ((2.5, 3.15), (0.0, -1.0)),
    ((3.5, 3.15), (0.0, -1.0)),
    ((4.5, 3.15), (0.0, -1.0)),
    ((2.5, 3.85), (0.0, 1.0)),
    ((3.5, 3.85), (0.0, 1.0)),
    ((4.5, 3.85), (0.0, 1.0)),
    ((1.6, 2.5), (1.0, 0.0)),  # just above lava col 2: moving down-the-map steps in
    ((1.6, 4.5), (1.0, 0.0)),
]
GOAL_ACTION = (1.0, 0.0)


CALIBRATION_SCRIPT = pathlib.Path(__file__).parents[2] / "benchmarks" / "critic_calibration.py"


def test_safety_critic_ranks_lava_above_goal_bound_actions(tmp_path):
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        algo = (
            SQRLConfig()
            .environment("sqrl/DrunkSpider-v0", env_config={"task": "pretrain"})
            .env_runners(num_env_runners=0, rollout_fragment_length=32)
            .training(num_steps_sampled_before_learning_starts=256, train_batch_size_per_learner=128)
            .reporting(min_sample_timesteps_per_iteration=500)
            # Masked from the first step (mask_warmup_steps=0), not the default unmasked warm-up: with the
            # warm-up this short pretraining falls into the failing-on-purpose stall of issue 21 on seeds
            # 0 and 1 (return -28 at 15k steps, Q_safe of the goal-bound moves 0.70 > lava-bound 0.54),
            # while masked from step 0 seed 0 learns (return +6.8 at 9k steps, goal 0.14 vs lava 0.65);
            # measured 2026-12-03, benchmarks/README.md "Pretraining seed robustness".
            .sqrl(
                num_action_samples=20,
                hidden=(64, 64),
                gamma_safe=0.65,
                online_buffer_episodes=50,
                mask_warmup_steps=0,
            )
            .debugging(seed=0)
            .build_algo()
        )
        while algo.train()["env_runners"]["num_env_steps_sampled_lifetime"] < 6000:
            pass
        module = algo.learner_group._learner.module["default_policy"]
        obs, lava, goal = [], [], []
        for state, lava_action in STATES_AND_LAVA_ACTIONS:
            if state[0] >= 2.0 and 3.0 < state[1] < 4.0:
                goal_action = GOAL_ACTION
            else:  # above the lava: the goal-safe move is toward the bridge column
                goal_action = (0.0, 1.0) if state[1] < 3.0 else (0.0, -1.0)
            obs.append(state)
            lava.append(lava_action)
            goal.append(goal_action)
        with torch.no_grad():
            o = torch.tensor(obs, dtype=torch.float32)
            q_lava = module.safety_critic(o, torch.tensor(lava, dtype=torch.float32)).numpy()
            q_goal = module.safety_critic(o, torch.tensor(goal, dtype=torch.float32)).numpy()
        checkpoint = algo.save_to_path(str(tmp_path / "pretrained"))
        algo.stop()
    finally:
        ray.shutdown()
    print("q_lava", np.round(q_lava, 3), "q_goal", np.round(q_goal, 3))
    assert q_lava.mean() > q_goal.mean() + 0.1
    # Measured 2026-11-30 (seed 0, 6000 steps): mean 0.60 vs 0.38, lava ranked higher in 6 of 8 states.
    assert (q_lava > q_goal).mean() >= 0.625

    # The calibration diagnostic reads the same checkpoint (a short run: it must work, not measure).
    args = ["--episodes", "20", "--states", "10", "--pairs-per-state", "4", "--mc-samples", "10"]
    out = subprocess.run([sys.executable, str(CALIBRATION_SCRIPT), checkpoint, *args], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    fields = dict(kv.split("=") for kv in out.stdout.strip().splitlines()[-1].removeprefix("RESULT ").split())
    assert 0.0 <= float(fields["masked_failure_rate"]) <= 1.0
    assert 0.0 <= float(fields["unmasked_failure_rate"]) <= 1.0
