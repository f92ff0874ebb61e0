"""SQRL's switches at the algorithm level: what the EnvRunners' mask gets, what trains, what checkpoints hold.

Each test builds a tiny SQRL (32 x 32 nets, a few hundred env steps) and checks the switch on the
running algorithm, not on the config: the mask of a remote EnvRunner, the learner's optimizer step
counts and weights, the state a checkpoint restores. The learner-level effect of each loss switch is in
``tests/unit/test_learner_switches.py``.
"""

import math

import numpy as np
import pytest
import torch

from sqrl_rllib.connectors.safety_mask import SafetyMask
from sqrl_rllib.core.replay import ColumnarReplay, OnlineSafetyBuffer
from tests.integration.test_sqrl_algorithm import module_state, ray_local, small_config  # noqa: F401


def optimizer_steps(algo, name: str) -> int:
    """Adam steps of the learner's optimizer ``name``; 0 if it never stepped."""
    state = algo.learner_group._learner._named_optimizers[f"default_policy_{name}"].state
    return int(next(iter(state.values()))["step"]) if state else 0


def runner_masks(algo) -> list[tuple]:
    """(eps_safe, K, phase, enabled, resample_rounds) of the SafetyMask in each remote EnvRunner's pipeline."""

    def read(runner):
        masks = [c for c in runner._module_to_env.connectors if isinstance(c, SafetyMask)]
        return [(m.eps_safe, m.num_action_samples, m.phase, m.enabled, m.resample_rounds) for m in masks]

    return algo.env_runner_group.foreach_env_runner(read, local_env_runner=False)


def safety_weights(algo) -> dict[str, torch.Tensor]:
    """Copies of Q_safe's and its target's weights on the learner."""
    return {k: v.clone() for k, v in module_state(algo).items() if "safety_critic." in k}


def test_env_runners_mask_with_the_configs_keys(ray_local):  # noqa: F811
    """Fine-tuning from scratch with finetune_safety_critic: the remote mask gets eps_safe, K, phase; Q_safe trains."""
    config = (
        small_config("finetune", "finetune")
        .env_runners(num_env_runners=1, num_envs_per_env_runner=2)
        .sqrl(eps_safe=0.05, num_action_samples=7, mask_resample_rounds=2, finetune_safety_critic=True, nu_lr=0.05)
    )
    algo = config.build_algo()
    try:
        assert runner_masks(algo) == [[(0.05, 7, "finetune", True, 2)]]
        before = safety_weights(algo)
        for _ in range(2):
            result = algo.train()
        sqrl, runners = result["sqrl"], result["env_runners"]
        assert sqrl["mask_active"] == 1.0
        # An untrained Q_safe reads ~0.5 everywhere: at eps_safe 0.05 the mask rejects almost every
        # candidate (measured 0.97-1.0); the default eps 0.1 would too, so this only shows the mask ran.
        assert runners["mask_rejection_rate"] > 0.5
        # finetune_safety_critic=True: Q_safe trains while fine-tuning, one optimizer step per counted step.
        assert sqrl["num_safety_critic_steps"] > 0
        assert optimizer_steps(algo, "safety") == sqrl["num_safety_critic_steps"]
        after = safety_weights(algo)
        assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("safety_critic."))
        # The Lagrangian is on (the default): E[Q_safe(s, pi)] ~0.5 > 0.05 drives nu up from 1.
        assert optimizer_steps(algo, "nu") == sqrl["num_sgd_steps"]
        assert result["learners"]["default_policy"]["nu"] > 1.0
    finally:
        algo.stop()


def test_unmasked_fine_tuning_without_lagrangian(ray_local):  # noqa: F811
    """mask_enabled=False and lagrangian=False: plain SAC actions, nu untouched, Q_safe frozen."""
    config = (
        small_config("finetune", "finetune")
        .env_runners(num_env_runners=1, num_envs_per_env_runner=2)
        .sqrl(mask_enabled=False, lagrangian=False, nu_init=2.0)
    )
    algo = config.build_algo()
    try:
        assert runner_masks(algo) == [[(0.1, 8, "finetune", False, 0)]]
        before = safety_weights(algo)
        log_nu = module_state(algo)["log_nu"].clone()
        assert log_nu.item() == pytest.approx(math.log(2.0))
        for _ in range(2):
            result = algo.train()
        sqrl = result["sqrl"]
        assert sqrl["num_sgd_steps"] > 0 and sqrl["mask_active"] == 0.0
        assert "mask_rejection_rate" not in result["env_runners"]  # the mask never scored a candidate
        learner = result["learners"]["default_policy"]
        assert "q_safe_policy_mean" not in learner
        assert optimizer_steps(algo, "nu") == 0
        assert torch.equal(module_state(algo)["log_nu"], log_nu)
        assert optimizer_steps(algo, "safety") == sqrl["num_safety_critic_steps"] == 0
        after = safety_weights(algo)
        assert all(torch.equal(before[k], after[k]) for k in before)
    finally:
        algo.stop()


def test_updates_per_env_step_and_checkpoint_replay(ray_local, tmp_path):  # noqa: F811
    """SGD steps per env step follow updates_per_env_step; checkpoint_replay decides whether D_offline comes back."""
    for updates, replay in ((2.0, False), (0.5, True)):
        config = small_config("pretrain", "pretrain").env_runners(num_env_runners=0)
        algo = config.sqrl(updates_per_env_step=updates, checkpoint_replay=replay).build_algo()
        try:
            history = []
            for _ in range(3):
                result = algo.train()
                sampled = result["env_runners"]["num_env_steps_sampled_lifetime"]
                history.append((sampled, result["sqrl"]["num_sgd_steps"]))
            # Iterations 2 and 3 learn on every training step: each takes round(n x updates) SGD steps for its n
            # new env steps (~32: 2 envs x 16), so between them the SGD steps are updates x env steps up to
            # half a step of rounding per training step (~4 of them). Measured: exactly 2 x the env steps, and
            # 64 for 0.5 x 130 = 65; ignoring the key gives 130 for both.
            (env_a, sgd_a), (env_b, sgd_b) = history[1], history[2]
            assert env_b > env_a and sgd_a > 0
            assert abs((sgd_b - sgd_a) - updates * (env_b - env_a)) <= 4, history
            assert optimizer_steps(algo, "policy") == sgd_b
            rows = len(algo.offline_buffer)
            assert rows == env_b and len(algo.safety_buffer) > 0
            saved_obs = algo.offline_buffer.sample(rows, np.random.default_rng(0))["obs"]
            checkpoint = algo.save_to_path(str(tmp_path / f"replay_{replay}"))
            # Empty both buffers, then restore the checkpoint into the same algorithm.
            algo.offline_buffer = ColumnarReplay(int(config.replay_capacity), 2, 2)
            algo.safety_buffer = OnlineSafetyBuffer(int(config.online_buffer_episodes))
            algo.restore_from_path(checkpoint)
            if replay:
                assert len(algo.offline_buffer) == rows and len(algo.safety_buffer) > 0
                restored = algo.offline_buffer.sample(rows, np.random.default_rng(0))["obs"]
                assert (restored == saved_obs).all()
            else:
                assert len(algo.offline_buffer) == 0 and len(algo.safety_buffer) == 0
            # The counters come back either way.
            assert algo._counters["sgd_steps"] == sgd_b
        finally:
            algo.stop()
