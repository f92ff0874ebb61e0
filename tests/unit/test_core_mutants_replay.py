"""Edge cases of the replay buffers and the two samplers that mutation testing found unpinned (issue 20).

Single-row adds, a batch longer than the ring, one-row buffers, dtypes kept, the online buffer's
growth policy, the legacy state format, and samplers that must draw distinct rows (not one row repeated).
"""

import numpy as np
import pytest

from sqrl_rllib.core.replay import FIELDS, ColumnarReplay, OnlineSafetyBuffer, failure_enriched_sample, mixed_sample


def chunk(n, start=0.0, failure=0.0):
    obs = np.arange(start, start + n, dtype=np.float32).reshape(n, 1)
    return {
        "obs": obs,
        "actions": obs.copy(),
        "rewards": obs[:, 0].copy(),
        "next_obs": obs + 1,
        "terminated": np.zeros(n, np.float32),
        "failure": np.full(n, failure, np.float32),
    }


# --- ColumnarReplay ----------------------------------------------------------------------------------------


def test_capacity_one_is_valid_and_zero_is_rejected_with_a_message():
    buf = ColumnarReplay(1, 1, 1)
    buf.add(chunk(1, 7))
    buf.add(chunk(1, 8))
    assert len(buf) == 1 and buf.all()["rewards"].tolist() == [8]
    with pytest.raises(ValueError, match="replay capacity must be >= 1, got 0"):
        ColumnarReplay(0, 1, 1)


def test_single_rows_are_stored_in_order():
    buf = ColumnarReplay(4, 1, 1)
    for i in range(3):
        buf.add(chunk(1, i))
    assert len(buf) == 3 and buf.num_added == 3 and buf.all()["rewards"].tolist() == [0, 1, 2]


def test_a_batch_longer_than_the_ring_keeps_its_newest_rows():
    buf = ColumnarReplay(3, 1, 1)
    buf.add(chunk(1, 100))
    buf.add(chunk(5, 0))
    assert len(buf) == 3
    assert buf.all()["rewards"].tolist() == [2, 3, 4] and buf.all()["next_obs"][:, 0].tolist() == [3, 4, 5]
    buf.add(chunk(1, 9))  # and the ring goes on from there
    assert buf.all()["rewards"].tolist() == [3, 4, 9]


def test_columns_are_float32_whatever_the_input_dtype():
    buf = ColumnarReplay(4, 2, 1)
    rows = {k: np.asarray(v, np.float64) for k, v in chunk(2).items()}
    rows["obs"] = np.ones((2, 2))
    rows["next_obs"] = np.ones((2, 2))
    buf.add(rows)
    for name, column in buf.sample(3, np.random.default_rng(0)).items():
        assert column.dtype == np.float32, name
    assert set(buf.all()) == set(FIELDS)


def test_sample_draws_every_row_including_the_first_and_refuses_an_empty_buffer():
    buf = ColumnarReplay(5, 1, 1)
    with pytest.raises(ValueError, match="^cannot sample from an empty replay buffer$"):
        buf.sample(1, np.random.default_rng(0))
    buf.add(chunk(1, 42))
    assert buf.sample(3, np.random.default_rng(0))["rewards"].tolist() == [42, 42, 42]
    buf.add(chunk(1, 43))
    assert set(buf.sample(200, np.random.default_rng(1))["rewards"].tolist()) == {42, 43}


def test_sample_failures_draws_a_batch_from_every_failing_row():
    buf = ColumnarReplay(10, 1, 1)
    with pytest.raises(ValueError, match="^the replay buffer holds no failing transition$"):
        buf.sample_failures(2, np.random.default_rng(0))
    buf.add(chunk(2, 0, failure=1.0))
    buf.add(chunk(3, 10))
    rows = buf.sample_failures(200, np.random.default_rng(0))
    assert rows["rewards"].shape == (200,) and set(rows["rewards"].tolist()) == {0, 1}


def test_state_of_a_partly_filled_ring_round_trips():
    buf = ColumnarReplay(6, 1, 1)
    buf.add(chunk(3, 5))
    state = buf.get_state()
    assert state["capacity"] == 6 and state["num_added"] == 3
    clone = ColumnarReplay(6, 1, 1)
    clone.add(chunk(2, 100))
    clone.set_state(state)
    assert len(clone) == 3 and clone.all()["rewards"].tolist() == [5, 6, 7]
    clone.add(chunk(1, 8))
    assert clone.all()["rewards"].tolist() == [5, 6, 7, 8]


# --- OnlineSafetyBuffer ------------------------------------------------------------------------------------


def test_one_episode_cap_and_the_default_initial_capacity():
    buf = OnlineSafetyBuffer(1)
    assert buf.capacity == 0 and len(buf) == 0
    buf.add_chunk("a", chunk(2))
    assert buf.capacity == 1024
    buf.add_chunk("b", chunk(1, 9))
    assert list(buf.episodes) == ["b"] and buf.all()["rewards"].tolist() == [9]


