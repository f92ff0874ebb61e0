"""DrunkSpider: 2-D point navigation past lava pits over a one-cell bridge.

Faithful to the SQRL authors' "DrunkSpiderShort" environment (spec section 6): an 8 x 7 grid,
position (row, col) continuous in [0, 8] x [0, 7], cell (r, c) covering [r, r+1) x [c, c+1).
Lava fills columns 2 and 4 of rows 2-5; column 3 of those rows is the bridge (centre col 3.5).
Start (0, 3), goal (7, 3); reaching within 1.0 of the goal is success.

``layout="long_detour"`` (not the authors') widens the map to 11 columns and fills columns 0-2 and 4-8 of
the lava rows, so the only other way past is a corridor at columns 9-10 (col in [9, 11]), about twelve steps
longer than the bridge. On the authors' map the detour costs about one step (actions are clipped per axis, so moving
sideways is free while moving up) and out-earns the bridge under Gaussian noise 0.2; on this one the bridge
pays, which figure 5's risk dial needs (benchmarks/README.md, "Figure 5").

Reward shaping (the authors' "l2" reward plus their time-limit wrapper):
  * every step: -||pos - goal|| / sqrt(8^2 + 7^2)
  * success: reward 1 on that step, plus 1 * (remaining steps) as a bonus
  * failure (lava or leaving the map): reward -1 - (remaining steps + 1)
  * timeout (episode length reached without success or failure): -30 added on the last step

Under this shaping a failure at step t costs about -(32 - t) while a timeout costs -30 plus up to 30
distance penalties: until the goal has been found, failing early pays better than staying alive, and
SAC learns to fail on purpose (benchmarks/README.md, "Pretraining seed robustness").
``failure_penalty="below_timeout"`` also charges the timeout penalty on a failure, which makes every
failure strictly worse than any timeout from the same state (the remaining distance penalties are at
most 1 per step, less than the remaining-steps term).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import gymnasium as gym
import numpy as np

N_ROWS, N_COLS = 8, 7
LAVA_COLS = (2, 4)
LAVA_ROWS = (2, 3, 4, 5)
START = (0.0, 3.0)
GOAL = (7.0, 3.0)
GOAL_RADIUS = 1.0
SUBSTEPS = 10
TIMEOUT_PENALTY = -30.0
# The authors' distance normaliser, kept for every layout so that a step's penalty means the same.
_DIAGONAL = math.sqrt(N_ROWS**2 + N_COLS**2)


@dataclass(frozen=True)
class Layout:
    """Where the lava is: the map's width and the lava columns of rows 2-5 (the bridge stays column 3)."""

    n_cols: int
    lava_cols: tuple[int, ...]


LAYOUTS = {
    "authors": Layout(N_COLS, LAVA_COLS),
    "long_detour": Layout(11, (0, 1, 2, 4, 5, 6, 7, 8)),
}

TASKS = {
    # Pretraining tolerates failures; fine-tuning is the target task with a noisier action channel.
    "pretrain": {"action_scale": 1.0, "action_noise": 0.1},
    "finetune": {"action_scale": 1.0, "action_noise": 0.2},
}
NOISE_TYPES = ("uniform", "gaussian")
FAILURE_PENALTIES = ("authors", "below_timeout")


def parse_noise_levels(text: str) -> list[float] | None:
    """Noise levels written ``LO:HI:N`` (N evenly spaced levels, e.g. ``0:0.4:10``, the authors' pretraining
    randomisation), as a comma list, or ``""`` (none, returned as None); raises ValueError otherwise."""
    if not text:
        return None
    try:
        if ":" in text:
            low, high, count = text.split(":")
            return np.linspace(float(low), float(high), int(count)).tolist()
        return [float(x) for x in text.split(",")]
    except ValueError as err:
        raise ValueError(f"expected LO:HI:N or a comma-separated list, got {text!r}") from err


def is_lava(row: float, col: float, lava_cols: tuple[int, ...] = LAVA_COLS) -> bool:
    """True when the continuous position (row, col) lies in a lava cell (of the authors' map by default)."""
    return int(math.floor(row)) in LAVA_ROWS and int(math.floor(col)) in lava_cols


