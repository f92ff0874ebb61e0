"""The stall probe's statistics on a module in a known trap: a saturated policy beside safe actions it never proposes.

1-D actions, Q_safe = 1[a < 0] (numerically): half the action box is safe. The policy's pre-tanh mean is a
constant, its std exp(log_std); with the mean at -3 every sample from pi lands in the unsafe half, so "no safe
pi sample" is 1 while "no safe grid action" is 0: the critic knows safe actions pi does not propose.
"""

import pathlib
import sys

import gymnasium as gym
import numpy as np
import torch

from sqrl_rllib.algorithms.sqrl.torch.sqrl_torch_rl_module import SQRLTorchRLModule
from sqrl_rllib.core.networks import SafetyCritic

sys.path.insert(0, str(pathlib.Path(__file__).parents[2] / "benchmarks"))
from stall_probe import probe  # noqa: E402


def trapped_module(mean: float, log_std: float) -> SQRLTorchRLModule:
    """A module whose policy is N(mean, exp(log_std)) before tanh in every state and whose Q_safe is 1[a < 0]."""
    module = SQRLTorchRLModule(
        observation_space=gym.spaces.Box(-1, 1, (2,), np.float32),
        action_space=gym.spaces.Box(-1, 1, (1,), np.float32),
        model_config={"hidden": (4,)},
    )
    module.safety_critic = SafetyCritic(2, 1, hidden=())
    with torch.no_grad():
        critic = module.safety_critic.net[0]
        critic.weight.zero_()
        critic.weight[0, 2] = -1e4  # logit -1e4 * a: unsafe below 0
        critic.bias.zero_()
        head = module.policy.net[-1]
        head.weight.zero_()
        head.bias.copy_(torch.tensor([mean, log_std]))
    return module


def test_probe_sees_a_saturated_policy_beside_safe_actions():
    obs = np.random.default_rng(0).uniform(-1, 1, (500, 2)).astype(np.float32)
    trapped = probe(trapped_module(mean=-3.0, log_std=np.log(0.2)), obs, k=50, eps=0.1)
    assert trapped["no safe pi sample"] == 1.0
    assert trapped["no safe grid action"] == 0.0
    assert trapped["E[Q_safe(s,pi)]"] > 0.99
    assert abs(trapped["|pre-tanh mean| median"] - 3.0) < 1e-5
    assert abs(trapped["std median"] - 0.2) < 1e-5

    # A policy centred in the safe half proposes safe actions in (almost) every state.
    healthy = probe(trapped_module(mean=1.0, log_std=np.log(0.2)), obs, k=50, eps=0.1)
    assert healthy["no safe pi sample"] == 0.0
    assert healthy["E[Q_safe(s,pi)]"] < 0.01
