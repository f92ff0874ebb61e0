"""The failure-signal contract, and a wrapper that puts any gymnasium env under it.

Contract (every sqrl env): ``info["failure"]`` is a bool on every step and ``False`` from reset;
a failure sets ``terminated=True``; reaching the episode length is ``truncated`` and never a failure.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym

FailurePredicate = Callable[[Any, float, bool, dict], bool]


class WithFailure(gym.Wrapper):
    """Adds ``info["failure"] = predicate(obs, reward, terminated, info)`` to every step.

    A failure forces ``terminated=True`` (failure states are terminal in SQRL) and clears
    ``truncated`` so that a failure is never mistaken for a timeout.
    """

    def __init__(self, env: gym.Env, predicate: FailurePredicate):
        if not callable(predicate):
            raise ValueError(f"with_failure: predicate must be callable, got {type(predicate).__name__}")
        super().__init__(env)
        self.predicate = predicate

    def reset(self, **kwargs):
        """Reset the inner env; ``info["failure"]`` is False."""
        obs, info = self.env.reset(**kwargs)
        info = dict(info)
        info["failure"] = False
        return obs, info

    def step(self, action):
        """Step the inner env and evaluate the failure predicate."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        info = dict(info)
        failure = bool(self.predicate(obs, reward, terminated, info))
        info["failure"] = failure
        if failure:
            terminated, truncated = True, False
        return obs, reward, bool(terminated), bool(truncated), info


def with_failure(env: gym.Env, predicate: FailurePredicate, bad_output: str = "raise") -> gym.Env:
    """Wrap ``env`` so it follows the sqrl failure contract, with ``predicate`` deciding failure.

    The result is also output-checked (``CheckedEnv``): a NaN observation or reward raises at that step,
    or with ``bad_output="drop_episode"`` ends its episode there (``sqrl_rllib.envs.checked``).

    Example, a MuJoCo Hopper whose "unhealthy" termination is a failure::

        env = with_failure(gym.make("Hopper-v5"), lambda obs, r, terminated, info: terminated)
    """
    from sqrl_rllib.envs.checked import CheckedEnv

    return CheckedEnv(WithFailure(env, predicate), bad_output=bad_output)


def terminated_is_failure(obs, reward, terminated, info) -> bool:
    """Predicate: every termination (not truncation) is a failure, e.g. a fallen robot."""
    return bool(terminated)
