"""CPO's RLModule: the Gaussian policy (tanh MLP mean, state-independent log std), reward and cost value nets.

Exploration samples ``ACTION_DIST_INPUTS`` of RLlib's diagonal Gaussian, unsquashed: the episodes keep the
sample (the likelihood ratio and KL of CPO's step are those of plain Gaussians), and RLlib's
``NormalizeAndClipActions`` clips it to [-1, 1] while mapping it onto the env's bounds. Inference
(deterministic) acts with the mean. EnvRunners (``inference_only``) hold the policy only.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.distribution.torch.torch_distribution import TorchDiagGaussian
from ray.rllib.core.rl_module.apis import InferenceOnlyAPI
from ray.rllib.core.rl_module.torch.torch_rl_module import TorchRLModule

# Importing SQRL's module also spends RLlib's deprecated-RLModuleConfig warning once (see there).
import sqrl_rllib.algorithms.sqrl.torch.sqrl_torch_rl_module  # noqa: F401
from sqrl_rllib.core.cpo import GaussianPolicy, value_net


class CPOTorchRLModule(TorchRLModule, InferenceOnlyAPI):
    """pi(a|s) = N(mu(s), sigma^2) on [-1, 1]-normalised actions, V(s) of the reward and V_C(s) of the cost.

    ``model_config`` keys: ``hidden`` (layer sizes of all three networks, default (256, 256)),
    ``policy_mean_init_scale`` (factor on the mean's initial output weights, default 1) and
    ``policy_init_log_std`` (initial log sigma, default -0.5).
    """

    def setup(self):
        """Build the policy and (on Learners) both value networks; spaces must be flat Boxes."""
        if not isinstance(self.observation_space, gym.spaces.Box) or not isinstance(self.action_space, gym.spaces.Box):
            raise ValueError(
                f"CPO needs Box observation and action spaces, got {self.observation_space} and {self.action_space}"
            )
        cfg = dict(self.model_config or {})
        hidden = tuple(cfg.get("hidden", (256, 256)))
        obs_dim = int(np.prod(self.observation_space.shape))
        act_dim = int(np.prod(self.action_space.shape))
        self.policy = GaussianPolicy(
            obs_dim,
            act_dim,
            hidden,
            init_log_std=float(cfg.get("policy_init_log_std", -0.5)),
            mean_init_scale=float(cfg.get("policy_mean_init_scale", 1.0)),
        )
        if not self.inference_only:
            self.value = value_net(obs_dim, hidden)
            self.cost_value = value_net(obs_dim, hidden)
        self.action_dist_cls = TorchDiagGaussian

    # --- InferenceOnlyAPI -------------------------------------------------------------------
    def get_non_inference_attributes(self) -> list[str]:
        """Attributes not needed on EnvRunners."""
        return ["value", "cost_value"]

    # --- forward passes ---------------------------------------------------------------------
    def _forward_inference(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        """Diagonal Gaussian inputs (mean, log std); deterministic sampling returns the mean."""
        mean, log_std = self.policy(batch[Columns.OBS])
        return {Columns.ACTION_DIST_INPUTS: torch.cat([mean, log_std], dim=-1)}

    def _forward_exploration(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        return self._forward_inference(batch)

    def _forward_train(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        return self._forward_inference(batch)
