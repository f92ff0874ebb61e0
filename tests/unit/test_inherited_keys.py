"""Inherited SAC keys that SQRL ignores are rejected by name; honoured ones and the defaults pass."""

import copy

import pytest
import torch
from ray.rllib.algorithms.sac.sac import SACConfig

from sqrl_rllib.algorithms.sqrl import SQRLConfig
from sqrl_rllib.algorithms.sqrl.inherited_keys import (
    IGNORED_SAC_KEYS,
    IGNORED_SAC_VALUES,
    check_inherited_sac_keys,
)

# Non-default values for keys whose default gives no generic one (None, strings).
OVERRIDES = {
    "training_intensity": 2.0,
    "minibatch_size": 64,
    "grad_clip_by": "value",
    "_learner_connector": lambda *args, **kwargs: None,
    "_torch_grad_scaler_class": torch.amp.GradScaler,
    "_torch_lr_scheduler_classes": [torch.optim.lr_scheduler.ConstantLR],
}


def non_default(key: str):
    """A value of the right type that differs from SACConfig's default for ``key``."""
    if key in OVERRIDES:
        return OVERRIDES[key]
    default = getattr(SACConfig(), key)
    if isinstance(default, bool):
        return not default
    if isinstance(default, int | float):
        return default + 1
    if isinstance(default, dict):
        return copy.deepcopy(default) | {"sqrl_extra_entry": 1}
    raise AssertionError(f"no generic non-default value for {key}={default!r}: add it to OVERRIDES")


def test_default_config_passes():
    check_inherited_sac_keys(SQRLConfig())


def test_table_names_real_sac_keys():
    fresh = SACConfig()
    assert all(hasattr(fresh, key) for key in IGNORED_SAC_KEYS)
    assert set(IGNORED_SAC_VALUES) <= set(IGNORED_SAC_KEYS)


def test_sqrl_own_defaults_are_not_in_the_table():
    # SQRLConfig.__init__ sets these itself and SQRL honours them.
    own = {"actor_lr", "critic_lr", "alpha_lr", "train_batch_size_per_learner", "tau"}
    own |= {"num_steps_sampled_before_learning_starts", "rollout_fragment_length", "twin_q"}
    assert not own & set(IGNORED_SAC_KEYS)


@pytest.mark.parametrize("key", sorted(IGNORED_SAC_KEYS))
def test_ignored_key_changed_is_rejected(key):
    config = SQRLConfig()
    value = non_default(key)
    setattr(config, key, value)
    with pytest.raises(ValueError, match=f"SQRL config key {key}=") as info:
        check_inherited_sac_keys(config)
    assert key in str(info.value) and "is not supported" in str(info.value)


@pytest.mark.parametrize(
    "training",
    [
        {"n_step": 3},
        {"target_network_update_freq": 100},
        {"replay_buffer_config": {"capacity": 50_000}},
        {"training_intensity": 10.0},
        {"optimization_config": {"actor_learning_rate": 1e-3}},
        {"num_epochs": 4},
    ],
    ids=lambda kwargs: next(iter(kwargs)),
)
def test_ignored_key_set_through_training_is_rejected(training):
    config = SQRLConfig().training(**training)
    key = next(iter(training))
    attribute = "optimization" if key == "optimization_config" else key
    with pytest.raises(ValueError, match=f"SQRL config key {attribute}="):
        check_inherited_sac_keys(config)


@pytest.mark.parametrize(
    "training",
    [
        {"tau": 0.01},
        {"gamma": 0.95},
        {"actor_lr": 1e-3},
        {"critic_lr": 1e-3},
        {"alpha_lr": 1e-3},
        {"train_batch_size_per_learner": 64},
        {"twin_q": False},
        {"initial_alpha": 0.2},
        {"target_entropy": -1.0},
        {"num_steps_sampled_before_learning_starts": 10},
        {"grad_clip": 10.0},
        {"grad_clip": 10.0, "grad_clip_by": "norm"},
        {"grad_clip_by": "global_norm"},
    ],
    ids=lambda kwargs: "+".join(f"{k}={v}" for k, v in kwargs.items()),
)
def test_honoured_keys_changed_pass(training):
    check_inherited_sac_keys(SQRLConfig().training(**training))
