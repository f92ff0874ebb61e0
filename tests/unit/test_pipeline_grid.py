"""Methods and seeds in the Tune pipeline without running it: the grids, checkpoint mapping, trial names, results."""

import math
import pickle
import re
import types

import pandas as pd
import pytest
from ray.tune.search.variant_generator import generate_variants

from sqrl_rllib.experiments import ExperimentError, experiment_methods, prepare_experiment
from sqrl_rllib.methods import SQRL_CONFIG
from sqrl_rllib.pipeline import (
    RETURN_KEY,
    STEPS_KEY,
    TABLE_COLUMNS,
    PretrainedCheckpoint,
    chain_cost,
    critic_fit_dir,
    finetune_config,
    format_table,
    pretrain_checkpoints,
    pretrain_config,
    results_table,
    return_auc,
    stage_run_name,
    trial_dirname,
)

CHECKPOINTS = {
    ("sqrl", 1): "/runs/x/pretrain_critic_fit/seed_1",
    ("sqrl", 2): "/runs/x/pretrain_critic_fit/seed_2",
    ("sac", 1): "/runs/x/pretrain/sac_1",
    ("sac", 2): "/runs/x/pretrain/sac_2",
}


def test_pretrained_checkpoint_maps_method_and_seed_to_its_own_checkpoint():
    pick = PretrainedCheckpoint(CHECKPOINTS)
    assert pick({"grid_point": {"method": "sqrl"}, "seed": 1, "eps_safe": 0.1}) == CHECKPOINTS[("sqrl", 1)]
    assert pick({"grid_point": {"method": "sac"}, "seed": 2}) == CHECKPOINTS[("sac", 2)]
    # sac_from_sqrl fine-tunes from SQRL's pretraining of the same seed.
    assert pick({"grid_point": {"method": "sac_from_sqrl"}, "seed": 2}) == CHECKPOINTS[("sqrl", 2)]
    # Tune pickles the search space with the experiment state (--resume).
    assert pickle.loads(pickle.dumps(pick))({"grid_point": {"method": "sac"}, "seed": 1}) == CHECKPOINTS[("sac", 1)]
    with pytest.raises(ValueError, match=r"no pretraining checkpoint for \(method, seed\) \('sqrl', 3\)"):
        pick({"grid_point": {"method": "sqrl"}, "seed": 3})


def _variants(config):
    return [cfg for _, cfg in generate_variants(config.to_dict())]


def test_finetune_grid_crosses_methods_grid_and_seeds_each_from_its_own_checkpoint():
    experiment = prepare_experiment(
        "drunk_spider",
        ["finetune.grid.eps_safe=[0.05,0.2]"],
        False,
        None,
        seeds=[1, 2],
        methods=["sqrl", "sac", "sac_from_sqrl", "rs"],
    )
    variants = _variants(finetune_config(experiment, [1, 2], CHECKPOINTS))
    safety = ("sqrl", "rs")
    points = sorted((v["method"], v["eps_safe"] if v["method"] in safety else None, v["seed"]) for v in variants)
    # The eps_safe grid applies to the methods with a safety critic: SAC runs once per seed, not per grid value.
    assert points == [
        ("rs", 0.05, 1), ("rs", 0.05, 2), ("rs", 0.2, 1), ("rs", 0.2, 2),
        ("sac", None, 1), ("sac", None, 2), ("sac_from_sqrl", None, 1), ("sac_from_sqrl", None, 2),
        ("sqrl", 0.05, 1), ("sqrl", 0.05, 2), ("sqrl", 0.2, 1), ("sqrl", 0.2, 2),
    ]  # fmt: skip
    for v in variants:
        source = "sac" if v["method"] == "sac" else "sqrl"
        assert v["pretrained_checkpoint"] == CHECKPOINTS[(source, v["seed"])]
        assert v["phase"] == "finetune"
        assert v["mask_enabled"] is (v["method"] == "sqrl")
        assert v["lagrangian"] is (v["method"] == "sqrl")
        assert v["risk_penalty"] is (v["method"] == "rs")
        assert v["safety_critic"] is (v["method"] != "sac")
    with pytest.raises(ValueError, match=r"\('sac', 3\)"):
        finetune_config(experiment, [1, 3], CHECKPOINTS)


