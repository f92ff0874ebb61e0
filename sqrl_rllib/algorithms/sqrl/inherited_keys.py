"""Config keys SQRL inherits from RLlib's ``SACConfig`` but does not honour, so none is silently ignored.

``SQRLConfig`` subclasses ``SACConfig`` and therefore accepts every SAC key, but SQRL replaces the
pieces that read several of them: its own ``training_step`` (columnar replay instead of RLlib's
episode buffer, ``updates_per_env_step`` instead of ``training_intensity``), its own Learner (one
backward pass, polyak averaging every SGD step, its own ``compute_gradients``/``apply_gradients``)
and its own RLModule (networks sized by ``hidden``). A user who sets such a key would get a run that
looks configured but is not. :func:`check_inherited_sac_keys` turns that into a ``ValueError``
naming the key and what to use instead; it is called from ``SQRLConfig.validate``.

A key counts as set when its value differs from the one a fresh ``SACConfig()`` holds (dicts compare
as dicts), so the tables below hold only names and reasons, never copied defaults.
"""

from __future__ import annotations

import functools
from typing import Any

# key (the config attribute name) -> why SQRL ignores it / what to set instead.
IGNORED_SAC_KEYS: dict[str, str] = {
    "n_step": "SQRL's SAC target is 1-step (Learner._sac_losses bootstraps from next_obs; the columnar replay "
    "stores single transitions)",
    "target_network_update_freq": "SQRL polyak-averages the targets every SGD step; set tau",
    "replay_buffer_config": "SQRL keeps its own columnar D_offline (uniform, no prioritization); set its size "
    "with .sqrl(replay_capacity=...)",
    "store_buffer_in_checkpoints": "SQRL never builds RLlib's replay buffer; use .sqrl(checkpoint_replay=...)",
    "training_intensity": "SQRL runs updates_per_env_step SGD steps per sampled env step; use "
    ".sqrl(updates_per_env_step=...)",
    "q_model_config": "SQRL builds its critics itself; set the layer sizes with .sqrl(hidden=...)",
    "policy_model_config": "SQRL builds its policy itself; set the layer sizes with .sqrl(hidden=...)",
    "optimization": "old-API-stack learning rates (training(optimization_config=...)); use actor_lr, critic_lr "
    "and alpha_lr",
    "_deterministic_loss": "SQRL's losses always sample actions from the policy (old-API-stack debug option)",
    "_use_beta_distribution": "SQRL's policy is always a tanh-squashed Gaussian (old-API-stack debug option)",
    "grad_clip_by": "clipping by value writes new gradient tensors that SQRL's apply_gradients (which steps on "
    "p.grad) never reads; use grad_clip_by='norm' or 'global_norm'",
    "num_epochs": "SQRL's training_step makes one pass (num_epochs=1) over freshly sampled minibatches; use "
    ".sqrl(updates_per_env_step=...)",
    "minibatch_size": "every SQRL SGD step uses train_batch_size_per_learner rows; set that instead",
    "shuffle_batch_per_epoch": "SQRL draws every minibatch uniformly at random from its replay; nothing to shuffle",
    "_learner_connector": "SQRL hands the Learner ready batches, so no learner connector "
    "(training(learner_connector=...)) runs",
    "add_default_connectors_to_learner_pipeline": "SQRL hands the Learner ready batches, so no learner "
    "connector pipeline runs",
    "torch_skip_nan_gradients": "SQRL's apply_gradients steps on the gradients as they are (nan/inf ones are "
    "neither zeroed nor skipped)",
    "_torch_grad_scaler_class": "SQRL's compute_gradients/apply_gradients do no loss scaling",
    "_torch_lr_scheduler_classes": "SQRL's apply_gradients never creates torch lr schedulers; use a float "
    "actor_lr/critic_lr/alpha_lr",
}

# Keys of IGNORED_SAC_KEYS for which only these values are ignored (their other values work in SQRL);
# every other key in IGNORED_SAC_KEYS is ignored whenever it differs from SACConfig's default.
IGNORED_SAC_VALUES: dict[str, tuple[Any, ...]] = {
    "grad_clip_by": ("value",),
}


# Entries RLlib writes into a config dict itself (Algorithm.setup copies the smoothing window into
# replay_buffer_config), which therefore say nothing about what the user set.
RLLIB_INJECTED_ENTRIES: dict[str, tuple[str, ...]] = {
    "replay_buffer_config": ("metrics_num_episodes_for_smoothing",),
}


@functools.cache
def _sac_defaults() -> dict[str, Any]:
    """SACConfig's defaults of the keys in IGNORED_SAC_KEYS (computed once, on first use)."""
    from ray.rllib.algorithms.sac.sac import SACConfig

    fresh = SACConfig()
    return {key: getattr(fresh, key) for key in IGNORED_SAC_KEYS}


def _differs(value: Any, default: Any) -> bool:
    try:
        return bool(value != default)
    except Exception:  # values whose != is not a plain bool (arrays, ...)
        return value is not default


def check_inherited_sac_keys(config: Any) -> None:
    """Raise ``ValueError`` if ``config`` sets an inherited SAC key that SQRL would ignore.

    Args:
        config: an ``SQRLConfig`` (any object with the SAC config attributes); an attribute it lacks
            counts as unset.

    Raises:
        ValueError: "SQRL config key <key>=<value> is not supported: <reason>" for the first key of
            :data:`IGNORED_SAC_KEYS` whose value differs from ``SACConfig()``'s (for keys in
            :data:`IGNORED_SAC_VALUES`: whose value is one of the listed ones).
    """
    defaults = _sac_defaults()
    for key, reason in IGNORED_SAC_KEYS.items():
        if not hasattr(config, key):
            continue
        value = getattr(config, key)
        if isinstance(value, dict) and key in RLLIB_INJECTED_ENTRIES:
            value = {k: v for k, v in value.items() if k not in RLLIB_INJECTED_ENTRIES[key]}
        if key in IGNORED_SAC_VALUES:
            ignored = any(not _differs(value, bad) for bad in IGNORED_SAC_VALUES[key])
        else:
            ignored = _differs(value, defaults[key])
        if ignored:
            raise ValueError(f"SQRL config key {key}={value!r} is not supported: {reason}")
