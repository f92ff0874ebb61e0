"""The SafetyMask ConnectorV2 on a real SQRL RLModule (no Ray cluster needed)."""

import gymnasium as gym
import numpy as np
import torch
from ray.rllib.core.columns import Columns

from sqrl_rllib.algorithms.sqrl.torch.sqrl_torch_rl_module import MASK_OBS, SQRLTorchRLModule
from sqrl_rllib.connectors.safety_mask import SafetyMask
from sqrl_rllib.core.networks import SafetyCritic

EPS = 0.2


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


def run(module, explore: bool, mean_a0: float, n: int = 64, phase: str = "finetune"):
    obs = torch.zeros(n, 3)
    dist = torch.zeros(n, 4)
    dist[:, 0] = float(np.arctanh(mean_a0))
    dist[:, 2:] = np.log(0.5)
    batch = {Columns.ACTION_DIST_INPUTS: dist, MASK_OBS: obs}
    mask = SafetyMask(eps_safe=EPS, num_action_samples=32, phase=phase)
    out = mask(rl_module=module, batch=batch, episodes=[], explore=explore, metrics=None)
    assert MASK_OBS not in out
    return out[Columns.ACTIONS], module.q_safe(obs, out[Columns.ACTIONS].unsqueeze(1)).squeeze(1)


def test_exploration_executes_only_safe_actions():
    torch.manual_seed(0)
    module = module_with_linear_safety_critic()
    module.mask_active.fill_(True)  # pretraining's warm-up is over
    for phase in ("pretrain", "finetune"):
        actions, q = run(module, explore=True, mean_a0=0.0, phase=phase)
        assert actions.shape == (64, 2)
        assert (q < EPS).all()


def test_deterministic_evaluation_takes_safe_mean_else_safest_sample():
    torch.manual_seed(0)
    module = module_with_linear_safety_critic()
    actions, q = run(module, explore=False, mean_a0=-0.5)  # the mean is safe: taken as is
    assert torch.allclose(actions[:, 0], torch.full((64,), -0.5), atol=1e-5)
    actions, q = run(module, explore=False, mean_a0=0.9)  # the mean is unsafe: the safest sample
    assert (actions[:, 0] < 0.9).all() and (q < torch.sigmoid(torch.tensor(10 * 0.9 - 2))).all()


def test_disabled_mask_passes_through():
    module = module_with_linear_safety_critic()
    batch = {Columns.ACTION_DIST_INPUTS: torch.zeros(4, 4), MASK_OBS: torch.zeros(4, 3)}
    out = SafetyMask(enabled=False)(rl_module=module, batch=batch, episodes=[], explore=True)
    assert Columns.ACTIONS not in out and MASK_OBS not in out
