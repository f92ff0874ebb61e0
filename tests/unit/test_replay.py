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
