"""SQRL's safety config keys: defaults, help text and validation, importable without Ray."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from sqrl_rllib.core.losses import SAFETY_LOSSES
from sqrl_rllib.core.mask import MASK_MODES
from sqrl_rllib.methods import METHODS

SAFETY_TARGET_POLICIES = ("pi", "masked")

# key -> (default, help). Defaults follow the paper's appendix B.
SQRL_KEYS: dict[str, tuple[Any, str]] = {
    "eps_safe": (0.1, "Q_safe threshold of the mask and of the constraint, in (0, 1)."),
    "gamma_safe": (0.7, "discount of the failure probability in the safety Bellman target, in (0, 1]."),
    "num_action_samples": (100, "K: candidate actions per env step scored by Q_safe in one forward pass."),
    "phase": ("pretrain", "'pretrain' (Algorithm 1) or 'finetune' (Algorithm 2)."),
    "safety_critic_lr": (3e-4, "Adam learning rate of the safety critic."),
    "safety_loss": ("bce", "'bce' (authors' code: sigmoid cross-entropy) or 'mse' (the paper's equation)."),
    "safety_target_network": (True, "Bellman target from a polyak target Q_safe (False: live net, no grad)."),
    "safety_target_policy": (
        "pi",
        "policy of a' in the safety Bellman target: 'pi' (the unconstrained policy, the authors' code and "
        "appendix D) or 'masked' (pi_safe, eq. 5: the mean of Qbar over the safe ones of "
        "safety_target_samples draws from pi, the safest if none is safe; the critic of the policy that acts).",
    ),
    "safety_target_samples": (20, "with safety_target_policy='masked': draws a' ~ pi per next state."),
    "online_buffer_episodes": (10, "size of the online buffer D_safe, in latest masked-policy episodes."),
    "safety_offline_fraction": (
        0.5,
        "share of each safety-critic minibatch drawn from D_offline (0: D_safe only, the paper; keeps failures).",
    ),
    "safety_update_every": (1, "n_off: SAC SGD steps between two safety-critic training rounds."),
    "safety_steps_per_round": (1, "safety-critic SGD steps per round (1 per SAC step shares its minibatch)."),
    "finetune_safety_critic": (False, "keep training Q_safe while fine-tuning (frozen by default)."),
    "mask_warmup_steps": (
        None,
        "pretraining env steps acted by the unmasked policy before the mask switches on (Algorithm 1's "
        "warm-up); None: until Q_safe has had its first training round; 0: masked from the first step.",
    ),
    "mask_resample_rounds": (
        0,
        "states without a safe sample redraw K samples with the policy's std x1.5 per round, up to this "
        "many rounds, before falling back to the safest (the authors' code: 4; 0: fall back at once).",
    ),
    "nu_init": (1.0, "initial Lagrange multiplier nu (> 0); fine-tuning starts from it unless restore_nu."),
    "restore_nu": (
        False,
        "fine-tuning (or a continued pretraining) keeps the pretrained_checkpoint's nu instead of starting at nu_init.",
    ),
    "restore_replay": (
        False,
        "fine-tuning (or a continued pretraining) starts D_offline with the pretrained_checkpoint's transitions "
        "(Algorithm 2 starts it empty; "
        "they keep the pretraining task's rewards). A probe of the collapse at the first fine-tuning updates "
        "(docs/results.md, Minitaur); the checkpoint must have been saved with checkpoint_replay.",
    ),
    "nu_lr": (3e-4, "Adam learning rate of log nu (dual ascent)."),
    "nu_max": (None, "upper bound on nu (None: unbounded, as in the paper); must exceed the starting nu."),
    "lagrangian": (True, "add nu * (Q_safe - eps_safe) to the actor loss while fine-tuning."),
    "pretrain_lagrangian": (
        False,
        "also add the Lagrangian term (nu by dual ascent) while pretraining, pushing pi off the actions "
        "Q_safe rejects (not in the paper's Algorithm 1; see docs/sqrl_vs_paper.md).",
    ),
    "safety_critic": (
        True,
        "train and use a safety critic; False is plain SAC (the 'sac' method: needs mask_enabled, lagrangian "
        "and pretrain_lagrangian false).",
    ),
    "method": ("sqrl", "name of the method the trial runs (sqrl_rllib.methods; the results' method column)."),
    "mask_enabled": (True, "apply the safety mask; False gives plain SAC actions (the SAC baseline)."),
    "updates_per_env_step": (1.0, "SGD steps per sampled env step."),
    "replay_capacity": (1_000_000, "size of D_offline in transitions."),
    "checkpoint_replay": (True, "store D_offline and D_safe in checkpoints (False: smaller checkpoints)."),
    "pretrained_checkpoint": (
        None,
        "Algorithm checkpoint whose RLModule state starts fine-tuning, or a pretraining that continues an "
        "earlier one (e.g. from more start states: a curriculum; restore_replay keeps its transitions).",
    ),
    "hidden": ((256, 256), "hidden layer sizes of every network (ReLU)."),
    "risk_penalty": (
        False,
        "RS (risk-sensitive Q): SAC's critic learns from r - nu * Q_safe(s, a), nu by dual ascent; use with "
        "mask_enabled=false and lagrangian=false (the 'rs' method).",
    ),
    "lambda_schedule": (
        None,
        "RS only: [START, END, STEPS] sets lambda by a linear schedule from START to END over the stage's "
        "first STEPS env steps (then held) instead of dual ascent (the SQRL authors' RS: 0 to 10 over "
        "training); None: dual ascent against eps_safe.",
    ),
    "reward_scale": (1.0, "factor on the task reward in SAC's critic target (TF-Agents' reward_scale_factor)."),
    "policy_mean_init_scale": (
        1.0,
        "factor on the initial weights of the policy mean's output units (small: every seed starts near mean 0).",
    ),
    "num_critics": (
        None,
        "N, SAC critics Q_i in one batched ensemble (None: 2 with twin_q, 1 without; the 'esac' method: 10).",
    ),
    "critic_target_aggregate": (
        "min",
        "aggregate over the N target critics in SAC's critic target: 'min' (SAC; the SQRL authors' ESAC) or a "
        "percentile in [0, 100] (ESAC's intended 30th).",
    ),
    "critic_target_entropy": (
        True,
        "subtract alpha log pi(a'|s') in SAC's critic target (False: the hard target of the authors' ESAC).",
    ),
}


def sqrl_defaults() -> dict[str, Any]:
    """A fresh dict of the safety keys' defaults."""
    return {k: v for k, (v, _) in SQRL_KEYS.items()}


