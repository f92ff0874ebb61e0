"""WCPG's RLModule: deterministic actor mu(s, alpha), distributional critic (Q, Upsilon), their targets.

The observation's last component is the risk level alpha (appended by
:class:`~sqrl_rllib.algorithms.wcpg.risk_level.AppendRiskLevel`); the module splits it off and feeds it to
both networks. Exploration: ``ACTION_DIST_INPUTS`` of a diagonal Gaussian with mean mu(s, alpha) and the
fixed std ``exploration_noise_std``, whose samples are clipped to [-1, 1] (:class:`ClippedDiagGaussian`),
so the episodes and the replay hold the [-1, 1]-normalised action the env executed (RLlib's
``NormalizeAndClipActions`` maps [-1, 1] onto the env's bounds, as for SQRL's squashed policy).
Inference (deterministic) acts with mu.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.distribution.torch.torch_distribution import TorchDiagGaussian
from ray.rllib.core.learner.utils import make_target_network
from ray.rllib.core.rl_module.apis import InferenceOnlyAPI, TargetNetworkAPI
from ray.rllib.core.rl_module.torch.torch_rl_module import TorchRLModule

# Importing SQRL's module also spends RLlib's deprecated-RLModuleConfig warning once (see there).
from sqrl_rllib.algorithms.sqrl.torch.sqrl_torch_rl_module import NEXT_ACTIONS, POLICY_ACTIONS
from sqrl_rllib.algorithms.wcpg.risk_level import split_risk_level
from sqrl_rllib.core.wcpg import WCPGActor, WCPGCritic


class ClippedDiagGaussian(TorchDiagGaussian):
    """RLlib's diagonal Gaussian whose samples are clipped to [-1, 1] (the normalised action box).

    Only ``sample`` clips; ``logp`` is the Gaussian density of the clipped value (nothing in WCPG reads it:
    the actor is deterministic and its loss never uses log-probabilities).
    """

    def sample(self, *, sample_shape=None):
        """A Gaussian draw clipped to [-1, 1]."""
        return super().sample(sample_shape=sample_shape).clamp(-1.0, 1.0)

    def rsample(self, *, sample_shape=None):
        """A reparameterised Gaussian draw clipped to [-1, 1]."""
        return super().rsample(sample_shape=sample_shape).clamp(-1.0, 1.0)


class WCPGTorchRLModule(TorchRLModule, InferenceOnlyAPI, TargetNetworkAPI):
    """Actor mu(s, alpha) in [-1, 1]^act_dim and critic (Q, Upsilon)(s, a, alpha), alpha the last obs component.

    ``model_config`` keys: ``hidden`` (layer sizes, default (256, 256)), ``policy_mean_init_scale`` (factor
    on the actor's initial output weights, default 1) and ``exploration_noise_std`` (the Gaussian
    exploration std on normalised actions, default 0.3). EnvRunners (``inference_only``) hold
    the actor only.
    """

    def setup(self):
        """Build the actor and (on Learners) the critic; spaces must be flat Boxes."""
        if not isinstance(self.observation_space, gym.spaces.Box) or not isinstance(self.action_space, gym.spaces.Box):
            raise ValueError(
                f"WCPG needs Box observation and action spaces, got {self.observation_space} and {self.action_space}"
            )
        cfg = dict(self.model_config or {})
        hidden = tuple(cfg.get("hidden", (256, 256)))
        # The observation space includes alpha (AppendRiskLevel); the networks take it as a separate input.
        obs_dim = int(np.prod(self.observation_space.shape)) - 1
        act_dim = int(np.prod(self.action_space.shape))
        self.actor = WCPGActor(obs_dim, act_dim, hidden, float(cfg.get("policy_mean_init_scale", 1.0)))
        if not self.inference_only:
            self.critic = WCPGCritic(obs_dim, act_dim, hidden)
        self.log_noise_std = math.log(float(cfg.get("exploration_noise_std", 0.3)))
        self.action_dist_cls = ClippedDiagGaussian

    # --- TargetNetworkAPI -------------------------------------------------------------------
    def make_target_networks(self):
        """Target copies of the actor and the critic (WCPG's Bellman targets use both)."""
        self.target_actor = make_target_network(self.actor)
        self.target_critic = make_target_network(self.critic)

    def get_target_network_pairs(self):
        """(main, target) pairs polyak-averaged by the Learner."""
        return [(self.actor, self.target_actor), (self.critic, self.target_critic)]

    def forward_target(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Target critic's (Q, Upsilon) at (obs, actions) in ``batch``, each [B]."""
        obs, alpha = split_risk_level(batch[Columns.OBS])
        q, upsilon = self.target_critic(obs, batch[Columns.ACTIONS], alpha)
        return {"q_target": q, "upsilon_target": upsilon}

    # --- InferenceOnlyAPI -------------------------------------------------------------------
    def get_non_inference_attributes(self) -> list[str]:
        """Attributes not needed on EnvRunners."""
        return ["critic", "target_critic", "target_actor"]

    # --- forward passes ---------------------------------------------------------------------
    def _forward_inference(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        """Gaussian dist inputs around mu(s, alpha); deterministic sampling (inference) returns mu."""
        mu = self.actor(*split_risk_level(batch[Columns.OBS]))
        log_std = torch.full_like(mu, self.log_noise_std)
        return {Columns.ACTION_DIST_INPUTS: torch.cat([mu, log_std], dim=-1)}

    def _forward_exploration(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        return self._forward_inference(batch)

    def _forward_train(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        """mu(s, alpha) with gradients (the actor loss) and the target actor's mu'(s', alpha) without."""
        out: dict[str, Any] = {POLICY_ACTIONS: self.actor(*split_risk_level(batch[Columns.OBS]))}
        with torch.no_grad():
            out[NEXT_ACTIONS] = self.target_actor(*split_risk_level(batch[Columns.NEXT_OBS]))
        return out
