"""Catch bad env output where it happens, not as a NaN loss hundreds of updates later.

``CheckedEnv`` checks every reset and step: the observation has the declared space's shape, a dtype that
casts to the space's safely and only finite values; the reward is a finite number; ``info["failure"]``
exists and is a bool. A violation raises ``EnvOutputError`` naming the env, the step and the value. The
sqrl env ids are created checked (``sqrl_rllib.envs.rllib.make_env``), and so is every env wrapped by
``with_failure``.

With the env_config key ``bad_output: drop_episode`` a bad step instead ends its episode there: the
wrapper returns the last good observation as a truncation, with ``info[DROPPED_KEY]`` holding the message,
and the algorithms discard that last transition (``sqrl_rllib.algorithms.sqrl.episodes``) and count the
episode in ``sqrl/dropped_episodes`` instead of ``cumulative_episodes``. The steps before the bad one stay:
they were valid. An env that breaks ``max_consecutive_drops`` episodes in a row (or at every reset) still
raises, so a run cannot loop forever on an env that always breaks.
"""

from __future__ import annotations

import math
import numbers

import gymnasium as gym
import numpy as np

BAD_OUTPUT_KEY = "bad_output"
BAD_OUTPUT_MODES = ("raise", "drop_episode")
# info key of the truncating step that replaced a bad one; its value is the EnvOutputError message.
DROPPED_KEY = "sqrl_dropped_episode"
MAX_CONSECUTIVE_DROPS = 20


class EnvOutputError(RuntimeError):
    """An env returned an observation, reward or failure flag that SQRL cannot learn from."""


def pop_bad_output(env_config: dict | None) -> tuple[str, dict]:
    """Split ``env_config`` into the ``bad_output`` mode (default "raise") and the env's own kwargs.

    Raises ValueError naming the key for a mode other than ``BAD_OUTPUT_MODES``.
    """
    kwargs = dict(env_config or {})
    mode = kwargs.pop(BAD_OUTPUT_KEY, "raise")
    if mode not in BAD_OUTPUT_MODES:
        raise ValueError(f"env_config.{BAD_OUTPUT_KEY}={mode!r}: must be one of {list(BAD_OUTPUT_MODES)}")
    return mode, kwargs


class CheckedEnv(gym.Wrapper):
    """Validates the output of ``env`` on every reset and step (see the module docstring).

    Args:
        env: the env to check.
        name: how messages name it (default: its spec id, else its class name).
        bad_output: "raise" (default) or "drop_episode" (see the module docstring).
        max_consecutive_drops: with "drop_episode", raise once this many episodes in a row were dropped
            (or this many resets in a row were bad).
    """

    def __init__(
        self,
        env: gym.Env,
        name: str | None = None,
        bad_output: str = "raise",
        max_consecutive_drops: int = MAX_CONSECUTIVE_DROPS,
    ):
        super().__init__(env)
        if bad_output not in BAD_OUTPUT_MODES:
            raise ValueError(f"{BAD_OUTPUT_KEY}={bad_output!r}: must be one of {list(BAD_OUTPUT_MODES)}")
        self.env_name = name or (env.spec.id if env.spec is not None else type(env.unwrapped).__name__)
        self.bad_output = bad_output
        self.max_consecutive_drops = int(max_consecutive_drops)
        self.dropped_episodes = 0
        self._consecutive_drops = 0
        self._step = 0
        self._last_obs = None

    def reset(self, **kwargs):
        """Reset and check the first observation and ``info["failure"]`` (a bad reset is retried when
        dropping episodes)."""
        for attempt in range(1, self.max_consecutive_drops + 1):
            obs, info = self.env.reset(**kwargs)
            self._step = 0
            try:
                self._check_obs(obs, "reset")
                self._check_failure(info, "reset")
            except EnvOutputError as error:
                if self.bad_output == "raise":
                    raise
                if attempt == self.max_consecutive_drops:
                    raise EnvOutputError(f"{error} ({attempt} bad resets in a row)") from None
                continue
            self._last_obs = obs
            return obs, info
        raise AssertionError("unreachable")

    def step(self, action):
        """Step and check observation, reward and ``info["failure"]``; a bad step raises or, with
        ``bad_output: drop_episode``, ends the episode as a truncation flagged in ``info[DROPPED_KEY]``."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._step += 1
        where = f"step {self._step}"
        try:
            self._check_obs(obs, where)
            self._check_reward(reward, where)
            self._check_failure(info, where)
        except EnvOutputError as error:
            if self.bad_output == "raise":
                raise
            return self._drop(error)
        if terminated or truncated:
            self._consecutive_drops = 0
        self._last_obs = obs
        return obs, reward, terminated, truncated, info

    def _drop(self, error: EnvOutputError):
        self.dropped_episodes += 1
        self._consecutive_drops += 1
        if self._consecutive_drops >= self.max_consecutive_drops:
            raise EnvOutputError(
                f"{error} ({self._consecutive_drops} episodes in a row dropped for bad output; "
                f"{BAD_OUTPUT_KEY}: drop_episode gives up so that a broken env cannot loop forever)"
            )
        # The last good observation keeps the batch valid; the algorithm discards this transition.
        return self._last_obs, 0.0, False, True, {"failure": False, DROPPED_KEY: str(error)}

    def _check_obs(self, obs, where: str) -> None:
        space = self.observation_space
        if not isinstance(space, gym.spaces.Box):
            return
        array = np.asarray(obs)
        if array.shape != space.shape:
            self._fail(where, f"observation shape {array.shape} differs from the declared {space.shape}")
        if not np.can_cast(array.dtype, space.dtype, casting="same_kind"):
            self._fail(where, f"observation dtype {array.dtype} does not cast to the declared {space.dtype}")
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            bad = np.flatnonzero(~np.isfinite(array.reshape(-1)))
            self._fail(where, f"observation has non-finite values at flat index {bad[:5].tolist()}: {array!r}")

    def _check_reward(self, reward, where: str) -> None:
        if isinstance(reward, bool) or not isinstance(reward, numbers.Real | np.number) or not math.isfinite(reward):
            self._fail(where, f"reward {reward!r} is not a finite number")

    def _check_failure(self, info, where: str) -> None:
        if "failure" not in info:
            self._fail(where, 'info has no "failure" key (wrap the env with sqrl_rllib.envs.with_failure)')
        if not isinstance(info["failure"], bool | np.bool_):
            self._fail(where, f'info["failure"]={info["failure"]!r} is not a bool')

    def _fail(self, where: str, what: str):
        raise EnvOutputError(f"env {self.env_name}, {where}: {what}")
