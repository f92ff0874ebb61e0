"""The pipeline runs WCPG's trials from WCPGConfig, in their own Tune run per stage (no Ray cluster)."""

import pytest
from ray.tune.search.variant_generator import generate_variants

from sqrl_rllib.experiments import ExperimentError, prepare_experiment
from sqrl_rllib.methods import SQRL_CONFIG, WCPG_CONFIG
from sqrl_rllib.pipeline import finetune_config, pretrain_config, stage_config_classes

CHECKPOINTS = {(m, s): f"/runs/x/pretrain/{m}_{s}" for m in ("sqrl", "wcpg") for s in (0, 1)}


def _variants(config):
    return [cfg for _, cfg in generate_variants(config.to_dict())]


def test_wcpg_points_get_their_own_config_class_and_algorithm():
    experiment = prepare_experiment("drunk_spider", [], False, None, seeds=[0, 1], methods=["sqrl", "wcpg"])
    for stage in ("pretrain", "finetune"):
        assert stage_config_classes(experiment, stage) == [SQRL_CONFIG, WCPG_CONFIG]
    sqrl = pretrain_config(experiment, [0, 1])
    wcpg = pretrain_config(experiment, [0, 1], WCPG_CONFIG)
    assert sqrl.algo_class.__name__ == "SQRL" and wcpg.algo_class.__name__ == "WCPG"
    assert sorted({v["method"] for v in _variants(sqrl)}) == ["sqrl"]
    variants = _variants(wcpg)
    assert sorted((v["method"], v["seed"]) for v in variants) == [("wcpg", 0), ("wcpg", 1)]
    # WCPG's own defaults survive the experiment's config (critic_lr 1e-4, no safety critic).
    assert all(v["critic_lr"] == 1e-4 and v["safety_critic"] is False and v["risk_level"] == 0.2 for v in variants)
    # drunk_spider's SAC reward scale (10) is reset: at 10 WCPG's actor saturates at "leave the map".
    assert all(v["reward_scale"] == 1.0 for v in variants)
    fine = _variants(finetune_config(experiment, [0, 1], CHECKPOINTS, WCPG_CONFIG))
    assert all(v["reward_scale"] == 1.0 for v in fine)
    assert sorted((v["method"], v["pretrained_checkpoint"]) for v in fine) == [
        ("wcpg", CHECKPOINTS[("wcpg", 0)]),
        ("wcpg", CHECKPOINTS[("wcpg", 1)]),
    ]
    assert all(v["phase"] == "finetune" for v in fine)


def test_a_wcpg_only_experiment_runs_no_sqrl_stage():
    experiment = prepare_experiment("drunk_spider", [], False, None, seeds=[0], methods=["wcpg"])
    assert stage_config_classes(experiment, "pretrain") == [WCPG_CONFIG]
    assert stage_config_classes(experiment, "finetune") == [WCPG_CONFIG]


def test_wcpg_keys_go_under_method_config_and_are_validated():
    overrides = ["method_config.wcpg.finetune.risk_level=0.35", "method_config.wcpg.pretrain.risk_level_low=0.3"]
    experiment = prepare_experiment("drunk_spider", overrides, False, None, seeds=[0], methods=["wcpg"])
    (pre,) = _variants(pretrain_config(experiment, [0], WCPG_CONFIG))
    (fine,) = _variants(finetune_config(experiment, [0], CHECKPOINTS, WCPG_CONFIG))
    assert (pre["risk_level_low"], pre["risk_level"]) == (0.3, 0.2)
    assert (fine["risk_level_low"], fine["risk_level"]) == (0.1, 0.35)
    with pytest.raises(ExperimentError, match="risk_level=3 is invalid"):
        prepare_experiment("drunk_spider", ["method_config.wcpg.finetune.risk_level=3"], False, None, methods=["wcpg"])
    # Another method's config class has no such key.
    with pytest.raises(ExperimentError, match="Unknown key 'risk_level' in method_config.sqrl.finetune"):
        prepare_experiment("drunk_spider", ["method_config.sqrl.finetune.risk_level=0.3"], False, None)
