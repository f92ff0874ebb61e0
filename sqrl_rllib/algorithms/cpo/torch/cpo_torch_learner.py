"""CPO's torch Learner: GAE for reward and cost, one CPO policy step, the two value-network fits.

Not a gradient-descent Learner: :meth:`CPOTorchLearner._update` replaces RLlib's forward / loss /
backward / optimizer step with the CPO update of ``sqrl_rllib.core.cpo`` on the whole on-policy batch
(the Algorithm passes ``minibatch_size=None``). The policy has no optimizer (the step is the trust-region
solution); the reward and the cost value networks have one Adam each (``critic_lr``).
"""

from __future__ import annotations

from typing import Any

import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.learner.torch.torch_learner import TorchLearner

from sqrl_rllib.algorithms.cpo.cpo import COSTS
from sqrl_rllib.core.cpo import cpo_policy_update, fit_value, gae
from sqrl_rllib.core.finite import check_finite
from sqrl_rllib.core.optim import adam


class CPOTorchLearner(TorchLearner):
    """Learner of :class:`~sqrl_rllib.algorithms.cpo.CPO` (optimizers: value, cost_value)."""

    def configure_optimizers_for_module(self, module_id, config=None) -> None:
        """Adam (``critic_lr``) for the reward value net and for the cost value net; none for the policy."""
        module = self._module[module_id].unwrapped()
        for name, net in (("value", module.value), ("cost_value", module.cost_value)):
            params = list(net.parameters())
            self.register_optimizer(
                module_id=module_id,
                optimizer_name=name,
                optimizer=adam(params, config.critic_lr),
                params=params,
                lr_or_lr_schedule=config.critic_lr,
            )

    def build(self) -> None:
        """RLlib's build plus the CPU generator that shuffles the value-fit minibatches (seeded)."""
        super().build()
        seed = self.config.seed
        self._shuffle = torch.Generator().manual_seed(0 if seed is None else int(seed))
        self._constraint: dict[str, float] = {"constraint_value": 0.0, "episode_length": 1.0}

    def update(self, *args, constraint_value: float = 0.0, episode_length: float = 1.0, **kwargs):
        """RLlib's update with the batch's constraint value c = J_C - d and mean episode length (from the
        Algorithm, which sees whole episodes across batches)."""
        self._constraint = {"constraint_value": float(constraint_value), "episode_length": float(episode_length)}
        return super().update(*args, **kwargs)

    def compute_loss_for_module(self, *, module_id, config, batch: dict[str, Any], fwd_out: dict[str, Any]):
        """Not used: CPO's step is no loss minimisation (see :meth:`_update`)."""
        raise NotImplementedError("CPOTorchLearner updates in _update (a trust-region step), not from a loss")

    def _update(self, batch: dict[str, Any]):
        """The CPO update of each module on its whole batch; returns ({}, value losses per module, {})."""
        losses = {}
        for module_id, columns in batch.items():
            losses[module_id] = self._cpo_update(module_id, columns)
        return {}, losses, {}

    def _cpo_update(self, module_id, b: dict[str, torch.Tensor]) -> torch.Tensor:
        module = self._module[module_id].unwrapped()
        config = self.config.get_config_for_module(module_id)
        obs, next_obs = b[Columns.OBS], b[Columns.NEXT_OBS]
        terminated, truncated = b[Columns.TERMINATEDS], b[Columns.TRUNCATEDS]
        cost_gamma = config.effective_cost_gamma()
        with torch.no_grad():
            values, next_values = module.value(obs).squeeze(-1), module.value(next_obs).squeeze(-1)
            cost_values, next_cost_values = module.cost_value(obs).squeeze(-1), module.cost_value(next_obs).squeeze(-1)
        rewards = b[Columns.REWARDS] * config.reward_scale
        advantages, returns = gae(rewards, values, next_values, terminated, truncated, config.gamma, config.gae_lambda)
        cost_advantages, cost_returns = gae(
            b[COSTS], cost_values, next_cost_values, terminated, truncated, cost_gamma, config.cost_gae_lambda
        )
        policy = module.policy
        stats = cpo_policy_update(
            policy,
            list(policy.parameters()),
            obs,
            b[Columns.ACTIONS],
            advantages,
            cost_advantages,
            c=self._constraint["constraint_value"],
            cost_scale=self._constraint["episode_length"],
            max_kl=config.max_kl,
            cg_iters=config.cg_iters,
            damping=config.cg_damping,
            decay=config.line_search_decay,
            max_backtracks=config.line_search_steps,
        )
        fits = {}
        for name, net, targets in (("value", module.value, returns), ("cost_value", module.cost_value, cost_returns)):
            optimizer = self.get_optimizer(module_id, name)
            minibatch = int(config.train_batch_size_per_learner)
            fits[name] = fit_value(net, optimizer, obs, targets, config.value_epochs, minibatch, self._shuffle)
        value_loss, cost_value_loss = fits["value"], fits["cost_value"]
        # A NaN / inf fails the trial here (Tune restarts it from its checkpoint), as in SQRL's Learner.
        check_finite({f"{k}_loss": torch.tensor(v) for k, v in fits.items()}, module.named_parameters())
        stats |= {
            "value_loss": value_loss,
            "cost_value_loss": cost_value_loss,
            "policy_std_mean": float(policy.log_std.detach().exp().mean()),
            "cost_return_estimate": self._constraint["constraint_value"] + config.effective_cost_limit(),
            "episode_length_estimate": self._constraint["episode_length"],
            "reward_advantage_std": float(advantages.std()),
        }
        self.metrics.log_dict(stats, key=module_id, window=1)
        return torch.tensor(value_loss + cost_value_loss)
