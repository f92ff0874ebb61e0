"""benchmarks/methods.py: per-seed CSVs named per experiment, merged into a mean and std per stage and method."""

import json
import pathlib
import sys

import pandas as pd
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parents[2] / "benchmarks"))
import methods  # noqa: E402

from sqrl_rllib import pipeline  # noqa: E402


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


def write_reports(trial: pathlib.Path, reports: list[dict]) -> None:
    """A trial directory's result.json as Tune writes it: one JSON report per line."""
    trial.mkdir(parents=True, exist_ok=True)
    (trial / "result.json").write_text("".join(json.dumps(report) + "\n" for report in reports))


def fake_run(run_dir: pathlib.Path, seed: int) -> None:
    """A finished pipeline run: results.csv rows pointing at trial directories with a result.json each."""
    table = []
    for stage, method, eps, slope in (
        ("pretrain", "sqrl", 0.1, 1),
        ("finetune", "sqrl", 0.1, 2),
        ("finetune", "sac", None, 5),
    ):
        trial = run_dir / f"{stage}_{method}"
        reports = [
            {
                "training_iteration": i + 1,
                "env_runners": {"num_env_steps_sampled_lifetime": 512 * (i + 1), "episode_return_mean": -10.0 + i},
                "sqrl": {"cumulative_failures": slope * (i + seed), "cumulative_episodes": 10 * (i + 1), "nu": 0.5},
            }
            for i in range(4)
        ]
        write_reports(trial, reports)
        table.append(
            {
                "stage": stage,
                "method": method,
                "eps_safe": eps,
                "gamma_safe": 0.65 if eps else None,
                "seed": seed,
                "kind": "trial",
                "trial_dir": str(trial),
            }
        )
    table.append({"stage": "finetune", "method": "sqrl", "kind": "mean"})  # summary rows carry no trial
    pd.DataFrame(table).to_csv(run_dir / "results.csv", index=False)


def test_a_resumed_trials_history_comes_from_result_json_with_rerun_iterations_once(tmp_path):
    """Tune's progress.csv keeps the first run's header and a resumed run appends longer rows, which pandas
    reads shifted (seen in methods seed 0: env steps read as losses); result.json is read instead, and the
    iterations re-run after a restore from an older checkpoint keep their last report."""
    trial = tmp_path / "trial"
    first = [{"training_iteration": i, "env_runners": {"num_env_steps_sampled_lifetime": 100 * i}} for i in (1, 2, 3)]
    resumed = [
        {
            "training_iteration": i,
            "env_runners": {"num_env_steps_sampled_lifetime": 100 * i, "episode_return_mean": float(i)},
            "sqrl": {"cumulative_failures": i, "cumulative_episodes": 2 * i},
        }
        for i in (3, 4)
    ]
    write_reports(trial, first + resumed)
    (trial / "progress.csv").write_text("training_iteration,a\n1,0.5,99,7\n")  # misaligned: must not be read
    history = pipeline.trial_history(trial)
    assert history["training_iteration"].tolist() == [1, 2, 3, 4]
    assert history[pipeline.STEPS_KEY].tolist() == [100, 200, 300, 400]
    assert history[pipeline.RETURN_KEY].tolist()[2:] == [3.0, 4.0] and history[pipeline.RETURN_KEY].isna().sum() == 2
    assert pipeline.trial_history(tmp_path / "no_such_trial") is None


def test_curves_join_each_trials_progress_to_its_results_row(tmp_path, monkeypatch):
    monkeypatch.setattr(methods, "RESULTS", tmp_path / "results")
    fake_run(tmp_path / "run0", seed=0)
    written = methods.write_curves(tmp_path / "run0", 0, "minitaur_velocity")
    assert written.name == "minitaur_velocity_curves_seed_0.csv"
    rows = pd.read_csv(written)
    assert list(rows.columns[:5]) == ["stage", "method", "eps_safe", "gamma_safe", "seed"]
    assert set(rows.columns[5:]) == {"env_steps", "episode_return", "cumulative_failures", "cumulative_episodes"}
    sac = rows[(rows["stage"] == "finetune") & (rows["method"] == "sac")]
    assert sac["cumulative_failures"].tolist() == [0, 5, 10, 15] and sac["eps_safe"].isna().all()
    # The curves CSV is not a per-seed results CSV: merge must not read it.
    assert not list((tmp_path / "results").glob("minitaur_velocity_seed_*.csv"))