def test_pretrain_grid_runs_one_trial_per_pretraining_method_and_seed():
    experiment = prepare_experiment("drunk_spider", [], False, None, seeds=[3, 7, 11], methods=["sqrl", "sac"])
    variants = _variants(pretrain_config(experiment, [3, 7, 11]))
    assert sorted((v["method"], v["seed"]) for v in variants) == [
        ("sac", 3), ("sac", 7), ("sac", 11), ("sqrl", 3), ("sqrl", 7), ("sqrl", 11),
    ]  # fmt: skip
    assert all(v["phase"] == "pretrain" and v["pretrained_checkpoint"] is None for v in variants)
    for v in variants:
        assert v["mask_enabled"] is v["safety_critic"] is (v["method"] == "sqrl")
    # sac_from_sqrl has no pretraining of its own: SQRL's trials serve it.
    experiment = prepare_experiment("drunk_spider", [], False, None, seeds=[0], methods=["sac_from_sqrl"])
    assert [(v["method"], v["seed"]) for v in _variants(pretrain_config(experiment, [0]))] == [("sqrl", 0)]


def test_default_methods_are_sqrl_and_sac():
    experiment = prepare_experiment("drunk_spider", [], False, None)
    assert experiment_methods(experiment) == ["sqrl", "sac"]


@pytest.mark.parametrize(
    "methods, message",
    [
        (["sqrl", "ppo"], "unknown method 'ppo'. Valid methods: sqrl, sac, esac, sac_from_sqrl"),
        (["sac", "sac"], "sac given more than once"),
        ([], "non-empty list"),
    ],
)
def test_bad_methods_are_refused_before_ray_starts(methods, message):
    with pytest.raises(ExperimentError, match=re.escape(message)):
        prepare_experiment("drunk_spider", [f"methods={methods}"], False, None)


def test_a_planned_method_is_refused_by_name(monkeypatch):
    """PLANNED_METHODS is empty since CPO was built; a name put there is refused as not available yet."""
    import sqrl_rllib.methods

    assert sqrl_rllib.methods.PLANNED_METHODS == ()
    monkeypatch.setattr(sqrl_rllib.methods, "PLANNED_METHODS", ("dreamer",))
    with pytest.raises(ExperimentError, match=re.escape("method 'dreamer' is not available yet")):
        prepare_experiment("drunk_spider", ["methods=[dreamer]"], False, None)


def _result(seed, path="/ckpt", method="sqrl"):
    checkpoint = types.SimpleNamespace(path=f"{path}/{method}/{seed}")
    return types.SimpleNamespace(config={"seed": seed, "method": method}, checkpoint=checkpoint, path=f"/trial/{seed}")


def test_pretrain_checkpoints_by_method_and_seed_and_mismatch():
    results = [_result(2), _result(1), _result(1, method="sac")]
    with pytest.raises(RuntimeError, match=r"holds \(method, seed\) \[\('sac', 1\), \('sqrl', 1\)"):
        pretrain_checkpoints(results, [1, 2], ["sqrl"])
    both = results + [_result(2, method="sac")]
    assert pretrain_checkpoints(both, [1, 2], ["sqrl", "sac"]) == {
        ("sqrl", 1): "/ckpt/sqrl/1", ("sqrl", 2): "/ckpt/sqrl/2", ("sac", 1): "/ckpt/sac/1", ("sac", 2): "/ckpt/sac/2",
    }  # fmt: skip


def test_critic_fit_dir_per_method_and_seed():
    assert critic_fit_dir("/runs/x", 7) == "/runs/x/pretrain_critic_fit/seed_7"
    assert critic_fit_dir("/runs/x", 7, "rs") == "/runs/x/pretrain_critic_fit/rs_seed_7"


