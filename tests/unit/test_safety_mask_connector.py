"""The SafetyMask ConnectorV2 on a real SQRL RLModule (no Ray cluster needed).

Q_safe is a hand-set linear critic, so which candidates are safe, which one is the safest and what the
logged metrics must read are all known in closed form. The candidates come from torch's global RNG:
re-seeding and drawing again with ``sample_squashed`` reproduces exactly the K candidates the mask saw.
"""

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.utils.metrics.metrics_logger import MetricsLogger

from sqrl_rllib.algorithms.sqrl.torch.sqrl_torch_rl_module import MASK_OBS, SQRLTorchRLModule
from sqrl_rllib.connectors.safety_mask import SafetyMask
from sqrl_rllib.core.networks import SafetyCritic, sample_squashed

EPS = 0.2
K = 32
N = 64
# Q_safe(a) = sigmoid(10 a0 - 2) < EPS  <=>  a0 < (logit(EPS) + 2) / 10 = 0.0614.
SAFE_A0 = (math.log(EPS / (1 - EPS)) + 2) / 10


def module_with_linear_safety_critic() -> SQRLTorchRLModule:
    """Q_safe(s, a) = sigmoid(10 * a[0] - 2): actions with a[0] > ~0.06 are unsafe at eps 0.2."""
    obs_space = gym.spaces.Box(-1, 1, (3,), np.float32)
    act_space = gym.spaces.Box(-1, 1, (2,), np.float32)
    module = SQRLTorchRLModule(
        observation_space=obs_space, action_space=act_space, inference_only=True, model_config={"hidden": (8, 8)}
    )
    module.safety_critic = SafetyCritic(3, 2, hidden=())  # a single linear layer
    with torch.no_grad():
        layer = module.safety_critic.net[0]
        layer.weight.zero_()
        layer.weight[0, 3] = 10.0
        layer.bias.fill_(-2.0)
    return module


def dist_inputs(mean_a0: float, std: float) -> torch.Tensor:
    """Policy inputs of N states: tanh-mean ``mean_a0`` on axis 0 (0 on axis 1), std ``std`` on both."""
    dist = torch.zeros(N, 4)
    dist[:, 0] = float(np.arctanh(mean_a0))
    dist[:, 2:] = math.log(std)
    return dist


def run(module, explore: bool, mean_a0: float, std: float = 0.5, phase: str = "finetune", seed: int = 0):
    """Apply the mask once; returns (actions, their Q_safe, the metrics logger, the K candidates it scored)."""
    obs = torch.zeros(N, 3)
    dist = dist_inputs(mean_a0, std)
    batch = {Columns.ACTION_DIST_INPUTS: dist.clone(), MASK_OBS: obs}
    metrics = MetricsLogger()
    mask = SafetyMask(eps_safe=EPS, num_action_samples=K, phase=phase)
    torch.manual_seed(seed)
    out = mask(rl_module=module, batch=batch, episodes=[], explore=explore, metrics=metrics)
    assert MASK_OBS not in out
    torch.manual_seed(seed)
    candidates, _ = sample_squashed(dist, K, mean_first=not explore)
    actions = out[Columns.ACTIONS]
    return actions, module.q_safe(obs, actions.unsqueeze(1)).squeeze(1), metrics, candidates


def test_exploration_executes_only_safe_actions_and_logs_the_rejection_rate():
    module = module_with_linear_safety_critic()
    module.mask_active.fill_(True)  # pretraining's warm-up is over
    # P(candidate unsafe) = P(tanh(u) >= 0.0614), u ~ N(0, 0.5): 1 - Phi(atanh(0.0614) / 0.5) = 0.451.
    expected_rejection = 0.5 * math.erfc(math.atanh(SAFE_A0) / 0.5 / math.sqrt(2))
    for phase in ("pretrain", "finetune"):
        actions, q, metrics, candidates = run(module, explore=True, mean_a0=0.0, phase=phase)
        assert actions.shape == (N, 2)
        assert (q < EPS).all()
        # Every executed action is one of that state's K candidates.
        assert (candidates == actions.unsqueeze(1)).all(-1).any(-1).all()
        # Measured 0.431 (seed 0; 2048 candidates, std of the estimate 0.011); a mask that logs nothing reads 0.
        assert metrics.peek("mask_rejection_rate") == pytest.approx(expected_rejection, abs=0.04)
        # P(all 32 candidates unsafe) = 0.451^32 ~ 1e-11: no fallback.
        assert metrics.peek("mask_fallback_rate") == 0.0
        assert metrics.peek("mask_chosen_q_safe") == pytest.approx(q.mean().item(), abs=1e-5)
    # Pretraining takes the riskiest safe candidate: the largest a0 below 0.0614 in each state.
    actions, _, _, candidates = run(module, explore=True, mean_a0=0.0, phase="pretrain")
    a0 = candidates[..., 0]
    riskiest_safe = torch.where(a0 < SAFE_A0, a0, torch.full_like(a0, -2.0)).max(1).values
    assert torch.allclose(actions[:, 0], riskiest_safe)


