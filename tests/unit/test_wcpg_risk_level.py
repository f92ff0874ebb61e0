"""WCPG's risk level in the observation (AppendRiskLevel), its module's actions, its registry entry (no Ray)."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.env.single_agent_episode import SingleAgentEpisode

from sqrl_rllib.algorithms.wcpg.risk_level import AppendRiskLevel, risk_level_space, split_risk_level
from sqrl_rllib.algorithms.wcpg.torch.wcpg_torch_rl_module import WCPGTorchRLModule

ENV_SPACE = gym.spaces.Box(-5.0, 5.0, (2,), np.float32)


def run_episode(connector, steps: int, cut_at: int | None = None) -> list[np.ndarray]:
    """Feed an episode's observations through ``connector`` like an EnvRunner; returns the stored ones."""
    episode = SingleAgentEpisode(observation_space=ENV_SPACE, action_space=gym.spaces.Box(-1, 1, (1,)))
    stored = []

    def process():
        connector(rl_module=None, batch={}, episodes=[episode])
        stored.append(episode.get_observations(-1))

    episode.add_env_reset(observation=np.zeros(2, np.float32))
    process()
    for t in range(1, steps + 1):
        if t == cut_at:  # a sample() call ends mid-episode: the next chunk continues it
            episode = episode.cut(len_lookback_buffer=1)
        episode.add_env_step(
            observation=np.full(2, t, np.float32), action=np.zeros(1, np.float32), reward=0.0, terminated=False
        )
        process()
    return stored


def connector(**kwargs) -> AppendRiskLevel:
    return AppendRiskLevel(ENV_SPACE, gym.spaces.Box(-1, 1, (1,)), **kwargs)


def test_each_episode_draws_one_alpha_and_keeps_it_across_chunks():
    append = connector(low=0.1, high=1.0, seed=0)
    alphas = []
    for _ in range(20):
        stored = run_episode(append, steps=6, cut_at=3)
        # The env's observation comes first, unchanged; alpha is the last component, constant in the episode.
        assert [float(o[0]) for o in stored] == list(range(7))
        assert len({float(o[-1]) for o in stored}) == 1
        alphas.append(float(stored[0][-1]))
    assert all(0.1 <= a <= 1.0 for a in alphas) and len(set(alphas)) == 20
    # Seeded: the same draws again.
    again = connector(low=0.1, high=1.0, seed=0)
    assert [float(run_episode(again, 1)[0][-1]) for _ in range(20)] == alphas


def test_fixed_alpha_and_spaces():
    stored = run_episode(connector(fixed=0.2), steps=3)
    assert all(o[-1] == pytest.approx(0.2) and o.dtype == np.float32 for o in stored)
    space = connector(fixed=0.2).observation_space
    assert space == risk_level_space(ENV_SPACE) and space.shape == (3,)
    assert space.low[-1] == 0.0 and space.high[-1] == 1.0 and space.low[0] == -5.0
    obs, alpha = split_risk_level(torch.tensor([[1.0, 2.0, 0.3]]))
    assert obs.tolist() == [[1.0, 2.0]] and alpha.tolist() == pytest.approx([0.3])
    with pytest.raises(ValueError, match="fixed=0"):
        connector(fixed=0.0)
    with pytest.raises(ValueError, match="low <= high"):
        connector(low=0.5, high=0.2)
    with pytest.raises(ValueError, match="flat Box"):
        risk_level_space(gym.spaces.Discrete(3))


def test_module_explores_around_mu_inside_the_action_box_and_infers_mu():
    torch.manual_seed(0)
    module = WCPGTorchRLModule(
        observation_space=risk_level_space(ENV_SPACE),
        action_space=gym.spaces.Box(-1, 1, (2,), np.float32),
        inference_only=True,
        model_config={"hidden": (8, 8), "exploration_noise_std": 2.0},
    )
    obs = torch.cat([torch.randn(500, 2), torch.full((500, 1), 0.5)], dim=-1)
    mu = module.actor(obs[:, :-1], obs[:, -1])
    inputs = module.forward_exploration({Columns.OBS: obs})[Columns.ACTION_DIST_INPUTS]
    dist = module.get_exploration_action_dist_cls().from_logits(inputs)
    actions = dist.sample()
    # std 2 on [-1, 1]: many draws fall outside and are clipped, so the episodes hold executed actions.
    assert actions.abs().max() <= 1.0 and (actions.abs() == 1.0).float().mean() > 0.3
    assert torch.allclose(inputs[:, 2:].exp(), torch.tensor(2.0))
    inference = module.forward_inference({Columns.OBS: obs})[Columns.ACTION_DIST_INPUTS]
    deterministic = module.get_inference_action_dist_cls().from_logits(inference).to_deterministic().sample()
    assert torch.allclose(deterministic, mu)
    assert not hasattr(module, "critic")  # EnvRunners hold the actor only


def test_registry_entry():
    from sqrl_rllib.methods import METHODS, PLANNED_METHODS, check_methods, load_object

    wcpg = METHODS["wcpg"]
    assert "wcpg" not in PLANNED_METHODS and check_methods(["wcpg"]) == ["wcpg"]
    assert wcpg.pretrained_by == "wcpg" and not wcpg.safety_grid and not wcpg.critic_fit
    assert load_object(wcpg.config_class).__name__ == "WCPGConfig"
    # A method fine-tunes from a checkpoint of its own config class's Algorithm.
    for method in METHODS.values():
        assert method.config_class == METHODS[method.pretrained_by].config_class, method.name
