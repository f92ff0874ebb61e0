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
    """Pendulum never terminates: a predicate failure alone makes the step terminal (and not truncated)."""
    inner = gym.make("Pendulum-v1")
    env = with_failure(inner, lambda obs, r, term, info: r < -5)
    env.reset(seed=0)
    # Hanging straight down: reward -(pi^2) = -9.87 < -5, a failure although Pendulum says not terminated.
    inner.unwrapped.state = np.array([np.pi, 0.0])
    _, reward, terminated, truncated, info = env.step(np.zeros(1, np.float32))
    assert reward < -5
    assert info["failure"] is True and terminated is True and truncated is False
    # Upright: reward 0, no failure, and the wrapper leaves terminated as the env set it (False).
    env.reset(seed=0)
    inner.unwrapped.state = np.array([0.0, 0.0])
    _, reward, terminated, truncated, info = env.step(np.zeros(1, np.float32))
    assert reward > -5
    assert info["failure"] is False and terminated is False and truncated is False


def test_non_callable_predicate_is_rejected():
    with pytest.raises(ValueError, match="predicate"):
        with_failure(gym.make("Pendulum-v1"), "unhealthy")