def check_sqrl_keys(config: Any) -> None:
    """Validate the safety keys of ``config`` (object or dict); a bad value raises ValueError naming it."""
    if isinstance(config, dict):
        config = SimpleNamespace(**(sqrl_defaults() | config))

    def bad(key: str, why: str):
        raise ValueError(f"SQRL config key {key}={getattr(config, key)!r} is invalid: {why}")

    def number(key: str) -> float:
        value = getattr(config, key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            bad(key, "must be a number")
        return value

    if not 0.0 < number("eps_safe") < 1.0:
        bad("eps_safe", "must lie in (0, 1)")
    if not 0.0 < number("gamma_safe") <= 1.0:
        bad("gamma_safe", "must lie in (0, 1]")
    if not 0.0 <= number("safety_offline_fraction") <= 1.0:
        bad("safety_offline_fraction", "must lie in [0, 1]")
    if config.phase not in MASK_MODES:
        bad("phase", f"valid values: {list(MASK_MODES)}")
    if config.safety_target_policy not in SAFETY_TARGET_POLICIES:
        bad("safety_target_policy", f"valid values: {list(SAFETY_TARGET_POLICIES)}")
    if config.safety_loss not in SAFETY_LOSSES:
        bad("safety_loss", f"valid values: {list(SAFETY_LOSSES)}")
    for key in (
        "safety_critic_lr",
        "nu_lr",
        "nu_init",
        "updates_per_env_step",
        "policy_mean_init_scale",
        "reward_scale",
    ):
        if not number(key) > 0:
            bad(key, "must be > 0")
    for key in (
        "num_action_samples",
        "safety_target_samples",
        "online_buffer_episodes",
        "safety_update_every",
        "safety_steps_per_round",
        "replay_capacity",
    ):
        value = getattr(config, key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            bad(key, "must be an integer >= 1")
    rounds = config.mask_resample_rounds
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 0:
        bad("mask_resample_rounds", "must be an integer >= 0")
    warmup = config.mask_warmup_steps
    if warmup is not None and (isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0):
        bad("mask_warmup_steps", "must be None or an integer >= 0")
    for key in (
        "safety_target_network",
        "finetune_safety_critic",
        "lagrangian",
        "pretrain_lagrangian",
        "mask_enabled",
        "safety_critic",
        "risk_penalty",
        "checkpoint_replay",
        "restore_nu",
        "restore_replay",
        "critic_target_entropy",
    ):
        if not isinstance(getattr(config, key), bool):
            bad(key, "must be true or false")
    critics = config.num_critics
    if critics is not None and (isinstance(critics, bool) or not isinstance(critics, int) or critics < 1):
        bad("num_critics", "must be None or an integer >= 1")
    aggregate = config.critic_target_aggregate
    if aggregate != "min" and (
        isinstance(aggregate, bool) or not isinstance(aggregate, int | float) or not 0 <= aggregate <= 100
    ):
        bad("critic_target_aggregate", "must be 'min' or a percentile in [0, 100]")
    hidden = config.hidden
    if not hidden or not all(isinstance(h, int) and not isinstance(h, bool) and h > 0 for h in hidden):
        bad("hidden", "must be a non-empty list of positive layer sizes")
    # With restore_nu the starting nu is the checkpoint's: SQRL checks it against nu_max once loaded.
    if config.nu_max is not None and not number("nu_max") > config.nu_init:
        bad("nu_max", f"must be None or a number > nu_init ({config.nu_init})")
    if config.method not in METHODS:
        bad("method", f"valid values: {list(METHODS)}")
    # A config object must be the method's class (e.g. WCPGConfig for 'wcpg'): an SQRLConfig with another
    # class's method would run SQRL's Algorithm under that method's name.
    actual = f"{type(config).__module__}:{type(config).__qualname__}"
    if not isinstance(config, SimpleNamespace) and actual != METHODS[config.method].config_class:
        bad("method", f"runs with {METHODS[config.method].config_class}, not {actual}")
    if not config.safety_critic:
        uses = [
            k
            for k in ("mask_enabled", "pretrain_lagrangian", "finetune_safety_critic", "risk_penalty")
            if getattr(config, k)
        ]
        uses += ["lagrangian"] if config.lagrangian and config.phase == "finetune" else []
        if uses:
            bad("safety_critic", f"without a safety critic set {', '.join(k + '=false' for k in uses)}")
    schedule = config.lambda_schedule
    if schedule is not None:
        if not config.risk_penalty:
            bad("lambda_schedule", "schedules RS's lambda: set risk_penalty=true or leave it None")
        if (
            not isinstance(schedule, list | tuple)
            or len(schedule) != 3
            or any(isinstance(v, bool) or not isinstance(v, int | float) for v in schedule)
            or not (schedule[0] >= 0 and schedule[1] >= 0)
            or not isinstance(schedule[2], int)
            or schedule[2] < 0
        ):
            bad("lambda_schedule", "must be None or [start >= 0, end >= 0, steps: an integer >= 0]")
    # Fine-tuning gets its checkpoint from the pipeline; a pretraining restores only when it continues one.
    for key in ("restore_nu", "restore_replay"):
        if getattr(config, key) and config.phase != "finetune" and config.pretrained_checkpoint is None:
            bad(key, "a pretraining restores only from the pretraining it continues: set pretrained_checkpoint")
