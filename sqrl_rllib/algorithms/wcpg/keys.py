"""WCPG's config keys: defaults, help text and validation, importable without Ray."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

VARIANCE_TARGETS = ("clipped", "unclipped", "centered")

# key -> (default, help).
WCPG_KEYS: dict[str, tuple[Any, str]] = {
    "risk_level": (
        0.2,
        "alpha in (0, 1] of fine-tuning and evaluation (a fixed risk level; WCPG section 5 evaluates at one alpha).",
    ),
    "risk_level_low": (0.1, "pretraining draws alpha ~ U(risk_level_low, risk_level_high) per episode; > 0."),
    "risk_level_high": (1.0, "upper end of the pretraining alpha range, in [risk_level_low, 1]."),
    "exploration_noise_std": (
        0.3,
        "std of the Gaussian noise added to mu(s, alpha) while collecting, on [-1, 1]-normalised actions. The "
        "authors used 1.0, which on a [-1, 1] action mostly lands outside and clips to the bounds (bang-bang "
        "exploration); 0.3 keeps most actions inside, like DDPG/TD3's usual 0.1-0.3.",
    ),
    "variance_target": (
        "clipped",
        "Bellman target of the return variance Upsilon (sqrl_rllib.core.wcpg.wcpg_targets): 'clipped' (the "
        "paper's eq. 6 with max(., 0)), 'unclipped' (eq. 6, unbiased) or 'centered' ((r + gamma Q' - Q)^2 + "
        "gamma^2 Upsilon', never negative).",
    ),
}

# SQRL keys WCPG has no use for that must stay off (WCPG has no safety critic, mask or multiplier).
OFF_KEYS = ("safety_critic", "mask_enabled", "lagrangian", "pretrain_lagrangian", "risk_penalty", "restore_nu")
# SQRL keys of SAC's networks that WCPG's actor and critic do not read -> the value that means "unset".
UNUSED_SAC_KEYS: dict[str, Any] = {
    "num_critics": None,
    "critic_target_aggregate": "min",
    "critic_target_entropy": True,
}


def wcpg_defaults() -> dict[str, Any]:
    """A fresh dict of WCPG's keys' defaults."""
    return {k: v for k, (v, _) in WCPG_KEYS.items()}


def check_wcpg_keys(config: Any) -> None:
    """Validate WCPG's keys of ``config`` (object or dict); a bad value raises ValueError naming the key.

    Also refuses the SQRL keys WCPG would silently ignore: the safety switches (:data:`OFF_KEYS`, which
    must be false) and SAC's network keys (:data:`UNUSED_SAC_KEYS`, which must keep their defaults).
    """
    if isinstance(config, dict):
        config = SimpleNamespace(**(wcpg_defaults() | config))

    def bad(key: str, why: str):
        raise ValueError(f"WCPG config key {key}={getattr(config, key)!r} is invalid: {why}")

    def number(key: str) -> float:
        value = getattr(config, key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            bad(key, "must be a number")
        return float(value)

    if not 0.0 < number("risk_level") <= 1.0:
        bad("risk_level", "must lie in (0, 1]")
    if not 0.0 < number("risk_level_low") <= 1.0:
        bad("risk_level_low", "must lie in (0, 1]")
    if not number("risk_level_low") <= number("risk_level_high") <= 1.0:
        bad("risk_level_high", f"must lie in [risk_level_low ({config.risk_level_low}), 1]")
    if not number("exploration_noise_std") > 0.0:
        bad("exploration_noise_std", "must be > 0")
    if config.variance_target not in VARIANCE_TARGETS:
        bad("variance_target", f"valid values: {list(VARIANCE_TARGETS)}")
    for key in OFF_KEYS:
        if getattr(config, key, False) is not False:
            bad(key, "WCPG has no safety critic, mask or Lagrange multiplier: set it false")
    for key, unset in UNUSED_SAC_KEYS.items():
        if getattr(config, key, unset) != unset:
            bad(key, f"WCPG's deterministic actor and distributional critic do not use it (leave it at {unset!r})")
