"""WCPG on SQRL's Algorithm machinery: training, the pretrain -> fine-tune hand-over, config checks, learning."""

import numpy as np
import pytest
import torch

from sqrl_rllib.algorithms.sqrl import SQRLConfig
from sqrl_rllib.algorithms.wcpg import WCPGConfig
from tests.integration.test_sqrl_algorithm import module_state, optimizer_steps, ray_local  # noqa: F401


def small_config(phase: str, task: str) -> WCPGConfig:
    """test_sqrl_algorithm's small DrunkSpider setup, for WCPG."""
    return (
        WCPGConfig()
        .environment("sqrl/DrunkSpider-v0", env_config={"task": task})
        .env_runners(num_env_runners=2, num_envs_per_env_runner=2, rollout_fragment_length=16)
        .training(num_steps_sampled_before_learning_starts=128, train_batch_size_per_learner=64)
        .reporting(min_sample_timesteps_per_iteration=128, min_time_s_per_iteration=0)
        .sqrl(phase=phase, hidden=(32, 32))
        .debugging(seed=0)
    )


def replay_alphas(algo) -> tuple[np.ndarray, np.ndarray]:
    """alpha (the observation's last component) of every stored transition's obs and next_obs."""
    rows = algo.offline_buffer.sample(len(algo.offline_buffer), np.random.default_rng(0))
    return rows["obs"][:, -1], rows["next_obs"][:, -1]


def test_wcpg_trains_actor_critic_and_their_targets(ray_local):  # noqa: F811
    algo = small_config("pretrain", "pretrain").build_algo()
    before = {k: v.clone() for k, v in module_state(algo).items()}
    assert {k.split(".")[0] for k in before} == {"actor", "critic", "target_actor", "target_critic"}
    for _ in range(3):
        result = algo.train()
    after = module_state(algo)
    sqrl = result["sqrl"]
    assert sqrl["num_sgd_steps"] > 0 and sqrl["num_safety_critic_steps"] == 0 and sqrl["mask_active"] == 0.0
    assert optimizer_steps(algo, "actor") == optimizer_steps(algo, "critic") == sqrl["num_sgd_steps"]
    for prefix in ("actor.", "critic.", "target_actor.", "target_critic."):
        assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith(prefix)), prefix
    learner = result["learners"]["default_policy"]
    for key in ("q_loss", "upsilon_loss", "actor_loss", "cvar_mean", "upsilon_mean"):
        assert np.isfinite(learner[key]), key
    assert learner["upsilon_mean"] > 0
    # The replay holds alpha with each observation: drawn per episode from U(0.1, 1), the same in s and s'.
    obs_alpha, next_alpha = replay_alphas(algo)
    assert np.array_equal(obs_alpha, next_alpha)
    assert obs_alpha.min() >= 0.1 and obs_alpha.max() <= 1.0 and len(np.unique(obs_alpha)) > 10
    # ... and the [-1, 1]-normalised action the env executed (Gaussian noise clipped to the box).
    actions = algo.offline_buffer.sample(256, np.random.default_rng(0))["actions"]
    assert np.abs(actions).max() <= 1.0
    with pytest.raises(ValueError, match="no safety critic"):
        algo.fit_safety_critic(10)
    algo.stop()


def test_finetune_starts_from_the_pretrained_wcpg_weights_at_the_fixed_alpha(ray_local, tmp_path):  # noqa: F811
    pre = small_config("pretrain", "pretrain").env_runners(num_env_runners=0).build_algo()
    pre.train()
    checkpoint = pre.save_to_path(str(tmp_path / "pretrain"))
    pretrained = {k: v.clone() for k, v in module_state(pre).items()}
    pre.stop()

    ft = small_config("finetune", "finetune").sqrl(pretrained_checkpoint=checkpoint).wcpg(risk_level=0.3).build_algo()
    restored = module_state(ft)
    assert pretrained.keys() == restored.keys()
    for key, tensor in pretrained.items():
        assert torch.equal(tensor, restored[key]), key
    # The EnvRunners act with the pretrained actor (and hold nothing else).
    runner_states = ft.env_runner_group.foreach_env_runner(
        lambda er: {k: v.clone() for k, v in er.module.state_dict().items()}, local_env_runner=False
    )
    for state in runner_states:
        assert state and all(k.startswith("actor.") for k in state)
        for key, tensor in state.items():
            assert torch.equal(tensor, pretrained[key]), key
    ft.train()
    # Fine-tuning collects at the fixed risk level; optimizers start fresh.
    obs_alpha, _ = replay_alphas(ft)
    assert np.allclose(obs_alpha, 0.3)
    assert optimizer_steps(ft, "actor") == ft._counters["sgd_steps"]
    ft.stop()


