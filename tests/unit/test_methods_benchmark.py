"""benchmarks/methods.py: per-seed CSVs named per experiment, merged into a mean and std per stage and method."""

import pathlib
import sys

import pandas as pd
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parents[2] / "benchmarks"))
import methods  # noqa: E402


def rows(seed: int, sqrl_failures: int, sac_failures: int) -> pd.DataFrame:
    """A pipeline results.csv's shape: one pretraining and one fine-tuning row per method."""
    return pd.DataFrame(
        {
            "stage": ["pretrain", "pretrain", "finetune", "finetune"],
            "method": ["sqrl", "sac", "sqrl", "sac"],
            "eps_safe": [0.1, None, 0.1, None],
            "gamma_safe": [0.65, None, 0.65, None],
            "seed": [seed] * 4,
            "failures": [100, 200, sqrl_failures, sac_failures],
            "episodes": [1000] * 4,
        }
    )


def test_merge_averages_each_method_over_the_committed_seeds(tmp_path, monkeypatch):
    monkeypatch.setattr(methods, "RESULTS", tmp_path)
    rows(0, 2, 20).to_csv(tmp_path / "seed_0.csv", index=False)
    rows(1, 4, 40).to_csv(tmp_path / "seed_1.csv", index=False)
    rows(0, 999, 999).to_csv(tmp_path / "minitaur_velocity_seed_0.csv", index=False)  # another experiment
    table = methods.merge()
    sqrl = table.loc[("finetune", "sqrl", 0.1, 0.65)]
    sac = table.loc[("finetune", "sac")].iloc[0]  # SAC has no eps_safe / gamma_safe: NaN keys kept
    assert sqrl[("failures", "mean")] == 3 and sqrl[("failures", "std")] == pytest.approx(2**0.5)
    assert sac[("failures", "mean")] == 30 and int(sqrl["seeds"].iloc[0]) == 2
    assert methods.merge("minitaur_velocity").loc[("finetune", "sqrl", 0.1, 0.65)][("failures", "mean")] == 999


def test_merge_without_results_says_what_to_run(tmp_path, monkeypatch):
    monkeypatch.setattr(methods, "RESULTS", tmp_path)
    with pytest.raises(SystemExit, match="run --seed S"):
        methods.merge()
