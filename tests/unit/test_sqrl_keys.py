"""Validation of SQRL's safety keys (``check_sqrl_keys``, no Ray): each bad value is refused naming its key,
and the edge values the docs allow pass."""

import pytest

from sqrl_rllib.algorithms.sqrl.keys import check_sqrl_keys

BOOL_KEYS = (
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
)
POSITIVE_KEYS = (
    "safety_critic_lr",
    "nu_lr",
    "nu_init",
    "updates_per_env_step",
    "policy_mean_init_scale",
    "reward_scale",
)
COUNT_KEYS = (
    "num_action_samples",
    "safety_target_samples",
    "online_buffer_episodes",
    "safety_update_every",
    "safety_steps_per_round",
    "replay_capacity",
)

BAD = [
    ({"eps_safe": 0.0}, "eps_safe", "(0, 1)"),
    ({"eps_safe": 1.0}, "eps_safe", "(0, 1)"),
    ({"eps_safe": "0.1"}, "eps_safe", "must be a number"),
    ({"eps_safe": True}, "eps_safe", "must be a number"),
    ({"gamma_safe": 0.0}, "gamma_safe", "(0, 1]"),
    ({"gamma_safe": 1.01}, "gamma_safe", "(0, 1]"),
    ({"safety_offline_fraction": -0.1}, "safety_offline_fraction", "[0, 1]"),
    ({"phase": "transfer"}, "phase", "valid values"),
    ({"safety_target_policy": "greedy"}, "safety_target_policy", "valid values"),
    ({"safety_loss": "l1"}, "safety_loss", "valid values"),
    *[({key: 0}, key, "must be > 0") for key in POSITIVE_KEYS],
    *[({key: -1.0}, key, "must be > 0") for key in POSITIVE_KEYS],
    *[({key: 0}, key, "integer >= 1") for key in COUNT_KEYS],
    *[({key: 2.5}, key, "integer >= 1") for key in COUNT_KEYS],
    *[({key: True}, key, "integer >= 1") for key in COUNT_KEYS],
    ({"mask_resample_rounds": -1}, "mask_resample_rounds", "integer >= 0"),
    ({"mask_resample_rounds": 1.0}, "mask_resample_rounds", "integer >= 0"),
    ({"mask_warmup_steps": -1}, "mask_warmup_steps", "None or an integer >= 0"),
    ({"mask_warmup_steps": False}, "mask_warmup_steps", "None or an integer >= 0"),
    *[({key: "yes"}, key, "true or false") for key in BOOL_KEYS],
    *[({key: 1}, key, "true or false") for key in BOOL_KEYS],
    ({"num_critics": 0}, "num_critics", "None or an integer >= 1"),
    ({"critic_target_aggregate": 101}, "critic_target_aggregate", "percentile in [0, 100]"),
    ({"critic_target_aggregate": "max"}, "critic_target_aggregate", "percentile in [0, 100]"),
    ({"hidden": ()}, "hidden", "non-empty list"),
    ({"hidden": (64, 0)}, "hidden", "non-empty list"),
    ({"hidden": (64, True)}, "hidden", "non-empty list"),
    ({"nu_init": 2.0, "nu_max": 2.0}, "nu_max", "> nu_init"),
    ({"method": "ppo"}, "method", "valid values"),
    # A pretraining restores only from the pretraining it continues.
    ({"restore_nu": True}, "restore_nu", "set pretrained_checkpoint"),
    ({"restore_replay": True}, "restore_replay", "set pretrained_checkpoint"),
    # Without a safety critic nothing may use one (mask_enabled is on by default).
    ({"safety_critic": False}, "safety_critic", "mask_enabled=false"),
    (
        {"safety_critic": False, "mask_enabled": False, "phase": "finetune"},
        "safety_critic",
        "lagrangian=false",
    ),
    (
        {"safety_critic": False, "mask_enabled": False, "lagrangian": False, "finetune_safety_critic": True},
        "safety_critic",
        "finetune_safety_critic=false",
    ),
]


@pytest.mark.parametrize("keys, key, why", BAD, ids=[f"{k}-{list(v.values())[-1]!r}" for v, k, _ in BAD])
def test_bad_value_is_refused_naming_the_key(keys, key, why):
    with pytest.raises(ValueError, match=rf"SQRL config key {key}=") as err:
        check_sqrl_keys(keys)
    assert why in str(err.value)


GOOD = [
    {},
    {"gamma_safe": 1.0},
    {"safety_offline_fraction": 0.0},
    {"safety_offline_fraction": 1.0},
    {"mask_warmup_steps": 0},
    {"mask_resample_rounds": 0},
    {"critic_target_aggregate": 0},
    {"critic_target_aggregate": 100},
    {"critic_target_aggregate": 30.0},
    {"num_critics": 10},
    {"nu_init": 1.0, "nu_max": 1.5},
    {"phase": "finetune", "restore_nu": True, "pretrained_checkpoint": "/ckpt"},
    {"phase": "finetune", "restore_replay": True, "pretrained_checkpoint": "/ckpt"},
    # A pretraining that continues an earlier one (a curriculum), with or without its transitions and nu.
    {"pretrained_checkpoint": "/ckpt"},
    {"pretrained_checkpoint": "/ckpt", "restore_replay": True, "restore_nu": True},
    # Plain SAC: no safety critic and nothing that needs one (pretraining has no Lagrangian by default).
    {"safety_critic": False, "mask_enabled": False, "method": "sac"},
]


@pytest.mark.parametrize("keys", GOOD, ids=[repr(g) for g in GOOD])
def test_edge_values_the_docs_allow_pass(keys):
    check_sqrl_keys(keys)


@pytest.mark.parametrize(
    "schedule",
    [[0, 10], [0, 10, 100, 1], [-1, 10, 100], [0, -1, 100], [0, 10, 1.5], [0, 10, -1], "0,10,100", [0, True, 5]],
)
def test_lambda_schedule_must_be_start_end_steps(schedule):
    with pytest.raises(ValueError, match="lambda_schedule"):
        check_sqrl_keys({"risk_penalty": True, "lambda_schedule": schedule})


def test_lambda_schedule_needs_rs():
    with pytest.raises(ValueError, match="lambda_schedule.*risk_penalty=true"):
        check_sqrl_keys({"lambda_schedule": [0, 10, 100]})
    check_sqrl_keys({"risk_penalty": True, "lambda_schedule": [0, 10.0, 100]})
    check_sqrl_keys({"risk_penalty": True, "lambda_schedule": None})
