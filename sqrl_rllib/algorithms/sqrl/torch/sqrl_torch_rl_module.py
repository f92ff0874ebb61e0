"""SQRL's RLModule: SAC policy, twin Q critics (one batched net), safety critic Q_safe, targets."""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.distribution.torch.torch_distribution import TorchSquashedGaussian
from ray.rllib.core.learner.utils import make_target_network
from ray.rllib.core.rl_module.apis import InferenceOnlyAPI, QNetAPI, TargetNetworkAPI
from ray.rllib.core.rl_module.torch.torch_rl_module import TorchRLModule
from ray.util import log_once

from sqrl_rllib.core.mask import MaskChoice, masked_choice
from sqrl_rllib.core.networks import EnsembleQ, SafetyCritic, SquashedGaussianPolicy, sample_squashed

# RLlib 2.60's own RLModule.__init__ still builds an RLModuleConfig for old custom models, which trips
# that class's "RLModule(config=[RLModuleConfig object]) has been deprecated" warning in every process
# although we construct the module the new way (keyword spaces and model_config). Its warning is
# guarded by log_once: spend that once here so users do not see a warning they cannot act on.
log_once("RLModule(config=[RLModuleConfig object])")

# The module-to-env pipeline only sees the module's outputs, so the observations are passed through
# under this key for the safety mask connector (which pops it again).
MASK_OBS = "sqrl_mask_obs"
POLICY_ACTIONS, POLICY_LOGP = "sqrl_pi_actions", "sqrl_pi_logp"
NEXT_ACTIONS, NEXT_LOGP = "sqrl_next_actions", "sqrl_next_logp"
SAFE_NEXT_ACTIONS = "sqrl_safe_next_actions"
# Columns of the safety-critic rows (D_safe mixed with D_offline); a train batch may carry SAC rows,
# safety rows or both.
SAFE_OBS, SAFE_ACTIONS, SAFE_NEXT_OBS = "safe_obs", "safe_actions", "safe_next_obs"
SAFE_FAILURE, SAFE_TERMINATED = "safe_failure", "safe_terminated"


