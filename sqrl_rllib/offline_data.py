"""Offline safety data: transitions with a failure label in Parquet, written and streamed with pyarrow.

One row per transition (s, a, r, s', terminated, failure, episode id), the columns of
:data:`TRANSITION_COLUMNS`. ``write_transitions`` writes a replay (``ColumnarReplay``, e.g. SQRL's
D_offline), a mapping of columns or an iterable of such chunks; ``iter_transition_batches`` reads a file
(or a directory of files) back in record batches of bounded size through ``pyarrow.dataset``, never the
whole file; ``sample_stream`` turns that stream into failure-enriched minibatches for ``SQRL`` training
(``SQRL.fit_safety_critic_offline``) with a bounded shuffle window and a bounded pool of failing rows, so a
dataset larger than memory works. Pure NumPy / pyarrow: no Ray, no torch. Walk-through: docs/offline_data.md.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from sqrl_rllib.core.replay import FIELDS, ColumnarReplay, failure_enriched_sample

# The schema, one entry per column: name -> (Arrow type as written, what it holds). obs / next_obs / actions
# are fixed-size lists (their size is the flat observation / action size); the label columns are bool.
# Read back, float64 lists and numbers, integer / float 0-1 labels and string episode ids are accepted too.
TRANSITION_COLUMNS: dict[str, tuple[str, str]] = {
    "obs": ("fixed_size_list<float32>[obs_dim]", "flat observation s_t"),
    "actions": ("fixed_size_list<float32>[act_dim]", "action a_t taken in s_t (the env's units)"),
    "rewards": ("float32", "reward r_t of the step"),
    "next_obs": ("fixed_size_list<float32>[obs_dim]", "flat observation s_{t+1} the step led to"),
    "terminated": ("bool", "s_{t+1} is terminal (no bootstrap); false on a time-limit truncation"),
    "failure": ("bool", "s_{t+1} is a failure, I(s') of the safety Bellman target (info['failure'])"),
    "episode_id": ("int64 or string", "episode the transition belongs to (rows of one episode in step order)"),
}
EPISODE_ID = "episode_id"
# Schema-level metadata key written with every file (the format's version).
FORMAT_KEY = b"sqrl_rllib.transitions"
FORMAT_VERSION = b"1"
# Bounded row groups: a reader decodes one row group at a time, so this bounds its memory (~row group x row size).
ROW_GROUP_ROWS = 65_536


class OfflineDataError(ValueError):
    """A transition dataset that cannot be used: the message names the file and the column."""


@dataclass(frozen=True)
class TransitionData:
    """What :func:`inspect_transitions` learns from a dataset's metadata (no row is read).

    Attributes:
        path: the file or directory as given.
        num_rows: transitions in the dataset.
        obs_dim: flat observation size (the ``obs`` / ``next_obs`` list size).
        act_dim: action size (the ``actions`` list size).
    """

    path: str
    num_rows: int
    obs_dim: int
    act_dim: int


def transition_schema(obs_dim: int, act_dim: int, episode_id_type: pa.DataType | None = None) -> pa.Schema:
    """The Arrow schema of :data:`TRANSITION_COLUMNS` for these sizes (episode ids int64 unless given)."""
    vector = pa.list_(pa.float32(), int(obs_dim))
    return pa.schema(
        [
            pa.field("obs", vector, nullable=False),
            pa.field("actions", pa.list_(pa.float32(), int(act_dim)), nullable=False),
            pa.field("rewards", pa.float32(), nullable=False),
            pa.field("next_obs", vector, nullable=False),
            pa.field("terminated", pa.bool_(), nullable=False),
            pa.field("failure", pa.bool_(), nullable=False),
            pa.field(EPISODE_ID, episode_id_type or pa.int64(), nullable=False),
        ],
        metadata={FORMAT_KEY: FORMAT_VERSION},
    )


# -- writing -------------------------------------------------------------------------------------------
class EpisodeIds:
    """Episode ids for transitions stored without them (a replay buffer), from the chain s'_t == s_{t+1}.

    SQRL's replay keeps every sampled chunk of an episode as a contiguous run of rows, and a chunk that
    continues an episode starts with exactly the observation its predecessor ended on. So a run of rows ends
    where a row is terminal or the next row does not start where it ended, and a run whose first observation
    equals an earlier unterminated run's last ``next_obs`` continues that run's episode. Ids count from 0 in
    order of first appearance. Feed chunks in storage order to :meth:`assign`; the state carries over.
    A time-limit-truncated episode whose last state equals a fresh episode's first one would be joined with
    it (exact float equality, so only in an env with a deterministic reset that a truncated episode ends on).
    """

    def __init__(self) -> None:
        self.next_id = 0
        self._open: dict[bytes, int] = {}  # last next_obs of an unterminated run -> its episode id

    def assign(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        """Episode ids (int64) of the rows of ``columns`` (obs, next_obs, terminated)."""
        obs = np.ascontiguousarray(np.asarray(columns["obs"], np.float32).reshape(len(columns["terminated"]), -1))
        nxt = np.ascontiguousarray(np.asarray(columns["next_obs"], np.float32).reshape(obs.shape))
        terminated = np.asarray(columns["terminated"]).reshape(-1) > 0.5
        n = len(terminated)
        ids = np.empty(n, np.int64)
        if n == 0:
            return ids
        cut = np.any(obs[1:] != nxt[:-1], axis=1) | terminated[:-1]
        starts = np.concatenate([[0], np.flatnonzero(cut) + 1, [n]])
        for start, stop in zip(starts[:-1], starts[1:], strict=True):
            episode = self._open.pop(obs[start].tobytes(), None)
            if episode is None:
                episode, self.next_id = self.next_id, self.next_id + 1
            ids[start:stop] = episode
            if not terminated[stop - 1]:
                self._open[nxt[stop - 1].tobytes()] = episode
        return ids


def _chunks(source: Any) -> Iterator[Mapping[str, np.ndarray]]:
    if isinstance(source, ColumnarReplay):
        yield source.all()  # oldest first: the storage order EpisodeIds needs
    elif isinstance(source, Mapping):
        yield source
    else:
        yield from source


def _table(columns: Mapping[str, np.ndarray], ids: EpisodeIds, path: str) -> pa.Table:
    missing = [name for name in FIELDS if name not in columns]
    if missing:
        raise OfflineDataError(f"write_transitions({path!r}): the rows have no column {missing[0]!r}")
    n = len(np.asarray(columns["rewards"]).reshape(-1))
    obs = np.asarray(columns["obs"], np.float32).reshape(n, -1)
    act = np.asarray(columns["actions"], np.float32).reshape(n, -1)
    if EPISODE_ID in columns:
        episode = np.asarray(columns[EPISODE_ID])
        episode_type = pa.string() if episode.dtype.kind in "UOS" else pa.int64()
    else:
        episode, episode_type = ids.assign(columns), pa.int64()
    schema = transition_schema(obs.shape[1], act.shape[1], episode_type)

    def vectors(rows: np.ndarray) -> pa.Array:
        return pa.FixedSizeListArray.from_arrays(pa.array(rows.reshape(-1)), rows.shape[1])

    arrays = [
        vectors(obs),
        vectors(act),
        pa.array(np.asarray(columns["rewards"], np.float32).reshape(n)),
        vectors(np.asarray(columns["next_obs"], np.float32).reshape(obs.shape)),
        pa.array(np.asarray(columns["terminated"]).reshape(n) > 0.5),
        pa.array(np.asarray(columns["failure"]).reshape(n) > 0.5),
        pa.array(episode.reshape(n), type=episode_type),
    ]
    return pa.Table.from_arrays(arrays, schema=schema)


def write_transitions(source: Any, path: str | os.PathLike, row_group_rows: int = ROW_GROUP_ROWS) -> int:
    """Write transitions to the Parquet file ``path`` in the schema of :data:`TRANSITION_COLUMNS`.

    Args:
        source: a ``ColumnarReplay`` (all its rows, oldest first), a mapping of columns (``FIELDS``,
            optionally ``episode_id``; numpy arrays with one row per transition) or an iterable of such
            mappings, written one after the other (so a producer larger than memory can be written).
            Without ``episode_id`` the ids are reconstructed (:class:`EpisodeIds`).
        path: the file to write (a local path or a pyarrow filesystem URI); parent folders are created.
            The file appears complete or not at all (written beside it, then renamed).
        row_group_rows: rows per Parquet row group (the last may be smaller): bounds a reader's memory.

    Returns:
        The number of transitions written.
    """
    if row_group_rows < 1:
        raise ValueError(f"write_transitions: row_group_rows={row_group_rows!r} must be >= 1")
    fs, target = pafs.FileSystem.from_uri(_uri(path))
    fs.create_dir(os.path.dirname(target) or ".", recursive=True)
    partial = target + ".partial"
    ids, writer, pending, total = EpisodeIds(), None, [], 0
    try:
        for columns in _chunks(source):
            table = _table(columns, ids, str(path))
            if writer is None:
                writer = pq.ParquetWriter(partial, table.schema, filesystem=fs)
            elif table.schema != writer.schema:
                raise OfflineDataError(
                    f"write_transitions({str(path)!r}): a chunk's schema {table.schema} differs from the first "
                    f"chunk's {writer.schema} (observation / action size or episode id type changed)"
                )
            pending.append(table)
            total += table.num_rows
            if sum(t.num_rows for t in pending) >= row_group_rows:  # full row groups now, the rest waits
                joined = pa.concat_tables(pending)
                full = joined.num_rows - joined.num_rows % row_group_rows
                writer.write_table(joined.slice(0, full), row_group_size=row_group_rows)
                pending = [joined.slice(full)] if full < joined.num_rows else []
        if writer is None:
            raise OfflineDataError(f"write_transitions({str(path)!r}): the source holds no transition")
        if pending:
            writer.write_table(pa.concat_tables(pending), row_group_size=row_group_rows)
        writer.close()
        writer = None
        fs.move(partial, target)
    finally:
        if writer is not None:
            writer.close()
        if fs.get_file_info(partial).type != pafs.FileType.NotFound:
            fs.delete_file(partial)
    return total


def _uri(path: str | os.PathLike) -> str:
    text = os.fspath(path)
    return text if "://" in text else os.path.abspath(os.path.expanduser(text))


# -- reading -------------------------------------------------------------------------------------------
def _dataset(path: str | os.PathLike) -> pads.Dataset:
    text = os.fspath(path)
    if "://" not in text and not os.path.exists(os.path.expanduser(text)):
        raise OfflineDataError(f"offline data {text!r}: no such file or directory")
    try:
        return pads.dataset(_uri(text), format="parquet")
    except (pa.ArrowInvalid, OSError) as err:
        raise OfflineDataError(f"offline data {text!r} is not a readable Parquet dataset: {err}") from None


def _vector_size(schema: pa.Schema, name: str, where: str) -> int:
    kind = schema.field(name).type
    if not (pa.types.is_fixed_size_list(kind) and pa.types.is_floating(kind.value_type)):
        raise OfflineDataError(
            f"offline data {where}: column {name!r} has type {kind}, expected {TRANSITION_COLUMNS[name][0]} "
            "(a fixed-size list of floats)"
        )
    return int(kind.list_size)


def check_transition_schema(schema: pa.Schema, where: str) -> tuple[int, int]:
    """Check ``schema`` against :data:`TRANSITION_COLUMNS`; returns (obs_dim, act_dim).

    Raises OfflineDataError naming ``where`` (the file), the first missing or badly typed column, its
    type and the expected one. Extra columns are allowed (and not read).
    """
    for name, (expected, _) in TRANSITION_COLUMNS.items():
        if schema.get_field_index(name) < 0:
            raise OfflineDataError(
                f"offline data {where}: column {name!r} ({expected}) is missing; columns present: "
                f"{', '.join(schema.names)}"
            )
    obs_dim, act_dim = _vector_size(schema, "obs", where), _vector_size(schema, "actions", where)
    if _vector_size(schema, "next_obs", where) != obs_dim:
        raise OfflineDataError(
            f"offline data {where}: column 'next_obs' has {schema.field('next_obs').type}, but 'obs' has "
            f"{schema.field('obs').type}: both must have the observation size"
        )
    checks = {
        "rewards": (lambda t: pa.types.is_floating(t) or pa.types.is_integer(t), "a number"),
        "terminated": (lambda t: pa.types.is_boolean(t) or pa.types.is_integer(t) or pa.types.is_floating(t), "bool"),
        "failure": (lambda t: pa.types.is_boolean(t) or pa.types.is_integer(t) or pa.types.is_floating(t), "bool"),
        EPISODE_ID: (lambda t: pa.types.is_integer(t) or pa.types.is_string(t) or pa.types.is_large_string(t), ""),
    }
    for name, (ok, _) in checks.items():
        kind = schema.field(name).type
        if not ok(kind):
            raise OfflineDataError(
                f"offline data {where}: column {name!r} has type {kind}, expected {TRANSITION_COLUMNS[name][0]}"
            )
    return obs_dim, act_dim


def inspect_transitions(path: str | os.PathLike) -> TransitionData:
    """Validate the dataset at ``path`` (a Parquet file or a directory of them) from its metadata alone.

    Returns its row count and sizes; raises OfflineDataError when the path does not exist, is not Parquet,
    holds no row or has a missing / badly typed column (the message names the file and the column).
    """
    dataset = _dataset(path)
    files = getattr(dataset, "files", None) or [os.fspath(path)]
    obs_dim = act_dim = None
    for file in files:  # every file's own schema (the dataset's is the first file's)
        dims = check_transition_schema(pq.read_schema(file, filesystem=dataset.filesystem), repr(file))
        if obs_dim is not None and dims != (obs_dim, act_dim):
            raise OfflineDataError(
                f"offline data {file!r}: observation / action sizes {dims} differ from {files[0]!r}'s "
                f"{(obs_dim, act_dim)}"
            )
        obs_dim, act_dim = dims
    num_rows = dataset.count_rows()
    if num_rows == 0:
        raise OfflineDataError(f"offline data {os.fspath(path)!r} holds no transition")
    return TransitionData(os.fspath(path), int(num_rows), int(obs_dim), int(act_dim))


def _column(batch: pa.RecordBatch, name: str, where: str) -> pa.Array:
    column = batch.column(name)
    if column.null_count:
        raise OfflineDataError(f"offline data {where}: column {name!r} holds {column.null_count} null value(s)")
    return column


def _numpy(batch: pa.RecordBatch, name: str, where: str) -> np.ndarray:
    column = _column(batch, name, where)
    if pa.types.is_fixed_size_list(column.type):
        flat = column.flatten()  # honours the batch's offset, unlike .values
        if flat.null_count:
            raise OfflineDataError(f"offline data {where}: column {name!r} holds null list items")
        return flat.to_numpy(zero_copy_only=False).astype(np.float32, copy=False).reshape(len(column), -1)
    values = column.to_numpy(zero_copy_only=False)
    return values if name == EPISODE_ID else values.astype(np.float32, copy=False)


def iter_transition_batches(
    path: str | os.PathLike, batch_rows: int = 4096, with_episode_id: bool = False, columns: Iterable[str] = FIELDS
) -> Iterator[dict[str, np.ndarray]]:
    """Stream the dataset at ``path`` in file order as columns of at most ``batch_rows`` transitions.

    The files ``pyarrow.dataset`` finds at ``path`` are read one after the other with
    ``ParquetFile.iter_batches``, one row group at a time, without pre-buffering: the memory held is
    about one row group (compressed and decoded) plus the batch, whatever the file's size. Each yielded
    dict has the ``columns`` asked for (default ``FIELDS``: obs and next_obs ``(n, obs_dim)``, actions
    ``(n, act_dim)``, rewards, terminated and failure ``(n,)``, all float32 like ``ColumnarReplay``'s),
    plus ``episode_id`` (int64 or str objects) when ``with_episode_id``. The schema is validated first
    (OfflineDataError).
    """
    if batch_rows < 1:
        raise ValueError(f"iter_transition_batches: batch_rows={batch_rows!r} must be >= 1")
    inspect_transitions(path)
    names = list(columns) + ([EPISODE_ID] if with_episode_id else [])
    dataset = _dataset(path)
    for file in getattr(dataset, "files", None) or [os.fspath(path)]:
        where = repr(file)
        # One row group at a time, synchronously: pre_buffer (pyarrow's default) fetches column chunks ahead,
        # and the async dataset scanner holds a varying number of batches (both measured at 2x-5x the memory).
        with dataset.filesystem.open_input_file(file) as handle:
            reader = pq.ParquetFile(handle, pre_buffer=False)
            for batch in reader.iter_batches(batch_size=int(batch_rows), columns=names, use_threads=False):
                if batch.num_rows:
                    yield {name: _numpy(batch, name, where) for name in names}


def count_failures(path: str | os.PathLike, batch_rows: int = 65_536) -> int:
    """Failing transitions in the dataset (streams the ``failure`` column alone)."""
    return sum(int((b["failure"] > 0.5).sum()) for b in iter_transition_batches(path, batch_rows, columns=["failure"]))


# -- training from a stream ----------------------------------------------------------------------------
class Reservoir:
    """A uniform random sample of at most ``capacity`` of the rows offered so far (reservoir sampling).

    Rows live in a ``ColumnarReplay`` (``.replay``: sample from it as from D_offline). Until it is full every
    row is kept; after that the k-th row offered replaces a random held row with probability capacity / k,
    so at any time each row offered so far is held with the same probability, early or late in the stream
    (a ring buffer would hold only the latest rows and forget the start of the file).
    """

    def __init__(self, capacity: int, obs_dim: int, act_dim: int):
        self.replay = ColumnarReplay(capacity, obs_dim, act_dim)
        self.offered = 0

    def __len__(self) -> int:
        return len(self.replay)

    def offer(self, rows: Mapping[str, np.ndarray], rng: np.random.Generator) -> None:
        """Offer a batch of rows (columns ``FIELDS``)."""
        n = len(rows["rewards"])
        free = min(n, self.replay.capacity - len(self.replay))
        if free:
            self.replay.add({k: v[:free] for k, v in rows.items()})
        rank = self.offered + np.arange(free, n) + 1  # 1-based position in the stream of the rows left
        keep = free + np.flatnonzero(rng.random(n - free) < self.replay.capacity / rank)
        if len(keep):
            slots = rng.integers(0, self.replay.capacity, size=len(keep))
            for name, column in self.replay.columns.items():  # the replay is full: size stays its capacity
                column[slots] = np.asarray(rows[name])[keep].reshape(len(keep), *column.shape[1:])
        self.offered += n


class _WindowAndFailures:
    """``failure_enriched_sample``'s source: uniform rows from the window, failing rows from the pool."""

    def __init__(self, window: ColumnarReplay, failures: ColumnarReplay):
        self.window, self.failures = window, failures

    def sample(self, batch_size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        return self.window.sample(batch_size, rng)

    def sample_failures(self, batch_size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        return self.failures.sample(batch_size, rng)


@dataclass
class StreamChunk:
    """Rows for ``steps`` SGD steps (``steps * batch_size`` each), sampled from the stream's window.

    Attributes:
        steps: SGD steps these rows are for.
        safety_rows: failure-enriched rows (for Q_safe).
        sac_rows: uniform rows (for SAC), or None unless asked for.
        rows_read: transitions streamed when the last of these rows were drawn (passes included).
        failures_held: failing transitions in the pool at that time.
    """

    steps: int
    safety_rows: dict[str, np.ndarray]
    sac_rows: dict[str, np.ndarray] | None
    rows_read: int
    failures_held: int


def sample_stream(
    path: str | os.PathLike,
    num_steps: int,
    batch_size: int,
    failure_fraction: float,
    rng: np.random.Generator,
    *,
    window_rows: int = 200_000,
    failure_pool_rows: int = 50_000,
    read_rows: int = 4096,
    passes: int = 1,
    chunk_steps: int = 500,
    sac_rows: bool = False,
) -> Iterator[StreamChunk]:
    """Minibatch rows for ``num_steps`` SGD steps from the dataset at ``path``, streamed, never all loaded.

    The file is streamed ``passes`` times in ``read_rows`` batches into a shuffle window of ``window_rows``
    (a :class:`Reservoir`: a uniform random sample of the rows read so far), and its failing rows, on the
    first pass, into a failure pool of ``failure_pool_rows`` (a reservoir too), so rare failures stay
    available however far back they were read. Training starts when the window is full (or holds the whole
    dataset) and the SGD steps are spread evenly over the rows streamed after that: after each read, the
    steps due so far draw their rows with ``failure_enriched_sample`` (a share ``failure_fraction`` from the
    pool, the rest uniform from the window), as ``SQRL.fit_safety_critic`` draws from D_offline. A dataset
    no larger than the window is read once and then sampled exactly like an in-memory D_offline.
    Rows are yielded in chunks of at most ``chunk_steps`` steps (one Learner call each).

    Memory: ``window_rows + failure_pool_rows`` transitions, one read batch, one row group, and
    ``chunk_steps * batch_size`` sampled rows (twice with ``sac_rows``).

    Raises OfflineDataError (bad dataset, or ``failure_fraction > 0`` and no failing row in it) and
    ValueError (bad arguments).
    """
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
        raise ValueError(f"sample_stream: num_steps={num_steps!r} must be an integer >= 1")
    if not 0.0 <= failure_fraction < 1.0:
        raise ValueError(f"sample_stream: failure_fraction={failure_fraction!r} must lie in [0, 1)")
    for name, value in (("window_rows", window_rows), ("failure_pool_rows", failure_pool_rows),
                        ("read_rows", read_rows), ("passes", passes), ("chunk_steps", chunk_steps),
                        ("batch_size", batch_size)):  # fmt: skip
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"sample_stream: {name}={value!r} must be an integer >= 1")
    info = inspect_transitions(path)
    if failure_fraction > 0 and count_failures(path) == 0:
        raise OfflineDataError(
            f"offline data {info.path!r} holds no failing transition, so failure_fraction={failure_fraction} "
            "cannot be met: use failure_fraction=0"
        )
    window = Reservoir(min(window_rows, info.num_rows), info.obs_dim, info.act_dim)
    pool = Reservoir(min(failure_pool_rows, info.num_rows), info.obs_dim, info.act_dim)
    source = _WindowAndFailures(window.replay, pool.replay)
    capacity = window.replay.capacity
    passes = 1 if info.num_rows <= capacity else passes  # more passes would only re-read the same rows
    span = passes * info.num_rows - capacity  # rows streamed while training
    read = done = 0
    pending: list[tuple[int, dict, dict | None]] = []

    def flush() -> StreamChunk:
        steps = sum(p[0] for p in pending)
        safety = {k: np.concatenate([p[1][k] for p in pending]) for k in FIELDS}
        sac = {k: np.concatenate([p[2][k] for p in pending]) for k in FIELDS} if sac_rows else None
        pending.clear()
        return StreamChunk(steps, safety, sac, read, len(pool))

    for epoch in range(passes):
        for batch in iter_transition_batches(path, read_rows):
            window.offer(batch, rng)
            failing = batch["failure"] > 0.5
            if epoch == 0 and failing.any():
                pool.offer({k: v[failing] for k, v in batch.items()}, rng)
            read += len(batch["rewards"])
            if read < capacity:
                continue
            target = num_steps if span == 0 else round(num_steps * (read - capacity) / span)
            while done < target:
                steps = min(target - done, chunk_steps - sum(p[0] for p in pending))
                fraction = failure_fraction if len(pool) else 0.0  # no failure read yet
                safety = failure_enriched_sample(source, steps * batch_size, fraction, rng)
                uniform = window.replay.sample(steps * batch_size, rng) if sac_rows else None
                pending.append((steps, safety, uniform))
                done += steps
                if sum(p[0] for p in pending) >= chunk_steps:
                    yield flush()
    if pending:
        yield flush()
