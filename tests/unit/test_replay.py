"""Columnar replay and the online safety buffer."""

import numpy as np
import pytest

from sqrl_rllib.core.replay import ColumnarReplay, OnlineSafetyBuffer, failure_enriched_sample, mixed_sample


def chunk(n, start=0.0):
    obs = np.arange(start, start + n, dtype=np.float32).reshape(n, 1)
    return {
        "obs": obs,
        "actions": obs.copy(),
        "rewards": obs[:, 0].copy(),
        "next_obs": obs + 1,
        "terminated": np.zeros(n, np.float32),
        "failure": np.zeros(n, np.float32),
    }


def test_ring_buffer_keeps_newest_and_round_trips_state():
    buf = ColumnarReplay(5, 1, 1)
    buf.add(chunk(3))
    buf.add(chunk(4, start=3))
    assert len(buf) == 5 and buf.num_added == 7
    assert buf.all()["rewards"].tolist() == [2, 3, 4, 5, 6]
    clone = ColumnarReplay(5, 1, 1)
    clone.set_state(buf.get_state())
    assert clone.all()["rewards"].tolist() == [2, 3, 4, 5, 6] and clone.num_added == 7
    sample = buf.sample(64, np.random.default_rng(0))
    assert set(sample["rewards"].tolist()) <= {2, 3, 4, 5, 6}
    assert np.array_equal(sample["next_obs"], sample["obs"] + 1)


def test_online_buffer_holds_latest_episodes_and_joins_chunks():
    buf = OnlineSafetyBuffer(max_episodes=2)
    buf.add_chunk("a", chunk(2))
    buf.add_chunk("b", chunk(2, 10))
    buf.add_chunk("b", chunk(1, 12))
    buf.add_chunk("c", chunk(3, 20))
    assert list(buf.episodes) == ["b", "c"] and len(buf) == 6
    assert sorted(buf.all()["rewards"].tolist()) == [10, 11, 12, 20, 21, 22]


def test_bad_sizes_are_rejected():
    with pytest.raises(ValueError):
        ColumnarReplay(0, 1, 1)
    with pytest.raises(ValueError, match="online_buffer_episodes"):
        OnlineSafetyBuffer(0)


def test_mixed_sample_interleaves_online_and_offline_rows():
    online = OnlineSafetyBuffer(max_episodes=4)
    online.add_chunk("a", chunk(10))  # rewards 0..9
    offline = ColumnarReplay(100, 1, 1)
    offline.add(chunk(50, start=100))  # rewards 100..149
    rng = np.random.default_rng(0)
    rows = mixed_sample(online, offline, 4000, 0.25, rng)
    from_offline = rows["rewards"] >= 100
    assert abs(from_offline.mean() - 0.25) < 0.03
    assert np.array_equal(rows["next_obs"], rows["obs"] + 1)  # rows stay whole
    # Interleaved: every 256-row minibatch cut from the front holds both sources.
    for start in range(0, 4000 - 256, 256):
        assert 0 < from_offline[start : start + 256].mean() < 1
    assert (mixed_sample(online, offline, 500, 0.0, rng)["rewards"] < 100).all()
    assert (mixed_sample(online, offline, 500, 1.0, rng)["rewards"] >= 100).all()
    # An empty D_offline (nothing stored yet) falls back to D_safe.
    assert (mixed_sample(online, ColumnarReplay(10, 1, 1), 50, 0.5, rng)["rewards"] < 100).all()


def test_failure_enriched_sample_over_draws_failures_at_the_asked_share():
    rng = np.random.default_rng(0)
    offline = ColumnarReplay(1000, 1, 1)
    failure = np.zeros(1000, np.float32)
    failure[::100] = 1.0  # 1% failing rows
    offline.add(
        {
            "obs": np.arange(1000, dtype=np.float32)[:, None],
            "actions": np.zeros((1000, 1), np.float32),
            "rewards": np.zeros(1000, np.float32),
            "next_obs": np.zeros((1000, 1), np.float32),
            "terminated": failure,
            "failure": failure,
        }
    )
    rows = failure_enriched_sample(offline, 20000, 0.3, rng)
    # 30% drawn from failures plus 1% of the uniform 70%.
    assert rows["failure"].mean() == pytest.approx(0.307, abs=0.015)
    # Rows stay whole: a failing row keeps its own observation.
    assert (rows["obs"][rows["failure"] > 0.5, 0] % 100 == 0).all()
    assert failure_enriched_sample(offline, 5000, 0.0, rng)["failure"].mean() < 0.03
    with pytest.raises(ValueError, match="no failing"):
        ColumnarReplay(10, 1, 1).sample_failures(3, rng)