def is_outside(row: float, col: float, n_cols: int = N_COLS) -> bool:
    """True when (row, col) has left the map [0, 8] x [0, n_cols] (the authors' [0, 8] x [0, 7] by default)."""
    return not (0.0 <= row <= N_ROWS and 0.0 <= col <= n_cols)


class DrunkSpiderEnv(gym.Env):
    """Point robot crossing a lava field; ``info["failure"]`` marks lava or leaving the map.

    Args:
        task: ``"pretrain"`` or ``"finetune"``; picks the default action scale and noise
            (pretrain: scale 1, noise 0.1; finetune: scale 1, noise 0.2).
        action_scale: multiplies the [-1, 1]^2 action; overrides the task default.
        action_noise: noise magnitude; overrides the task default. Must be >= 0.
        action_noise_levels: domain randomisation of the noise, as in the authors'
            ``PointMassAcNoiseEnv``: each reset draws the episode's noise magnitude uniformly from
            these levels (e.g. 10 levels spanning [0, 0.4]). Pretraining over a range that
            contains the fine-tuning noise gives the safety critic data from the fine-tuning
            dynamics (the paper's Assumption 4). Exclusive with ``action_noise``.
        noise_type: ``"uniform"`` (authors' code: U[-noise/2, noise/2] per axis) or
            ``"gaussian"`` (N(0, noise^2) per axis, the paper's wording; needed for a real
            risk trade-off on the bridge).
        max_episode_steps: episode length (30 in the paper).
        render_mode: ``None`` or ``"rgb_array"``.
        failure_penalty: ``"authors"`` (their shaping, the default) or ``"below_timeout"`` (a failure
            also pays the timeout penalty, so failing never pays better than timing out).
        layout: ``"authors"`` (8 x 7, the default) or ``"long_detour"`` (8 x 11, the detour around the
            lava is about twelve steps longer than the bridge; see the module docstring).
        random_start_fraction: share of resets in [0, 1] that start at a uniformly drawn free position
            (off the lava, outside the goal disc) instead of (0, 3). A pretraining option: the safety
            critic only learns about the states that pretraining visits, and a detour that pretraining
            never walks reads as unsafe to it (figure 5 on ``long_detour``). 0, the default, is the
            authors' task.
        start_positions: the fixed starts, a list of (row, col) each free on the layout; each reset that
            does not draw a random start picks one uniformly. ``None``, the default, is the authors'
            (0, 3) alone. A pretraining option: a policy pretrained from the start and from the
            corridor entrance of ``long_detour`` learns both routes, which figure 5's risk dial needs
            (Q_safe reads the risk of an action followed by *pretraining's* pi).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self,
        task: str = "pretrain",
        action_scale: float | None = None,
        action_noise: float | None = None,
        noise_type: str = "uniform",
        action_noise_levels: Sequence[float] | None = None,
        max_episode_steps: int = 30,
        render_mode: str | None = None,
        failure_penalty: str = "authors",
        layout: str = "authors",
        random_start_fraction: float = 0.0,
        start_positions: Sequence[Sequence[float]] | None = None,
    ):
        if task not in TASKS:
            raise ValueError(f"DrunkSpider: unknown task={task!r}; valid values: {sorted(TASKS)}")
        if noise_type not in NOISE_TYPES:
            raise ValueError(f"DrunkSpider: unknown noise_type={noise_type!r}; valid values: {list(NOISE_TYPES)}")
        if failure_penalty not in FAILURE_PENALTIES:
            raise ValueError(
                f"DrunkSpider: unknown failure_penalty={failure_penalty!r}; valid values: {list(FAILURE_PENALTIES)}"
            )
        if layout not in LAYOUTS:
            raise ValueError(f"DrunkSpider: unknown layout={layout!r}; valid values: {sorted(LAYOUTS)}")
        if not 0.0 <= float(random_start_fraction) <= 1.0:
            raise ValueError(f"DrunkSpider: random_start_fraction must be in [0, 1], got {random_start_fraction!r}")
        self.random_start_fraction = float(random_start_fraction)
        self.failure_penalty = failure_penalty
        self.layout = LAYOUTS[layout]
        defaults = TASKS[task]
        self.task = task
        self.action_scale = float(defaults["action_scale"] if action_scale is None else action_scale)
        self.action_noise = float(defaults["action_noise"] if action_noise is None else action_noise)
        if self.action_noise < 0:
            raise ValueError(f"DrunkSpider: action_noise must be >= 0, got {self.action_noise}")
        self.action_noise_levels = None
        if action_noise_levels is not None:
            if action_noise is not None:
                raise ValueError("DrunkSpider: give action_noise or action_noise_levels, not both")
            try:
                levels = np.asarray(action_noise_levels, dtype=np.float64).reshape(-1)
            except (TypeError, ValueError):
                levels = np.array([np.nan])
            if levels.size == 0 or not np.all(np.isfinite(levels)) or np.any(levels < 0):
                raise ValueError(
                    f"DrunkSpider: action_noise_levels must be a non-empty list of numbers >= 0, "
                    f"got {action_noise_levels!r}"
                )
            self.action_noise_levels = levels
        if self.action_scale <= 0:
            raise ValueError(f"DrunkSpider: action_scale must be > 0, got {self.action_scale}")
        if max_episode_steps < 1:
            raise ValueError(f"DrunkSpider: max_episode_steps must be >= 1, got {max_episode_steps}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"DrunkSpider: render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.noise_type = noise_type
        self.max_episode_steps = int(max_episode_steps)
        self.render_mode = render_mode
        self.observation_space = gym.spaces.Box(
            low=np.array([0.0, 0.0], np.float32),
            high=np.array([N_ROWS, self.layout.n_cols], np.float32),
            dtype=np.float32,
        )
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self.start_positions = self._checked_starts(start_positions)
        self._pos = np.array(START, dtype=np.float64)
        self._t = 0
        self._trajectory: list[tuple[float, float]] = []

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Put the spider at the start (0, 3), or one of ``start_positions``; returns (obs, info) with
        ``failure=False``.

        ``options={"position": (row, col)}`` starts elsewhere instead (any free, in-map position);
        diagnostics use it to estimate failure probabilities from chosen states. With
        ``action_noise_levels`` each reset also draws the episode's noise magnitude; with
        ``random_start_fraction`` that share of resets draws a free start position.
        """
        super().reset(seed=seed)
        if self.action_noise_levels is not None:
            self.action_noise = float(self.action_noise_levels[self.np_random.integers(len(self.action_noise_levels))])
        if options and "position" in options:
            row, col = (float(x) for x in options["position"])
            if self._blocked(row, col):
                raise ValueError(f"DrunkSpider: reset position {(row, col)} is outside the map or in lava")
            self._pos = np.array((row, col), dtype=np.float64)
        elif self.random_start_fraction and self.np_random.random() < self.random_start_fraction:
            self._pos = self._free_position()
        else:
            pick = self.np_random.integers(len(self.start_positions)) if len(self.start_positions) > 1 else 0
            self._pos = self.start_positions[pick].copy()
        self._t = 0
        self._trajectory = [tuple(self._pos)]
        return self._obs(), {"failure": False, "success": False}

    def _checked_starts(self, start_positions) -> np.ndarray:
        """``start_positions`` as an (n, 2) array, each checked to be a free in-map position."""
        if start_positions is None:
            return np.array([START], dtype=np.float64)
        try:
            starts = np.asarray(start_positions, dtype=np.float64)
        except (TypeError, ValueError):
            starts = np.empty((0, 0))
        if starts.ndim != 2 or starts.shape[0] == 0 or starts.shape[1] != 2 or not np.all(np.isfinite(starts)):
            raise ValueError(
                f"DrunkSpider: start_positions must be a non-empty list of (row, col) pairs, got {start_positions!r}"
            )
        for row, col in starts:
            if self._blocked(row, col):
                position = (float(row), float(col))
                raise ValueError(f"DrunkSpider: start_positions holds {position}, outside the map or in lava")
        return starts

    def _free_position(self) -> np.ndarray:
        """A uniform position off the lava and outside the goal disc (rejection: most of the map is free)."""
        goal = np.array(GOAL)
        while True:
            pos = self.np_random.uniform((0.0, 0.0), (N_ROWS, self.layout.n_cols))
            if not self._blocked(*pos) and np.linalg.norm(pos - goal) >= GOAL_RADIUS:
                return pos

    def _blocked(self, row: float, col: float) -> bool:
        return is_outside(row, col, self.layout.n_cols) or is_lava(row, col, self.layout.lava_cols)

    def _obs(self) -> np.ndarray:
        return np.clip(self._pos, self.observation_space.low, self.observation_space.high).astype(np.float32)

    def _noise(self) -> np.ndarray:
        if self.action_noise == 0:
            return np.zeros(2)
        if self.noise_type == "uniform":
            return self.np_random.uniform(-self.action_noise / 2, self.action_noise / 2, size=2)
        return self.np_random.normal(0.0, self.action_noise, size=2)

    def _move(self, delta: np.ndarray) -> bool:
        """Integrate ``delta`` in substeps, axis by axis; returns True on a failure (stops there)."""
        step = delta / SUBSTEPS
        n_cols, lava_cols = self.layout.n_cols, self.layout.lava_cols  # locals: 20 checks per env step
        for _ in range(SUBSTEPS):
            for axis in (0, 1):
                nxt = self._pos.copy()
                nxt[axis] += step[axis]
                if is_outside(*nxt, n_cols) or is_lava(*nxt, lava_cols):
                    self._pos = nxt
                    return True
                self._pos = nxt
        return False

    def step(self, action):
        """Move by ``clip(action * scale + noise)``; see the module docstring for rewards."""
        action = np.asarray(action, dtype=np.float64).reshape(2)
        action = np.clip(action, -1.0, 1.0) * self.action_scale
        delta = np.clip(action + self._noise(), -self.action_scale, self.action_scale)
        failure = self._move(delta)
        self._t += 1
        self._trajectory.append(tuple(self._pos))
        remaining = self.max_episode_steps - self._t
        dist = float(np.linalg.norm(self._pos - np.array(GOAL)))
        success = (not failure) and dist < GOAL_RADIUS
        if failure:
            reward = -1.0 - (remaining + 1)
            if self.failure_penalty == "below_timeout":
                reward += TIMEOUT_PENALTY
        elif success:
            reward = 1.0 + 1.0 * remaining
        else:
            reward = -dist / _DIAGONAL
        terminated = failure or success
        truncated = (not terminated) and self._t >= self.max_episode_steps
        if truncated:
            reward += TIMEOUT_PENALTY
        info = {"failure": bool(failure), "success": bool(success)}
        return self._obs(), float(reward), bool(terminated), bool(truncated), info

    def render(self):
        """RGB image (H, W, 3) of the map: lava red, bridge tan, goal green, trajectory blue."""
        if self.render_mode is None:
            gym.logger.warn("DrunkSpider.render() called without render_mode='rgb_array'")
            return None
        cell, n_cols = 32, self.layout.n_cols
        img = np.full((N_ROWS * cell, n_cols * cell, 3), 235, dtype=np.uint8)
        for r in LAVA_ROWS:
            for c in self.layout.lava_cols:
                img[r * cell : (r + 1) * cell, c * cell : (c + 1) * cell] = (200, 40, 20)
            img[r * cell : (r + 1) * cell, 3 * cell : 4 * cell] = (205, 170, 110)
        yy, xx = np.mgrid[0 : N_ROWS * cell, 0 : n_cols * cell]
        goal_disc = (yy / cell - GOAL[0]) ** 2 + (xx / cell - GOAL[1]) ** 2 < GOAL_RADIUS**2
        img[goal_disc] = (60, 180, 75)
        img[::cell, :] = 180
        img[:, ::cell] = 180
        pts = np.array(self._trajectory) * cell
        for (r0, c0), (r1, c1) in zip(pts[:-1], pts[1:], strict=False):
            for s in np.linspace(0.0, 1.0, 24):
                r = int(np.clip(r0 + s * (r1 - r0), 0, N_ROWS * cell - 1))
                c = int(np.clip(c0 + s * (c1 - c0), 0, n_cols * cell - 1))
                img[max(r - 1, 0) : r + 2, max(c - 1, 0) : c + 2] = (30, 60, 220)
        return img
