"""DrunkSpider: the authors' map, reward shaping, failure contract and gymnasium compliance."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import sqrl_rllib.envs  # noqa: F401
from sqrl_rllib.envs.drunk_spider import DrunkSpiderEnv, is_lava


@pytest.mark.parametrize("task", ["pretrain", "finetune"])
def test_check_env(task):
    check_env(gym.make("sqrl/DrunkSpider-v0", task=task).unwrapped, skip_render_check=True)


def test_tasks_differ_in_noise():
    assert gym.make("sqrl/DrunkSpider-v0", task="pretrain").unwrapped.action_noise == 0.1
    assert gym.make("sqrl/DrunkSpider-v0", task="finetune").unwrapped.action_noise == 0.2


def test_noise_levels_draw_one_magnitude_per_episode_reproducibly():
    levels = np.linspace(0.0, 0.4, 10).tolist()

    def drawn(seed):
        env = gym.make("sqrl/DrunkSpider-v0", action_noise_levels=levels).unwrapped
        env.reset(seed=seed)
        out = [env.action_noise]
        for _ in range(199):
            env.reset()
            out.append(env.action_noise)
        return out

    first = drawn(0)
    assert set(first) == set(levels)  # 200 draws hit all 10 levels
    assert first == drawn(0) and first != drawn(1)
    # The drawn magnitude is the one the step applies: zero noise moves exactly by the action.
    env = DrunkSpiderEnv(action_noise_levels=[0.0])
    env.reset(seed=0)
    obs, *_ = env.step(np.array([0.5, 0.0], np.float32))
    assert np.allclose(obs, [0.5, 3.0])


def test_seeding_reproduces_episodes():
    def rollout(seed):
        env = DrunkSpiderEnv(task="finetune", noise_type="gaussian")
        obs, _ = env.reset(seed=seed)
        trace = [obs]
        rng = np.random.default_rng(0)
        for _ in range(30):
            obs, r, term, trunc, _ = env.step(rng.uniform(-1, 1, 2))
            trace.append(np.append(obs, r))
            if term or trunc:
                break
        return np.concatenate(trace)

    assert np.array_equal(rollout(3), rollout(3))
    assert not np.array_equal(rollout(3), rollout(4))


def walk(env, actions):
    out = []
    for a in actions:
        out.append(env.step(np.asarray(a, np.float32)))
        if out[-1][2] or out[-1][3]:
            break
    return out


def test_bridge_centre_walk_reaches_goal_without_failure():
    env = DrunkSpiderEnv(action_noise=0.0)
    obs, info = env.reset(seed=0)
    assert info["failure"] is False and tuple(obs) == (0.0, 3.0)
    steps = walk(env, [(0.5, 0.5)] + [(1.0, 0.0)] * 10)
    obs, reward, terminated, truncated, info = steps[-1]
    assert terminated and not truncated
    assert info["success"] and not info["failure"]
    assert all(not s[4]["failure"] for s in steps)
    assert reward > 1.0  # success reward plus the remaining-steps bonus


def test_stepping_sideways_into_lava_fails_and_terminates():
    env = DrunkSpiderEnv(action_noise=0.0)
    env.reset(seed=0)
    steps = walk(env, [(0.5, 0.5), (1.0, 0.0), (1.0, 0.0), (0.0, -1.0)])
    obs, reward, terminated, truncated, info = steps[-1]
    assert info["failure"] and terminated and not truncated
    assert is_lava(*env._pos)  # float32 obs may round 2.9999 up to the cell edge
    assert reward < -20  # -1 - (remaining + 1)


def test_timeout_truncates_without_failure():
    env = DrunkSpiderEnv(action_noise=0.0)
    env.reset(seed=0)
    steps = walk(env, [(0.0, 0.0)] * 40)
    assert len(steps) == 30
    obs, reward, terminated, truncated, info = steps[-1]
    assert truncated and not terminated and not info["failure"]
    assert reward <= -30


def episode_return(env, moves):
    return sum(step[1] for step in walk(env, moves))


@pytest.mark.parametrize("fail_at", [1, 10, 29])
def test_below_timeout_penalty_makes_every_failure_worse_than_a_timeout(fail_at):
    """Authors' shaping: failing early beats timing out (the pretraining stall); below_timeout reverses it."""
    stay = [(0.0, 0.0)] * (fail_at - 1)
    returns = {}
    for penalty in ("authors", "below_timeout"):
        env = DrunkSpiderEnv(action_noise=0.0, failure_penalty=penalty)
        env.reset(seed=0)
        timeout = episode_return(env, stay + [(0.0, 0.0)] * (31 - fail_at))
        env.reset(seed=0)
        failure = episode_return(env, stay + [(-1.0, 0.0)])
        returns[penalty] = (failure, timeout)
    authors_failure, authors_timeout = returns["authors"]
    below_failure, below_timeout = returns["below_timeout"]
    assert below_timeout == pytest.approx(authors_timeout)  # only failures change
    assert below_failure == pytest.approx(authors_failure - 30.0)
    assert below_failure < below_timeout
    if fail_at < 20:
        assert authors_failure > authors_timeout  # the incentive the option removes