def test_curve_bands_average_the_seeds_and_plot_draws_them(tmp_path, monkeypatch):
    monkeypatch.setattr(methods, "RESULTS", tmp_path / "results")
    for seed in (0, 2):
        fake_run(tmp_path / f"run{seed}", seed)
        methods.write_curves(tmp_path / f"run{seed}", seed)
    rows = pd.concat(pd.read_csv(f) for f in sorted((tmp_path / "results").glob("curves_seed_*.csv")))
    bands = methods.curve_bands(rows, "finetune", "cumulative_failures")
    assert sorted(bands) == ["sac", "sqrl eps_safe=0.1 gamma_safe=0.65"]
    steps, mean, low, high = bands["sac"]
    # seed 0: 0, 5, 10, 15; seed 2: 10, 15, 20, 25 at 512..2048 steps
    assert steps[0] == 512 and steps[-1] == 2048
    assert mean[0] == pytest.approx(5) and low[-1] == pytest.approx(15) and high[-1] == pytest.approx(25)
    out = methods.plot(out=tmp_path / "methods.png")
    assert out.stat().st_size > 10_000


def test_plot_without_curves_says_what_to_run(tmp_path, monkeypatch):
    monkeypatch.setattr(methods, "RESULTS", tmp_path)
    with pytest.raises(SystemExit, match="run --seed S"):
        methods.plot()


def test_markdown_lists_each_seeds_counts_and_the_mean_and_std(tmp_path, monkeypatch):
    monkeypatch.setattr(methods, "RESULTS", tmp_path)
    for seed, (sqrl, sac) in enumerate([(2, 20), (4, 40)]):
        table = rows(seed, sqrl, sac)
        table["failure_rate"] = table["failures"] / table["episodes"]
        table["final_return"] = [1.0, 2.0, 10.0 + seed, 5.0]
        table.to_csv(tmp_path / f"seed_{seed}.csv", index=False)
    lines = methods.markdown().splitlines()
    assert "(seed 0; seed 1)" in lines[0]
    sqrl, sac = lines[2], lines[3]
    assert sqrl.startswith("| SQRL (eps_safe 0.1, gamma_safe 0.65) | 100/1000; 100/1000 | 2/1000; 4/1000 |")
    assert "| 0.3% +- 0.14% | 10.5 +- 0.7 |" in sqrl
    assert sac.startswith("| SAC | 200/1000; 200/1000 | 20/1000; 40/1000 | 3% +- 1.4% | 5.0 +- 0.0 |")


def test_markdown_of_one_seed_prints_no_undefined_spread(tmp_path, monkeypatch):
    monkeypatch.setattr(methods, "RESULTS", tmp_path)
    table = rows(0, 2, 20)
    table["failure_rate"] = table["failures"] / table["episodes"]
    table["final_return"] = [1.0, 2.0, 10.0, 5.0]
    table.to_csv(tmp_path / "seed_0.csv", index=False)
    text = methods.markdown()
    assert "nan" not in text
    assert "| 2/1000 | 0.2% | 10.0 |" in text.splitlines()[2]


def test_final_return_rewrites_each_trials_return_from_its_curve(tmp_path, monkeypatch):
    monkeypatch.setattr(methods, "RESULTS", tmp_path)
    table = rows(0, 2, 20)
    table["final_return"] = -400.0  # RLlib's last report: the last iteration's five episodes, one dropped
    table.to_csv(tmp_path / "cube_seed_0.csv", index=False)
    curves = []
    for row in table.itertuples(index=False):
        # SQRL's fine-tuning: four iterations of five episodes, the last one averaging a -1000 drop.
        last = -400.0 if (row.stage, row.method) == ("finetune", "sqrl") else -100.0
        for i, ret in enumerate([-200.0, -200.0, -200.0, -200.0, last]):
            curves.append(
                {
                    "stage": row.stage,
                    "method": row.method,
                    "eps_safe": row.eps_safe,
                    "gamma_safe": row.gamma_safe,
                    "seed": 0,
                    "env_steps": 500 * (i + 1),
                    "episode_return": ret,
                    "cumulative_failures": 0,
                    "cumulative_episodes": 5 * (i + 1),
                }
            )
    pd.DataFrame(curves).to_csv(tmp_path / "cube_curves_seed_0.csv", index=False)
    assert methods.final_returns("cube") == [tmp_path / "cube_seed_0.csv"]
    fixed = pd.read_csv(tmp_path / "cube_seed_0.csv").set_index(["stage", "method"])["final_return"]
    assert fixed[("finetune", "sqrl")] == pytest.approx((-200 * 15 - 400 * 5) / 20)
    assert fixed[("finetune", "sac")] == pytest.approx((-200 * 15 - 100 * 5) / 20)