class _Trial:
    experiment_tag = "3_eps_safe=0.1000,grid_point=...,pretrained_checkpoint=_runs_x_seed_2,seed=2"
    evaluated_params = {
        "eps_safe": 0.1,
        "grid_point": {"method": "sqrl", "eps_safe": 0.1, "mask_enabled": True},
        "pretrained_checkpoint": "/runs/x/seed_2",
        "seed": 2,
    }

    def __str__(self):
        return "SQRL_sqrl_DrunkSpider-v0_abc12_00003"


def test_trial_dirname_spells_method_grid_values_and_seed_only():
    assert trial_dirname(_Trial()) == "SQRL_sqrl_DrunkSpider-v0_abc12_00003_3_eps_safe=0.1000,method=sqrl,seed=2"


def test_return_auc_is_the_mean_return_over_steps():
    history = pd.DataFrame({STEPS_KEY: [0, 100, 300], RETURN_KEY: [-10.0, 0.0, 10.0]})
    # Trapezoids: 100 * (-5) + 200 * 5 = 500 over 300 steps.
    assert return_auc(history) == pytest.approx(500 / 300)
    assert math.isnan(return_auc(history.iloc[:1])) and math.isnan(return_auc(None))


def _rows(stage, seeds, eps=0.1, method="sqrl"):
    return [
        {
            "stage": stage,
            "method": method,
            "eps_safe": eps,
            "gamma_safe": None if eps is None else 0.65,
            "seed": seed,
            "env_steps": 5000,
            "episodes": 50 + seed,
            "failures": 10 * seed,
            "failure_rate": round(10 * seed / (50 + seed), 4),
            "final_return": -19.0 + seed,
            "return_auc": -25.0 + seed,
            "trial_dir": f"/runs/x/{stage}/trial_{seed}",
        }
        for seed in seeds
    ]


def test_results_table_one_seed_has_no_aggregate_rows():
    table = results_table(_rows("finetune", [0]) + _rows("pretrain", [0]))
    assert list(table.columns) == TABLE_COLUMNS
    assert list(table["stage"]) == ["pretrain", "finetune"] and list(table["kind"]) == ["trial", "trial"]
    assert table["env_steps"].dtype == float and str(table["seed"].dtype) == "Int64"


def test_results_table_mean_and_std_rows_per_stage_and_grid_point():
    rows = _rows("finetune", [2, 1], eps=0.2) + _rows("finetune", [1, 2]) + _rows("pretrain", [2, 1])
    table = results_table(rows)
    assert list(zip(table["stage"], table["eps_safe"], table["kind"], table["seed"].astype(object), strict=True)) == [
        ("pretrain", 0.1, "trial", 1),
        ("pretrain", 0.1, "trial", 2),
        ("pretrain", 0.1, "mean", pd.NA),
        ("pretrain", 0.1, "std", pd.NA),
        ("finetune", 0.1, "trial", 1),
        ("finetune", 0.1, "trial", 2),
        ("finetune", 0.1, "mean", pd.NA),
        ("finetune", 0.1, "std", pd.NA),
        ("finetune", 0.2, "trial", 1),
        ("finetune", 0.2, "trial", 2),
        ("finetune", 0.2, "mean", pd.NA),
        ("finetune", 0.2, "std", pd.NA),
    ]
    mean, std = table.iloc[2], table.iloc[3]
    assert mean["episodes"] == 51.5 and mean["final_return"] == -17.5 and mean["env_steps"] == 5000
    assert std["failures"] == pytest.approx(7.0711) and std["env_steps"] == 0
    assert pd.isna(mean["trial_dir"]) and table.loc[table["kind"] == "trial", "trial_dir"].notna().all()
    # Users and CSV consumers filter on kind.
    assert len(table[table["kind"] == "trial"]) == 6


