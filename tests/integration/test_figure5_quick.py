"""figure5.yaml (issue 17's risk dial) runs end to end under --quick, and its plot and critic scripts read the run."""

import os
import pathlib
import subprocess
import sys

import pandas as pd
import pytest

import sqrl_rllib

SCRIPT = pathlib.Path(__file__).parents[2] / "benchmarks" / "figure5.py"
SHIPPED = pathlib.Path(sqrl_rllib.__file__).parent / "tune_configs"


def test_every_shipped_experiment_has_a_start_test():
    # test_experiments_start.py starts cube and the minitaurs, test_tune_quick.py drunk_spider, this file
    # figure5, test_own_env_quick.py the examples: a new YAML must join one of them.
    tested = {"cube", "minitaur_velocity", "minitaur_friction", "drunk_spider", "figure5"}
    assert {p.stem for p in SHIPPED.glob("*.yaml")} == tested


def test_figure5_quick_runs_both_eps_from_one_pretraining_and_plots(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        [sys.executable, "-m", "sqrl_rllib.tune", "figure5", "--quick", "--storage-path", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    run_dir = tmp_path / "figure5_quick"
    table = pd.read_csv(run_dir / "results.csv")
    finetune = table[table["stage"] == "finetune"]
    assert sorted(finetune["eps_safe"]) == [0.05, 0.2] and set(finetune["gamma_safe"]) == {0.65}
    assert (table.loc[table["stage"] == "pretrain", "gamma_safe"] == 0.65).all()
    out = tmp_path / "figure5.png"
    plot = subprocess.run(
        [sys.executable, str(SCRIPT), "plot", str(run_dir), "--episodes", "2", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert plot.returncode == 0, plot.stdout[-3000:] + plot.stderr[-3000:]
    results = [line for line in plot.stdout.splitlines() if line.startswith("RESULT")]
    assert [line.split()[1] for line in results] == ["eps_safe=0.05", "eps_safe=0.2"], plot.stdout
    assert out.stat().st_size > 10_000
    # The mechanism probe reads the critic-fitted pretraining checkpoint the fine-tuning started from.
    fitted = run_dir / "pretrain_critic_fit" / "seed_0"
    readings = tmp_path / "critic.csv"
    critic = subprocess.run(
        [sys.executable, str(SCRIPT), "critic", str(fitted), "--num-action-samples", "10", "--rollouts", "2"]
        + ["--csv", str(readings)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert critic.returncode == 0, critic.stdout[-3000:] + critic.stderr[-3000:]
    rows = [line.split() for line in critic.stdout.splitlines() if line.startswith(str(fitted)[-48:])]
    assert [row[1] for row in rows] == ["bridge", "around"], critic.stdout
    # The CSV holds what the table printed, with the Monte Carlo of 'up, then pi' per route.
    table = pd.read_csv(readings)
    assert table["route"].tolist() == ["bridge", "around"] and (table["checkpoint"] == str(fitted)).all()
    for row, (_, saved) in zip(rows, table.iterrows(), strict=True):
        up, pi_mean, below_05, below_2 = map(float, row[2:6])
        assert 0.0 <= up <= 1.0 and 0.0 <= pi_mean <= 1.0 and 0.0 <= below_05 <= below_2 <= 1.0, row
        assert saved["up"] == pytest.approx(up, abs=1e-3) and saved["pi_mean"] == pytest.approx(pi_mean, abs=1e-3)
        assert 0.0 <= saved["monte_carlo_up_then_pi"] <= 1.0, saved
