"""The safety shield for other algorithms' policies, without a Ray cluster.

Q_safe is hand-set, so which candidates are safe and which is the safest are known in closed form.
Candidates come from torch's global RNG through one distribution over B * K rows: re-seeding and drawing
again reproduces exactly the candidates the shield scored.
"""

import math
import pickle

import gymnasium as gym
import numpy as np
import pytest
import torch
from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.core.columns import Columns
from ray.rllib.core.distribution.torch.torch_distribution import TorchDiagGaussian, TorchSquashedGaussian
from ray.rllib.env.single_agent_episode import SingleAgentEpisode
from ray.rllib.utils.metrics.metrics_logger import MetricsLogger

from sqrl_rllib.algorithms.sqrl.torch.sqrl_torch_rl_module import SQRLTorchRLModule
from sqrl_rllib.connectors.safety_shield import SafetyShield, shielded_choice, to_env_units
from sqrl_rllib.core.networks import SafetyCritic
from sqrl_rllib.shield import FrozenQSafe, ShieldConnector, add_safety_shield, load_q_safe, log_failure

EPS = 0.5
K = 16
N = 64
BOUND = 0.3  # the step critic below: Q_safe < EPS  <=>  a0 < BOUND


def step_q_safe(candidates: torch.Tensor) -> torch.Tensor:
    """Q_safe rising steeply through EPS at a0 = BOUND: safe iff a0 < BOUND, and lower a0 is safer."""
    return torch.sigmoid(20.0 * (candidates[..., 0] - BOUND))


def dist_inputs(mean_a0: torch.Tensor, std: float) -> torch.Tensor:
    """Gaussian inputs (mean, log_std) for 2-D actions: mean ``mean_a0`` on axis 0, 0 on axis 1."""
    inputs = torch.zeros(len(mean_a0), 4)
    inputs[:, 0] = mean_a0
    inputs[:, 2:] = math.log(std)
    return inputs


def redraw(dist_cls, inputs: torch.Tensor, seed: int) -> torch.Tensor:
    """The K candidates per state the shield drew with ``seed``: [N, K, act_dim]."""
    torch.manual_seed(seed)
    return dist_cls.from_logits(inputs.repeat_interleave(K, dim=0)).sample().reshape(len(inputs), K, -1)


@pytest.mark.parametrize("dist_cls", [TorchDiagGaussian, TorchSquashedGaussian])
def test_a_safe_candidate_is_always_taken_when_one_exists_else_the_safest(dist_cls):
    # Means from -1 to 3 (squashed: tanh of them): the first states have many safe candidates, the last
    # (P(a0 < 0.3) ~ Phi((0.3 - 3) / 0.5) ~ 3e-8 per candidate) none.
    inputs = dist_inputs(torch.linspace(-1.0, 3.0, N), std=0.5)
    torch.manual_seed(0)
    actions, logp, choice = shielded_choice(inputs, dist_cls, step_q_safe, K, EPS)
    candidates = redraw(dist_cls, inputs, 0)
    q = step_q_safe(candidates)
    any_safe = (q < EPS).any(1)
    assert 10 < int(any_safe.sum()) < N  # both kinds of states occur
    chosen_q = step_q_safe(actions)
    assert (chosen_q[any_safe] < EPS).all()
    safest = candidates[torch.arange(N), q.argmin(1)]
    assert torch.equal(actions[~any_safe], safest[~any_safe])
    assert torch.equal(choice.fallback, ~any_safe)
    # Every executed action is one of its state's K candidates, with the policy's log-probability of it.
    assert (candidates == actions.unsqueeze(1)).all(-1).any(-1).all()
    assert torch.allclose(logp, dist_cls.from_logits(inputs).logp(actions), atol=1e-4)
    # Fine-tuning's rule picks uniformly among the safe candidates, not the safest: among states with
    # several safe candidates the safest is picked in about 1 / (number safe) of them (measured 4 of 28
    # at seed 0, both classes); a rule that always takes the safest scores all of them.
    several = (q < EPS).sum(1) > 3
    picked_safest = (actions[several] == safest[several]).all(-1)
    assert picked_safest.float().mean() < 0.5, picked_safest


