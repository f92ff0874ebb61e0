"""SQRL's torch Learner: SAC losses + safety-critic loss + Lagrangian actor term + dual update of nu.

Subclasses RLlib's SAC torch learner but runs a lean step (rllib-notes): one backward pass for the
sum of all losses (each loss only reaches its own parameters because the critics are frozen while
the actor's terms are built), foreach Adam, and in-place polyak averaging per SGD step.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any

import torch
from ray.rllib.algorithms.sac.torch.sac_torch_learner import SACTorchLearner
from ray.rllib.core.columns import Columns
from ray.rllib.core.learner.torch.torch_learner import TorchLearner
from ray.rllib.core.rl_module.apis import TargetNetworkAPI
from ray.rllib.utils.metrics import ALL_MODULES

from sqrl_rllib.algorithms.sqrl.torch.sqrl_torch_rl_module import (
    NEXT_ACTIONS,
    NEXT_LOGP,
    POLICY_ACTIONS,
    POLICY_LOGP,
)
from sqrl_rllib.core import losses
from sqrl_rllib.core.networks import sample_squashed

# Columns of the safety-critic batch (D_safe); a minibatch may carry SAC rows, safety rows or both.
SAFE_OBS, SAFE_ACTIONS, SAFE_NEXT_OBS = "safe_obs", "safe_actions", "safe_next_obs"
SAFE_FAILURE, SAFE_TERMINATED = "safe_failure", "safe_terminated"


@contextmanager
def frozen(module: torch.nn.Module):
    """Stop gradients into ``module``'s parameters while still differentiating through its input."""
    params = list(module.parameters())
    for p in params:
        p.requires_grad_(False)
    try:
        yield module
    finally:
        for p in params:
            p.requires_grad_(True)


