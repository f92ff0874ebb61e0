"""CPO's config keys: defaults, help text and validation, importable without Ray."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

# key -> (default, help).
CPO_KEYS: dict[str, tuple[Any, str]] = {
    "cpo_batch_size": (
        4000,
        "env steps sampled per training iteration with the current policy, the on-policy batch of one CPO step "
        "(episode fragments; a fragment cut by the batch bootstraps from its cost and reward value nets).",
    ),
    "cost_limit": (
        None,
        "d, the limit on the expected discounted episode cost J_C (cost = the failure indicator); None: eps_safe "
        "(sqrl_rllib.core.cpo.cost_limit_from_eps: with cost_gamma 1 the constraint is P(an episode fails) <= "
        "eps_safe; with cost_gamma < 1 late failures count less).",
    ),
    "cost_gamma": (None, "discount of the cost in J_C and in the cost advantages, in (0, 1]; None: gamma."),
    "gae_lambda": (0.95, "GAE lambda of the reward advantages, in [0, 1]."),
    "cost_gae_lambda": (0.95, "GAE lambda of the cost advantages, in [0, 1]."),
    "max_kl": (0.01, "trust region delta: the mean KL(pi_old || pi_new) a step may reach (CPO's 0.01)."),
    "cg_iters": (10, "conjugate-gradient iterations for H^-1 g and H^-1 b (integer >= 1)."),
    "cg_damping": (0.1, "damping added to the Fisher-vector products (H + damping I), >= 0."),
    "line_search_decay": (0.8, "backtracking line search: shrink factor per candidate, in (0, 1)."),
    "line_search_steps": (10, "backtracking line search: candidates tried before the step is dropped (>= 1)."),
    "value_epochs": (
        5,
        "passes of Adam (lr critic_lr, minibatches of train_batch_size_per_learner) over each batch when fitting "
        "the reward and the cost value networks.",
    ),
    "policy_init_log_std": (
        -0.5,
        "initial log std of the Gaussian policy on [-1, 1]-normalised actions (state-independent, learned; "
        "std 0.61: a std near 1 would mostly clip to the action bounds).",
    ),
}

# SQRL keys CPO has no use for that must stay off (CPO has no safety critic, mask or SQRL multiplier).
OFF_KEYS = (
    "safety_critic",
    "mask_enabled",
    "lagrangian",
    "pretrain_lagrangian",
    "risk_penalty",
    "restore_nu",
    "finetune_safety_critic",
)
# SQRL keys of SAC's networks and update schedule that CPO does not read -> the value that means "unset".
UNUSED_SAC_KEYS: dict[str, Any] = {
    "num_critics": None,
    "critic_target_aggregate": "min",
    "critic_target_entropy": True,
    "updates_per_env_step": 1.0,
    "restore_replay": False,  # CPO keeps no D_offline
}


def cpo_defaults() -> dict[str, Any]:
    """A fresh dict of CPO's keys' defaults."""
    return {k: v for k, (v, _) in CPO_KEYS.items()}


def check_cpo_keys(config: Any) -> None:
    """Validate CPO's keys of ``config`` (object or dict); a bad value raises ValueError naming the key.

    Also refuses the SQRL keys CPO would silently ignore: the safety switches (:data:`OFF_KEYS`, which must
    be false) and SAC's network / update keys (:data:`UNUSED_SAC_KEYS`, which must keep their defaults).
    """
    if isinstance(config, dict):
        config = SimpleNamespace(**(cpo_defaults() | config))

    def bad(key: str, why: str):
        raise ValueError(f"CPO config key {key}={getattr(config, key)!r} is invalid: {why}")

    def number(key: str) -> float:
        value = getattr(config, key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            bad(key, "must be a number")
        return float(value)

    def integer(key: str, low: int) -> None:
        value = getattr(config, key)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            bad(key, f"must be an integer >= {low}")

    integer("cpo_batch_size", 2)
    integer("cg_iters", 1)
    integer("line_search_steps", 1)
    integer("value_epochs", 1)
    if config.cost_limit is not None and not number("cost_limit") >= 0.0:
        bad("cost_limit", "must be None or a number >= 0")
    if config.cost_gamma is not None and not 0.0 < number("cost_gamma") <= 1.0:
        bad("cost_gamma", "must be None or lie in (0, 1]")
    for key in ("gae_lambda", "cost_gae_lambda"):
        if not 0.0 <= number(key) <= 1.0:
            bad(key, "must lie in [0, 1]")
    if not number("max_kl") > 0.0:
        bad("max_kl", "must be > 0")
    if not number("cg_damping") >= 0.0:
        bad("cg_damping", "must be >= 0")
    if not 0.0 < number("line_search_decay") < 1.0:
        bad("line_search_decay", "must lie in (0, 1)")
    number("policy_init_log_std")
    for key in OFF_KEYS:
        if getattr(config, key, False) is not False:
            bad(key, "CPO has no safety critic, mask or SQRL Lagrange multiplier: set it false")
    for key, unset in UNUSED_SAC_KEYS.items():
        if getattr(config, key, unset) != unset:
            bad(key, f"CPO's on-policy update does not use it (leave it at {unset!r})")