def test_deterministic_mode_keeps_the_policy_action_if_safe_else_the_safest():
    inputs = dist_inputs(torch.tensor([-0.5] * 8 + [1.0] * 8), std=0.5)
    torch.manual_seed(1)
    actions, _, choice = shielded_choice(inputs, TorchDiagGaussian, step_q_safe, K, EPS, explore=False)
    assert torch.equal(actions[:8], inputs[:8, :2])  # the mean is safe: executed as is
    assert not choice.fallback[:8].any() and choice.fallback[8:].all()
    assert (step_q_safe(actions[8:]) < step_q_safe(inputs[8:, :2])).all()  # an unsafe mean is replaced


def test_to_env_units_matches_rllibs_action_normalisation():
    low, high = torch.tensor([-2.0, 0.0]), torch.tensor([2.0, 1.0])
    a = torch.tensor([[0.5, 0.5], [3.0, -3.0]])
    assert torch.allclose(to_env_units(a, low, high, "unsquash"), torch.tensor([[1.0, 0.75], [2.0, 0.0]]))
    assert torch.allclose(to_env_units(a, low, high, "clip"), torch.tensor([[0.5, 0.5], [2.0, 0.0]]))
    assert torch.equal(to_env_units(a, low, high, "none"), a)


def sqrl_module(low: float = -1.0, high: float = 1.0) -> SQRLTorchRLModule:
    """An SQRL module whose Q_safe is sigmoid(10 * a0 - 2) in its own [-1, 1] units: safe at 0.2 iff a0 < 0.0614."""
    module = SQRLTorchRLModule(
        observation_space=gym.spaces.Box(-1, 1, (3,), np.float32),
        action_space=gym.spaces.Box(low, high, (2,), np.float32),
        model_config={"hidden": (8, 8)},
    )
    module.safety_critic = SafetyCritic(3, 2, hidden=())
    with torch.no_grad():
        layer = module.safety_critic.net[0]
        layer.weight.zero_()
        layer.weight[0, 3] = 10.0
        layer.bias.fill_(-2.0)
    return module


def live_episode(obs) -> SingleAgentEpisode:
    episode = SingleAgentEpisode()
    episode.add_env_reset(observation=np.asarray(obs, np.float32))
    return episode


def test_connector_maps_candidates_through_env_units_and_logs_sqrls_metrics():
    # SQRL acted in [-1, 1] unsquashed to env bounds [-2, 2]; this PPO policy clips its raw actions to them
    # (normalize_actions=False, clip_actions=True). So a PPO action a is Q_safe's a / 2: safe at eps 0.2
    # iff a0 < 2 * 0.0614 = 0.1228. Without the unit mapping the bound would be 0.0614.
    eps = 0.2
    safe_a0 = 2 * (math.log(eps / (1 - eps)) + 2) / 10
    q_safe = FrozenQSafe(sqrl_module(-2.0, 2.0), "unsquash", source="hand-built")
    shield = SafetyShield(
        q_safe=q_safe,
        eps_safe=eps,
        num_action_samples=32,
        action_transform="clip",
        action_low=np.full(2, -2.0, np.float32),
        action_high=np.full(2, 2.0, np.float32),
    )
    episodes = [live_episode([0.1 * i, 0.0, 0.0]) for i in range(N)]
    inputs = dist_inputs(torch.zeros(N), std=0.5).numpy()
    keys = [(e.id_,) for e in episodes] + [("ended",)]  # the last row's episode ended: left alone
    batch = {
        Columns.ACTION_DIST_INPUTS: {key: [inputs[0]] for key in keys},
        Columns.ACTIONS: {key: [np.full(2, 9.0, np.float32)] for key in keys},
        Columns.ACTION_LOGP: {key: [np.float32(0.0)] for key in keys},
    }

    class PPOLike:
        def get_exploration_action_dist_cls(self):
            return TorchDiagGaussian

    metrics = MetricsLogger()
    torch.manual_seed(0)
    out = shield(rl_module=PPOLike(), batch=batch, episodes=episodes, explore=True, metrics=metrics)
    actions = np.stack([out[Columns.ACTIONS][key][0] for key in keys[:-1]])
    assert out[Columns.ACTIONS][("ended",)][0][0] == 9.0
    assert actions.dtype == np.float32 and (actions[:, 0] < safe_a0).all()
    # Some executed actions lie in [0.0614, 0.1228): vetoed by a shield that skips the unit mapping (seed 0:
    # 7 of 64; P(none) = 0.92^64 ~ 0.5%).
    assert (actions[:, 0] >= safe_a0 / 2).any()
    logp = np.stack([out[Columns.ACTION_LOGP][key][0] for key in keys[:-1]])
    expected_logp = TorchDiagGaussian.from_logits(torch.as_tensor(inputs)).logp(torch.as_tensor(actions))
    assert np.allclose(logp, expected_logp.numpy(), atol=1e-4)
    # P(candidate vetoed) = P(a0 >= 0.1228), a0 ~ N(0, 0.5): 0.403 (2048 candidates, std of the estimate 0.011);
    # a shield that logs nothing reads 0, one that scores unmapped actions 0.45.
    expected_rejection = 0.5 * math.erfc(safe_a0 / 0.5 / math.sqrt(2))
    assert metrics.peek("mask_rejection_rate") == pytest.approx(expected_rejection, abs=0.03)
    assert metrics.peek("mask_fallback_rate") == 0.0
    chosen_q = q_safe(torch.zeros(N, 3), torch.as_tensor(actions).unsqueeze(1)).squeeze(1)
    assert metrics.peek("mask_chosen_q_safe") == pytest.approx(chosen_q.mean().item(), abs=1e-5)