def test_no_safe_candidate_falls_back_to_the_safest_and_logs_it():
    module = module_with_linear_safety_critic()
    module.mask_active.fill_(True)
    # Mean a0 0.9, std 0.1: P(a0 < 0.0614) = Phi((0.0615 - 1.472) / 0.1) ~ 1e-45, no candidate is safe.
    actions, q, metrics, candidates = run(module, explore=True, mean_a0=0.9, std=0.1)
    assert metrics.peek("mask_fallback_rate") == 1.0
    assert metrics.peek("mask_rejection_rate") == 1.0
    # The safest candidate is the one with the smallest a0 (Q_safe rises with a0); the riskiest would be
    # the largest, ~0.2 larger here.
    safest = candidates[torch.arange(N), candidates[..., 0].argmin(1)]
    assert torch.equal(actions, safest)
    assert metrics.peek("mask_chosen_q_safe") == pytest.approx(q.mean().item(), abs=1e-5)


def test_deterministic_evaluation_takes_safe_mean_else_safest_sample():
    module = module_with_linear_safety_critic()
    actions, q, metrics, _ = run(module, explore=False, mean_a0=-0.5)  # the mean is safe: taken as is
    assert torch.allclose(actions[:, 0], torch.full((N,), -0.5), atol=1e-5)
    assert metrics.peek("mask_fallback_rate") == 0.0
    actions, q, metrics, candidates = run(module, explore=False, mean_a0=0.9)  # the mean is unsafe
    assert not torch.allclose(actions[:, 0], torch.full((N,), 0.9), atol=1e-3)
    safest = candidates[torch.arange(N), candidates[..., 0].argmin(1)]
    assert torch.equal(actions, safest)
    assert metrics.peek("mask_fallback_rate") == 1.0


def test_fine_tuning_masks_without_the_pretraining_switch_and_pretraining_warm_up_passes_through():
    module = module_with_linear_safety_critic()
    assert not bool(module.mask_active)  # a fresh module: pretraining's warm-up
    actions, q, _, _ = run(module, explore=True, mean_a0=0.0, phase="finetune")
    assert (q < EPS).all()  # fine-tuning is masked from its first step
    batch = {Columns.ACTION_DIST_INPUTS: dist_inputs(0.0, 0.5), MASK_OBS: torch.zeros(N, 3)}
    out = SafetyMask(eps_safe=EPS, num_action_samples=K, phase="pretrain")(
        rl_module=module, batch=batch, episodes=[], explore=True
    )
    assert Columns.ACTIONS not in out and MASK_OBS not in out  # GetActions samples the unmasked policy


def test_disabled_mask_passes_through():
    module = module_with_linear_safety_critic()
    module.mask_active.fill_(True)
    batch = {Columns.ACTION_DIST_INPUTS: torch.zeros(4, 4), MASK_OBS: torch.zeros(4, 3)}
    out = SafetyMask(enabled=False)(rl_module=module, batch=batch, episodes=[], explore=True)
    assert Columns.ACTIONS not in out and MASK_OBS not in out


@pytest.mark.parametrize(
    "keys",
    [
        {"eps_safe": 0.05, "num_action_samples": 7, "phase": "finetune", "mask_resample_rounds": 3},
        {"eps_safe": 0.3, "num_action_samples": 11, "phase": "pretrain", "mask_enabled": False},
    ],
)
def test_the_configs_pipeline_puts_the_mask_first_with_the_configs_keys(keys):
    """``SQRLConfig.build_module_to_env_connector`` (what every EnvRunner calls) builds the mask from the config."""
    from sqrl_rllib.algorithms.sqrl import SQRLConfig

    obs_space, act_space = gym.spaces.Box(-1, 1, (3,), np.float32), gym.spaces.Box(-1, 1, (2,), np.float32)
    config = SQRLConfig().environment(observation_space=obs_space, action_space=act_space).sqrl(**keys)
    pipeline = config.build_module_to_env_connector(spaces={"default_policy": (obs_space, act_space)})
    mask = pipeline.connectors[0]  # before GetActions, which then passes the masked actions through
    assert isinstance(mask, SafetyMask)
    assert sum(isinstance(c, SafetyMask) for c in pipeline.connectors) == 1
    assert (mask.eps_safe, mask.num_action_samples, mask.phase) == (
        keys["eps_safe"],
        keys["num_action_samples"],
        keys["phase"],
    )
    assert mask.enabled is keys.get("mask_enabled", True)
    assert mask.resample_rounds == keys.get("mask_resample_rounds", 0)