def test_format_table_prints_whole_numbers_and_blank_cells():
    text = format_table(results_table(_rows("pretrain", [1, 2])))
    lines = text.splitlines()
    assert lines[0].split() == TABLE_COLUMNS
    assert lines[1].split()[4:7] == ["1", "trial", "5000"]
    assert lines[3].split()[4:11] == ["mean", "5000", "51.5", "15", "0.2903", "-17.5", "-23.5"]
    assert "<NA>" not in text and "None" not in text and "5000.0" not in text
    # A method without a safety critic has empty eps_safe / gamma_safe cells, not "None" or "nan".
    text = format_table(results_table(_rows("finetune", [1], eps=None, method="sac")))
    assert text.splitlines()[1].split()[:5] == ["finetune", "sac", "1", "trial", "5000"]
    assert "None" not in text and "nan" not in text


def test_results_table_rows_per_method_in_registry_order():
    rows = _rows("finetune", [1, 2], eps=None, method="sac") + _rows("finetune", [1, 2]) + _rows("pretrain", [1])
    rows += _rows("pretrain", [1], eps=None, method="sac")
    table = results_table(rows)
    assert list(zip(table["stage"], table["method"], table["kind"], strict=True)) == [
        ("pretrain", "sqrl", "trial"), ("pretrain", "sac", "trial"),
        ("finetune", "sqrl", "trial"), ("finetune", "sqrl", "trial"), ("finetune", "sqrl", "mean"),
        ("finetune", "sqrl", "std"),
        ("finetune", "sac", "trial"), ("finetune", "sac", "trial"), ("finetune", "sac", "mean"),
        ("finetune", "sac", "std"),
    ]  # fmt: skip
    sac_mean = table[(table["method"] == "sac") & (table["kind"] == "mean")].iloc[0]
    assert sac_mean["return_auc"] == -23.5 and pd.isna(sac_mean["eps_safe"])


def test_method_config_sets_keys_for_one_method_only():
    # The stage's own value (the experiment's finetune.sqrl.reward_scale, 10) stays SQRL's.
    overrides = ["finetune.sqrl.reward_scale=10.0", "method_config.sac.finetune.reward_scale=5.0"]
    experiment = prepare_experiment("drunk_spider", overrides, False, None, seeds=[1], methods=["sqrl", "sac"])
    variants = {v["method"]: v for v in _variants(finetune_config(experiment, [1], CHECKPOINTS))}
    assert variants["sac"]["reward_scale"] == 5.0 and variants["sqrl"]["reward_scale"] == 10.0


@pytest.mark.parametrize(
    "override, message",
    [
        ("method_config.rs.finetune.nu_lr=0.01", "'rs' is not in methods"),
        ("method_config.sac.transfer.nu_lr=0.01", "Unknown key 'transfer' in method_config.sac"),
        ("method_config.sac.finetune.mask_enabled=true", "without a safety critic set mask_enabled=false"),
    ],
)
def test_bad_method_config_is_refused_before_ray_starts(override, message):
    with pytest.raises(ExperimentError, match=re.escape(message)):
        prepare_experiment("drunk_spider", [override], False, None, methods=["sqrl", "sac"])


def test_drunk_spider_pretrains_with_the_authors_sac_and_the_lagrangian_for_sqrl_only():
    """drunk_spider.yaml's issue-21 defaults: the authors' SAC settings for every method, the pretraining
    Lagrangian for SQRL (a method without a safety critic switches it off), noise randomised in pretraining,
    failure_penalty below_timeout in pretraining only."""
    experiment = prepare_experiment("drunk_spider", [], False, None, seeds=[1], methods=["sqrl", "sac"])
    pre = {v["method"]: v for v in _variants(pretrain_config(experiment, [1]))}
    fine = {v["method"]: v for v in _variants(finetune_config(experiment, [1], CHECKPOINTS))}
    for variants in (pre, fine):
        assert all(v["gamma"] == 1.0 and v["reward_scale"] == 10.0 for v in variants.values())
    assert pre["sqrl"]["pretrain_lagrangian"] is True and pre["sqrl"]["nu_lr"] == 0.003
    assert pre["sac"]["pretrain_lagrangian"] is False and pre["sac"]["safety_critic"] is False
    assert all(v["policy_mean_init_scale"] == 0.01 for v in pre.values())
    levels = pre["sqrl"]["env_config"]["action_noise_levels"]
    assert len(levels) == 10 and min(levels) == 0.0 and max(levels) == 0.4
    assert "action_noise_levels" not in fine["sqrl"]["env_config"]
    # Failing never pays better than a timeout in pretraining, for every method; fine-tuning keeps the
    # authors' shaping (the paper's finetune task).
    assert all(v["env_config"]["failure_penalty"] == "below_timeout" for v in pre.values())
    assert all("failure_penalty" not in v["env_config"] for v in fine.values())


