"""Bad env output stops at the step that produced it, with the env, the step and the value (issue 19)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from sqrl_rllib.envs import ENV_IDS, EnvOutputError, with_failure
from sqrl_rllib.envs.rllib import make_env


class Broken(gym.Env):
    """A 3-D point env that misbehaves at step ``at`` in the way ``how`` says."""

    observation_space = gym.spaces.Box(-1.0, 1.0, shape=(3,), dtype=np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)

    def __init__(self, how: str, at: int = 3):
        self.how, self.at, self.t = how, at, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(3, np.float32), {"failure": False}

    def step(self, action):
        self.t += 1
        obs, reward, info = np.zeros(3, np.float32), 0.0, {"failure": False}
        if self.t == self.at:
            if self.how == "nan_obs":
                obs[1] = np.nan
            elif self.how == "inf_reward":
                reward = float("inf")
            elif self.how == "none_reward":
                reward = None
            elif self.how == "shape":
                obs = np.zeros(4, np.float32)
            elif self.how == "dtype":
                obs = np.array(["a", "b", "c"])
            elif self.how == "failure_int":
                info["failure"] = 1
            elif self.how == "no_failure":
                info = {}
        return obs, reward, False, False, info


@pytest.mark.parametrize(
    "how, words",
    [
        ("nan_obs", "non-finite values at flat index [1]"),
        ("inf_reward", "reward inf is not a finite number"),
        ("none_reward", "reward None"),
        ("shape", "shape (4,) differs from the declared (3,)"),
        ("dtype", "does not cast"),
        ("failure_int", 'info["failure"]=1 is not a bool'),
        ("no_failure", 'no "failure" key'),
    ],
)
def test_bad_output_raises_at_its_step_naming_env_step_and_value(how, words):
    env = with_failure(Broken(how), lambda obs, r, term, info: bool(info.get("failure", False)))
    if how in ("failure_int", "no_failure"):  # with_failure always sets a bool: check the bare env
        from sqrl_rllib.envs.checked import CheckedEnv

        env = CheckedEnv(Broken(how), name="Broken")
    env.reset(seed=0)
    env.step(env.action_space.sample())
    env.step(env.action_space.sample())
    with pytest.raises(EnvOutputError) as err:
        env.step(env.action_space.sample())
    assert "Broken" in str(err.value) and "step 3" in str(err.value) and words in str(err.value)


@pytest.mark.parametrize("env_id", sorted(ENV_IDS))
def test_shipped_envs_pass_the_checks(env_id):
    env = make_env(env_id)({"task": "pretrain"})
    env.reset(seed=0)
    for _ in range(5):
        *_, terminated, truncated, _info = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
    env.close()
