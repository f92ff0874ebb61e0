"""benchmarks/mask_rule_probe.py's rules on a real SQRL RLModule with a hand-set Q_safe."""

import math
import pathlib
import sys

import gymnasium as gym
import numpy as np
import torch

from sqrl_rllib.algorithms.sqrl.torch.sqrl_torch_rl_module import SQRLTorchRLModule
from sqrl_rllib.core.networks import SafetyCritic

sys.path.insert(0, str(pathlib.Path(__file__).parents[2] / "benchmarks"))
from mask_rule_probe import choose  # noqa: E402

EPS = 0.2
SAFE_A0 = (math.log(EPS / (1 - EPS)) + 2) / 10  # Q_safe = sigmoid(10 a0 - 2) < EPS  <=>  a0 < SAFE_A0


def module() -> SQRLTorchRLModule:
    """pi: a wide Gaussian around 0; Q_safe(s, a) = sigmoid(10 * a[0] - 2) in every state."""
    m = SQRLTorchRLModule(
        observation_space=gym.spaces.Box(-1, 1, (3,), np.float32),
        action_space=gym.spaces.Box(-1, 1, (2,), np.float32),
        inference_only=True,
        model_config={"hidden": (8, 8)},
    )
    m.safety_critic = SafetyCritic(3, 2, hidden=())
    with torch.no_grad():
        m.safety_critic.net[0].weight.zero_()
        m.safety_critic.net[0].weight[0, 3] = 10.0
        m.safety_critic.net[0].bias.fill_(-2.0)
        m.policy.net[-1].weight.zero_()
        m.policy.net[-1].bias.copy_(torch.tensor([0.0, 0.0, 0.0, 0.0]))  # mean 0, std 1 before tanh
    m.mask_active.fill_(True)
    return m


def test_the_pretraining_rule_picks_safe_but_risky_the_fine_tuning_rule_any_safe_sample():
    m, obs = module(), np.zeros(3, np.float32)
    torch.manual_seed(0)
    pre = np.array([choose(m, obs, "pretrain", EPS, 64)[0] for _ in range(200)])
    fine = np.array([choose(m, obs, "finetune", EPS, 64)[0] for _ in range(200)])
    free = np.array([choose(m, obs, "unmasked", EPS, 64)[0] for _ in range(200)])
    assert (pre < SAFE_A0).all() and (fine < SAFE_A0).all()  # both masks keep only safe actions
    assert (free >= SAFE_A0).mean() > 0.3  # pi alone often is not (a0 ~ tanh(N(0, 1)))
    # Safe but risky: near the highest Q_safe below eps, i.e. a0 just under the threshold.
    assert np.median(pre) > SAFE_A0 - 0.1
    assert fine.mean() < SAFE_A0 - 0.3  # a uniform pick among the safe samples: spread over the safe side
