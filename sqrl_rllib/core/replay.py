"""Columnar replay: preallocated NumPy arrays, one column per field, no per-transition objects.

RLlib's episode replay builds an episode slice per sampled transition (~65 ms per 256-row sample,
rllib-notes); here a sample is one fancy-index per column.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

FIELDS = ("obs", "actions", "rewards", "next_obs", "terminated", "failure")


class ColumnarReplay:
    """Ring buffer of transitions (s, a, r, s', terminated, failure) with uniform sampling.

    Args:
        capacity: maximum number of transitions kept (oldest overwritten first).
        obs_dim: flat observation size.
        act_dim: action size.
    """

    def __init__(self, capacity: int, obs_dim: int, act_dim: int):
        if capacity < 1:
            raise ValueError(f"replay capacity must be >= 1, got {capacity}")
        self.capacity = int(capacity)
        self.obs_dim, self.act_dim = int(obs_dim), int(act_dim)
        self.columns = {
            "obs": np.zeros((capacity, obs_dim), np.float32),
            "actions": np.zeros((capacity, act_dim), np.float32),
            "rewards": np.zeros(capacity, np.float32),
            "next_obs": np.zeros((capacity, obs_dim), np.float32),
            "terminated": np.zeros(capacity, np.float32),
            "failure": np.zeros(capacity, np.float32),
        }
        self.size = 0
        self.next_index = 0
        self.num_added = 0

    def __len__(self) -> int:
        return self.size

    def add(self, batch: dict[str, np.ndarray]) -> None:
        """Append a batch of transitions given as columns (each with the same leading length)."""
        n = len(batch["rewards"])
        if n == 0:
            return
        if n > self.capacity:  # only the newest `capacity` rows survive anyway
            batch = {k: v[-self.capacity :] for k, v in batch.items()}
            n = self.capacity
        # At most two contiguous slices (the ring wraps once): plain slice writes, no index arrays.
        first = min(n, self.capacity - self.next_index)
        for name in FIELDS:
            column = self.columns[name]
            rows = np.asarray(batch[name]).reshape(n, *column.shape[1:])
            column[self.next_index : self.next_index + first] = rows[:first]
            column[: n - first] = rows[first:]
        self.next_index = int((self.next_index + n) % self.capacity)
        self.size = min(self.size + n, self.capacity)
        self.num_added += n

    def sample(self, batch_size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Uniformly sample ``batch_size`` transitions (with replacement); returns columns."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        idx = rng.integers(0, self.size, size=batch_size)
        return {name: col[idx] for name, col in self.columns.items()}

    def failing_indices(self) -> np.ndarray:
        """Row indices of the stored failing transitions."""
        return np.flatnonzero(self.columns["failure"][: self.size] > 0.5)

    def sample_failures(self, batch_size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Uniformly sample ``batch_size`` failing transitions (with replacement); returns columns."""
        failing = self.failing_indices()
        if len(failing) == 0:
            raise ValueError("the replay buffer holds no failing transition")
        idx = failing[rng.integers(0, len(failing), size=batch_size)]
        return {name: col[idx] for name, col in self.columns.items()}

    def all(self) -> dict[str, np.ndarray]:
        """Every stored transition, oldest first."""
        if self.size < self.capacity:
            return {name: col[: self.size].copy() for name, col in self.columns.items()}
        order = (self.next_index + np.arange(self.capacity)) % self.capacity
        return {name: col[order] for name, col in self.columns.items()}

    def get_state(self) -> dict:
        """Picklable state (the stored transitions, oldest first, and the counters)."""
        return {"capacity": self.capacity, "num_added": self.num_added, "columns": self.all()}

    def set_state(self, state: dict) -> None:
        """Restore from :meth:`get_state` output (capacity may differ: newest rows are kept)."""
        self.size, self.next_index = 0, 0
        self.add(state["columns"])
        self.num_added = int(state["num_added"])


class OnlineSafetyBuffer:
    """D_safe: the transitions of the latest ``max_episodes`` episodes collected by the masked policy.

    Episodes arrive as chunks (an EnvRunner may return part of an episode); chunks with the same
    episode id are joined. Rows live in preallocated columns in arrival order (sub-envs interleave
    their episodes), each tagged with its episode's ordinal, so adding and sampling never re-join
    chunks; evicting the oldest episode compacts the columns once per episode. The safety critic
    thus always trains on the freshest on-policy data (paper appendix D).

    Args:
        max_episodes: number of latest episodes kept (by first appearance of their id).
        initial_capacity: rows allocated up front; the columns double when full.
    """

    def __init__(self, max_episodes: int, initial_capacity: int = 1024):
        if max_episodes < 1:
            raise ValueError(f"online_buffer_episodes must be >= 1, got {max_episodes}")
        self.max_episodes = int(max_episodes)
        self.initial_capacity = max(1, int(initial_capacity))
        self._reset()

    def _reset(self) -> None:
        # Episode id -> ordinal, oldest first; ordinals grow with first appearance, so the episodes
        # kept after an eviction are exactly those whose ordinal is >= the oldest kept one.
        self.episodes: OrderedDict[str, int] = OrderedDict()
        self._next_ordinal = 0
        self._size = 0
        self._columns: dict[str, np.ndarray] | None = None  # allocated on the first chunk (shapes unknown before)
        self._episode = np.empty(0, np.int64)  # episode ordinal of each row

    def __len__(self) -> int:
        return self._size

    @property
    def capacity(self) -> int:
        """Rows the columns can hold before they next double."""
        return len(self._episode)

    def _reserve(self, n: int, like: dict[str, np.ndarray]) -> None:
        """Make room for ``n`` more rows (first call allocates from ``like``'s trailing shapes and dtypes)."""
        need = self._size + n
        if self._columns is None:
            capacity = max(self.initial_capacity, need)
            self._columns = {}
            for name in FIELDS:
                col = np.asarray(like[name])
                self._columns[name] = np.empty((capacity, *col.shape[1:]), col.dtype)
            self._episode = np.empty(capacity, np.int64)
            return
        if need <= self.capacity:
            return
        capacity = max(need, 2 * self.capacity)
        for name, col in self._columns.items():
            grown = np.empty((capacity, *col.shape[1:]), col.dtype)
            grown[: self._size] = col[: self._size]
            self._columns[name] = grown
        grown = np.empty(capacity, np.int64)
        grown[: self._size] = self._episode[: self._size]
        self._episode = grown

    def _evict(self) -> None:
        """Drop the oldest episodes beyond the cap, with all their rows wherever they lie."""
        if len(self.episodes) <= self.max_episodes:
            return
        while len(self.episodes) > self.max_episodes:
            self.episodes.popitem(last=False)
        oldest_kept = next(iter(self.episodes.values()))
        keep = self._episode[: self._size] >= oldest_kept
        kept = int(keep.sum())
        if self._columns is not None:
            for col in self._columns.values():
                col[:kept] = col[: self._size][keep]
        self._episode[:kept] = self._episode[: self._size][keep]
        self._size = kept

    def add_chunk(self, episode_id: str, columns: dict[str, np.ndarray]) -> None:
        """Append a chunk of episode ``episode_id``, evicting the oldest episodes beyond the cap."""
        n = len(columns["rewards"])
        if n == 0:
            return
        ordinal = self.episodes.get(episode_id)
        if ordinal is None:
            ordinal = self.episodes[episode_id] = self._next_ordinal
            self._next_ordinal += 1
            self._evict()  # before writing: the new episode is the newest, so it is never evicted
        self._reserve(n, columns)
        start, stop = self._size, self._size + n
        for name, col in self._columns.items():
            col[start:stop] = columns[name]
        self._episode[start:stop] = ordinal
        self._size = stop

    def all(self) -> dict[str, np.ndarray]:
        """Every transition held (copies, in arrival order); empty 1-D columns before the first chunk."""
        if self._columns is None:
            return {name: np.empty(0, np.float32) for name in FIELDS}
        return {name: col[: self._size].copy() for name, col in self._columns.items()}

    def sample(self, batch_size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Uniform sample with replacement from the held transitions."""
        if self._size == 0:
            raise ValueError("cannot sample from an empty online safety buffer")
        idx = rng.integers(0, self._size, size=batch_size)
        return {name: col[idx] for name, col in self._columns.items()}

    def get_state(self) -> dict:
        """Picklable state: the held rows (arrival order), the episode ids (oldest first) and each row's episode."""
        # Held ordinals are contiguous (new ids take the next one, eviction drops the smallest).
        oldest = next(iter(self.episodes.values()), 0)
        return {
            "max_episodes": self.max_episodes,
            "episode_ids": list(self.episodes),
            "episode_of_row": self._episode[: self._size] - oldest,
            "columns": self.all(),
        }

    def set_state(self, state: dict) -> None:
        """Restore from :meth:`get_state` output; with a smaller ``max_episodes`` the newest episodes are kept."""
        self._reset()
        if "episodes" in state:  # the former format: (episode id, list of chunks) pairs, oldest first
            for episode_id, chunks in state["episodes"]:
                for columns in chunks:
                    self.add_chunk(episode_id, columns)
            return
        ids = list(state["episode_ids"])
        first = max(0, len(ids) - self.max_episodes)
        episode_of_row = np.asarray(state["episode_of_row"], np.int64)
        keep = episode_of_row >= first
        n = int(keep.sum())
        self.episodes = OrderedDict((episode_id, i) for i, episode_id in enumerate(ids[first:]))
        self._next_ordinal = len(self.episodes)
        if n == 0:
            return
        columns = {name: np.asarray(state["columns"][name])[keep] for name in FIELDS}
        self._reserve(n, columns)
        for name, col in self._columns.items():
            col[:n] = columns[name]
        self._episode[:n] = episode_of_row[keep] - first
        self._size = n


def mixed_sample(
    online: OnlineSafetyBuffer,
    offline: ColumnarReplay,
    batch_size: int,
    offline_fraction: float,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """Rows for the safety critic: each drawn from D_offline with probability ``offline_fraction``, else D_safe.

    The sources are interleaved row by row, so every minibatch cut from the result mixes both. D_safe
    alone forgets: once the policy stops failing it holds no failure, every label decays to 0 and
    Q_safe reads lava-bound actions as safe. D_offline keeps the failures seen so far; the Bellman
    target samples a' from the current policy, so off-policy rows still estimate its failure probability.
    """
    from_offline = rng.random(batch_size) < offline_fraction
    n_offline = int(from_offline.sum())
    if n_offline == 0 or len(offline) == 0:
        return online.sample(batch_size, rng)
    if n_offline == batch_size or len(online) == 0:
        return offline.sample(batch_size, rng)
    on, off = online.sample(batch_size - n_offline, rng), offline.sample(n_offline, rng)
    rows = {}
    for key in on:
        column = np.empty((batch_size, *on[key].shape[1:]), dtype=on[key].dtype)
        column[~from_offline], column[from_offline] = on[key], off[key]
        rows[key] = column
    return rows


def failure_enriched_sample(
    offline: ColumnarReplay, batch_size: int, failure_fraction: float, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Rows of D_offline, each drawn from its failing transitions with probability ``failure_fraction``.

    Failures are rare in D_offline (well under 1% of DrunkSpider's pretraining data), so a uniform
    sample holds too few to pin Q_safe down at the edges of the failure region; over-drawing them
    biases Q_safe upwards, the conservative side for a mask that trusts Q_safe < eps_safe.
    """
    rows = offline.sample(batch_size, rng)
    from_failures = rng.random(batch_size) < failure_fraction
    n = int(from_failures.sum())
    if n:
        failing = offline.sample_failures(n, rng)
        for key, column in rows.items():
            column[from_failures] = failing[key]
    return rows
