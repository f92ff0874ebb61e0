"""The safety shield on stock RLlib algorithms: PPO fails less with it, SAC runs with it on a remote EnvRunner.

One short SQRL pretraining on DrunkSpider (3000 steps, Q_safe fitted on all its data) makes the checkpoint
whose frozen Q_safe shields both.
"""

import pytest
import ray
from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.algorithms.sac import SACConfig

from sqrl_rllib.algorithms.sqrl import SQRLConfig
from sqrl_rllib.envs.rllib import register_rllib_envs
from sqrl_rllib.shield import add_safety_shield, log_failure

EPS_SAFE = 0.1
ENV_STEPS = 2000
SEEDS = (0, 1)


@pytest.fixture(scope="module")
def sqrl_checkpoint(tmp_path_factory):
    """A 3000-step SQRL pretraining checkpoint (about 30-60 s on 2 loaded cores), with Ray up for the tests."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    register_rllib_envs()
    algo = (
        SQRLConfig()
        .environment("sqrl/DrunkSpider-v0", env_config={"task": "pretrain"})
        .env_runners(num_env_runners=0, rollout_fragment_length=32)
        .training(num_steps_sampled_before_learning_starts=256, train_batch_size_per_learner=128)
        .reporting(min_sample_timesteps_per_iteration=500)
        # Masked from the first step, as in test_learning.py (the warm-up stalls short pretrainings).
        .sqrl(eps_safe=EPS_SAFE, num_action_samples=20, hidden=(64, 64), gamma_safe=0.65, mask_warmup_steps=0)
        .debugging(seed=0)
        .build_algo()
    )
    try:
        while algo.train()["env_runners"]["num_env_steps_sampled_lifetime"] < 3000:
            pass
        algo.fit_safety_critic(500, failure_fraction=0.2)
        checkpoint = algo.save_to_path(str(tmp_path_factory.mktemp("sqrl") / "pretrain"))
    finally:
        algo.stop()
    yield checkpoint
    ray.shutdown()


def ppo_failures(seed: int, checkpoint: str | None) -> tuple[int, int, dict]:
    """Failures and episodes of stock PPO from scratch on the finetune task within ENV_STEPS, and the last result."""
    config = (
        PPOConfig()
        .environment("sqrl/DrunkSpider-v0", env_config={"task": "finetune"})
        .env_runners(num_env_runners=0, num_envs_per_env_runner=4)
        .training(train_batch_size_per_learner=500, minibatch_size=250, num_epochs=2)
        .debugging(seed=seed)
    )
    if checkpoint is None:
        config.callbacks(on_episode_end=log_failure)
    else:
        config = add_safety_shield(config, checkpoint, EPS_SAFE, num_action_samples=20)
    algo = config.build_algo()
    try:
        while (result := algo.train())["env_runners"]["num_env_steps_sampled_lifetime"] < ENV_STEPS:
            pass
    finally:
        algo.stop()
    runners = result["env_runners"]
    return int(runners["cumulative_failures"]), int(runners["num_episodes_lifetime"]), runners


@pytest.mark.slow
def test_ppo_fine_tuning_with_the_shield_fails_less_than_without(sqrl_checkpoint):
    for seed in SEEDS:
        plain, plain_episodes, _ = ppo_failures(seed, None)
        shielded, shielded_episodes, runners = ppo_failures(seed, sqrl_checkpoint)
        print(f"seed {seed}: PPO {plain}/{plain_episodes} failures/episodes, PPO+shield {shielded}/{shielded_episodes}")
        # Measured 2026-12-06 (failures/episodes, PPO vs PPO+shield): seed 0 560/561 vs 178/181, seed 1 527/527
        # vs 204/204. Early PPO falls off the map or into lava within a few steps; a shield that passes PPO's
        # actions through fails as often (seed 0: 581/582, sabotage check), so half of PPO's is out of its reach.
        assert shielded < 0.5 * plain, (seed, plain, shielded)
        # The shield scored every step: this short pretraining's Q_safe is cautious (most candidates vetoed).
        assert runners["mask_rejection_rate"] > 0.5
        assert 0.0 <= runners["mask_chosen_q_safe"] < 1.0


@pytest.mark.slow
def test_stock_sac_with_the_shield_trains_on_a_remote_env_runner(sqrl_checkpoint):
    config = (
        SACConfig()
        .environment("sqrl/DrunkSpider-v0", env_config={"task": "finetune"})
        .env_runners(num_env_runners=1, rollout_fragment_length=50)
        .training(num_steps_sampled_before_learning_starts=100, train_batch_size_per_learner=32)
        .reporting(min_sample_timesteps_per_iteration=200)
        .debugging(seed=0)
    )
    algo = add_safety_shield(config, sqrl_checkpoint, EPS_SAFE, num_action_samples=10).build_algo()
    try:
        result = algo.train()
    finally:
        algo.stop()
    runners = result["env_runners"]
    assert runners["num_env_steps_sampled_lifetime"] >= 200
    # Logged only by the shield, on the remote EnvRunner that loaded Q_safe from the checkpoint path.
    assert runners["mask_rejection_rate"] > 0.0
    assert "mask_fallback_rate" in runners and "mask_chosen_q_safe" in runners
    assert runners["cumulative_failures"] <= runners["num_episodes_lifetime"]
    assert result["learners"]["default_policy"]  # the SAC learner updated
