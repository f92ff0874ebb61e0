"""Tests for the CubeRotate env (MuJoCo ShadowHand + block, gymnasium-robotics model)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest

# No importorskip: mujoco and gymnasium-robotics are pinned dependencies, so a broken install must fail
# this file (the env module imports both), not skip it.
import sqrl_rllib.envs  # noqa: F401  (registers the ids)
from sqrl_rllib.envs.cube_rotate import (
    TASK_GOALS,
    CubeRotateEnv,
    euler_to_quat,
    orientation_distance,
)

ENV_ID = "sqrl/CubeRotate-v0"
ZERO = np.zeros(20, dtype=np.float32)


@pytest.fixture(scope="module")
def env():
    """One pretrain env shared by the tests that reset it themselves."""
    e = CubeRotateEnv(task="pretrain")
    yield e
    e.close()


@pytest.mark.parametrize("task", ["pretrain", "finetune"])
def test_check_env(task):
    """gymnasium's env checker passes for both tasks."""
    from gymnasium.utils.env_checker import check_env

    e = gym.make(ENV_ID, task=task)
    with warnings.catch_warnings():
        # unbounded Box, like gymnasium's MuJoCo envs
        warnings.filterwarnings("ignore", message=".*infinity.*")
        check_env(e.unwrapped, skip_render_check=True)
    assert e.observation_space.shape == (24 + 24 + 3 + 4 + 6 + 4 + 7 * 20,)
    assert e.observation_space.dtype == np.float32
    assert e.action_space.shape == (20,)
    e.close()


def _rollout(e, seed, n_steps=40):
    obs, info = e.reset(seed=seed)
    rng = np.random.default_rng(123)
    out = [obs]
    rewards = []
    for _ in range(n_steps):
        obs, reward, terminated, truncated, _ = e.step(rng.uniform(-1, 1, 20).astype(np.float32))
        out.append(obs)
        rewards.append(reward)
        if terminated or truncated:
            break
    return e.episode_goals, np.array(out), np.array(rewards)


def test_seeding_reproducible():
    """The same seed and actions give the same goals, observations and rewards."""
    a, b = CubeRotateEnv(task="pretrain"), CubeRotateEnv(task="pretrain")
    goals_a, obs_a, rew_a = _rollout(a, seed=7)
    goals_b, obs_b, rew_b = _rollout(b, seed=7)
    assert goals_a == goals_b
    np.testing.assert_array_equal(obs_a, obs_b)
    np.testing.assert_array_equal(rew_a, rew_b)
    # A second reset with the same seed on a used env reproduces the episode too.
    goals_c, obs_c, _ = _rollout(a, seed=7)
    assert goals_c == goals_a
    np.testing.assert_array_equal(obs_c, obs_a)
    # Different seeds give different initial states.
    _, obs_d, _ = _rollout(b, seed=8, n_steps=0)
    assert not np.array_equal(obs_d[0], obs_a[0])


def test_task_goals_are_the_spec_rotations():
    """Pretrain goals are quarter-ish turns of 1.5 rad, finetune goals 2.2 rad."""
    assert TASK_GOALS["pretrain"] == {
        "left": (0.0, 0.0, -1.5),
        "right": (0.0, 0.0, 1.5),
        "up": (1.5, 0.0, 0.0),
        "down": (-1.5, 0.0, 0.0),
    }
    assert TASK_GOALS["finetune"] == {
        "more_left": (0.0, 0.0, -2.2),
        "more_right": (0.0, 0.0, 2.2),
        "more_up": (2.2, 0.0, 0.0),
        "more_down": (-2.2, 0.0, 0.0),
    }
    for task, angle in (("pretrain", 1.5), ("finetune", 2.2)):
        e = CubeRotateEnv(task=task)
        assert e.task_goals == TASK_GOALS[task]
        seen = set()
        for seed in range(12):
            e.reset(seed=seed)
            seen.update(e.episode_goals)
            assert set(e.episode_goals) <= set(e.task_goals)
            euler = e.goal_euler
            assert sorted(np.abs(euler)) == pytest.approx([0.0, 0.0, angle])
            # The goal quaternion in the observation is that rotation.
            obs = e._obs()
            np.testing.assert_allclose(obs[61:65], euler_to_quat(euler), atol=1e-6)
            assert orientation_distance(euler_to_quat(euler), [1.0, 0, 0, 0]) == pytest.approx(angle)
        assert seen == set(TASK_GOALS[task])  # all four goals get sampled
        e.close()


