"""What every method on SQRL's Algorithm without a safety critic (WCPG, CPO) changes, in one place.

Mix in before SQRL's classes (``class WCPG(NoSafetyCritic, SQRL)``, ``class WCPGConfig(NoSafetyCriticConfig,
SQRLConfig)``): no safety mask in the module-to-env pipeline, no mask warm-up, no nu to reset when loading
a pretraining checkpoint, and no safety critic to fit.
"""

from __future__ import annotations

import pathlib


class NoSafetyCriticConfig:
    """Config mixin: RLlib's default module-to-env pipeline, without SQRL's safety mask."""

    def build_module_to_env_connector(self, env=None, spaces=None):
        """RLlib's default pipeline: SQRL's safety mask is removed (no safety critic to score actions)."""
        pipeline = super().build_module_to_env_connector(env=env, spaces=spaces)
        pipeline.remove("SafetyMask")
        return pipeline


class NoSafetyCritic:
    """Algorithm mixin: fine-tuning restores the whole RLModule and nothing else; no mask, no Q_safe."""

    def load_pretrained(self, checkpoint: str | pathlib.Path) -> None:
        """Load the RLModule state of a checkpoint (all of the method's networks); there is no nu to reset."""
        self._restore_module(checkpoint)

    def _end_warmup_if_due(self) -> None:
        """No safety mask, so no warm-up to end."""

    def fit_safety_critic(self, num_steps: int, failure_fraction: float = 0.0, chunk: int = 500) -> dict[str, float]:
        """No safety critic to fit: raises ValueError (the method's entry has ``critic_fit=False``)."""
        name = type(self).__name__
        raise ValueError(
            f"fit_safety_critic: {name} has no safety critic (the {self.config.method!r} method has critic_fit=False)"
        )