def test_invalid_wcpg_config_names_the_key():
    for keys, message in (
        ({"risk_level": 0.0}, "risk_level=0.0 is invalid"),
        ({"risk_level_low": 0.0}, "risk_level_low=0.0 is invalid"),
        ({"risk_level_low": 0.5, "risk_level_high": 0.4}, "risk_level_high=0.4 is invalid"),
        ({"exploration_noise_std": 0.0}, "exploration_noise_std=0.0 is invalid"),
        ({"variance_target": "max"}, "variance_target='max' is invalid"),
    ):
        with pytest.raises(ValueError, match=message):
            WCPGConfig().wcpg(**keys).validate()
    # SQRL keys WCPG would ignore.
    with pytest.raises(ValueError, match="safety_critic=True is invalid"):
        WCPGConfig().sqrl(safety_critic=True).validate()
    with pytest.raises(ValueError, match="mask_enabled=false"):
        WCPGConfig().sqrl(mask_enabled=True).validate()
    with pytest.raises(ValueError, match="num_critics=10 is invalid"):
        WCPGConfig().sqrl(num_critics=10).validate()
    with pytest.raises(ValueError, match="n_step=3 is not supported"):
        WCPGConfig().training(n_step=3).validate()
    # A method runs with its own config class: neither config runs the other's method.
    with pytest.raises(ValueError, match="method='sac' is invalid: runs with .*SQRLConfig"):
        WCPGConfig().sqrl(method="sac").validate()
    no_safety = {"safety_critic": False, "mask_enabled": False, "lagrangian": False}
    with pytest.raises(ValueError, match="method='wcpg' is invalid: runs with .*WCPGConfig"):
        SQRLConfig().sqrl(method="wcpg", **no_safety).validate()
    WCPGConfig().validate()  # the defaults are valid


def test_risk_level_sampling_per_phase_and_in_evaluation():
    config = WCPGConfig().wcpg(risk_level=0.25, risk_level_low=0.2, risk_level_high=0.9)
    assert config.risk_level_sampling() == {"low": 0.2, "high": 0.9}
    assert config.get_evaluation_config_object().risk_level_sampling() == {"fixed": 0.25}
    assert config.copy().sqrl(phase="finetune").risk_level_sampling() == {"fixed": 0.25}


@pytest.mark.learning
def test_wcpg_learns_pendulum(ray_local):  # noqa: F811
    """Seeded Pendulum-v1 (random policy: about -1200): 15k env steps, about 40 s on one core.

    reward_scale 0.1: the variance critic's targets grow with the reward's square (eq. 6 subtracts
    Q^2-sized terms), and at Pendulum's raw scale (Q ~ -300) the variance loss swamps the shared trunk and
    seeds 0-2 stay near -1000 to -1500 at 15k steps. The CVaR is positively homogeneous, so scaling the
    reward changes the conditioning, not the objective. Measured 2026-12-04 at 15k steps: training return
    (exploring, alpha ~ U(0.1, 1), mean of the last 5 episodes) -167, -124, -170 for seeds 0, 1, 2; seed 0's
    deterministic actor at alpha 0.2 returns -152 over 5 evaluation episodes. The threshold keeps a margin.
    """
    algo = (
        WCPGConfig()
        .environment("Pendulum-v1")
        .env_runners(num_env_runners=0, rollout_fragment_length=50)
        .training(num_steps_sampled_before_learning_starts=1000, train_batch_size_per_learner=128)
        .reporting(min_sample_timesteps_per_iteration=1000, metrics_num_episodes_for_smoothing=5)
        # An evaluation EnvRunner (built from the evaluation config), run once at the end by evaluate().
        .evaluation(
            evaluation_interval=1000,
            evaluation_duration=5,
            evaluation_duration_unit="episodes",
            evaluation_config={"explore": False},
        )
        .sqrl(hidden=(64, 64), reward_scale=0.1)
        .debugging(seed=0)
        .build_algo()
    )
    while (result := algo.train())["env_runners"]["num_env_steps_sampled_lifetime"] < 15_000:
        pass
    # The deterministic actor at the fixed evaluation risk level (0.2).
    risk_levels = algo.eval_env_runner_group.foreach_env_runner(
        lambda er: er._env_to_module.connectors[0].risk_level_sampling()
    )
    assert risk_levels == [{"fixed": 0.2}]
    evaluation = algo.evaluate()
    algo.stop()
    train_return = result["env_runners"]["episode_return_mean"]
    eval_return = evaluation["env_runners"]["episode_return_mean"]
    print(f"training return {train_return:.1f}, evaluation return {eval_return:.1f}")
    assert train_return > -500
    assert eval_return > -500