class SQRLTorchLearner(SACTorchLearner):
    """Learner of :class:`~sqrl_rllib.algorithms.sqrl.SQRL` (optimizers: qf, policy, alpha, safety, nu)."""

    @classmethod
    def rl_module_required_apis(cls) -> list[type]:
        """SQRL's module exposes target networks."""
        return [TargetNetworkAPI]

    def configure_optimizers_for_module(self, module_id, config=None) -> None:
        """Adam (foreach) per parameter group; lrs from the config's ``*_lr`` keys."""
        module = self._module[module_id].unwrapped()
        groups = {
            "qf": (list(module.qf.parameters()), config.critic_lr),
            "policy": (list(module.policy.parameters()), config.actor_lr),
            "alpha": ([module.log_alpha], config.alpha_lr),
            "safety": (list(module.safety_critic.parameters()), config.safety_critic_lr),
            "nu": ([module.log_nu], config.nu_lr),
        }
        for name, (params, lr) in groups.items():
            self.register_optimizer(
                module_id=module_id,
                optimizer_name=name,
                optimizer=torch.optim.Adam(params, eps=1e-7, foreach=True),
                params=params,
                lr_or_lr_schedule=lr,
            )

    def compute_loss_for_module(self, *, module_id, config, batch: dict[str, Any], fwd_out: dict[str, Any]):
        """Sum of the SAC, safety-critic and Lagrangian losses present for this minibatch."""
        module = self._module[module_id].unwrapped()
        total = torch.zeros((), device=self._device)
        stats: dict[str, Any] = {}
        if Columns.OBS in batch:
            total = total + self._sac_losses(module_id, module, config, batch, fwd_out, stats)
        if SAFE_OBS in batch:
            total = total + self._safety_loss(module, config, batch, stats)
        self.metrics.log_dict(stats, key=module_id, window=1)
        return total

    def _sac_losses(self, module_id, module, config, batch, fwd_out, stats) -> torch.Tensor:
        obs, actions = batch[Columns.OBS], batch[Columns.ACTIONS]
        alpha = module.log_alpha.exp()
        q = module.qf(obs, actions)
        with torch.no_grad():
            q_next = module.target_qf(batch[Columns.NEXT_OBS], fwd_out[NEXT_ACTIONS])
            target = losses.sac_critic_target(
                batch[Columns.REWARDS], batch[Columns.TERMINATEDS], q_next, fwd_out[NEXT_LOGP], alpha, config.gamma
            )
        critic_loss = losses.sac_critic_loss(q, target)
        a_pi, logp_pi = fwd_out[POLICY_ACTIONS], fwd_out[POLICY_LOGP]
        with frozen(module.qf):
            q_pi = module.qf(obs, a_pi)
        actor_loss = losses.sac_actor_loss(q_pi, logp_pi, alpha.detach())
        alpha_loss = losses.alpha_loss(module.log_alpha, logp_pi, float(self.target_entropy[module_id]))
        total = critic_loss + actor_loss + alpha_loss
        if config.phase == "finetune" and config.lagrangian:
            with frozen(module.safety_critic):
                q_safe_pi = module.safety_critic(obs, a_pi)
            nu = module.log_nu.exp()
            total = total + losses.lagrangian_actor_term(q_safe_pi, nu, config.eps_safe)
            total = total + losses.nu_loss(module.log_nu, q_safe_pi, config.eps_safe)
            stats["q_safe_policy_mean"] = q_safe_pi.mean().detach()
        stats.update(
            critic_loss=critic_loss.detach(),
            actor_loss=actor_loss.detach(),
            alpha_loss=alpha_loss.detach(),
            alpha=alpha.detach(),
            nu=module.log_nu.exp().detach(),
            q_mean=q.mean().detach(),
        )
        return total

    def _safety_loss(self, module, config, batch, stats) -> torch.Tensor:
        next_obs, failure = batch[SAFE_NEXT_OBS], batch[SAFE_FAILURE]
        with torch.no_grad():
            a_next, _ = sample_squashed(module.policy.distribution_inputs(next_obs))
            critic = module.target_safety_critic if config.safety_target_network else module.safety_critic
            target = losses.safety_target(
                failure, critic(next_obs, a_next), config.gamma_safe, terminated=batch[SAFE_TERMINATED]
            )
        logits = module.safety_critic.logits(batch[SAFE_OBS], batch[SAFE_ACTIONS])
        loss = losses.safety_critic_loss(logits, target, config.safety_loss)
        with torch.no_grad():
            q_safe = torch.sigmoid(logits)
            failing = failure > 0.5
            stats["safety_loss"] = loss.detach()
            if failing.any():
                stats["q_safe_failing_mean"] = q_safe[failing].mean()
            if (~failing).any():
                stats["q_safe_safe_mean"] = q_safe[~failing].mean()
        return loss

    def compute_gradients(self, loss_per_module, **kwargs):
        """One backward pass over the summed losses; returns the gradients that exist."""
        for optim in self._named_optimizers.values():
            optim.zero_grad(set_to_none=True)
        total = sum(loss for mid, loss in loss_per_module.items() if mid != ALL_MODULES)
        total.backward()
        return {pid: p.grad for pid, p in self._params.items() if p.grad is not None}

    def apply_gradients(self, gradients_dict) -> None:
        """Step every optimizer that received gradients, then polyak-average the matching targets."""
        stepped = set()
        for module_id, names in self._module_optimizers.items():
            for name in names:
                optim = self.get_optimizer(module_id, name)
                if any(p.grad is not None for g in optim.param_groups for p in g["params"]):
                    optim.step()
                    # RLlib registers optimizers as "<module_id>_<name>"; keep the short name.
                    stepped.add((module_id, name.removeprefix(f"{module_id}_")))
        for module_id in self._module_optimizers:
            module = self._module[module_id].unwrapped()
            config = self.config.get_config_for_module(module_id)
            if (module_id, "qf") in stepped:
                _polyak(module.qf, module.target_qf, config.tau)
            if (module_id, "safety") in stepped:
                _polyak(module.safety_critic, module.target_safety_critic, config.tau)
            if (module_id, "nu") in stepped:
                losses.cap_nu_(module.log_nu, config.nu_max)

    def after_gradient_based_update(self, *, timesteps: dict[str, Any]) -> None:
        """Skip DQN's periodic target sync: targets are polyak-averaged every SGD step above."""
        TorchLearner.after_gradient_based_update(self, timesteps=timesteps)


@torch.no_grad()
def _polyak(main: torch.nn.Module, target: torch.nn.Module, tau: float) -> None:
    # In place (rllib-notes: load_state_dict-based target updates cost more than the step itself).
    torch._foreach_lerp_(list(target.parameters()), list(main.parameters()), tau)