def test_columns_grow_by_doubling_only_when_full_and_keep_dtypes():
    buf = OnlineSafetyBuffer(5, initial_capacity=4)
    rows = chunk(4)
    rows["terminated"] = np.array([True, False, False, True])
    buf.add_chunk("a", {k: v[:2] for k, v in rows.items()})
    assert np.issubdtype(buf.get_state()["episode_of_row"].dtype, np.integer)
    buf.add_chunk("a", {k: v[2:] for k, v in rows.items()})
    assert buf.capacity == 4  # exactly full: no growth yet
    buf.add_chunk("a", chunk(1, 4))
    assert buf.capacity == 8
    buf.add_chunk("b", chunk(12, 10))
    assert buf.capacity == 17  # what is needed, when doubling is not enough
    held = buf.all()
    assert held["terminated"].dtype == np.bool_ and held["obs"].dtype == np.float32
    assert held["terminated"][:5].tolist() == [True, False, False, True, False]
    assert held["rewards"].tolist() == [0, 1, 2, 3, 4, *range(10, 22)]
    assert np.issubdtype(buf.get_state()["episode_of_row"].dtype, np.integer)


def test_initial_capacity_of_one_is_kept():
    buf = OnlineSafetyBuffer(2, initial_capacity=1)
    buf.add_chunk("a", chunk(1))
    assert buf.capacity == 1
    assert OnlineSafetyBuffer(2, initial_capacity=0).initial_capacity == 1


def test_empty_buffer_views_and_state():
    buf = OnlineSafetyBuffer(3)
    held = buf.all()
    assert set(held) == set(FIELDS)
    assert all(col.shape == (0,) and col.dtype == np.float32 for col in held.values())
    state = buf.get_state()
    assert state["max_episodes"] == 3 and state["episode_ids"] == []
    assert np.issubdtype(state["episode_of_row"].dtype, np.integer) and len(state["episode_of_row"]) == 0
    with pytest.raises(ValueError, match="^cannot sample from an empty online safety buffer$"):
        buf.sample(1, np.random.default_rng(0))


def test_state_with_a_single_row_round_trips():
    buf = OnlineSafetyBuffer(2)
    buf.add_chunk("a", chunk(1, 3))
    clone = OnlineSafetyBuffer(2)
    clone.set_state(buf.get_state())
    assert len(clone) == 1 and clone.all()["rewards"].tolist() == [3] and list(clone.episodes) == ["a"]


def test_legacy_state_of_episode_chunks_is_restored():
    state = {"episodes": [("a", [chunk(2, 0), chunk(1, 2)]), ("b", [chunk(2, 10)]), ("c", [chunk(1, 20)])]}
    buf = OnlineSafetyBuffer(2)
    buf.set_state(state)
    assert list(buf.episodes) == ["b", "c"]
    assert buf.all()["rewards"].tolist() == [10, 11, 20]
    buf.add_chunk("b", chunk(1, 12))  # chunks still join their episode
    assert list(buf.episodes) == ["b", "c"] and len(buf) == 4


# --- the samplers ------------------------------------------------------------------------------------------


def offline_and_online(n_online=10):
    online = OnlineSafetyBuffer(4)
    if n_online:
        online.add_chunk("a", chunk(n_online))  # rewards 0..n_online-1
    offline = ColumnarReplay(100, 1, 1)
    offline.add(chunk(50, start=100))  # rewards 100..149
    return online, offline


@pytest.mark.parametrize("fraction", [0.0, 0.5, 1.0])
def test_mixed_sample_returns_a_full_batch_of_distinct_rows_with_the_column_dtypes(fraction):
    online, offline = offline_and_online()
    rows = mixed_sample(online, offline, 64, fraction, np.random.default_rng(0))
    assert all(col.shape[0] == 64 and col.dtype == np.float32 for col in rows.values())
    from_offline = rows["rewards"] >= 100
    if 0.0 < fraction < 1.0:
        # Several different rows from each source, not one row repeated.
        assert len(set(rows["rewards"][from_offline].tolist())) > 5
        assert len(set(rows["rewards"][~from_offline].tolist())) > 3
    else:
        assert from_offline.all() == (fraction == 1.0) and len(set(rows["rewards"].tolist())) > 5


def test_mixed_sample_share_is_exact_in_expectation_for_small_batches():
    online, offline = offline_and_online()
    rng = np.random.default_rng(0)
    shares = [(mixed_sample(online, offline, 3, 1 / 3, rng)["rewards"] >= 100).mean() for _ in range(1500)]
    assert abs(np.mean(shares) - 1 / 3) < 0.03  # also when a batch holds a single offline row


def test_mixed_sample_falls_back_to_the_source_that_has_rows():
    empty_online, offline = offline_and_online(n_online=0)
    rows = mixed_sample(empty_online, offline, 32, 0.5, np.random.default_rng(0))
    assert (rows["rewards"] >= 100).all() and rows["rewards"].shape == (32,)
    online, empty_offline = offline_and_online()[0], ColumnarReplay(10, 1, 1)
    rows = mixed_sample(online, empty_offline, 32, 0.5, np.random.default_rng(0))
    assert (rows["rewards"] < 100).all() and rows["rewards"].shape == (32,)
    one_row_online, offline = offline_and_online(n_online=1)
    rows = mixed_sample(one_row_online, offline, 64, 0.5, np.random.default_rng(0))
    assert 0 < (rows["rewards"] == 0).sum() < 64  # the single online row is still drawn


def test_failure_enriched_sample_draws_distinct_failing_rows():
    buf = ColumnarReplay(200, 1, 1)
    buf.add(chunk(100, 0))
    buf.add(chunk(20, 1000, failure=1.0))
    rows = failure_enriched_sample(buf, 100, 1.0, np.random.default_rng(0))
    assert (rows["failure"] == 1.0).all() and len(set(rows["rewards"].tolist())) > 5
    assert (failure_enriched_sample(buf, 100, 0.0, np.random.default_rng(0))["rewards"] < 1000).mean() > 0.7
