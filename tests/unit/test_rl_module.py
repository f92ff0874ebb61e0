"""SQRL's RLModule training pass: which policy samples it returns and which carry gradients."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from ray.rllib.core.columns import Columns

from sqrl_rllib.algorithms.sqrl.torch.sqrl_torch_rl_module import (
    NEXT_ACTIONS,
    NEXT_LOGP,
    POLICY_ACTIONS,
    POLICY_LOGP,
    SAFE_NEXT_ACTIONS,
    SAFE_NEXT_OBS,
    SQRLTorchRLModule,
)

OBS_DIM, ACT_DIM = 3, 2


@pytest.fixture
def module():
    torch.manual_seed(0)
    return SQRLTorchRLModule(
        observation_space=gym.spaces.Box(-1, 1, (OBS_DIM,), np.float32),
        action_space=gym.spaces.Box(-1, 1, (ACT_DIM,), np.float32),
        model_config={"hidden": (8, 8)},
    )


def sac_rows(n):
    return {Columns.OBS: torch.randn(n, OBS_DIM), Columns.NEXT_OBS: torch.randn(n, OBS_DIM)}


def test_only_the_actor_sample_carries_gradients(module):
    out = module.forward_train({**sac_rows(5), SAFE_NEXT_OBS: torch.randn(7, OBS_DIM)})
    assert out[POLICY_ACTIONS].shape == (5, ACT_DIM) and out[POLICY_LOGP].shape == (5,)
    assert out[POLICY_ACTIONS].requires_grad and out[POLICY_LOGP].requires_grad
    assert out[NEXT_ACTIONS].shape == (5, ACT_DIM) and out[NEXT_LOGP].shape == (5,)
    assert out[SAFE_NEXT_ACTIONS].shape == (7, ACT_DIM)
    for key in (NEXT_ACTIONS, NEXT_LOGP, SAFE_NEXT_ACTIONS):
        assert not out[key].requires_grad, key
    assert out[SAFE_NEXT_ACTIONS].abs().max() <= 1.0


def test_next_actions_follow_each_rows_own_state(module):
    # Far-apart next states give a' from their own policy means (rows are not mixed up by the stacking).
    with torch.no_grad():
        module.policy.net[-1].bias[ACT_DIM:] = -20.0  # near-deterministic policy
    next_obs = torch.tensor([[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0]])
    safe_next = torch.tensor([[0.0, 1.0, 0.0]])
    out = module.forward_train(
        {Columns.OBS: torch.zeros(2, OBS_DIM), Columns.NEXT_OBS: next_obs, SAFE_NEXT_OBS: safe_next}
    )
    torch.testing.assert_close(out[NEXT_ACTIONS], module.policy.mean_action(next_obs), atol=1e-4, rtol=0)
    torch.testing.assert_close(out[SAFE_NEXT_ACTIONS], module.policy.mean_action(safe_next), atol=1e-4, rtol=0)


def test_safety_only_batch_gets_only_safety_next_actions(module):
    out = module.forward_train({SAFE_NEXT_OBS: torch.randn(4, OBS_DIM)})
    assert set(out) == {SAFE_NEXT_ACTIONS}
    assert out[SAFE_NEXT_ACTIONS].shape == (4, ACT_DIM)


def test_building_the_module_prints_no_deprecation_warning():
    """Issue 19: RLlib's RLModuleConfig shim must not warn users in every process that builds our module."""
    import subprocess
    import sys

    code = (
        "import gymnasium as gym, sqrl_rllib.envs\n"
        "from sqrl_rllib.algorithms.sqrl.torch.sqrl_torch_rl_module import SQRLTorchRLModule\n"
        "env = gym.make('sqrl/DrunkSpider-v0')\n"
        "SQRLTorchRLModule(observation_space=env.observation_space, action_space=env.action_space, model_config={})\n"
        "print('built')\n"
    )
    out = subprocess.run([sys.executable, "-W", "default", "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "built" in out.stdout, out.stderr
    assert "deprecat" not in (out.stdout + out.stderr).lower(), out.stderr
