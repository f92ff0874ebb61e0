"""Transitions from RLlib episode chunks: each failure label sits on the step that leads into the failure.

An off-by-one here mislabels every safety target, so the labels are checked against a real
SingleAgentEpisode built step by step, for a whole episode, a chunk cut mid-episode and its successor.
"""

import numpy as np
from ray.rllib.env.single_agent_episode import SingleAgentEpisode

from sqrl_rllib.algorithms.sqrl.episodes import episode_columns


def episode(steps: int, fail_at: int | None) -> SingleAgentEpisode:
    """Observation t is [t]; action t is [10 + t]; reward t is 100 + t; step ``fail_at`` fails and terminates."""
    ep = SingleAgentEpisode()
    ep.add_env_reset(observation=np.array([0.0], np.float32), infos={"failure": False})
    for t in range(steps):
        failed = t == fail_at
        ep.add_env_step(
            observation=np.array([t + 1.0], np.float32),
            action=np.array([10.0 + t], np.float32),
            reward=100.0 + t,
            infos={"failure": failed},
            terminated=failed,
        )
        if failed:
            break
    return ep


def test_failure_labels_the_transition_into_the_failing_state():
    cols = episode_columns(episode(5, fail_at=3))
    assert cols["obs"][:, 0].tolist() == [0, 1, 2, 3]
    assert cols["next_obs"][:, 0].tolist() == [1, 2, 3, 4]
    assert cols["actions"][:, 0].tolist() == [10, 11, 12, 13]
    assert cols["rewards"].tolist() == [100, 101, 102, 103]
    assert cols["failure"].tolist() == [0, 0, 0, 1]
    assert cols["terminated"].tolist() == [0, 0, 0, 1]


def test_a_chunk_cut_mid_episode_is_not_terminal_and_its_successor_keeps_the_labels():
    full = episode(6, fail_at=4)
    first = full.slice(slice(0, 3))
    rest = full.slice(slice(3, None))
    a, b = episode_columns(first), episode_columns(rest)
    assert a["terminated"].tolist() == [0, 0, 0] and a["failure"].tolist() == [0, 0, 0]
    assert b["obs"][:, 0].tolist() == [3, 4] and b["next_obs"][:, 0].tolist() == [4, 5]
    assert b["failure"].tolist() == [0, 1] and b["terminated"].tolist() == [0, 1]


def test_truncated_episode_has_no_terminal_row():
    ep = episode(4, fail_at=None)
    ep.is_truncated = True
    cols = episode_columns(ep)
    assert cols["terminated"].tolist() == [0, 0, 0, 0] and cols["failure"].sum() == 0