def test_finetune_grid_crosses_eps_safe_gamma_safe_and_seeds_and_each_trial_gets_its_values():
    """2 eps_safe x 3 gamma_safe x 2 seeds: 12 SQRL trials, every combination once, the values in the
    trial's own config (not only in its grid point); SAC runs once per seed."""
    experiment = prepare_experiment(
        "drunk_spider",
        ["finetune.grid.eps_safe=[0.05,0.2]", "finetune.grid.gamma_safe=[0.5,0.7,0.9]"],
        False,
        None,
        seeds=[1, 2],
        methods=["sqrl", "sac"],
    )
    variants = _variants(finetune_config(experiment, [1, 2], CHECKPOINTS))
    sqrl = sorted((v["eps_safe"], v["gamma_safe"], v["seed"]) for v in variants if v["method"] == "sqrl")
    expected = sorted((e, g, s) for e in (0.05, 0.2) for g in (0.5, 0.7, 0.9) for s in (1, 2))
    assert sqrl == expected  # a dropped axis gives 4 or 6 trials, a lost seed 6
    for v in variants:
        assert v["grid_point"].get("eps_safe", v["eps_safe"]) == v["eps_safe"]
        assert v["grid_point"].get("gamma_safe", v["gamma_safe"]) == v["gamma_safe"]
    assert sorted(v["seed"] for v in variants if v["method"] == "sac") == [1, 2]


def test_each_pretraining_method_is_a_chain_of_its_own_runs_costliest_first():
    """The methods benchmark's six methods: five chains (RS fine-tunes in SQRL's), each pretraining only its
    own method and fine-tuning the methods that start from it, so that ESAC's slow pretraining holds up only
    ESAC's fine-tuning; ESAC's chain is the costliest and starts first."""
    methods = ["sqrl", "sac", "esac", "wcpg", "rs", "cpo"]
    experiment = prepare_experiment("drunk_spider", [], False, None, seeds=[1], methods=methods)
    costs = {m: chain_cost(experiment, m) for m in ("sqrl", "sac", "esac", "wcpg", "cpo")}
    assert max(costs, key=costs.get) == "esac" and min(costs, key=costs.get) == "cpo"
    # SQRL's chain also fine-tunes RS: SQRL's steps at 1.3 and RS's at 1.0, 5e4 steps per trial.
    assert costs["sqrl"] == pytest.approx((1.3 + 1.3 + 1.0) * 50000)
    assert [stage_run_name(s, "sqrl") for s in ("pretrain", "finetune")] == ["pretrain", "finetune"]
    assert [stage_run_name(s, "esac") for s in ("pretrain", "finetune")] == ["pretrain_esac", "finetune_esac"]

    def methods_of(config):
        return sorted(v["method"] for v in _variants(config))

    assert methods_of(pretrain_config(experiment, [1], SQRL_CONFIG, "esac")) == ["esac"]
    checkpoints = {(m, 1): f"/runs/x/{m}" for m in ("sqrl", "sac", "esac")}
    assert methods_of(finetune_config(experiment, [1], checkpoints, SQRL_CONFIG, "sqrl")) == ["rs", "sqrl"]
    # A chain needs only its own source's checkpoints.
    assert methods_of(finetune_config(experiment, [1], {("sac", 1): "/runs/x/sac"}, SQRL_CONFIG, "sac")) == ["sac"]
    with pytest.raises(ValueError, match="no trial of config class"):
        pretrain_config(experiment, [1], SQRL_CONFIG, "rs")
