"""with_failure turns any gymnasium env into one that follows the failure contract."""

import gymnasium as gym
import numpy as np
import pytest

from sqrl_rllib.envs import terminated_is_failure, with_failure


def test_hopper_unhealthy_termination_is_a_failure():
    env = with_failure(gym.make("Hopper-v5"), terminated_is_failure)
    obs, info = env.reset(seed=0)
    assert info["failure"] is False
    rng = np.random.default_rng(0)
    for _ in range(1000):
        obs, reward, terminated, truncated, info = env.step(rng.uniform(-1, 1, 3))
        assert isinstance(info["failure"], bool)
        if terminated or truncated:
            break
    assert terminated and info["failure"] and not truncated


def test_predicate_can_fail_without_env_termination():
    env = with_failure(gym.make("Pendulum-v1"), lambda obs, r, term, info: r < -5)
    env.reset(seed=0)
    *_, terminated, truncated, info = env.step(np.zeros(1, np.float32))
    assert info["failure"] == terminated


def test_non_callable_predicate_is_rejected():
    with pytest.raises(ValueError, match="predicate"):
        with_failure(gym.make("Pendulum-v1"), "unhealthy")
