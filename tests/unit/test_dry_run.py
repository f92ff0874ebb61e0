"""--dry-run validates, prints the plan and a measured estimate, and starts no Ray (issue 19)."""

import ray

from sqrl_rllib.experiments import prepare_experiment
from sqrl_rllib.plan import describe_plan, trial_plan
from sqrl_rllib.tune import main


def test_plan_counts_trials_and_env_steps_per_stage():
    experiment = prepare_experiment(
        "drunk_spider", ["finetune.grid.eps_safe=[0.05,0.2]"], quick=False, num_seeds=None, seeds=[3, 7]
    )
    pre, fine = trial_plan(experiment)
    # Default methods sqrl and sac: both pretrain, 2 seeds each.
    assert (pre["trials"], pre["env_steps_total"], pre["methods"]) == (4, 200_000, {"sqrl": 1, "sac": 1})
    # SQRL: 2 eps x 2 seeds; SAC (no safety critic, no eps grid): 2 seeds.
    assert (fine["trials"], fine["env_steps_total"], fine["methods"]) == (6, 300_000, {"sqrl": 2, "sac": 1})
    experiment["methods"] = ["sqrl", "sac_from_sqrl"]
    pre, fine = trial_plan(experiment)
    assert (pre["trials"], fine["trials"]) == (2, 6)


def test_estimate_scales_with_the_measured_rate():
    experiment = prepare_experiment("drunk_spider", [], quick=False, num_seeds=None, methods=["sqrl"])
    # 3 seeds, 1 trial at a time on 2 CPUs (2 CPUs per trial): 3 x 50000 steps per stage at 70 x 0.7 = 49/s.
    text = describe_plan(experiment, lean_steps_per_s=70.0, cpus=2)
    assert "about 51.0 min" in text and "about 1.7 h" in text


def test_dry_run_exits_zero_without_starting_ray(capsys):
    assert main(["drunk_spider", "--quick", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert not ray.is_initialized()
    assert "[sqrl] experiment drunk_spider" in out and "lean SAC measured" in out
    assert "pretrain: 2 trial(s) = methods sqrl, sac x seeds [0]; 2000 env steps each" in out
