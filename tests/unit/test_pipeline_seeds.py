"""Seeds in the Tune pipeline without running it: seed -> checkpoint mapping, trial names, results table."""

import pickle
import types

import pandas as pd
import pytest
from ray.tune.search.variant_generator import generate_variants

from sqrl_rllib.experiments import prepare_experiment
from sqrl_rllib.pipeline import (
    TABLE_COLUMNS,
    SeedCheckpoint,
    critic_fit_dir,
    finetune_config,
    format_table,
    pretrain_checkpoints,
    pretrain_config,
    results_table,
    trial_dirname,
)

CHECKPOINTS = {1: "/runs/x/pretrain_critic_fit/seed_1", 2: "/runs/x/pretrain_critic_fit/seed_2"}


def test_seed_checkpoint_maps_each_seed_to_its_own_checkpoint():
    pick = SeedCheckpoint(CHECKPOINTS)
    assert pick({"seed": 1, "eps_safe": 0.1}) == CHECKPOINTS[1]
    assert pick({"seed": 2}) == CHECKPOINTS[2]
    # Tune pickles the search space with the experiment state (--resume).
    assert pickle.loads(pickle.dumps(pick))({"seed": 2}) == CHECKPOINTS[2]
    with pytest.raises(ValueError, match="no pretraining checkpoint for seed 3"):
        pick({"seed": 3})


def test_finetune_grid_gives_every_trial_its_own_seeds_checkpoint():
    experiment = prepare_experiment("drunk_spider", ["finetune.grid.eps_safe=[0.05,0.2]"], False, None, seeds=[1, 2])
    variants = [cfg for _, cfg in generate_variants(finetune_config(experiment, [1, 2], CHECKPOINTS).to_dict())]
    assert sorted((v["eps_safe"], v["seed"]) for v in variants) == [(0.05, 1), (0.05, 2), (0.2, 1), (0.2, 2)]
    for variant in variants:
        assert variant["pretrained_checkpoint"] == CHECKPOINTS[variant["seed"]]
        assert variant["phase"] == "finetune"
    with pytest.raises(ValueError, match=r"seeds \[3\]"):
        finetune_config(experiment, [1, 3], CHECKPOINTS)


def test_pretrain_grid_runs_one_trial_per_seed():
    experiment = prepare_experiment("drunk_spider", [], False, None, seeds=[3, 7, 11])
    variants = [cfg for _, cfg in generate_variants(pretrain_config(experiment, [3, 7, 11]).to_dict())]
    assert [v["seed"] for v in variants] == [3, 7, 11]
    assert all(v["phase"] == "pretrain" and v["pretrained_checkpoint"] is None for v in variants)


def _result(seed, path="/ckpt"):
    checkpoint = types.SimpleNamespace(path=f"{path}/{seed}")
    return types.SimpleNamespace(config={"seed": seed}, checkpoint=checkpoint, path=f"/trial/{seed}")


def test_pretrain_checkpoints_by_seed_and_mismatch():
    assert pretrain_checkpoints([_result(2), _result(1)], [1, 2]) == {1: "/ckpt/1", 2: "/ckpt/2"}
    with pytest.raises(RuntimeError, match=r"holds seeds \[0\] but this run asks for \[1, 2\]"):
        pretrain_checkpoints([_result(0)], [1, 2])


def test_critic_fit_dir_per_seed():
    assert critic_fit_dir("/runs/x", 7) == "/runs/x/pretrain_critic_fit/seed_7"


class _Trial:
    experiment_tag = "3_eps_safe=0.1000,pretrained_checkpoint=_runs_x_seed_2,seed=2"
    evaluated_params = {"eps_safe": 0.1, "pretrained_checkpoint": "/runs/x/seed_2", "seed": 2}

    def __str__(self):
        return "SQRL_sqrl_DrunkSpider-v0_abc12_00003"


def test_trial_dirname_leaves_out_the_checkpoint_path():
    assert trial_dirname(_Trial()) == "SQRL_sqrl_DrunkSpider-v0_abc12_00003_3_eps_safe=0.1000,seed=2"


def _rows(stage, seeds, eps=0.1):
    return [
        {
            "stage": stage,
            "eps_safe": eps,
            "gamma_safe": 0.65,
            "seed": seed,
            "env_steps": 5000,
            "episodes": 50 + seed,
            "failures": 10 * seed,
            "failure_rate": round(10 * seed / (50 + seed), 4),
            "final_return": -19.0 + seed,
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
    assert lines[1].split()[3:6] == ["1", "trial", "5000"]
    assert lines[3].split()[3:9] == ["mean", "5000", "51.5", "15", "0.2903", "-17.5"]
    assert "<NA>" not in text and "None" not in text and "5000.0" not in text
