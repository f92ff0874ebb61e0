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
        idx = (self.next_index + np.arange(n)) % self.capacity
        for name in FIELDS:
            self.columns[name][idx] = np.asarray(batch[name]).reshape(self.columns[name][idx].shape)
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
    episode id are joined. Dropping the oldest episode is O(1), so the safety critic always trains
    on the freshest on-policy data (paper appendix D).
    """

    def __init__(self, max_episodes: int):
        if max_episodes < 1:
            raise ValueError(f"online_buffer_episodes must be >= 1, got {max_episodes}")
        self.max_episodes = int(max_episodes)
        self.episodes: OrderedDict[str, list[dict[str, np.ndarray]]] = OrderedDict()
        self._cache: dict[str, np.ndarray] | None = None

    def __len__(self) -> int:
        return sum(len(c["rewards"]) for chunks in self.episodes.values() for c in chunks)

    def add_chunk(self, episode_id: str, columns: dict[str, np.ndarray]) -> None:
        """Append a chunk of episode ``episode_id``, evicting the oldest episodes beyond the cap."""
        if len(columns["rewards"]) == 0:
            return
        self.episodes.setdefault(episode_id, []).append(columns)
        while len(self.episodes) > self.max_episodes:
            self.episodes.popitem(last=False)
        self._cache = None

    def all(self) -> dict[str, np.ndarray]:
        """Every transition held, as concatenated columns."""
        if self._cache is None:
            chunks = [c for cs in self.episodes.values() for c in cs]
            self._cache = {k: np.concatenate([c[k] for c in chunks]) for k in FIELDS}
        return self._cache

    def sample(self, batch_size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Uniform sample with replacement from the held transitions."""
        data = self.all()
        idx = rng.integers(0, len(data["rewards"]), size=batch_size)
        return {k: v[idx] for k, v in data.items()}

    def get_state(self) -> dict:
        """Picklable state."""
        return {"max_episodes": self.max_episodes, "episodes": list(self.episodes.items())}

    def set_state(self, state: dict) -> None:
        """Restore from :meth:`get_state` output."""
        self.episodes = OrderedDict(state["episodes"][-self.max_episodes :])
        self._cache = None


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
