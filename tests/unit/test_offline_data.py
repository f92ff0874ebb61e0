"""Offline safety data (sqrl_rllib.offline_data): the Parquet schema round-trips, reading streams, bad files
are refused naming the column, and the training stream keeps a bounded window with failures over-drawn. No Ray."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sqrl_rllib.core.replay import FIELDS, ColumnarReplay
from sqrl_rllib.offline_data import (
    EPISODE_ID,
    TRANSITION_COLUMNS,
    EpisodeIds,
    OfflineDataError,
    Reservoir,
    count_failures,
    inspect_transitions,
    iter_transition_batches,
    sample_stream,
    transition_schema,
    write_transitions,
)


def rows(n: int, obs_dim: int = 3, act_dim: int = 2, seed: int = 0, failure_rate: float = 0.05) -> dict:
    """Random transitions; ``rewards`` holds the row index (so a sampled row says where it came from)."""
    rng = np.random.default_rng(seed)
    return {
        "obs": rng.normal(size=(n, obs_dim)).astype(np.float32),
        "actions": rng.uniform(-1, 1, size=(n, act_dim)).astype(np.float32),
        "rewards": np.arange(n, dtype=np.float32),
        "next_obs": rng.normal(size=(n, obs_dim)).astype(np.float32),
        "terminated": (rng.random(n) < 0.1).astype(np.float32),
        "failure": (rng.random(n) < failure_rate).astype(np.float32),
    }


def read_all(path, batch_rows=1000, **kwargs) -> dict:
    batches = list(iter_transition_batches(path, batch_rows, **kwargs))
    return {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}


def test_schema_documents_every_column():
    schema = transition_schema(4, 2)
    assert schema.names == list(TRANSITION_COLUMNS) == [*FIELDS, EPISODE_ID]
    assert schema.field("obs").type == pa.list_(pa.float32(), 4)
    assert schema.field("actions").type == pa.list_(pa.float32(), 2)
    assert schema.field("failure").type == pa.bool_() and schema.field(EPISODE_ID).type == pa.int64()


@pytest.mark.parametrize("episode_ids", [np.repeat(np.arange(50), 4), np.array([f"ep-{i // 7}" for i in range(200)])])
def test_round_trip(tmp_path, episode_ids):
    data = {**rows(200), EPISODE_ID: episode_ids}
    path = tmp_path / "t.parquet"
    assert write_transitions(data, path, row_group_rows=64) == 200
    back = read_all(path, with_episode_id=True)
    for name in FIELDS:
        assert back[name].dtype == np.float32
        np.testing.assert_array_equal(back[name], data[name])
    assert list(back[EPISODE_ID]) == list(episode_ids)
    assert inspect_transitions(path).num_rows == 200
    assert count_failures(path) == int(data["failure"].sum())
    assert pq.ParquetFile(path).schema_arrow.field("obs").type == pa.list_(pa.float32(), 3)


def test_replay_round_trip_reconstructs_episodes(tmp_path):
    # Two episodes stored as interleaved chunks, as SQRL's _store adds them from two sub-envs; a chunk that
    # continues an episode starts where the previous one ended.
    rng = np.random.default_rng(1)
    states = {e: rng.normal(size=(9, 2)).astype(np.float32) for e in (0, 1)}

    def chunk(episode, start, stop, terminal=False):
        s = states[episode]
        terminated = np.zeros(stop - start, np.float32)
        terminated[-1] = float(terminal)
        return {
            "obs": s[start:stop],
            "actions": np.zeros((stop - start, 1), np.float32),
            "rewards": np.full(stop - start, episode, np.float32),
            "next_obs": s[start + 1 : stop + 1],
            "terminated": terminated,
            "failure": terminated.copy(),
        }

    replay = ColumnarReplay(100, 2, 1)
    for episode, start, stop, terminal in ((0, 0, 3, False), (1, 0, 4, False), (0, 3, 8, True), (1, 4, 8, False)):
        replay.add(chunk(episode, start, stop, terminal))
    write_transitions(replay, tmp_path / "r.parquet")
    back = read_all(tmp_path / "r.parquet", with_episode_id=True)
    np.testing.assert_array_equal(back["obs"], replay.all()["obs"])
    # Rows of the same episode share an id, the two episodes differ.
    truth = back["rewards"].astype(int)
    assert len(set(back[EPISODE_ID][truth == 0])) == 1 and len(set(back[EPISODE_ID][truth == 1])) == 1
    assert back[EPISODE_ID][truth == 0][0] != back[EPISODE_ID][truth == 1][0]


def test_episode_ids_split_at_terminal_and_jumps():
    obs = np.arange(6, dtype=np.float32).reshape(6, 1)
    cols = {"obs": obs, "next_obs": obs + 1, "terminated": np.array([0, 1, 0, 0, 0, 0], np.float32)}
    cols["next_obs"][3] = 99.0  # row 4 does not start where row 3 ended
    assert list(EpisodeIds().assign(cols)) == [0, 0, 1, 1, 2, 2]


def test_reading_streams_in_bounded_batches(tmp_path):
    n, obs_dim = 80_000, 32
    path = tmp_path / "big.parquet"
    chunks = (rows(4000, obs_dim, 4, seed=i) for i in range(n // 4000))  # written chunk by chunk too
    assert write_transitions(chunks, path, row_group_rows=2000) == n
    meta = pq.ParquetFile(path).metadata
    assert meta.num_row_groups == n // 2000 and all(meta.row_group(i).num_rows == 2000 for i in range(40))
    table_bytes = n * (2 * obs_dim + 4 + 1) * 4  # float32 obs, next_obs, actions, rewards (a lower bound)
    base = pa.total_allocated_bytes()
    peak, sizes = 0, []
    for batch in iter_transition_batches(path, batch_rows=500):
        sizes.append(len(batch["rewards"]))
        peak = max(peak, pa.total_allocated_bytes() - base)
    assert sum(sizes) == n and max(sizes) <= 500 and len(sizes) >= n // 500
    # Arrow holds about one row group (2000 of 80000 rows) at a time, never the whole table: measured 2.4 MB
    # (compressed and decoded) against 22 MB; reading the file whole peaks at ~1-2.5x the table.
    print(f"peak {peak} bytes, table {table_bytes} bytes")
    assert peak < table_bytes / 5, (peak, table_bytes)


def test_stream_window_is_bounded_and_failures_are_kept(tmp_path):
    n = 20_000
    data = rows(n, failure_rate=0.0)
    data["failure"][:50] = 1.0  # every failure early in the file: a window of recent rows would hold none late on
    path = tmp_path / "t.parquet"
    write_transitions(data, path, row_group_rows=1000)
    window = 2000
    rng = np.random.default_rng(0)
    # chunk_steps=1: each chunk is drawn right after the read its rows_read reports.
    chunks = list(sample_stream(path, 200, 32, 0.25, rng, window_rows=window, read_rows=500, chunk_steps=1))
    assert sum(c.steps for c in chunks) == 200
    # Training starts once the window is full, long before the file is read; the steps spread over the stream.
    assert chunks[0].rows_read == window + 500 and chunks[-1].rows_read == n
    assert np.mean([c.rows_read for c in chunks]) == pytest.approx((window + n) / 2, rel=0.1)
    for chunk in chunks:
        index = chunk.safety_rows["rewards"]
        assert index.max() < chunk.rows_read  # only rows already read
        assert chunk.failures_held == 50
    # The window is a uniform sample of what was read: late draws reach back to the start of the file, and
    # 20 x 6400 rows drawn at the end come from at most `window` distinct rows.
    late = {k: np.concatenate([c.safety_rows[k] for c in chunks[-20:]]) for k in ("rewards", "failure")}
    uniform = late["rewards"][late["failure"] < 0.5]
    assert len(np.unique(uniform)) <= window
    assert uniform.min() < n / 10 and np.mean(uniform) == pytest.approx(n / 2, rel=0.1)
    # A quarter of the rows come from the failure pool (a uniform draw from the file would hold 0.25%).
    share = np.mean([1 - (c.safety_rows["failure"] < 0.5).mean() for c in chunks])
    assert 0.2 < share < 0.3, share


def test_reservoir_holds_a_uniform_sample():
    rng = np.random.default_rng(0)
    reservoir = Reservoir(1000, 1, 1)
    for start in range(0, 50_000, 700):
        batch = rows(700, 1, 1)
        batch["rewards"] = np.arange(start, start + 700, dtype=np.float32)
        reservoir.offer(batch, rng)
    held = reservoir.replay.columns["rewards"]
    assert len(reservoir) == 1000 and reservoir.offered == 50_400
    # Each tenth of the stream holds ~100 of the 1000 rows (a ring buffer would hold the last 1000 only).
    counts = np.histogram(held, bins=10, range=(0, 50_400))[0]
    assert counts.min() > 60 and counts.max() < 140, counts


def test_stream_small_dataset_is_read_once(tmp_path):
    path = tmp_path / "t.parquet"
    write_transitions(rows(300), path)
    (chunk,) = list(sample_stream(path, 5, 16, 0.0, np.random.default_rng(0), passes=3))
    assert chunk.steps == 5 and chunk.rows_read == 300 and len(chunk.safety_rows["rewards"]) == 80
    assert chunk.sac_rows is None


def test_stream_needs_failures_when_asked(tmp_path):
    path = tmp_path / "t.parquet"
    write_transitions(rows(100, failure_rate=0.0), path)
    with pytest.raises(OfflineDataError, match="no failing transition"):
        next(sample_stream(path, 5, 8, 0.2, np.random.default_rng(0)))


def write_table(path, **columns):
    """A Parquet file with ``columns`` replaced (None: dropped) in an otherwise valid table."""
    data = rows(10)
    table = pa.table(
        {
            "obs": pa.FixedSizeListArray.from_arrays(pa.array(data["obs"].ravel()), 3),
            "actions": pa.FixedSizeListArray.from_arrays(pa.array(data["actions"].ravel()), 2),
            "rewards": pa.array(data["rewards"]),
            "next_obs": pa.FixedSizeListArray.from_arrays(pa.array(data["next_obs"].ravel()), 3),
            "terminated": pa.array(data["terminated"] > 0),
            "failure": pa.array(data["failure"] > 0),
            EPISODE_ID: pa.array(np.arange(10)),
        }
    )
    for name, column in columns.items():
        table = table.drop_columns([name])
        if column is not None:
            table = table.append_column(name, column)
    pq.write_table(table, path)
    return path


@pytest.mark.parametrize(
    "columns, needle",
    [
        ({"failure": None}, "column 'failure' (bool) is missing"),
        ({EPISODE_ID: None}, "column 'episode_id' (int64 or string) is missing"),
        ({"obs": pa.array([[0.0, 1.0, 2.0]] * 10)}, "column 'obs' has type list<"),
        ({"next_obs": pa.FixedSizeListArray.from_arrays(pa.array(np.zeros(20, np.float32)), 2)}, "'next_obs'"),
        ({"failure": pa.array(["yes"] * 10)}, "column 'failure' has type string"),
        ({"actions": pa.array(np.zeros(10, np.float32))}, "column 'actions' has type float"),
    ],
)
def test_bad_schema_names_the_column_and_the_file(tmp_path, columns, needle):
    path = write_table(tmp_path / "bad.parquet", **columns)
    with pytest.raises(OfflineDataError) as err:
        inspect_transitions(path)
    assert needle in str(err.value) and "bad.parquet" in str(err.value)
    with pytest.raises(OfflineDataError, match="bad.parquet"):
        next(iter_transition_batches(path))


def test_nulls_missing_file_and_not_parquet(tmp_path):
    path = write_table(tmp_path / "nulls.parquet", rewards=pa.array([1.0] * 9 + [None], pa.float32()))
    with pytest.raises(OfflineDataError, match="column 'rewards' holds 1 null"):
        read_all(path)
    with pytest.raises(OfflineDataError, match="no such file"):
        inspect_transitions(tmp_path / "missing.parquet")
    (tmp_path / "text.parquet").write_text("not parquet")
    with pytest.raises(OfflineDataError, match="text.parquet"):
        inspect_transitions(tmp_path / "text.parquet")


def test_write_refuses_rows_without_a_column(tmp_path):
    data = rows(5)
    del data["failure"]
    with pytest.raises(OfflineDataError, match="'failure'"):
        write_transitions(data, tmp_path / "x.parquet")
    assert not list(tmp_path.iterdir())  # nothing half-written left behind