def test_connector_without_a_safe_candidate_takes_the_safest_and_logs_the_fallback():
    shield = SafetyShield(q_safe=FrozenQSafe(sqrl_module()), eps_safe=0.2, num_action_samples=8)
    episode = live_episode([0.0, 0.0, 0.0])
    inputs = dist_inputs(torch.tensor([2.0]), std=0.1).numpy()[0]  # every candidate has a0 ~ 2: unsafe
    batch = {Columns.ACTION_DIST_INPUTS: {(episode.id_,): [inputs]}, Columns.ACTIONS: {(episode.id_,): [inputs[:2]]}}

    class PPOLike:
        def get_exploration_action_dist_cls(self):
            return TorchDiagGaussian

    metrics = MetricsLogger()
    shield(rl_module=PPOLike(), batch=batch, episodes=[episode], explore=True, metrics=metrics)
    assert metrics.peek("mask_fallback_rate") == 1.0 and metrics.peek("mask_rejection_rate") == 1.0


def save_sqrl_checkpoint(path, obs_space=None, act_space=None):
    obs_space = obs_space or gym.spaces.Box(0.0, np.array([8.0, 7.0], np.float32), (2,), np.float32)
    act_space = act_space or gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    module = SQRLTorchRLModule(observation_space=obs_space, action_space=act_space, model_config={"hidden": (8, 8)})
    module.save_to_path(path)
    return str(path)


def user_piece_builder(env, spaces):
    """A user's own module-to-env pieces (none), configured before the shield."""
    return []


def test_load_q_safe_is_frozen_and_add_safety_shield_installs_a_picklable_builder(tmp_path):
    checkpoint = save_sqrl_checkpoint(tmp_path / "sqrl")
    q_safe = load_q_safe(checkpoint)
    assert not q_safe.module.training
    assert not any(p.requires_grad for p in q_safe.module.parameters())

    config = PPOConfig().environment("sqrl/DrunkSpider-v0", env_config={"task": "finetune"})
    config.env_runners(module_to_env_connector=user_piece_builder).callbacks(on_episode_end=print)
    assert add_safety_shield(config, checkpoint, eps_safe=0.1, num_action_samples=5) is config
    builder = pickle.loads(pickle.dumps(config._module_to_env_connector))  # travels to remote EnvRunners
    assert isinstance(builder, ShieldConnector) and builder.previous is user_piece_builder
    env = gym.make("sqrl/DrunkSpider-v0")
    obs_space, act_space = env.observation_space, env.action_space
    (shield,) = builder(None, {"__env_single__": (obs_space, act_space)})
    assert (shield.eps_safe, shield.num_action_samples, shield.action_transform) == (0.1, 5, "unsquash")
    assert config.callbacks_on_episode_end == [print, log_failure]
    # The local EnvRunner of a remote-sampling algorithm has no env and no spaces: no shield to build.
    assert builder(None, None) == []


