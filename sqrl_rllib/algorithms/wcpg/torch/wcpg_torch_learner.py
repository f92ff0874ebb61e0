"""WCPG's torch Learner: the mean / variance critic losses and the CVaR actor loss on SQRL's lean update.

Only the optimizers and the loss differ from :class:`SQRLTorchLearner`; its minibatch cutting, single
backward pass, fused Adam steps, per-step polyak averaging of the module's target pairs (here the actor
and the critic), finiteness checks and window-1 statistics are inherited.
"""

from __future__ import annotations

from typing import Any

import torch
from ray.rllib.core.columns import Columns

from sqrl_rllib.algorithms.sqrl.torch.sqrl_torch_learner import SQRLTorchLearner, frozen
from sqrl_rllib.algorithms.sqrl.torch.sqrl_torch_rl_module import NEXT_ACTIONS, POLICY_ACTIONS
from sqrl_rllib.algorithms.wcpg.risk_level import split_risk_level
from sqrl_rllib.core.wcpg import cvar, wcpg_actor_loss, wcpg_targets


class WCPGTorchLearner(SQRLTorchLearner):
    """Learner of :class:`~sqrl_rllib.algorithms.wcpg.WCPG` (optimizers: actor, critic)."""

    def optimizer_groups(self, module, config) -> dict[str, tuple[list, float]]:
        """The actor (``actor_lr``) and the critic (``critic_lr``)."""
        return {
            "actor": (list(module.actor.parameters()), config.actor_lr),
            "critic": (list(module.critic.parameters()), config.critic_lr),
        }

    def compute_loss_for_module(self, *, module_id, config, batch: dict[str, Any], fwd_out: dict[str, Any]):
        """Critic: squared errors of Q and Upsilon against their Bellman targets (``wcpg_targets``, bootstrapped
        from the target actor and critic at the transition's alpha); actor: -CVaR_alpha (``wcpg_actor_loss``)
        with the critic frozen, so one backward pass trains each network on its own loss only.

        The CVaR is the paper's, q - phi(Phi^-1(alpha)) / alpha * sqrt(Upsilon); the authors' code multiplied
        by the variance Upsilon itself instead of its square root (see ``sqrl_rllib.core.wcpg.cvar``).
        """
        module = self._module[module_id].unwrapped()
        obs, alpha = split_risk_level(batch[Columns.OBS])
        next_obs, next_alpha = split_risk_level(batch[Columns.NEXT_OBS])
        q, upsilon = module.critic(obs, batch[Columns.ACTIONS], alpha)
        with torch.no_grad():
            q_next, upsilon_next = module.target_critic(next_obs, fwd_out[NEXT_ACTIONS], next_alpha)
            q_target, upsilon_target = wcpg_targets(
                batch[Columns.REWARDS] * config.reward_scale,
                batch[Columns.TERMINATEDS],
                q_next,
                upsilon_next,
                q.detach(),
                config.gamma,
                clip=config.variance_target == "clipped",
                centered=config.variance_target == "centered",
            )
        q_loss = 0.5 * (q - q_target).pow(2).mean()
        upsilon_loss = 0.5 * (upsilon - upsilon_target).pow(2).mean()
        with frozen(module.critic):
            q_pi, upsilon_pi = module.critic(obs, fwd_out[POLICY_ACTIONS], alpha)
        actor_loss = wcpg_actor_loss(q_pi, upsilon_pi, alpha)
        # Logged once per update call by SQRLTorchLearner.after_gradient_based_update (window 1).
        self._latest_stats.setdefault(module_id, {}).update(
            critic_loss=(q_loss + upsilon_loss).detach(),
            q_loss=q_loss.detach(),
            upsilon_loss=upsilon_loss.detach(),
            actor_loss=actor_loss.detach(),
            q_mean=q.mean().detach(),
            upsilon_mean=upsilon.mean().detach(),
            cvar_mean=cvar(q_pi, upsilon_pi, alpha).mean().detach(),
            risk_level_mean=alpha.mean().detach(),
        )
        return q_loss + upsilon_loss + actor_loss