class SQRLTorchRLModule(TorchRLModule, InferenceOnlyAPI, TargetNetworkAPI, QNetAPI):
    """Policy pi(a|s) (tanh-Gaussian), twin critics Q_1,2(s,a), safety critic Q_safe(s,a).

    ``model_config`` keys: ``hidden`` (tuple of layer sizes, default (256, 256)), ``num_critics``
    (default 2), ``initial_alpha`` (SAC temperature, default 1.0), ``nu_init`` (Lagrange multiplier).
    Observations must be a flat Box; actions a Box (the policy acts in [-1, 1]
    and RLlib's action normalisation maps to the env's bounds).
    """

    def setup(self):
        """Build the networks; EnvRunners (``inference_only``) get the policy and safety critic only."""
        if not isinstance(self.observation_space, gym.spaces.Box) or not isinstance(self.action_space, gym.spaces.Box):
            raise ValueError(
                f"SQRL needs Box observation and action spaces, got {self.observation_space} and {self.action_space}"
            )
        cfg = dict(self.model_config or {})
        hidden = tuple(cfg.get("hidden", (256, 256)))
        obs_dim = int(np.prod(self.observation_space.shape))
        act_dim = int(np.prod(self.action_space.shape))
        self.policy = SquashedGaussianPolicy(
            obs_dim, act_dim, hidden, mean_init_scale=float(cfg.get("policy_mean_init_scale", 1.0))
        )
        # The mask needs Q_safe on the EnvRunners, so the safety critic is an inference attribute.
        self.safety_critic = SafetyCritic(obs_dim, act_dim, hidden)
        if not self.inference_only:
            self.qf = EnsembleQ(obs_dim, act_dim, int(cfg.get("num_critics", 2)), hidden)
            # SAC's temperature and the Lagrange multiplier live in the module (not the Learner)
            # so that module checkpoints carry them from pretraining into fine-tuning.
            self.log_alpha = torch.nn.Parameter(torch.tensor(math.log(cfg.get("initial_alpha", 1.0))))
            self.log_nu = torch.nn.Parameter(torch.tensor(math.log(cfg.get("nu_init", 1.0))))
        self.action_dist_cls = TorchSquashedGaussian
        # Pretraining's warm-up (Algorithm 1) acts with the unmasked policy until the Algorithm
        # switches this on; a buffer, so weight syncs carry it to (restarted) EnvRunners and
        # checkpoints keep it.
        self.register_buffer("mask_active", torch.tensor(False))

    # --- TargetNetworkAPI -------------------------------------------------------------------
    def make_target_networks(self):
        """Create target copies of the critics and of the safety critic."""
        self.target_qf = make_target_network(self.qf)
        self.target_safety_critic = make_target_network(self.safety_critic)

    def get_target_network_pairs(self):
        """(main, target) pairs updated by polyak averaging in the Learner."""
        return [(self.qf, self.target_qf), (self.safety_critic, self.target_safety_critic)]

    def forward_target(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Target critic values for (obs, actions) in ``batch``: [num_critics, B]."""
        return {"q_target": self.target_qf(batch[Columns.OBS], batch[Columns.ACTIONS])}

    # --- InferenceOnlyAPI -------------------------------------------------------------------
    def get_non_inference_attributes(self) -> list[str]:
        """Attributes not needed on EnvRunners."""
        return ["qf", "target_qf", "target_safety_critic", "log_alpha", "log_nu"]

    # --- QNetAPI ----------------------------------------------------------------------------
    def compute_q_values(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Minimum over the twin critics of Q(obs, actions), shape [B]."""
        return {"qf_preds": self.qf(batch[Columns.OBS], batch[Columns.ACTIONS]).min(dim=0).values}

    # --- forward passes ---------------------------------------------------------------------
    def _forward_inference(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        obs = batch[Columns.OBS]
        return {Columns.ACTION_DIST_INPUTS: self.policy.distribution_inputs(obs), MASK_OBS: obs}

    def _forward_exploration(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        return self._forward_inference(batch)

    def _forward_train(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        """Policy samples: reparameterised at s, and a' at s' (SAC rows) and s' (safety rows).

        Only the actor's pass at s needs gradients; a' for both Bellman targets comes from one
        stacked pass without them, so the backward pass never runs through rows that cannot carry
        a gradient. (The losses are in sqrl_rllib.core.losses.)
        """
        out: dict[str, Any] = {}
        next_obs = []
        if Columns.OBS in batch:
            out[POLICY_ACTIONS], out[POLICY_LOGP] = sample_squashed(self.policy.distribution_inputs(batch[Columns.OBS]))
            next_obs.append(batch[Columns.NEXT_OBS])
        if SAFE_NEXT_OBS in batch:
            next_obs.append(batch[SAFE_NEXT_OBS])
        if next_obs:
            with torch.no_grad():
                actions, logp = sample_squashed(self.policy.distribution_inputs(torch.cat(next_obs, dim=0)))
            if Columns.OBS in batch:
                n = batch[Columns.NEXT_OBS].shape[0]
                out[NEXT_ACTIONS], out[NEXT_LOGP] = actions[:n], logp[:n]
                actions = actions[n:]
            if SAFE_NEXT_OBS in batch:
                out[SAFE_NEXT_ACTIONS] = actions
        return out

    # --- safety critic scoring (used by the mask connector) ---------------------------------
    @torch.no_grad()
    def sample_candidates(self, dist_inputs: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """K actions per state from pi: actions [B, K, act_dim] in [-1, 1], log-probs [B, K]."""
        return sample_squashed(dist_inputs, k)

    @torch.no_grad()
    def q_safe(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Q_safe for obs [B, obs_dim] and actions [B, K, act_dim] in one forward pass: [B, K]."""
        k = actions.shape[1]
        obs_k = obs.unsqueeze(1).expand(-1, k, -1)
        return self.safety_critic(obs_k, actions)

    @torch.no_grad()
    def masked_actions(
        self,
        obs: torch.Tensor,
        dist_inputs: torch.Tensor,
        k: int,
        eps_safe: float,
        phase: str,
        explore: bool = True,
        generator: torch.Generator | None = None,
        resample_rounds: int = 0,
    ) -> tuple[torch.Tensor, torch.Tensor, MaskChoice]:
        """The mask Gamma for obs [B, obs_dim] (:func:`sqrl_rllib.core.mask.masked_choice` with this Q_safe).

        Returns actions [B, act_dim], their log-probs [B] and the :class:`MaskChoice`; with ``explore``
        False (deterministic evaluation) candidate 0 is the policy mean; ``resample_rounds`` as in
        ``masked_choice``.
        """
        return masked_choice(
            dist_inputs,
            lambda actions: self.q_safe(obs, actions),
            k,
            eps_safe,
            phase,
            explore,
            generator,
            resample_rounds=resample_rounds,
        )
