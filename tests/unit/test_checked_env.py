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


class BreaksEvery(gym.Env):
    """A 2-D env whose observation is NaN at step ``at`` of every episode (``at`` None: never); episodes
    end by truncation after ``length`` steps. Observations count the steps, so a stand-in is recognisable."""

    observation_space = gym.spaces.Box(-100.0, 100.0, shape=(2,), dtype=np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)

    def __init__(self, at: int | None = 3, length: int = 10, bad_reset: bool = False):
        self.at, self.length, self.bad_reset, self.t = at, length, bad_reset, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        obs = np.full(2, np.nan if self.bad_reset else 0.0, np.float32)
        return obs, {"failure": False}

    def step(self, action):
        self.t += 1
        obs = np.full(2, np.nan if self.t == self.at else float(self.t), np.float32)
        return obs, 1.0, False, self.t >= self.length, {"failure": False}


def test_drop_episode_ends_the_episode_at_the_bad_step_with_the_last_good_observation():
    from sqrl_rllib.envs.checked import DROPPED_KEY, CheckedEnv

    env = CheckedEnv(BreaksEvery(at=3), name="BreaksEvery", bad_output="drop_episode")
    env.reset(seed=0)
    assert env.step(np.zeros(1, np.float32))[0].tolist() == [1.0, 1.0]
    assert env.step(np.zeros(1, np.float32))[0].tolist() == [2.0, 2.0]
    obs, reward, terminated, truncated, info = env.step(np.zeros(1, np.float32))
    # The stand-in: step 2's observation again, no reward, a truncation (not a failure), the message.
    assert obs.tolist() == [2.0, 2.0] and reward == 0.0 and not terminated and truncated
    assert info["failure"] is False
    assert "BreaksEvery, step 3: observation has non-finite values" in info[DROPPED_KEY]
    assert env.dropped_episodes == 1


def test_drop_episode_gives_up_when_every_episode_breaks():
    from sqrl_rllib.envs.checked import CheckedEnv

    env = CheckedEnv(BreaksEvery(at=2), name="BreaksEvery", bad_output="drop_episode", max_consecutive_drops=4)
    for _ in range(3):  # three dropped episodes in a row are tolerated
        env.reset()
        env.step(np.zeros(1, np.float32))
        assert env.step(np.zeros(1, np.float32))[3]
    env.reset()
    env.step(np.zeros(1, np.float32))
    with pytest.raises(EnvOutputError, match="4 episodes in a row dropped"):
        env.step(np.zeros(1, np.float32))


def test_a_good_episode_resets_the_count_of_drops_in_a_row():
    from sqrl_rllib.envs.checked import CheckedEnv

    inner = BreaksEvery(at=2, length=4)
    env = CheckedEnv(inner, name="BreaksEvery", bad_output="drop_episode", max_consecutive_drops=2)
    for episode in range(6):  # alternate broken and clean episodes: never two drops in a row
        inner.at = 2 if episode % 2 == 0 else None
        env.reset()
        truncated = False
        while not truncated:
            *_, truncated, _info = env.step(np.zeros(1, np.float32))
    assert env.dropped_episodes == 3


def test_drop_episode_retries_a_bad_reset_then_raises():
    from sqrl_rllib.envs.checked import CheckedEnv

    inner = BreaksEvery(bad_reset=True)
    env = CheckedEnv(inner, name="BreaksEvery", bad_output="drop_episode", max_consecutive_drops=3)
    with pytest.raises(EnvOutputError, match="3 bad resets in a row"):
        env.reset()


def test_bad_output_mode_is_validated_and_taken_from_env_config():
    from sqrl_rllib.envs.checked import CheckedEnv, pop_bad_output

    assert pop_bad_output({"task": "pretrain"}) == ("raise", {"task": "pretrain"})
    assert pop_bad_output({"task": "x", "bad_output": "drop_episode"}) == ("drop_episode", {"task": "x"})
    with pytest.raises(ValueError, match="bad_output='skip'"):
        pop_bad_output({"bad_output": "skip"})
    with pytest.raises(ValueError, match="bad_output"):
        CheckedEnv(BreaksEvery(), bad_output="ignore")
    env = make_env("sqrl/DrunkSpider-v0")({"task": "pretrain", "bad_output": "drop_episode"})
    assert env.bad_output == "drop_episode"


def test_columns_of_a_dropped_episode_leave_out_the_stand_in_step():
    from ray.rllib.env.single_agent_episode import SingleAgentEpisode

    from sqrl_rllib.algorithms.sqrl.episodes import dropped_episode, episode_columns
    from sqrl_rllib.envs.checked import CheckedEnv

    env = CheckedEnv(BreaksEvery(at=4), name="BreaksEvery", bad_output="drop_episode")
    obs, info = env.reset()
    episode = SingleAgentEpisode(observations=[obs], infos=[info])
    truncated = False
    while not truncated:
        action = np.zeros(1, np.float32)
        obs, reward, terminated, truncated, info = env.step(action)
        episode.add_env_step(obs, action, reward, infos=info, terminated=terminated, truncated=truncated)
    assert dropped_episode(episode) and len(episode) == 4
    cols = episode_columns(episode)
    # Steps 1-3 are data; the 4th (the stand-in for the NaN step) is not.
    assert cols["rewards"].tolist() == [1.0, 1.0, 1.0]
    assert cols["next_obs"][:, 0].tolist() == [1.0, 2.0, 3.0]
    assert cols["obs"][:, 0].tolist() == [0.0, 1.0, 2.0]
    assert cols["terminated"].tolist() == [0.0, 0.0, 0.0] and cols["failure"].tolist() == [0.0, 0.0, 0.0]
