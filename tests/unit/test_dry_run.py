"""--dry-run validates, prints the plan and a measured estimate, and starts no Ray (issue 19)."""

import pytest
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


def test_schedule_runs_each_chain_after_its_own_pretraining_costliest_first():
    from sqrl_rllib.plan import schedule_seconds, trial_seconds

    chains = {"fast": [("pretrain", 1.0), ("finetune", 1.0)], "slow": [("pretrain", 10.0), ("finetune", 10.0)]}
    # Two slots: the fast chain fine-tunes beside the slow pretraining; the run lasts the slow chain.
    assert schedule_seconds(chains, 2) == 20.0
    assert schedule_seconds(chains, 1) == 22.0
    # A chain fine-tunes only once all its seeds' pretraining is done.
    assert schedule_seconds({"m": [("pretrain", 1.0), ("pretrain", 5.0), ("finetune", 1.0)]}, 3) == 6.0

    methods = ["sqrl", "sac", "esac", "wcpg", "rs", "cpo"]
    experiment = prepare_experiment("drunk_spider", [], quick=False, num_seeds=None, seeds=[1], methods=methods)
    seconds = trial_seconds(experiment, sqrl_steps_per_s=50.0)
    # SQRL's chain: its pretraining, then SQRL's and RS's fine-tuning; ESAC at 3.2 / 1.3 of SQRL's time.
    assert [stage for stage, _ in seconds["sqrl"]] == ["pretrain", "finetune", "finetune"]
    assert seconds["esac"][0][1] == pytest.approx(1000.0 * 3.2 / 1.3)
    # Two slots: no schedule beats ESAC's chain or half of all the work, and this one is within 5% of both.
    bound = max(sum(s for _, s in seconds["esac"]), sum(s for chain in seconds.values() for _, s in chain) / 2)
    assert bound <= schedule_seconds(seconds, 2) <= 1.05 * bound


def test_plan_with_a_pretrained_run_costs_fine_tuning_only():
    experiment = prepare_experiment("drunk_spider", [], quick=False, num_seeds=None, methods=["sqrl"])
    text = describe_plan(experiment, lean_steps_per_s=70.0, cpus=2, pretrained_run="/runs/velocity")
    # Only the 3 fine-tuning trials (51 min) count; pretraining is reported as taken from that run.
    assert "pretrain: none run; fine-tuning starts from the pretraining of /runs/velocity" in text
    assert "estimated training time: about 51.0 min" in text
    from sqrl_rllib.plan import schedule_seconds

    assert schedule_seconds({"m": [("finetune", 2.0), ("finetune", 3.0)]}, 2) == 3.0
