"""The safety mask Gamma as a module-to-env ConnectorV2 (spec section 3).

Prepended to the module-to-env pipeline, i.e. before RLlib's ``GetActions``, which then passes
through because this piece already set ``actions``: it therefore works on the batched tensors of
all sub-envs at once, draws K candidates per env, scores all envs x K with ONE Q_safe forward
pass and picks one per env (``SQRLTorchRLModule.masked_actions``, i.e. the rule of
:func:`sqrl_rllib.core.mask.masked_choice`). During pretraining's warm-up (the module's
``mask_active`` is off until the Algorithm switches it on) it passes through, so ``GetActions``
samples the unmasked policy, as Algorithm 1 fills D_offline with pi before Q_safe is trained.
"""

from __future__ import annotations

from typing import Any

import torch
from ray.rllib.connectors.connector_v2 import ConnectorV2
from ray.rllib.core.columns import Columns

from sqrl_rllib.algorithms.sqrl.torch.sqrl_torch_rl_module import MASK_OBS


class SafetyMask(ConnectorV2):
    """Replace the policy's action by a Q_safe-masked choice among K samples.

    Args:
        eps_safe: safety threshold; samples with Q_safe >= eps_safe are rejected.
        num_action_samples: K, candidates drawn per env step.
        phase: ``"pretrain"`` (riskiest safe sample; only once the module's ``mask_active`` is on)
            or ``"finetune"`` (a uniform pick among the safe samples, i.e. a draw from pi_safe).
        enabled: False makes the piece a pass-through (plain SAC actions).
        resample_rounds: rounds of widened resampling for states without a safe sample
            (``sqrl_rllib.core.mask.masked_choice``; 0: straight to the safest sample).
    """

    def __init__(
        self,
        input_observation_space=None,
        input_action_space=None,
        *,
        eps_safe: float = 0.1,
        num_action_samples: int = 100,
        phase: str = "pretrain",
        enabled: bool = True,
        resample_rounds: int = 0,
        **kwargs,
    ):
        super().__init__(input_observation_space, input_action_space, **kwargs)
        self.eps_safe = float(eps_safe)
        self.num_action_samples = int(num_action_samples)
        self.phase = phase
        self.enabled = bool(enabled)
        self.resample_rounds = int(resample_rounds)

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
        """Set ``actions`` and ``action_logp`` in the batch from the masked K-sample choice."""
        obs = batch.pop(MASK_OBS, None)
        if not self.enabled or obs is None or Columns.ACTION_DIST_INPUTS not in batch:
            return batch
        module = rl_module.unwrapped() if hasattr(rl_module, "unwrapped") else rl_module
        if self.phase == "pretrain" and not bool(module.mask_active):
            return batch
        dist_inputs = batch[Columns.ACTION_DIST_INPUTS]
        lead = dist_inputs.shape[:-1]
        obs_flat = obs.reshape(-1, obs.shape[-1]).float()
        inputs_flat = dist_inputs.reshape(-1, dist_inputs.shape[-1])
        actions, logp, choice = module.masked_actions(
            obs_flat,
            inputs_flat,
            self.num_action_samples,
            self.eps_safe,
            self.phase,
            explore=bool(explore),
            resample_rounds=self.resample_rounds,
        )
        batch[Columns.ACTIONS] = actions.reshape(*lead, actions.shape[-1])
        batch[Columns.ACTION_LOGP] = logp.reshape(lead)
        if metrics is not None:
            # One stacked tensor -> one host transfer (three .item() calls cost three syncs on a GPU).
            summary = torch.stack(
                [choice.rejected_fraction.mean(), choice.fallback.float().mean(), choice.q_safe.mean()]
            )
            rejection, fallback, chosen_q_safe = summary.tolist()
            metrics.log_value("mask_rejection_rate", rejection, window=100)
            metrics.log_value("mask_fallback_rate", fallback, window=100)
            metrics.log_value("mask_chosen_q_safe", chosen_q_safe, window=100)
        return batch
