"""WCPG (worst-case policy gradients, Tang, Zhang & Salakhutdinov 2019) on SQRL's Algorithm machinery.

The paper's risk-averse baseline: a deterministic actor mu(s, alpha) and a distributional critic
predicting the mean Q and the variance Upsilon of the return, both conditioned on a risk level alpha in
(0, 1]; the actor maximises CVaR_alpha of the Gaussian N(Q, Upsilon) (``sqrl_rllib.core.wcpg``).
Pretraining draws alpha ~ U(risk_level_low, risk_level_high) per episode; fine-tuning and evaluation use
the fixed ``risk_level``. Alpha travels as the observation's last component
(:mod:`sqrl_rllib.algorithms.wcpg.risk_level`).

:class:`WCPG` is SQRL's Algorithm with its safety critic switched off: the same ``training_step``
(sample -> columnar replay -> ``updates_per_env_step`` SGD steps), checkpoints (with the replay), the
pretraining -> fine-tuning hand-over (``pretrained_checkpoint`` restores the actor, the critic and their
targets; optimizers start fresh) and metrics (``sqrl/...``: failures, episodes, SGD steps). Only the
RLModule, the Learner's losses and the connectors differ::

    config = WCPGConfig().environment("sqrl/DrunkSpider-v0", env_config={"task": "pretrain"})
    algo = config.wcpg(risk_level_low=0.1, exploration_noise_std=0.3).build_algo()
"""

from __future__ import annotations

from typing import Any

from ray.rllib.algorithms.algorithm_config import NotProvided
from ray.rllib.core.rl_module.rl_module import RLModuleSpec

from sqrl_rllib.algorithms.sqrl.no_safety_critic import NoSafetyCritic, NoSafetyCriticConfig
from sqrl_rllib.algorithms.sqrl.sqrl import SQRL, SQRLConfig
from sqrl_rllib.algorithms.wcpg.keys import check_wcpg_keys, wcpg_defaults


class WCPGConfig(NoSafetyCriticConfig, SQRLConfig):
    """Configuration of :class:`WCPG`: SQRL's (SAC's) keys plus WCPG's, set by :meth:`wcpg`.

    WCPG keys (``sqrl_rllib.algorithms.wcpg.keys.WCPG_KEYS``):
        risk_level (0.2): the fixed alpha of fine-tuning and evaluation, in (0, 1].
        risk_level_low (0.1), risk_level_high (1.0): pretraining draws alpha ~ U(low, high) per episode.
        exploration_noise_std (0.3): std of the Gaussian exploration noise on [-1, 1]-normalised actions.
            The authors used 1.0, under which most draws fall outside [-1, 1] and clip to the bounds
            (near bang-bang exploration); 0.3 keeps most of them inside, like DDPG/TD3's usual 0.1-0.3.
        variance_target ("clipped"): "clipped" (the paper's eq. 6 with max(., 0)), "unclipped" or
            "centered" (see ``sqrl_rllib.core.wcpg.wcpg_targets``).

    Inherited keys WCPG reads: ``actor_lr`` (3e-4), ``critic_lr`` (1e-4, the paper's), ``gamma`` (0.99),
    ``tau`` (polyak rate of both targets, SQRL's 5e-3), ``train_batch_size_per_learner``,
    ``num_steps_sampled_before_learning_starts`` and the SQRL keys ``updates_per_env_step``,
    ``replay_capacity``, ``checkpoint_replay``, ``pretrained_checkpoint``, ``phase``, ``hidden``,
    ``policy_mean_init_scale`` (on the actor's output layer),
    ``reward_scale`` and ``method`` ("wcpg"). The safety switches are off (and must stay off) and SAC's
    temperature keys are unused.
    """

    def __init__(self, algo_class=None):
        super().__init__(algo_class=algo_class or WCPG)
        for key, value in wcpg_defaults().items():
            setattr(self, key, value)
        self.method = "wcpg"
        self.safety_critic = False
        self.mask_enabled = False
        self.lagrangian = False
        self.pretrain_lagrangian = False
        self.actor_lr = 3e-4
        self.critic_lr = 1e-4
        self.gamma = 0.99

    def wcpg(
        self,
        *,
        risk_level=NotProvided,
        risk_level_low=NotProvided,
        risk_level_high=NotProvided,
        exploration_noise_std=NotProvided,
        variance_target=NotProvided,
    ) -> WCPGConfig:
        """Set WCPG's keys (see the class docstring for meaning and defaults)."""
        for key, value in locals().items():
            if key != "self" and value is not NotProvided:
                setattr(self, key, value)
        return self

    def validate(self) -> None:
        """SQRL's checks plus WCPG's keys; a bad value raises ValueError naming the key."""
        super().validate()
        check_wcpg_keys(self)

    def get_default_rl_module_spec(self) -> RLModuleSpec:
        """WCPG's torch RLModule."""
        from sqrl_rllib.algorithms.wcpg.torch.wcpg_torch_rl_module import WCPGTorchRLModule

        return RLModuleSpec(module_class=WCPGTorchRLModule)

    @property
    def _model_config_auto_includes(self) -> dict[str, Any]:
        return super()._model_config_auto_includes | {"exploration_noise_std": self.exploration_noise_std}

    def get_default_learner_class(self):
        """WCPG's torch Learner."""
        from sqrl_rllib.algorithms.wcpg.torch.wcpg_torch_learner import WCPGTorchLearner

        return WCPGTorchLearner

    def risk_level_sampling(self) -> dict[str, Any]:
        """How this config's EnvRunners pick alpha: ``{"fixed": risk_level}`` in fine-tuning and evaluation
        (``in_evaluation``), else ``{"low": risk_level_low, "high": risk_level_high}`` (per episode)."""
        if self.in_evaluation or self.phase == "finetune":
            return {"fixed": float(self.risk_level)}
        return {"low": float(self.risk_level_low), "high": float(self.risk_level_high)}

    def build_env_to_module_connector(self, env=None, spaces=None, device=None):
        """RLlib's default pipeline with :class:`AppendRiskLevel` first (so alpha is in the episodes)."""
        from sqrl_rllib.algorithms.wcpg.risk_level import AppendRiskLevel

        pipeline = super().build_env_to_module_connector(env=env, spaces=spaces, device=device)
        pipeline.prepend(AppendRiskLevel(**self.risk_level_sampling()))
        return pipeline


class WCPG(NoSafetyCritic, SQRL):
    """WCPG: SQRL's training loop, replay and checkpoints with a risk-conditioned actor and distributional critic."""

    @classmethod
    def get_default_config(cls) -> WCPGConfig:
        """A fresh :class:`WCPGConfig`."""
        return WCPGConfig()