def test_online_buffer_evicts_exactly_the_oldest_episode_rows_when_interleaved():
    buf = OnlineSafetyBuffer(max_episodes=3, initial_capacity=4)
    # Three sub-envs interleave their episodes: rewards a=0.., b=100.., c=200.., d=300..
    buf.add_chunk("a", chunk(2, 0))
    buf.add_chunk("b", chunk(3, 100))
    buf.add_chunk("a", chunk(2, 2))
    buf.add_chunk("c", chunk(1, 200))
    buf.add_chunk("b", chunk(1, 103))
    buf.add_chunk("a", chunk(1, 4))
    buf.add_chunk("c", chunk(2, 201))
    buf.add_chunk("b", chunk(0, 999))  # empty chunks are ignored
    assert len(buf) == 12 and list(buf.episodes) == ["a", "b", "c"]
    buf.add_chunk("d", chunk(2, 300))  # a fourth episode evicts "a" only, wherever its rows lie
    assert list(buf.episodes) == ["b", "c", "d"] and len(buf) == 9
    held = buf.all()
    assert held["rewards"].tolist() == [100, 101, 102, 200, 103, 201, 202, 300, 301]  # arrival order kept
    assert np.array_equal(held["next_obs"], held["obs"] + 1)  # rows stay whole through compaction
    buf.add_chunk("c", chunk(1, 203))  # a known id joins its episode, evicting nothing
    buf.add_chunk("e", chunk(1, 400))  # evicts "b"
    assert sorted(buf.all()["rewards"].tolist()) == [200, 201, 202, 203, 300, 301, 400]
    assert len(buf) == 7
    with pytest.raises(ValueError, match="empty"):
        OnlineSafetyBuffer(2).sample(4, np.random.default_rng(0))


def test_online_buffer_matches_a_reference_model_over_random_adds():
    rng = np.random.default_rng(123)
    buf = OnlineSafetyBuffer(max_episodes=4, initial_capacity=8)
    episodes = {}  # reference: episode id -> list of rewards, in first-appearance order (dicts keep it)
    next_reward, next_id = 0, 0
    live = []
    for _ in range(200):
        if not live or rng.random() < 0.15:
            live.append(f"ep{next_id}")
            next_id += 1
            live = live[-3:]  # three sub-envs: only the latest three episodes still collect
        episode_id = live[rng.integers(len(live))]
        n = int(rng.integers(0, 6))
        buf.add_chunk(episode_id, chunk(n, next_reward))
        if n:
            episodes.setdefault(episode_id, []).extend(range(next_reward, next_reward + n))
            while len(episodes) > 4:
                del episodes[next(iter(episodes))]
        next_reward += n
        assert len(buf) == sum(len(r) for r in episodes.values())
        assert list(buf.episodes) == list(episodes)
    assert buf.capacity > 8  # grew past the initial capacity
    assert sorted(buf.all()["rewards"].tolist()) == sorted(r for rs in episodes.values() for r in rs)


def test_online_buffer_sample_is_uniform_over_held_rows_and_grows():
    buf = OnlineSafetyBuffer(max_episodes=3, initial_capacity=2)
    for i in range(8):  # 8-row episodes, each finishing while the next one starts
        buf.add_chunk(f"e{i}", chunk(2, 100 * i))
        buf.add_chunk(f"e{i}", chunk(2, 100 * i + 2))
        if i:
            buf.add_chunk(f"e{i - 1}", chunk(4, 100 * (i - 1) + 4))
    # Held: e5 and e6 whole, e7's first four rows.
    assert sorted(buf.all()["rewards"].tolist()) == [*range(500, 508), *range(600, 608), *range(700, 704)]
    held = buf.all()["rewards"]
    assert len(held) == len(buf) <= 50 and buf.capacity >= len(buf) > 2
    sample = buf.sample(20000, np.random.default_rng(0))
    assert np.array_equal(sample["next_obs"], sample["obs"] + 1)
    values, counts = np.unique(sample["rewards"], return_counts=True)
    assert set(values.tolist()) == set(held.tolist())  # only held rows, and every one of them
    assert counts.max() / counts.min() < 1.5


def test_online_buffer_state_round_trips_and_honours_a_smaller_cap():
    import pickle

    buf = OnlineSafetyBuffer(max_episodes=4, initial_capacity=2)
    for i, episode_id in enumerate("abcbdceb"):
        buf.add_chunk(episode_id, chunk(2, 10 * i))
    state = pickle.loads(pickle.dumps(buf.get_state()))
    clone = OnlineSafetyBuffer(max_episodes=4)
    clone.set_state(state)
    assert list(clone.episodes) == list(buf.episodes) == ["b", "c", "d", "e"] and len(clone) == len(buf)
    for key in buf.all():
        assert np.array_equal(clone.all()[key], buf.all()[key])
    clone.add_chunk("f", chunk(1, 500))  # the restored buffer keeps working: "b" is evicted
    assert list(clone.episodes) == ["c", "d", "e", "f"]
    assert sorted(clone.all()["rewards"].tolist()) == [20, 21, 40, 41, 50, 51, 60, 61, 500]
    small = OnlineSafetyBuffer(max_episodes=2)
    small.set_state(state)  # keeps the newest two episodes, "d" and "e"
    assert list(small.episodes) == ["d", "e"]
    assert sorted(small.all()["rewards"].tolist()) == [40, 41, 60, 61]
    small.add_chunk("g", chunk(1, 700))
    assert list(small.episodes) == ["e", "g"] and sorted(small.all()["rewards"].tolist()) == [60, 61, 700]
    empty = OnlineSafetyBuffer(3)
    empty.set_state(OnlineSafetyBuffer(3).get_state())
    assert len(empty) == 0 and list(empty.episodes) == []
