"""Tests for the pybullet Minitaur envs (sqrl/MinitaurVelocity-v0, sqrl/MinitaurFriction-v0)."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import sqrl_rllib.envs  # noqa: F401  (registers the ids)
from sqrl_rllib.envs.minitaur import (
    ACCELERATION_PENALTY,
    ACTION_SCALE,
    MAX_FRONT_SWING,
    OBS_DIM,
    MinitaurEnv,
    MinitaurFrictionEnv,
    MinitaurVelocityEnv,
    leg_model_to_motor_angles,
    motor_angles_to_leg_model,
    motor_torques,
)

IDS = ("sqrl/MinitaurVelocity-v0", "sqrl/MinitaurFriction-v0")
TASKS = ("pretrain", "finetune")


@pytest.fixture
def make():
    """Factory for Minitaur envs that closes (disconnects) every env it made."""
    envs = []

    def _make(cls=MinitaurVelocityEnv, **kwargs):
        env = cls(**kwargs)
        envs.append(env)
        return env

    yield _make
    for env in envs:
        env.close()


def violent_action(t: int) -> np.ndarray:
    """All legs at +1 for 5 control steps, then -1 for 5 (a 5 Hz full-range square wave)."""
    return np.full(8, 1.0 if (t // 5) % 2 == 0 else -1.0, dtype=np.float32)


def rollout(env: MinitaurEnv, seed: int, steps: int, action_seed: int = 1):
    """Reset with ``seed`` and apply seeded uniform random actions; returns stacked obs and rewards."""
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(action_seed)
    observations, rewards = [obs], []
    for _ in range(steps):
        obs, reward, terminated, truncated, _ = env.step(rng.uniform(-1, 1, 8).astype(np.float32))
        observations.append(obs)
        rewards.append(reward)
        if terminated or truncated:
            break
    return np.stack(observations), np.array(rewards)


@pytest.mark.parametrize("env_id", IDS)
@pytest.mark.parametrize("task", TASKS)
def test_check_env(env_id, task):
    """The gymnasium env checker passes for both ids and both tasks."""
    env = gym.make(env_id, task=task)
    try:
        check_env(env.unwrapped, skip_render_check=True)
    finally:
        env.close()


def test_spaces_and_reset_contract(make):
    """Float32 Box spaces of the documented shapes; reset gives failure=False."""
    env = make()
    assert env.observation_space.shape == (OBS_DIM,)
    assert env.observation_space.dtype == np.float32
    assert env.action_space.shape == (8,)
    assert np.all(env.action_space.low == -1) and np.all(env.action_space.high == 1)
    obs, info = env.reset(seed=0)
    assert obs.dtype == np.float32 and obs.shape == (OBS_DIM,)
    assert env.observation_space.contains(obs)
    assert info["failure"] is False


def test_seeding_reproduces_episodes(make):
    """The same seed and actions give identical episodes, in the same env or a new one."""
    first, second = make(randomize_physics=True), make(randomize_physics=True)
    obs_a, rew_a = rollout(first, seed=3, steps=60)
    rollout(first, seed=4, steps=60)  # a different episode in between must not leak into the next
    obs_b, rew_b = rollout(first, seed=3, steps=60)
    obs_c, rew_c = rollout(second, seed=3, steps=60)
    np.testing.assert_array_equal(obs_a, obs_b)
    np.testing.assert_array_equal(rew_a, rew_b)
    np.testing.assert_array_equal(obs_a, obs_c)
    np.testing.assert_array_equal(rew_a, rew_c)


def test_reset_after_a_fall_is_reproducible(make):
    """A fall leaves no trace in the simulator state after the next reset."""
    env = make(MinitaurFrictionEnv)
    before, _ = rollout(env, seed=0, steps=30)
    env.reset(seed=1)
    for t in range(500):
        if env.step(violent_action(t))[2]:
            break
    after, _ = rollout(env, seed=0, steps=30)
    np.testing.assert_array_equal(before, after)


def test_zero_action_does_not_fall(make):
    """Holding the standing pose for 50 steps neither falls nor ends the episode."""
    env = make()
    env.reset(seed=0)
    for _ in range(50):
        obs, reward, terminated, truncated, info = env.step(np.zeros(8, dtype=np.float32))
        assert not terminated and not truncated
        assert info["failure"] is False
        assert env.observation_space.contains(obs)
    assert env.base_position[2] > 0.2


@pytest.mark.parametrize("cls", [MinitaurVelocityEnv, MinitaurFrictionEnv])
def test_violent_actions_fall_and_terminate(make, cls):
    """A full-range square wave on all legs falls: terminated with failure=True."""
    env = make(cls)
    env.reset(seed=0)
    for t in range(500):
        obs, reward, terminated, truncated, info = env.step(violent_action(t))
        assert isinstance(info["failure"], bool)
        assert info["failure"] == terminated
        if terminated:
            break
    assert terminated and info["failure"] and not truncated, f"no fall after {t + 1} steps"


def test_truncation_is_never_a_failure(make):
    """Reaching max_episode_steps is truncated, not terminated, and not a failure."""
    env = make(max_episode_steps=15)
    env.reset(seed=0)
    for t in range(15):
        _, _, terminated, truncated, info = env.step(np.zeros(8, dtype=np.float32))
        assert truncated == (t == 14)
        assert not terminated and info["failure"] is False


def test_task_parameters_read_back(make):
    """Goal velocity and simulator foot friction match the tasks and overrides."""
    velocity = {task: make(MinitaurVelocityEnv, task=task) for task in TASKS}
    friction = {task: make(MinitaurFrictionEnv, task=task) for task in TASKS}
    assert velocity["pretrain"].goal_velocity == pytest.approx(0.3)
    assert velocity["finetune"].goal_velocity == pytest.approx(0.4)
    assert velocity["finetune"].foot_friction == pytest.approx(1.0)
    assert friction["pretrain"].foot_friction == pytest.approx(1.0)
    assert friction["finetune"].foot_friction == pytest.approx(1.25)
    np.testing.assert_allclose(friction["finetune"].foot_frictions(), 1.25)
    assert len(friction["finetune"].foot_frictions()) == 8
    assert friction["finetune"].goal_velocity == pytest.approx(0.3)
    custom = make(MinitaurFrictionEnv, task="finetune", foot_friction=0.7, goal_velocity=0.5)
    assert custom.foot_friction == pytest.approx(0.7) and custom.goal_velocity == pytest.approx(0.5)
    assert custom.reset(seed=0)[1]["goal_velocity"] == pytest.approx(0.5)


def test_friction_changes_the_dynamics(make):
    """Foot friction reaches the simulator: the same actions give different motion."""
    low, high = make(foot_friction=0.3), make(foot_friction=1.25)
    obs_low, _ = rollout(low, seed=0, steps=40)
    obs_high, _ = rollout(high, seed=0, steps=40)
    assert not np.array_equal(obs_low[: len(obs_high)], obs_high[: len(obs_low)])


def test_randomize_physics(make):
    """Randomized friction and base mass stay in range, vary by seed and reproduce."""
    env = make(MinitaurFrictionEnv, task="finetune", randomize_physics=True)
    nominal_mass = make().base_mass
    frictions, masses = set(), set()
    for seed in range(4):
        env.reset(seed=seed)
        assert 1.25 * 0.8 <= env.foot_friction <= 1.25 * 1.5
        assert 0.8 * nominal_mass <= env.base_mass <= 1.2 * nominal_mass
        frictions.add(round(env.foot_friction, 6))
        masses.add(round(env.base_mass, 6))
    assert len(frictions) == 4 and len(masses) == 4
    env.reset(seed=2)
    friction_2 = env.foot_friction
    env.reset(seed=5)
    env.reset(seed=2)
    assert env.foot_friction == friction_2


def test_reward_matches_the_authors_formula(make):
    """Reward r = v_goal - |v_goal - v| - 0.01 * mean|a_t - 2 a_{t-1} + a_{t-2}|, a = 0.5 x action."""
    env = make(MinitaurVelocityEnv, task="finetune")
    env.reset(seed=0)
    # Constant actions have zero acceleration (before step 0 every action counts as a_0).
    for _ in range(3):
        _, reward, _, _, info = env.step(np.full(8, 0.3, dtype=np.float32))
        v = float(np.clip(info["forward_velocity"], -0.8, 0.8))
        assert reward == pytest.approx(0.4 - abs(0.4 - v), abs=1e-12)
    _, reward, _, _, info = env.step(np.full(8, -0.7, dtype=np.float32))
    v = float(np.clip(info["forward_velocity"], -0.8, 0.8))
    penalty = ACCELERATION_PENALTY * ACTION_SCALE * 1.0  # |a_t - 2 a_{t-1} + a_{t-2}| = 0.5 * |-0.7 - 0.3|
    assert reward == pytest.approx(0.4 - abs(0.4 - v) - penalty, abs=1e-12)


def test_observation_holds_action_history(make):
    """The last 40 observation values are the previous 5 actions, newest first."""
    env = make()
    env.reset(seed=0)
    actions = [np.full(8, k / 10, dtype=np.float32) for k in range(1, 7)]
    for action in actions:
        obs, *_ = env.step(action)
    history = obs[-5 * 8 :].reshape(5, 8)
    np.testing.assert_allclose(history, np.stack(actions[::-1][:5]), atol=1e-7)


def test_envs_in_one_process_are_independent(make):
    """Interleaved envs in one process do not disturb each other."""
    solo = make()
    reference, _ = rollout(solo, seed=0, steps=20)
    quiet, noisy = make(), make()
    quiet_obs = [quiet.reset(seed=0)[0]]
    noisy.reset(seed=0)
    rng = np.random.default_rng(1)
    for t in range(20):
        noisy.step(violent_action(t))
        quiet_obs.append(quiet.step(rng.uniform(-1, 1, 8).astype(np.float32))[0])
    np.testing.assert_array_equal(np.stack(quiet_obs), reference)
    assert len({solo.physics_client, quiet.physics_client, noisy.physics_client}) == 3


def test_close_is_idempotent():
    """close() disconnects the pybullet client and may be called twice."""
    env = MinitaurVelocityEnv()
    env.close()
    env.close()
    assert env.physics_client == -1


def test_render_rgb_array(make):
    """render_mode='rgb_array' gives a non-blank uint8 image headless."""
    env = make(render_mode="rgb_array")
    env.reset(seed=0)
    image = env.render()
    assert image.shape == (240, 320, 3) and image.dtype == np.uint8
    assert image.std() > 0


def test_fall_criteria():
    """Fall: base up-axis z < 0.85, base height < 0.13 m, or a front leg swing > 0.8 rad."""
    standing = np.tile([2.0], 8)
    upright = (0.0, 0.0, 0.0, 1.0)
    assert not MinitaurEnv._fallen((0, 0, 0.25), upright, standing)
    assert MinitaurEnv._fallen((0, 0, 0.12), upright, standing)
    half = math.radians(35) / 2  # tilt 35 deg: cos = 0.82 < 0.85
    assert MinitaurEnv._fallen((0, 0, 0.25), (math.sin(half), 0.0, 0.0, math.cos(half)), standing)
    half = math.radians(25) / 2  # tilt 25 deg: cos = 0.91
    assert not MinitaurEnv._fallen((0, 0, 0.25), (0.0, math.sin(half), 0.0, math.cos(half)), standing)
    for leg in (0, 2):  # front legs only
        pose = np.array([0.0] * 4 + [2.0] * 4)
        pose[leg] = MAX_FRONT_SWING + 0.05
        assert MinitaurEnv._fallen((0, 0, 0.25), upright, leg_model_to_motor_angles(pose))
    pose = np.array([0.0, MAX_FRONT_SWING + 0.05, 0.0, 0.0] + [2.0] * 4)  # a back leg may swing more
    assert not MinitaurEnv._fallen((0, 0, 0.25), upright, leg_model_to_motor_angles(pose))


def test_leg_model_and_motor_model():
    """Leg model round-trips; the motor model saturates at 3.5 N m and has back-EMF."""
    rng = np.random.default_rng(0)
    pose = rng.uniform(-1, 3, 8)
    np.testing.assert_allclose(motor_angles_to_leg_model(leg_model_to_motor_angles(pose)), pose)
    np.testing.assert_allclose(leg_model_to_motor_angles(np.array([0.0] * 4 + [2.0] * 4)), 2.0)
    torque = motor_torques(np.full(8, 3.0), np.zeros(8), np.zeros(8))
    np.testing.assert_allclose(torque, 3.5)  # saturated current-torque curve
    assert np.all(motor_torques(np.zeros(8), np.full(8, 0.01), np.zeros(8)) < 0)
    # Back-EMF: a motor already spinning fast forward gets less torque for the same command.
    assert motor_torques(np.ones(1), np.zeros(1), np.full(1, 100.0))[0] < 3.5


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"task": "transfer"}, "task"),
        ({"foot_friction": 0.0}, "foot_friction"),
        ({"foot_friction": -1.0}, "foot_friction"),
        ({"foot_friction": float("nan")}, "foot_friction"),
        ({"goal_velocity": -0.1}, "goal_velocity"),
        ({"goal_velocity": 0.9}, "goal_velocity"),
        ({"goal_velocity": "fast"}, "goal_velocity"),
        ({"foot_friction": None, "goal_velocity": float("inf")}, "goal_velocity"),
        ({"randomize_physics": "yes"}, "randomize_physics"),
        ({"max_episode_steps": 0}, "max_episode_steps"),
        ({"max_episode_steps": 2.5}, "max_episode_steps"),
        ({"render_mode": "human"}, "render_mode"),
    ],
)
@pytest.mark.parametrize("cls", [MinitaurVelocityEnv, MinitaurFrictionEnv])
def test_bad_inputs_raise(cls, kwargs, name):
    """Bad constructor arguments raise ValueError naming the parameter."""
    with pytest.raises(ValueError, match=name):
        cls(**kwargs)


def test_unknown_task_lists_valid_values():
    """An unknown task through gym.make lists the valid tasks."""
    with pytest.raises(ValueError, match="finetune") as excinfo:
        gym.make("sqrl/MinitaurFriction-v0", task="transfer")
    assert "pretrain" in str(excinfo.value)