def test_leaving_the_map_is_a_failure():
    env = DrunkSpiderEnv(action_noise=0.0)
    env.reset(seed=0)
    *_, info = env.step(np.array([-1.0, 0.0], np.float32))
    assert info["failure"]


def test_gaussian_noise_makes_bridge_risky():
    """Spec section 6: Gaussian noise 0.2 makes holding the bridge centre fail sometimes; uniform never."""

    def failure_rate(noise_type, n=300):
        env = DrunkSpiderEnv(action_noise=0.2, noise_type=noise_type)
        fails = 0
        for seed in range(n):
            env.reset(seed=seed)
            walk(env, [(0.5, 0.5)])
            while True:
                row, col = env._pos
                obs, r, term, trunc, info = env.step(np.array([1.0, np.clip(3.5 - col, -1, 1)], np.float32))
                if term or trunc:
                    fails += info["failure"]
                    break
        return fails / n

    assert failure_rate("uniform") == 0.0
    assert 0.01 < failure_rate("gaussian") < 0.2


def test_render_shows_map_and_trajectory():
    env = DrunkSpiderEnv(render_mode="rgb_array", action_noise=0.0)
    env.reset(seed=0)
    env.step(np.array([1.0, 0.5], np.float32))
    img = env.render()
    assert img.shape == (256, 224, 3) and img.dtype == np.uint8
    assert (img == np.array([200, 40, 20], np.uint8)).all(-1).any()  # lava
    assert (img == np.array([30, 60, 220], np.uint8)).all(-1).any()  # trajectory


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"task": "transfer"}, "task"),
        ({"action_noise": -0.1}, "action_noise"),
        ({"noise_type": "pink"}, "noise_type"),
        ({"failure_penalty": "harsh"}, "failure_penalty"),
        ({"action_noise_levels": []}, "action_noise_levels"),
        ({"action_noise_levels": [0.1, -0.2]}, "action_noise_levels"),
        ({"action_noise_levels": ["loud"]}, "action_noise_levels"),
        ({"action_noise_levels": [0.1], "action_noise": 0.2}, "action_noise_levels"),
        ({"layout": "maze"}, "layout"),
    ],
)
def test_bad_input_names_the_parameter(kwargs, name):
    with pytest.raises(ValueError, match=name):
        gym.make("sqrl/DrunkSpider-v0", **kwargs)


def test_reset_can_start_from_a_given_position():
    env = DrunkSpiderEnv(task="pretrain", action_noise=0.0)
    obs, _ = env.reset(seed=0, options={"position": (5.5, 1.5)})
    assert np.allclose(obs, [5.5, 1.5])
    # One cell to the right of (5.5, 1.5) is lava (row 5, col 2).
    _, _, terminated, _, info = env.step(np.array([0.0, 1.0]))
    assert terminated and info["failure"]
    obs, _ = env.reset()
    assert np.allclose(obs, [0.0, 3.0]), "a plain reset goes back to the start"


@pytest.mark.parametrize("position", [(3.5, 2.5), (-0.5, 3.0), (8.5, 1.0)])
def test_reset_rejects_a_position_in_lava_or_off_the_map(position):
    with pytest.raises(ValueError, match="outside the map or in lava"):
        DrunkSpiderEnv().reset(seed=0, options={"position": position})