def test_goals_alternate_every_35_steps(env):
    """Steps 0-34 pursue the first goal, 35-69 the second, 70-99 the first again."""
    env.reset(seed=0, options={"goals": ("left", "up")})
    assert env.goal_name == "left"
    np.testing.assert_array_equal(env.goal_euler, [0.0, 0.0, -1.5])
    for t in range(100):
        expected = "left" if (t // 35) % 2 == 0 else "up"
        assert env.goal_name == expected
        _, _, terminated, truncated, info = env.step(ZERO)
        assert info["goal"] == expected
        assert not terminated
    assert truncated
    # Right after step 35 the observation already carries the second goal.
    env.reset(seed=0, options={"goals": ("right", "down")})
    for _ in range(35):
        obs, *_ = env.step(ZERO)
    np.testing.assert_allclose(env.goal_euler, [-1.5, 0.0, 0.0])
    np.testing.assert_allclose(obs[61:65], euler_to_quat((-1.5, 0.0, 0.0)), atol=1e-6)


def test_same_goals_and_fixed_goals():
    """``same_goals`` draws one goal for both halves; ``goals`` fixes the pair for every episode."""
    e = CubeRotateEnv(task="finetune", same_goals=True)
    for seed in range(5):
        e.reset(seed=seed)
        assert e.episode_goals[0] == e.episode_goals[1]
    f = CubeRotateEnv(task="finetune", goals=("more_up", "more_left"))
    for seed in range(3):
        f.reset(seed=seed)
        assert f.episode_goals == ("more_up", "more_left")


def test_reward_is_negative_orientation_distance(env):
    """Reward = -angle to the goal active during the step; the block at the goal scores ~0."""
    _, info = env.reset(seed=3, options={"goals": ("right", "right")})
    assert info["failure"] is False
    assert info["orientation_distance"] == pytest.approx(orientation_distance(env.cube_quat, env.goal_quat))
    _, reward, _, _, info = env.step(ZERO)
    assert reward == pytest.approx(-info["orientation_distance"])
    assert reward == pytest.approx(-orientation_distance(env.cube_quat, euler_to_quat((0, 0, 1.5))))
    assert -math.pi <= reward <= 0.0
    env.set_cube_pose(quat=euler_to_quat((0.0, 0.0, 1.5)))
    _, reward, _, _, _ = env.step(ZERO)
    assert -0.3 < reward <= 0.0


def test_orientation_distance_helpers():
    """The quaternion angle ignores the sign of the quaternion and matches the Euler angle."""
    q = euler_to_quat((0.3, -0.2, 1.0))
    assert orientation_distance(q, q) == pytest.approx(0.0, abs=1e-6)
    assert orientation_distance(q, -q) == pytest.approx(0.0, abs=1e-6)
    np.testing.assert_allclose(euler_to_quat((0, 0, 1.5)), [math.cos(0.75), 0, 0, math.sin(0.75)], atol=1e-12)
    assert orientation_distance(euler_to_quat((2.2, 0, 0)), euler_to_quat((-2.2, 0, 0))) == pytest.approx(
        2 * math.pi - 4.4
    )


def test_action_history_in_observation(env):
    """The last 7 actions sit at the end of the observation, most recent first."""
    obs, _ = env.reset(seed=1)
    np.testing.assert_array_equal(obs[-140:], 0.0)
    a1 = np.full(20, 0.25, dtype=np.float32)
    a2 = np.linspace(-0.5, 0.5, 20).astype(np.float32)
    env.step(a1)
    obs, *_ = env.step(a2)
    hist = obs[-140:].reshape(7, 20)
    np.testing.assert_allclose(hist[0], a2, atol=1e-6)
    np.testing.assert_allclose(hist[1], a1, atol=1e-6)
    np.testing.assert_array_equal(hist[2:], 0.0)
    obs, *_ = env.step(np.full(20, 5.0, dtype=np.float32))  # out of range: clipped
    np.testing.assert_allclose(obs[-140:-120], 1.0)


def test_drop_is_failure_and_terminal(env):
    """A block below the drop height is a failure: terminated, not truncated, -1000 penalty."""
    _, info = env.reset(seed=2)
    assert info["failure"] is False
    assert env.cube_height > env.drop_height
    env.drop_cube()
    assert env.cube_height < env.drop_height
    _, reward, terminated, truncated, info = env.step(ZERO)
    assert info["failure"] is True
    assert terminated is True and truncated is False
    assert -1000.0 - math.pi <= reward <= -1000.0
    # Penalty is configurable; moving the block directly through mujoco data also counts.
    e = CubeRotateEnv(drop_penalty=5.0)
    e.reset(seed=2)
    pos = e.cube_position
    e.set_cube_pose(position=(pos[0], pos[1], 0.05))
    _, reward, terminated, _, info = e.step(ZERO)
    assert info["failure"] and terminated
    assert -5.0 - math.pi <= reward <= -5.0
    # A drop on the last step is still a failure, not a timeout.
    e.reset(seed=4)
    for _ in range(99):
        e.step(ZERO)
    e.drop_cube()
    _, _, terminated, truncated, info = e.step(ZERO)
    assert info["failure"] and terminated and not truncated


def test_hundred_steps_without_drop_truncate(env):
    """Holding zero actions keeps the block on the palm; step 100 truncates without failure."""
    _, info = env.reset(seed=5)
    assert info["failure"] is False
    for t in range(100):
        _, reward, terminated, truncated, info = env.step(ZERO)
        assert info["failure"] is False
        assert not terminated
        assert truncated == (t == 99)
        assert reward > -math.pi
    assert env.cube_height > env.drop_height


@pytest.mark.parametrize(
    "kwargs, param",
    [
        ({"task": "train"}, "task"),
        ({"goals": ("left", "sideways")}, "goals"),
        ({"goals": ("more_left", "more_up")}, "goals"),  # finetune names under the pretrain task
        ({"goals": "left"}, "goals"),
        ({"goals": ("left",)}, "goals"),
        ({"drop_penalty": -1.0}, "drop_penalty"),
        ({"drop_penalty": float("nan")}, "drop_penalty"),
        ({"drop_height": 0.2}, "drop_height"),
        ({"drop_height": 0.0}, "drop_height"),
        ({"max_episode_steps": 0}, "max_episode_steps"),
        ({"goal_period": 0}, "goal_period"),
        ({"action_history": -1}, "action_history"),
        ({"render_mode": "human"}, "render_mode"),
    ],
)
def test_bad_constructor_inputs(kwargs, param):
    """Bad arguments raise ValueError naming the parameter."""
    with pytest.raises(ValueError, match=param):
        CubeRotateEnv(**kwargs)


def test_bad_runtime_inputs(env):
    """Bad reset options, actions and poses raise ValueError naming what is wrong."""
    with pytest.raises(ValueError, match="goals.*valid names"):
        env.reset(seed=0, options={"goals": ("left", "more_left")})
    with pytest.raises(ValueError, match="reset options"):
        env.reset(seed=0, options={"goal": ("left", "up")})
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action"):
        env.step(np.zeros(3))
    with pytest.raises(ValueError, match="position"):
        env.set_cube_pose(position=(1.0, 2.0))
    with pytest.raises(ValueError, match="quat"):
        env.set_cube_pose(quat=(0.0, 0.0, 0.0, 0.0))


_RENDER_SCRIPT = """
import numpy as np, gymnasium as gym, sqrl_rllib.envs
env = gym.make("sqrl/CubeRotate-v0", render_mode="rgb_array", width=64, height=48)
env.reset(seed=0)
img = env.render()
assert img.shape == (48, 64, 3) and img.dtype == np.uint8 and img.std() > 0, (img.shape, img.dtype)
env.close()
print("RENDER_OK")
"""


def test_headless_render():
    """rgb_array rendering works headless (EGL); skipped where no OpenGL backend is available."""
    environ = {k: v for k, v in os.environ.items() if k not in ("MUJOCO_GL", "PYOPENGL_PLATFORM", "DISPLAY")}
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    environ["PYTHONPATH"] = os.pathsep.join(p for p in (root, environ.get("PYTHONPATH")) if p)
    proc = subprocess.run(
        [sys.executable, "-c", _RENDER_SCRIPT],
        check=False,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if "RENDER_OK" not in proc.stdout:
        if "OpenGL" in proc.stderr or "EGL" in proc.stderr or "GLContext" in proc.stderr:
            pytest.skip(f"no headless OpenGL backend here: {proc.stderr.strip().splitlines()[-1]}")
        pytest.fail(f"render failed:\n{proc.stderr}")


def test_render_none_returns_none(env):
    """Without a render mode, render() warns and returns None."""
    env.reset(seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert env.render() is None
