"""A frozen SQRL safety critic as a shield for another algorithm's policy (a module-to-env ConnectorV2).

The SQRL mask (``safety_mask.py``) generalised to a policy it did not train with, e.g. RLlib's stock PPO
or SAC: for each env step, K candidate actions are drawn from that policy's own action distribution
(the RLModule's ``get_exploration_action_dist_cls()`` applied to its ``action_dist_inputs``), all
envs x K candidates are scored by Q_safe in one forward pass, and fine-tuning's rule of
:func:`sqrl_rllib.core.mask.select_action_index` picks one per env: a uniform pick among the safe ones
(a draw from pi restricted to the safe set), the safest when none is safe.

Where it sits: RLlib's hook for a stock config (``config.env_runners(module_to_env_connector=...)``)
places custom pieces after ``GetActions`` and the un-batching, so the shield receives per-episode
numpy items, re-stacks them into one tensor, and overwrites ``actions`` and ``action_logp`` (the
policy's log-probability of the executed candidate, so PPO's importance ratios stay those of the
action taken; the executed actions are no longer plain draws from pi, which makes PPO slightly
off-policy). ``NormalizeAndClipActions`` then maps the chosen action to the env as for any action.

Q_safe works in SQRL's units (tanh-squashed [-1, 1] mapped to the env by SQRL's own config), the
policy in its own (PPO: an unsquashed Gaussian; SAC: tanh-squashed). Both meet in env units: each
candidate is mapped the way RLlib maps the policy's actions to the env (unsquash-and-clip, clip or
nothing), and from there into Q_safe's action units (:class:`sqrl_rllib.shield.FrozenQSafe`). The
observation scored is the episode's last one, i.e. the raw env observation Q_safe was trained on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from ray.rllib.connectors.connector_v2 import ConnectorV2
from ray.rllib.core.columns import Columns

from sqrl_rllib.core.mask import MaskChoice, select_action_index, select_deterministic

ACTION_TRANSFORMS = ("unsquash", "clip", "none")


def shielded_choice(
    dist_inputs: torch.Tensor,
    dist_cls: Any,
    q_safe_of: Callable[[torch.Tensor], torch.Tensor],
    k: int,
    eps_safe: float,
    explore: bool = True,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, MaskChoice]:
    """The shield for B states: K candidates from any RLlib action distribution, one Q_safe call, one choice.

    Args:
        dist_inputs: the policy's ``action_dist_inputs`` [B, D].
        dist_cls: an RLlib distribution class (``from_logits``, ``sample``, ``logp``, ``to_deterministic``),
            e.g. ``TorchDiagGaussian`` (PPO) or ``TorchSquashedGaussian`` (SAC).
        q_safe_of: maps candidates [B, K, act_dim] (in the policy's action units) to Q_safe [B, K].
        k: K, candidates per state.
        eps_safe: candidates with Q_safe >= eps_safe are rejected.
        explore: False is deterministic evaluation: candidate 0 is the distribution's deterministic
            action (what RLlib's ``GetActions`` would execute); it is kept if safe, else the safest.
        generator: RNG of the uniform pick among the safe candidates (candidates use torch's global RNG).
    Returns:
        actions [B, act_dim], their log-probabilities [B] under the (stochastic) policy, and the
        :class:`~sqrl_rllib.core.mask.MaskChoice` (rejected fraction, fallback, chosen Q_safe).
    """
    b = dist_inputs.shape[0]
    # One distribution over B * K rows draws every candidate and scores every log-probability at once,
    # whatever the class (no reliance on a class supporting sample_shape).
    dist = dist_cls.from_logits(dist_inputs.repeat_interleave(k, dim=0))
    candidates = dist.sample().reshape(b, k, -1)
    if not explore:
        deterministic = dist_cls.from_logits(dist_inputs).to_deterministic().sample()
        candidates[:, 0] = deterministic.reshape(b, -1)
    logp = dist.logp(candidates.reshape(b * k, -1)).reshape(b, k)
    q_safe = q_safe_of(candidates)
    if explore:
        choice = select_action_index(q_safe, eps_safe, "finetune", generator)
    else:
        choice = select_deterministic(q_safe, eps_safe)
    rows = torch.arange(b, device=candidates.device)
    return candidates[rows, choice.index], logp[rows, choice.index], choice


def to_env_units(
    actions: torch.Tensor, low: torch.Tensor | None, high: torch.Tensor | None, transform: str
) -> torch.Tensor:
    """Map policy actions to env units as RLlib's ``NormalizeAndClipActions`` does.

    ``"unsquash"`` (``normalize_actions=True``): ``clip(low + (a + 1) * (high - low) / 2, low, high)``;
    ``"clip"`` (``clip_actions=True`` only): ``clip(a, low, high)``; ``"none"``: ``a``. Unbounded spaces
    (``low`` None) pass through, as RLlib leaves them.
    """
    if transform not in ACTION_TRANSFORMS:
        raise ValueError(f"transform must be one of {ACTION_TRANSFORMS}, got {transform!r}")
    if transform == "none" or low is None:
        return actions
    if transform == "unsquash":
        actions = low + (actions + 1.0) * (high - low) / 2.0
    return torch.minimum(torch.maximum(actions, low), high)


class SafetyShield(ConnectorV2):
    """Veto another algorithm's actions with a frozen Q_safe (see the module docstring).

    Build it with :func:`sqrl_rllib.shield.add_safety_shield`, which makes one per EnvRunner.

    Args:
        q_safe: maps obs [B, obs_dim] and env-unit actions [B, K, act_dim] to Q_safe [B, K]
            (:class:`sqrl_rllib.shield.FrozenQSafe`).
        eps_safe: candidates with Q_safe >= eps_safe are rejected.
        num_action_samples: K, candidates drawn per env step.
        action_transform: how RLlib maps this policy's actions to the env (``to_env_units``).
        action_low, action_high: the env's action bounds (None: unbounded).
    """

    def __init__(
        self,
        input_observation_space=None,
        input_action_space=None,
        *,
        q_safe: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        eps_safe: float,
        num_action_samples: int = 100,
        action_transform: str = "unsquash",
        action_low: np.ndarray | None = None,
        action_high: np.ndarray | None = None,
        **kwargs,
    ):
        super().__init__(input_observation_space, input_action_space, **kwargs)
        if action_transform not in ACTION_TRANSFORMS:
            raise ValueError(f"action_transform must be one of {ACTION_TRANSFORMS}, got {action_transform!r}")
        self.q_safe = q_safe
        self.eps_safe = float(eps_safe)
        self.num_action_samples = int(num_action_samples)
        self.action_transform = action_transform
        bounded = action_low is not None and np.all(np.isfinite(action_low)) and np.all(np.isfinite(action_high))
        # Copies: a gymnasium space's bounds may be read-only arrays.
        self._low = torch.tensor(np.asarray(action_low, np.float32).ravel()) if bounded else None
        self._high = torch.tensor(np.asarray(action_high, np.float32).ravel()) if bounded else None

    def __call__(
        self,
        *,
        rl_module,
        batch: dict[str, Any],
        episodes,
        explore: bool | None = None,
        shared_data: dict | None = None,
        metrics=None,
        **kwargs,
    ) -> Any:
        """Overwrite ``actions`` and ``action_logp`` of every live episode with the shielded choice."""
        per_episode = batch.get(Columns.ACTION_DIST_INPUTS)
        if not per_episode:
            return batch
        # Rows whose episode just ended are for an env that auto-resets on this step and ignores the action;
        # their episode has already been replaced in ``episodes``, so they are left as they are.
        live = {episode.id_: episode for episode in episodes if episode.is_reset}
        keys = [key for key in per_episode if key[0] in live]
        if not keys:
            return batch
        dist_inputs = torch.as_tensor(np.stack([np.asarray(per_episode[key][0]) for key in keys]))
        obs = torch.as_tensor(
            np.stack([np.asarray(live[key[0]].get_observations(-1), np.float32).ravel() for key in keys])
        )
        dist_cls = rl_module.get_exploration_action_dist_cls() if explore else rl_module.get_inference_action_dist_cls()
        with torch.no_grad():
            actions, logp, choice = shielded_choice(
                dist_inputs.float(),
                dist_cls,
                lambda candidates: self.q_safe(obs, self._env_units(candidates)),
                self.num_action_samples,
                self.eps_safe,
                explore=bool(explore),
            )
        actions_np, logp_np = actions.numpy(), logp.numpy()
        action_column, logp_column = batch[Columns.ACTIONS], batch.get(Columns.ACTION_LOGP)
        for i, key in enumerate(keys):
            action_column[key] = [actions_np[i].astype(np.asarray(action_column[key][0]).dtype)]
            if logp_column is not None:
                logp_column[key] = [np.asarray(logp_np[i], dtype=np.asarray(logp_column[key][0]).dtype)]
        if metrics is not None:
            # Same names and windows as SQRL's mask (safety_mask.py), so dashboards read both alike.
            summary = torch.stack(
                [choice.rejected_fraction.mean(), choice.fallback.float().mean(), choice.q_safe.mean()]
            )
            rejection, fallback, chosen_q_safe = summary.tolist()
            metrics.log_value("mask_rejection_rate", rejection, window=100)
            metrics.log_value("mask_fallback_rate", fallback, window=100)
            metrics.log_value("mask_chosen_q_safe", chosen_q_safe, window=100)
        return batch

    def _env_units(self, candidates: torch.Tensor) -> torch.Tensor:
        return to_env_units(candidates, self._low, self._high, self.action_transform)
