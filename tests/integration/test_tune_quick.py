"""`python -m sqrl_rllib.tune drunk_spider --quick --seeds 1,2` end to end with the default methods (sqrl, sac):
per-method x seed pretraining, critic fit and fine-tuning, table with mean/std rows, CSV, Parquet, plots,
TensorBoard."""

import json
import pathlib
import subprocess
import sys

import pandas as pd

# Two seeds at a small budget (on 2 cores the two trials of a stage run one after the other).
QUICK = ["--quick", "--seeds", "1,2", "--set", "quick.pretrain_steps=2000", "--set", "quick.finetune_steps=1000"]


def test_quick_drunk_spider_pipeline_two_seeds(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "sqrl_rllib.tune", "drunk_spider", *QUICK, "--storage-path", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "failure_rate" in proc.stdout and "final_return" in proc.stdout
    run_dir = tmp_path / "drunk_spider_quick"
    table = pd.read_parquet(run_dir / "results.parquet")
    trials = table[table["kind"] == "trial"]

    # A trial row per stage x method x seed, then a mean and a std row per stage x method (one grid point).
    assert list(table["stage"]) == ["pretrain"] * 8 + ["finetune"] * 8
    assert list(table["method"]) == (["sqrl"] * 4 + ["sac"] * 4) * 2
    assert list(table["kind"]) == ["trial", "trial", "mean", "std"] * 4
    assert list(trials["seed"]) == [1, 2] * 4
    assert table.loc[table["kind"] != "trial", "seed"].isna().all()
    # SAC has no safety critic: no eps_safe / gamma_safe in its rows.
    assert table.loc[table["method"] == "sac", ["eps_safe", "gamma_safe"]].isna().all().all()
    assert (table.loc[table["method"] == "sqrl", "eps_safe"] == 0.1).all()
    for stage, method in (("pretrain", "sqrl"), ("pretrain", "sac"), ("finetune", "sqrl"), ("finetune", "sac")):
        rows = table[(table["stage"] == stage) & (table["method"] == method)]
        seeds = rows[rows["kind"] == "trial"]
        mean = rows[rows["kind"] == "mean"].iloc[0]
        std = rows[rows["kind"] == "std"].iloc[0]
        assert abs(mean["failures"] - seeds["failures"].mean()) < 1e-6
        assert abs(std["final_return"] - round(seeds["final_return"].std(), 4)) < 1e-3
    assert (trials["env_steps"] > 0).all() and (trials["episodes"] > 0).all()
    assert pd.read_csv(run_dir / "results.csv").shape == table.shape

    # drunk_spider.yaml fits Q_safe on each seed's pretraining data (quick: 500 steps), in its own directory.
    for seed in (1, 2):
        fit = json.loads((run_dir / "pretrain_critic_fit" / f"seed_{seed}" / "complete.json").read_text())
        assert fit["num_steps"] == 200 and fit["safety_loss"] > 0
    # ... from different pretraining runs: the two fitted module states differ.
    state = "learner_group/learner/rl_module/default_policy/module_state.pkl"
    fitted = [(run_dir / "pretrain_critic_fit" / f"seed_{seed}" / state).read_bytes() for seed in (1, 2)]
    assert fitted[0] != fitted[1]

    # Every trial ran its own method and seed; each SQRL fine-tuning trial started from its own seed's fitted
    # checkpoint, each SAC one from SAC's own pretraining trial of that seed.
    sac_pretrain = {
        r["seed"]: r["trial_dir"] for _, r in trials.iterrows() if (r["stage"], r["method"]) == ("pretrain", "sac")
    }
    for _, row in trials.iterrows():
        params = json.loads((pathlib.Path(row["trial_dir"]) / "params.json").read_text())
        assert params["seed"] == row["seed"] and params["method"] == row["method"]
        assert f"method={row['method']}" in pathlib.Path(row["trial_dir"]).name
        assert "pretrained_checkpoint" not in pathlib.Path(row["trial_dir"]).name
        assert params["mask_enabled"] is params["safety_critic"] is (row["method"] == "sqrl")
        if row["stage"] == "pretrain":
            assert params["pretrained_checkpoint"] is None
        elif row["method"] == "sqrl":
            assert params["pretrained_checkpoint"] == str(run_dir / "pretrain_critic_fit" / f"seed_{row['seed']}")
        else:
            assert params["pretrained_checkpoint"].startswith(sac_pretrain[row["seed"]])
        progress = pd.read_csv(pathlib.Path(row["trial_dir"]) / "progress.csv")
        # SAC never trains a safety critic; SQRL's pretraining does.
        trained = bool(progress.get("sqrl/num_safety_critic_steps", pd.Series([0])).fillna(0).max() > 0)
        assert trained is (row["method"] == "sqrl" and row["stage"] == "pretrain"), row["trial_dir"]

    for plot in ("return.png", "cumulative_failures.png"):
        assert (run_dir / plot).stat().st_size > 1000
    events = list(run_dir.glob("*/*/events.out.tfevents.*"))
    assert len(events) >= 8, list(run_dir.rglob("*"))[:50]

    # --pretrained-run: a second run fine-tunes SQRL seed 2 from this run's pretraining, at another eps_safe,
    # without pretraining again and without writing into this run.
    source_files = sorted(p.name for p in (run_dir / "pretrain").iterdir())
    proc = subprocess.run(
        [sys.executable, "-m", "sqrl_rllib.tune", "drunk_spider", *QUICK[:1], "--seeds", "2", "--methods", "sqrl"]
        + [*QUICK[3:], "--set", "finetune.grid.eps_safe=[0.2]", "--storage-path", str(tmp_path)]
        + ["--name", "reuse", "--pretrained-run", "drunk_spider_quick"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"reusing the finished stage 'pretrain' of {run_dir}" in proc.stdout
    reuse = tmp_path / "reuse"
    assert not (reuse / "pretrain").exists()
    assert sorted(p.name for p in (run_dir / "pretrain").iterdir()) == source_files
    table = pd.read_csv(reuse / "results.csv")
    assert list(zip(table["stage"], table["method"], table["seed"], strict=True)) == [
        ("pretrain", "sqrl", 2),
        ("finetune", "sqrl", 2),
    ]
    source_trial = trials[(trials["stage"] == "pretrain") & (trials["method"] == "sqrl") & (trials["seed"] == 2)]
    assert table["trial_dir"].iloc[0] == source_trial["trial_dir"].iloc[0]
    assert table["eps_safe"].iloc[1] == 0.2
    params = json.loads((pathlib.Path(table["trial_dir"].iloc[1]) / "params.json").read_text())
    # The critic fit is this run's own, on the source's pretraining checkpoint.
    assert params["pretrained_checkpoint"] == str(reuse / "pretrain_critic_fit" / "seed_2")


def _quick_own_algorithm(tmp_path, method: str, *sets: str):
    """``--quick --methods METHOD`` (one seed, 1000 + 500 steps) for a method of its own Algorithm class: checks
    its own Tune run per stage, its rows and its fine-tuning's start from its own pretraining checkpoint;
    returns (the trial rows, the fine-tuning trial's directory)."""
    quick = ["--quick", "--seeds", "0", "--set", "quick.pretrain_steps=1000", "--set", "quick.finetune_steps=500"]
    proc = subprocess.run(
        [sys.executable, "-m", "sqrl_rllib.tune", "drunk_spider", *quick, "--methods", method]
        + [arg for key in sets for arg in ("--set", key)]
        + ["--storage-path", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run_dir = tmp_path / "drunk_spider_quick"
    assert f"starting stage 'pretrain_{method}'" in proc.stdout and f"starting stage 'finetune_{method}'" in proc.stdout
    assert not (run_dir / "pretrain").exists() and not (run_dir / "pretrain_critic_fit").exists()
    table = pd.read_parquet(run_dir / "results.parquet")
    trials = table[table["kind"] == "trial"]
    assert list(trials["stage"]) == ["pretrain", "finetune"] and set(trials["method"]) == {method}
    assert trials[["eps_safe", "gamma_safe"]].isna().all().all()
    assert (trials["env_steps"] > 0).all() and (trials["episodes"] > 0).all()
    pre_dir, ft_dir = (pathlib.Path(d) for d in trials["trial_dir"])
    assert pre_dir.parent.name == f"pretrain_{method}" and ft_dir.parent.name == f"finetune_{method}"
    params = json.loads((ft_dir / "params.json").read_text())
    assert params["pretrained_checkpoint"].startswith(str(pre_dir))
    return trials, ft_dir


def test_quick_wcpg_pipeline_runs_its_own_algorithm_in_its_own_stage_runs(tmp_path):
    """A method of another Algorithm class (WCPG) gets its own Tune run per stage, and its fine-tuning trial
    starts from its own pretraining checkpoint (no critic fit: WCPG has no safety critic)."""
    _, ft_dir = _quick_own_algorithm(tmp_path, "wcpg")
    params = json.loads((ft_dir / "params.json").read_text())
    assert params["risk_level"] == 0.2
    progress = pd.read_csv(ft_dir / "progress.csv")
    assert progress["learners/default_policy/cvar_mean"].notna().any()


def test_quick_cpo_pipeline_runs_its_own_on_policy_algorithm(tmp_path):
    """CPO (on-policy, its own Algorithm class) gets its own Tune run per stage, its method_config keys reach
    its trials, and its fine-tuning trial starts from its own pretraining checkpoint."""
    batches = ["method_config.cpo.pretrain.cpo_batch_size=500", "method_config.cpo.finetune.cpo_batch_size=250"]
    trials, ft_dir = _quick_own_algorithm(tmp_path, "cpo", *batches)
    # Whole on-policy batches of 500 (pretraining) and 250 (fine-tuning) steps, to at least the stage's budget
    # (Tune may stop an iteration late: measured 1500 and 500).
    pre_steps, ft_steps = trials["env_steps"]
    assert pre_steps >= 1000 and pre_steps % 500 == 0 and ft_steps >= 500 and ft_steps % 250 == 0
    params = json.loads((ft_dir / "params.json").read_text())
    assert params["cpo_batch_size"] == 250
    assert params["phase"] == "finetune" and params["reward_scale"] == 1.0 and params["safety_critic"] is False
    progress = pd.read_csv(ft_dir / "progress.csv")
    # One CPO step per batch; the limit is the stage's eps_safe (0.1).
    last = progress.iloc[-1]
    assert last["sqrl/num_sgd_steps"] == ft_steps // 250 and last["sqrl/cpo_cost_limit"] == 0.1
    assert progress["learners/default_policy/kl"].le(0.01 * 1.001).all()
