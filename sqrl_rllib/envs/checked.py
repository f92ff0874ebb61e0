"""Catch bad env output where it happens, not as a NaN loss hundreds of updates later.

``CheckedEnv`` checks every reset and step: the observation has the declared space's shape, a dtype that
casts to the space's safely and only finite values; the reward is a finite number; ``info["failure"]``
exists and is a bool. A violation raises ``EnvOutputError`` naming the env, the step and the value. The
sqrl env ids are created checked (``sqrl_rllib.envs.rllib.make_env``), and so is every env wrapped by
``with_failure``.
"""

from __future__ import annotations

import math
import numbers

import gymnasium as gym
import numpy as np


class EnvOutputError(RuntimeError):
    """An env returned an observation, reward or failure flag that SQRL cannot learn from."""


class CheckedEnv(gym.Wrapper):
    """Validates the output of ``env`` on every reset and step (see the module docstring).

    Args:
        env: the env to check.
        name: how messages name it (default: its spec id, else its class name).
    """

    def __init__(self, env: gym.Env, name: str | None = None):
        super().__init__(env)
        self.env_name = name or (env.spec.id if env.spec is not None else type(env.unwrapped).__name__)
        self._step = 0

    def reset(self, **kwargs):
        """Reset and check the first observation and ``info["failure"]``."""
        obs, info = self.env.reset(**kwargs)
        self._step = 0
        self._check_obs(obs, "reset")
        self._check_failure(info, "reset")
        return obs, info

    def step(self, action):
        """Step and check observation, reward and ``info["failure"]``."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._step += 1
        where = f"step {self._step}"
        self._check_obs(obs, where)
        if isinstance(reward, bool) or not isinstance(reward, numbers.Real | np.number) or not math.isfinite(reward):
            self._fail(where, f"reward {reward!r} is not a finite number")
        self._check_failure(info, where)
        return obs, reward, terminated, truncated, info

    def _check_obs(self, obs, where: str) -> None:
        space = self.observation_space
        if not isinstance(space, gym.spaces.Box):
            return
        array = np.asarray(obs)
        if array.shape != space.shape:
            self._fail(where, f"observation shape {array.shape} differs from the declared {space.shape}")
        if not np.can_cast(array.dtype, space.dtype, casting="same_kind"):
            self._fail(where, f"observation dtype {array.dtype} does not cast to the declared {space.dtype}")
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            bad = np.flatnonzero(~np.isfinite(array.reshape(-1)))
            self._fail(where, f"observation has non-finite values at flat index {bad[:5].tolist()}: {array!r}")

    def _check_failure(self, info, where: str) -> None:
        if "failure" not in info:
            self._fail(where, 'info has no "failure" key (wrap the env with sqrl_rllib.envs.with_failure)')
        if not isinstance(info["failure"], bool | np.bool_):
            self._fail(where, f'info["failure"]={info["failure"]!r} is not a bool')

    def _fail(self, where: str, what: str):
        raise EnvOutputError(f"env {self.env_name}, {where}: {what}")