def test_windows_count_each_windows_episodes_failures_and_weighted_return(tmp_path, monkeypatch):
    monkeypatch.setattr(methods, "RESULTS", tmp_path)
    curve = pd.DataFrame(
        {
            "stage": "finetune",
            "method": "sac",
            "eps_safe": None,
            "gamma_safe": None,
            "seed": 0,
            "env_steps": [500, 1000, 1500, 2000],
            "episode_return": [10.0, 20.0, -100.0, float("nan")],
            "cumulative_failures": [0, 1, 4, 4],
            "cumulative_episodes": [1, 4, 8, 8],
        }
    )
    curve.to_csv(tmp_path / "minitaur_velocity_curves_seed_0.csv", index=False)
    table = methods.windows("minitaur_velocity", 0, every=1000)
    assert table["start"].tolist() == [0, 1000]
    assert table["episodes"].tolist() == [4, 4] and table["failures"].tolist() == [1, 3]
    assert table["return"].tolist() == [pytest.approx((10 + 3 * 20) / 4), pytest.approx(-100.0)]
    # --run: the same windows from a run directory's own curves (methods.curves), nothing committed read.
    (tmp_path / "minitaur_velocity_curves_seed_0.csv").unlink()
    monkeypatch.setattr(methods, "curves", lambda run_dir: curve if run_dir == tmp_path / "probe" else None)
    probe = methods.windows("minitaur_velocity", None, every=1000, run_dir=tmp_path / "probe")
    assert probe.equals(table)


def test_run_with_a_label_names_the_run_after_it_and_fine_tunes_the_experiment(tmp_path, monkeypatch):
    launched = []

    class Pipeline:  # stands for the pipeline's process: records the command, exits 1 (nothing copied)
        def __init__(self, cmd):
            launched.append(cmd)

        def wait(self):
            return 1

    monkeypatch.setattr(methods.subprocess, "Popen", Pipeline)
    monkeypatch.setattr(methods, "RESULTS", tmp_path / "results")
    extra = ["--set", "finetune.sqrl.restore_replay=true"]
    assert methods.run(2, tmp_path, "sqrl,sac", extra, "minitaur_velocity", label="minitaur_velocity_replay") == 1
    (cmd,) = launched
    assert cmd[cmd.index("-m") + 2] == "minitaur_velocity"
    assert cmd[cmd.index("--name") + 1] == "methods_minitaur_velocity_replay_seed2"
    assert "--resume" not in cmd and cmd[-2:] == extra
    assert not (tmp_path / "results").exists()


def test_handover_counts_pretrainings_last_and_fine_tunings_first_steps(tmp_path, monkeypatch):
    monkeypatch.setattr(methods, "RESULTS", tmp_path)

    def trial(stage, steps, failures, episodes):
        return pd.DataFrame(
            {
                "stage": stage,
                "method": "sqrl",
                "eps_safe": 0.1,
                "gamma_safe": 0.7,
                "seed": 3,
                "env_steps": steps,
                "episode_return": 1.0,
                "cumulative_failures": failures,
                "cumulative_episodes": episodes,
            }
        )

    pre = trial("pretrain", [1000, 2000, 3000, 4000], [5, 9, 10, 14], [6, 12, 15, 20])
    fine = trial("finetune", [512, 1024, 1536, 2048], [1, 2, 6, 9], [2, 4, 9, 12])
    pd.concat([pre, fine]).to_csv(tmp_path / "minitaur_velocity_curves_seed_3.csv", index=False)
    table = methods.handover("minitaur_velocity", span=2000)
    # Pretraining: from the report at 4000 - 2000 to the end; fine-tuning: up to the first report past 2000.
    assert table.to_dict("records") == [
        {
            "seed": 3,
            "method": "sqrl",
            "pretrain_last_failures": 5,
            "pretrain_last_episodes": 8,
            "finetune_first_failures": 9,
            "finetune_first_episodes": 12,
        }
    ]
    # Friction-like: the fine-tuning curves hold no pretraining; it is read from the other experiment's.
    fine.to_csv(tmp_path / "minitaur_friction_curves_seed_3.csv", index=False)
    other = methods.handover("minitaur_friction", span=1000, pretrain_experiment="minitaur_velocity")
    assert other[["pretrain_last_failures", "pretrain_last_episodes"]].values.tolist() == [[4, 5]]
    assert other[["finetune_first_failures", "finetune_first_episodes"]].values.tolist() == [[2, 4]]
    with pytest.raises(SystemExit, match="no committed curves"):
        methods.handover("cube")
