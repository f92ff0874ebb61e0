"""Turn RLlib episode chunks into the columnar transitions SQRL's buffers store."""

from __future__ import annotations

import numpy as np

from sqrl_rllib.envs.checked import DROPPED_KEY


def dropped_episode(episode) -> bool:
    """Whether this chunk ends an episode that ``CheckedEnv`` dropped for bad env output
    (``bad_output: drop_episode``): its last transition is a stand-in, not data."""
    if not episode.is_truncated or len(episode) == 0:
        return False
    return DROPPED_KEY in (episode.get_infos(-1) or {})


def episode_columns(episode) -> dict[str, np.ndarray]:
    """Columns (obs, actions, rewards, next_obs, terminated, failure) of a SingleAgentEpisode chunk.

    ``failure`` of transition t comes from ``info["failure"]`` of the observation it leads to;
    only the last transition of a terminated chunk is terminal. The stand-in last transition of a
    dropped episode (``dropped_episode``) is left out.
    """
    obs = np.asarray(episode.get_observations(), dtype=np.float32)
    n = len(episode)
    obs = obs.reshape(n + 1, -1)
    infos = episode.get_infos()
    actions = np.asarray(episode.get_actions(), dtype=np.float32).reshape(n, -1)
    rewards = np.asarray(episode.get_rewards(), dtype=np.float32).reshape(n)
    if dropped_episode(episode):
        n -= 1
        obs, infos, actions, rewards = obs[:-1], infos[:-1], actions[:-1], rewards[:-1]
    failure = np.fromiter((bool(info.get("failure", False)) for info in infos[1:]), np.float32, count=n)
    terminated = np.zeros(n, np.float32)
    if episode.is_terminated and n:
        terminated[-1] = 1.0
    return {
        "obs": obs[:-1],
        "actions": actions,
        "rewards": rewards,
        "next_obs": obs[1:],
        "terminated": terminated,
        "failure": failure,
    }
