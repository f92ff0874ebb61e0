"""WCPG's risk level alpha as the last component of the observation, appended by an env-to-module connector.

Why a connector and not a gymnasium wrapper: RLlib's observation preprocessors write the new observation
back into the episode, so alpha reaches SQRL's columnar replay (and its checkpoints) with the observation
it belongs to, and the RLModule's observation space is the connector's output space without any env
plumbing. The env, its id and its ``env_config`` stay the user's (the pipeline's), and RLlib builds the
evaluation EnvRunners' connectors from the evaluation config (``in_evaluation``), which is how evaluation
gets the fixed alpha without a second env registration.

Per episode: the reset observation draws alpha (``U(low, high)``, or the fixed value); every later
observation copies it from the previous observation in the episode (kept in RLlib's lookback buffer
across episode chunks), so the connector holds no per-episode state.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from ray.rllib.connectors.env_to_module.observation_preprocessor import SingleAgentObservationPreprocessor


def split_risk_level(obs):
    """(observation without alpha, alpha) of observations whose last component is alpha: [..., n] ->
    ([..., n - 1], [...]); works on numpy arrays and torch tensors."""
    return obs[..., :-1], obs[..., -1]


def risk_level_space(space: gym.spaces.Box) -> gym.spaces.Box:
    """``space`` (a flat Box) with one more component, alpha in [0, 1]."""
    if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
        raise ValueError(f"WCPG needs a flat Box observation space, got {space}")
    low = np.append(space.low, 0.0).astype(space.dtype)
    high = np.append(space.high, 1.0).astype(space.dtype)
    return gym.spaces.Box(low, high, dtype=space.dtype)


class AppendRiskLevel(SingleAgentObservationPreprocessor):
    """Append the episode's risk level alpha to every observation.

    Args:
        low, high: alpha ~ U(low, high) per episode, 0 < low <= high <= 1 (ignored when ``fixed`` is set).
        fixed: a fixed alpha in (0, 1] for every episode (fine-tuning and evaluation), or None to sample.
        seed: seed of the sampling generator; None draws it from numpy's global generator, which RLlib
            seeds per EnvRunner (``config.seed`` + worker index) before it builds this connector.
    """

    def __init__(
        self,
        input_observation_space=None,
        input_action_space=None,
        *,
        low: float = 0.1,
        high: float = 1.0,
        fixed: float | None = None,
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(input_observation_space, input_action_space, **kwargs)
        if fixed is not None and not 0.0 < fixed <= 1.0:
            raise ValueError(f"risk level fixed={fixed} must lie in (0, 1]")
        if fixed is None and not 0.0 < low <= high <= 1.0:
            raise ValueError(f"risk levels need 0 < low <= high <= 1, got low={low}, high={high}")
        self.low, self.high, self.fixed = float(low), float(high), fixed
        self._rng = np.random.default_rng(np.random.randint(2**31) if seed is None else seed)

    def recompute_output_observation_space(self, input_observation_space, input_action_space) -> gym.Space:
        """The input space with alpha in [0, 1] appended."""
        return risk_level_space(input_observation_space)

    def risk_level_sampling(self) -> dict[str, float]:
        """``{"fixed": alpha}`` or ``{"low": low, "high": high}``: how this connector picks alpha."""
        return {"fixed": float(self.fixed)} if self.fixed is not None else {"low": self.low, "high": self.high}

    def draw(self) -> float:
        """A new episode's alpha: the fixed one, else U(low, high)."""
        return float(self.fixed) if self.fixed is not None else float(self._rng.uniform(self.low, self.high))

    def preprocess(self, observation, episode):
        """The env's observation with the episode's alpha appended (drawn at the reset observation)."""
        if episode.t == 0:  # the reset observation: no env step yet
            alpha = self.draw()
        else:  # the previous observation already carries this episode's alpha
            alpha = episode.get_observations(-2)[-1]
        observation = np.asarray(observation)
        return np.append(observation, np.asarray(alpha, observation.dtype))