def test_log_failure_counts_failed_episodes():
    metrics = MetricsLogger()
    for failed in (True, False, True):
        episode = live_episode([0.0])
        episode.add_env_step(observation=np.zeros(1), action=0, reward=0.0, infos={"failure": failed}, terminated=True)
        log_failure(episode=episode, metrics_logger=metrics)
    assert metrics.peek("failures") == 2


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        ({"eps_safe": 0.0}, "eps_safe="),
        ({"eps_safe": 1.5}, "eps_safe="),
        ({"eps_safe": True}, "eps_safe="),
        ({"num_action_samples": 0}, "num_action_samples="),
        ({"num_action_samples": 2.5}, "num_action_samples="),
    ],
)
def test_invalid_arguments_raise_naming_them(tmp_path, kwargs, argument):
    checkpoint = save_sqrl_checkpoint(tmp_path / "sqrl")
    args = {"eps_safe": 0.1, **kwargs}
    with pytest.raises(ValueError, match=argument):
        add_safety_shield(PPOConfig().environment("sqrl/DrunkSpider-v0"), checkpoint, **args)


def test_checkpoints_and_envs_the_shield_cannot_use_raise_naming_the_argument(tmp_path):
    sqrl = save_sqrl_checkpoint(tmp_path / "sqrl")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="checkpoint=.*not an SQRL checkpoint"):
        add_safety_shield(PPOConfig(), tmp_path / "empty", eps_safe=0.1)
    from ray.rllib.algorithms.ppo.torch.default_ppo_torch_rl_module import DefaultPPOTorchRLModule

    box = gym.spaces.Box(-1, 1, (2,), np.float32)
    DefaultPPOTorchRLModule(observation_space=box, action_space=box, model_config={"fcnet_hiddens": [8]}).save_to_path(
        tmp_path / "ppo"
    )
    with pytest.raises(ValueError, match="checkpoint=.*not an SQRL module"):
        add_safety_shield(PPOConfig(), tmp_path / "ppo", eps_safe=0.1)
    discrete = PPOConfig().environment(observation_space=box, action_space=gym.spaces.Discrete(3))
    with pytest.raises(ValueError, match="config: .*Discrete"):
        add_safety_shield(discrete, sqrl, eps_safe=0.1)
    with pytest.raises(ValueError, match="checkpoint=.*obs_dim=2 and act_dim=2, the env has obs_dim=3 and act_dim=1"):
        add_safety_shield(PPOConfig().environment("Pendulum-v1"), sqrl, eps_safe=0.1)
    shielded = add_safety_shield(PPOConfig().environment("sqrl/DrunkSpider-v0"), sqrl, eps_safe=0.1)
    with pytest.raises(ValueError, match="already has a safety shield"):
        add_safety_shield(shielded, sqrl, eps_safe=0.1)


def test_an_sqrl_checkpoint_without_a_safety_critic_is_refused(tmp_path):
    """An Algorithm checkpoint whose SQRL config has safety_critic=False (the plain-SAC method)."""
    root = tmp_path / "sac_method"
    save_sqrl_checkpoint(root / "learner_group" / "learner" / "rl_module" / "default_policy")
    (root / "rllib_checkpoint.json").write_text("{}")
    config = {"eps_safe": 0.1, "num_action_samples": 100, "safety_critic": False}
    with open(root / "class_and_ctor_args.pkl", "wb") as f:
        pickle.dump({"class": "SQRL", "ctor_args_and_kwargs": ((config,), {})}, f)
    with pytest.raises(ValueError, match="checkpoint=.*has no Q_safe"):
        load_q_safe(root)
    config["safety_critic"] = True
    with open(root / "class_and_ctor_args.pkl", "wb") as f:
        pickle.dump({"class": "SQRL", "ctor_args_and_kwargs": ((config,), {})}, f)
    assert load_q_safe(root).obs_dim == 2