def test_long_detour_layout_walls_off_the_authors_detours_and_opens_a_corridor_at_cols_9_to_11():
    env = DrunkSpiderEnv(task="finetune", layout="long_detour", action_noise=0.0)
    check_env(env, skip_render_check=True)
    assert env.observation_space.high.tolist() == [8.0, 11.0]
    for position in [(3.5, 1.3), (3.5, 5.7), (4.5, 8.5)]:  # the authors' detours and the widened pits
        with pytest.raises(ValueError, match="in lava"):
            env.reset(seed=0, options={"position": position})
    # The corridor and the bridge are free; the corridor's far side is the map's edge.
    obs, _ = env.reset(seed=0, options={"position": (3.5, 9.9)})
    _, _, terminated, _, _ = env.step(np.array([1.0, 0.0]))
    assert not terminated
    env.reset(seed=0, options={"position": (3.5, 10.5)})
    _, _, terminated, _, info = env.step(np.array([0.0, 1.0]))
    assert terminated and info["failure"], "col 11.5 is off the map"
    # The bridge is where it was: the centre walk still reaches the goal.
    obs, _ = env.reset(seed=0)
    for _ in range(12):
        obs, reward, terminated, _, info = env.step(np.clip(np.array([1.0, 3.5 - obs[1]]), -1, 1))
        if terminated:
            break
    assert info["success"] and not info["failure"]
    img = DrunkSpiderEnv(layout="long_detour", render_mode="rgb_array").render()
    assert img.shape == (256, 352, 3)


def test_random_start_fraction_draws_that_share_of_starts_uniformly_over_the_free_map():
    env = DrunkSpiderEnv(layout="long_detour", random_start_fraction=0.5)
    env.reset(seed=3)
    starts = np.array([env.reset()[0] for _ in range(4000)], dtype=np.float64)
    at_start = np.all(starts == np.array([0.0, 3.0]), axis=1)
    assert 0.46 < at_start.mean() < 0.54
    drawn = starts[~at_start]
    assert not any(is_lava(r, c, env.layout.lava_cols) for r, c in drawn)
    assert np.all(np.linalg.norm(drawn - np.array([7.0, 3.0]), axis=1) >= 1.0), "never inside the goal disc"
    # The corridor (positions 9-11 beside the lava rows) gets its share of the free area: 8 of ~53 cells.
    corridor = (drawn[:, 0] >= 2) & (drawn[:, 0] < 6) & (drawn[:, 1] >= 9)
    assert 0.12 < corridor.mean() < 0.18
    assert drawn[:, 1].max() > 10.5 and drawn[:, 0].max() > 7.5
    # The task's default is the authors' fixed start.
    fixed = DrunkSpiderEnv(layout="long_detour")
    assert all(np.array_equal(fixed.reset(seed=s)[0], [0.0, 3.0]) for s in range(20))
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="random_start_fraction"):
            DrunkSpiderEnv(random_start_fraction=bad)


def test_start_positions_pick_uniformly_among_the_given_starts_and_reject_blocked_ones():
    env = DrunkSpiderEnv(layout="long_detour", start_positions=[(0.0, 3.0), (1.5, 9.9)])
    env.reset(seed=4)
    starts = np.array([env.reset()[0] for _ in range(2000)], dtype=np.float64)
    at_corridor = np.all(np.isclose(starts, [1.5, 9.9]), axis=1)
    at_start = np.all(starts == np.array([0.0, 3.0]), axis=1)
    assert np.all(at_corridor | at_start)
    assert 0.45 < at_corridor.mean() < 0.55
    # A random start still overrides the fixed ones for its share of resets.
    mixed = DrunkSpiderEnv(layout="long_detour", start_positions=[(1.5, 9.9)], random_start_fraction=0.5)
    mixed.reset(seed=1)
    drawn = np.array([mixed.reset()[0] for _ in range(1000)], dtype=np.float64)
    assert 0.4 < np.all(np.isclose(drawn, [1.5, 9.9]), axis=1).mean() < 0.6
    # One start given: every reset is there, and the default stream of a single start draws nothing extra.
    single = DrunkSpiderEnv(start_positions=[(0.0, 3.0)], action_noise=0.1)
    default = DrunkSpiderEnv(action_noise=0.1)
    for e in (single, default):
        e.reset(seed=7)
    assert np.array_equal(single.step(np.zeros(2))[0], default.step(np.zeros(2))[0])
    for bad, match in [
        ([(3.5, 2.5)], "in lava"),  # a lava cell of the authors' map
        ([(1.5, 9.9)], "outside the map"),  # col 9.9 is off the 7-column authors' map
        ([], "non-empty"),
        ([(1.0,)], "pairs"),
        ("start", "pairs"),
    ]:
        with pytest.raises(ValueError, match=match):
            DrunkSpiderEnv(start_positions=bad)
