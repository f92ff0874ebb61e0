"""SQRL's torch Learner: SAC losses + safety-critic loss + Lagrangian actor term + dual update of nu.

Subclasses RLlib's SAC torch learner but runs a lean step (rllib-notes): one backward pass for the
sum of all losses (each loss only reaches its own parameters because the critics are frozen while
the actor's terms are built), fused Adam, in-place polyak averaging per SGD step, and loss statistics
logged once per update call (they have window 1, so only the last minibatch's values are reported).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any

import torch
from ray.rllib.algorithms.sac.torch.sac_torch_learner import SACTorchLearner
from ray.rllib.core.columns import Columns
from ray.rllib.core.learner.torch.torch_learner import TorchLearner
from ray.rllib.core.rl_module.apis import TargetNetworkAPI
from ray.rllib.utils.metrics import ALL_MODULES, NUM_ENV_STEPS_SAMPLED_LIFETIME

from sqrl_rllib.algorithms.sqrl.torch.sqrl_torch_rl_module import (
    NEXT_ACTIONS,
    NEXT_LOGP,
    POLICY_ACTIONS,
    POLICY_LOGP,
    SAFE_ACTIONS,
    SAFE_FAILURE,
    SAFE_NEXT_ACTIONS,
    SAFE_NEXT_OBS,
    SAFE_OBS,
    SAFE_TERMINATED,
)
from sqrl_rllib.core import losses
from sqrl_rllib.core.esac import esac_critic_target
from sqrl_rllib.core.finite import check_finite
from sqrl_rllib.core.networks import sample_squashed
from sqrl_rllib.core.optim import adam
from sqrl_rllib.core.risk_sensitive import lambda_schedule, risk_sensitive_reward

# Per-minibatch Q_safe sums and counts on failing / safe rows, turned into means once per update.
_FAILING_SUMS = "_q_safe_failing_safe_sums"


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

    def optimizer_groups(self, module, config) -> dict[str, tuple[list, float]]:
        """Optimizer name -> (parameters, learning rate from the config's ``*_lr`` key) of ``module``."""
        return {
            "qf": (list(module.qf.parameters()), config.critic_lr),
            "policy": (list(module.policy.parameters()), config.actor_lr),
            "alpha": ([module.log_alpha], config.alpha_lr),
            "safety": (list(module.safety_critic.parameters()), config.safety_critic_lr),
            "nu": ([module.log_nu], config.nu_lr),
        }

    def configure_optimizers_for_module(self, module_id, config=None) -> None:
        """Adam (fused, see ``sqrl_rllib.core.optim``) per group of :meth:`optimizer_groups`."""
        groups = self.optimizer_groups(self._module[module_id].unwrapped(), config)
        for name, (params, lr) in groups.items():
            self.register_optimizer(
                module_id=module_id,
                optimizer_name=name,
                optimizer=adam(params, lr),
                params=params,
                lr_or_lr_schedule=lr,
            )

    def build(self) -> None:
        """RLlib's build plus the per-module store of the latest loss statistics."""
        super().build()
        self._latest_stats: dict[str, dict[str, Any]] = {}
        self._env_steps = 0

    def before_gradient_based_update(self, *, timesteps: dict[str, Any]) -> None:
        """Keep the stage's env steps so far (RS's ``lambda_schedule`` reads them)."""
        super().before_gradient_based_update(timesteps=timesteps)
        self._env_steps = int(timesteps.get(NUM_ENV_STEPS_SAMPLED_LIFETIME, 0))

    def _multiplier(self, module, config) -> torch.Tensor:
        """nu, or RS's lambda: the learned multiplier, or the scheduled value with ``lambda_schedule``."""
        if config.risk_penalty and config.lambda_schedule is not None:
            start, end, steps = config.lambda_schedule
            value = lambda_schedule(self._env_steps, steps, start, end)
            return torch.tensor(value, dtype=module.log_nu.dtype, device=module.log_nu.device)
        return module.log_nu.exp()

    def _update(self, batch: dict[str, Any]):
        """One SGD step per ``train_batch_size_per_learner`` rows of ``batch``, in order.

        SQRL hands the learner all of an iteration's minibatches as one batch (``minibatch_size=None``)
        and they are cut here as tensor views: RLlib's minibatch iterator re-slices a SampleBatch
        and logs per minibatch, which cost ~0.9 ms per SGD step (benchmarks/README.md).
        """
        size = self.config.train_batch_size_per_learner
        rows = max(len(column) for columns in batch.values() for column in columns.values())
        if rows <= size:
            return super()._update(batch)
        for start in range(0, rows, size):
            minibatch = {
                module_id: {key: column[start : start + size] for key, column in columns.items()}
                for module_id, columns in batch.items()
            }
            result = super()._update(minibatch)
        return result

    def compute_loss_for_module(self, *, module_id, config, batch: dict[str, Any], fwd_out: dict[str, Any]):
        """Sum of the SAC, safety-critic and Lagrangian losses present for this minibatch."""
        module = self._module[module_id].unwrapped()
        total = torch.zeros((), device=self._device)
        stats: dict[str, Any] = {}
        if Columns.OBS in batch:
            total = total + self._sac_losses(module_id, module, config, batch, fwd_out, stats)
        if SAFE_OBS in batch:
            total = total + self._safety_loss(module, config, batch, fwd_out, stats)
        # Logged once per update call in after_gradient_based_update: with window 1 only the last
        # minibatch's values are reported, and logging every minibatch cost ~0.4 ms per SGD step.
        self._latest_stats.setdefault(module_id, {}).update(stats)
        return total

    def _sac_losses(self, module_id, module, config, batch, fwd_out, stats) -> torch.Tensor:
        obs, actions = batch[Columns.OBS], batch[Columns.ACTIONS]
        alpha = module.log_alpha.exp()
        q = module.qf(obs, actions)
        with torch.no_grad():
            q_next = module.target_qf(batch[Columns.NEXT_OBS], fwd_out[NEXT_ACTIONS])
            # reward_scale: TF-Agents' reward_scale_factor (the SQRL authors' configs use 10).
            reward = batch[Columns.REWARDS] * config.reward_scale
            if config.risk_penalty:  # RS: r - lambda * Q_safe(s, a), lambda being nu
                lam = self._multiplier(module, config)
                reward = risk_sensitive_reward(reward, module.safety_critic(obs, actions), lam)
            # SAC's target is ESAC's with the minimum over its critics and the entropy term.
            target = esac_critic_target(
                reward,
                batch[Columns.TERMINATEDS],
                q_next,
                fwd_out[NEXT_LOGP],
                alpha,
                config.gamma,
                config.critic_target_aggregate,
                config.critic_target_entropy,
            )
        critic_loss = losses.sac_critic_loss(q, target)
        a_pi, logp_pi = fwd_out[POLICY_ACTIONS], fwd_out[POLICY_LOGP]
        with frozen(module.qf):
            q_pi = module.qf(obs, a_pi)
        actor_loss = losses.sac_actor_loss(q_pi, logp_pi, alpha.detach())
        # target_entropy stays a tensor: float() of it would sync the host every SGD step on a GPU.
        alpha_loss = losses.alpha_loss(module.log_alpha, logp_pi, self.target_entropy[module_id])
        total = critic_loss + actor_loss + alpha_loss
        lagrangian = config.lagrangian and (config.phase == "finetune" or config.pretrain_lagrangian)
        if lagrangian or config.risk_penalty:
            with frozen(module.safety_critic):
                q_safe_pi = module.safety_critic(obs, a_pi)
            if lagrangian:
                total = total + losses.lagrangian_actor_term(q_safe_pi, module.log_nu.exp(), config.eps_safe)
            # Dual ascent of nu (RS: of lambda, the same multiplier) on E[Q_safe(s, pi)] against eps_safe,
            # unless RS's lambda follows its schedule.
            if not (config.risk_penalty and config.lambda_schedule is not None):
                total = total + losses.nu_loss(module.log_nu, q_safe_pi, config.eps_safe)
            stats["q_safe_policy_mean"] = q_safe_pi.mean().detach()
        stats.update(
            critic_loss=critic_loss.detach(),
            actor_loss=actor_loss.detach(),
            alpha_loss=alpha_loss.detach(),
            alpha=alpha.detach(),
            nu=self._multiplier(module, config).detach(),
            q_mean=q.mean().detach(),
        )
        return total

    def _safety_loss(self, module, config, batch, fwd_out, stats) -> torch.Tensor:
        next_obs, failure, a_next = batch[SAFE_NEXT_OBS], batch[SAFE_FAILURE], fwd_out[SAFE_NEXT_ACTIONS]
        with torch.no_grad():
            critic = module.target_safety_critic if config.safety_target_network else module.safety_critic
            if config.safety_target_policy == "masked":
                m = config.safety_target_samples
                candidates, _ = sample_squashed(module.policy.distribution_inputs(next_obs), m)
                q_next = critic(next_obs.unsqueeze(-2).expand(-1, m, -1), candidates)
                q_next = losses.masked_policy_value(q_next, config.eps_safe)
            else:
                q_next = critic(next_obs, a_next)
            target = losses.safety_target(failure, q_next, config.gamma_safe, terminated=batch[SAFE_TERMINATED])
        logits = module.safety_critic.logits(batch[SAFE_OBS], batch[SAFE_ACTIONS])
        loss = losses.safety_critic_loss(logits, target, config.safety_loss)
        with torch.no_grad():
            # Sums and counts, not boolean indexing: selecting rows would sync the host every step.
            q_safe = torch.sigmoid(logits)
            failing = (failure > 0.5).to(q_safe.dtype)
            stats["safety_loss"] = loss.detach()
            stats[_FAILING_SUMS] = torch.stack(
                [(q_safe * failing).sum(), failing.sum(), (q_safe * (1 - failing)).sum(), (1 - failing).sum()]
            )
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
            # A target follows its network only on steps that trained it (a frozen Q_safe's target stays).
            pairs = [
                (main, target)
                for main, target in module.get_target_network_pairs()
                if next(main.parameters()).grad is not None
            ]
            _polyak(pairs, config.tau)
            if (module_id, "nu") in stepped:
                losses.cap_nu_(module.log_nu, config.nu_max)

    def after_gradient_based_update(self, *, timesteps: dict[str, Any]) -> None:
        """Check losses and parameters are finite, log the last minibatch's loss statistics; skip DQN's
        periodic target sync (targets are polyak-averaged every SGD step in :meth:`apply_gradients`).

        A NaN / inf raises NonFiniteError naming the loss or parameter, so the trial fails at this update
        and Tune restarts it from its last checkpoint instead of training on garbage.
        """
        for module_id, stats in self._latest_stats.items():
            module = self._module[module_id].unwrapped()
            check_finite(
                {k: v for k, v in stats.items() if k.endswith("_loss") and torch.is_tensor(v)},
                module.named_parameters(),
            )
        for module_id, stats in self._latest_stats.items():
            sums = stats.pop(_FAILING_SUMS, None)
            if sums is not None:
                # One host transfer per update call, for the last minibatch's Q_safe means.
                failing_sum, failing_n, safe_sum, safe_n = sums.tolist()
                if failing_n:
                    stats["q_safe_failing_mean"] = failing_sum / failing_n
                if safe_n:
                    stats["q_safe_safe_mean"] = safe_sum / safe_n
            self.metrics.log_dict(stats, key=module_id, window=1)
        self._latest_stats.clear()
        TorchLearner.after_gradient_based_update(self, timesteps=timesteps)


@torch.no_grad()
def _polyak(pairs: list[tuple[torch.nn.Module, torch.nn.Module]], tau: float) -> None:
    """target <- target + tau * (main - target) for every (main, target) pair, in one foreach call."""
    if not pairs:
        return
    # In place (rllib-notes: load_state_dict-based target updates cost more than the step itself).
    targets = [p for _, target in pairs for p in target.parameters()]
    mains = [p for main, _ in pairs for p in main.parameters()]
    torch._foreach_lerp_(targets, mains, tau)
