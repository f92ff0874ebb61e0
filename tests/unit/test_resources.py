"""Trials are fitted to the cluster before Tune starts (issue 19): no experiment hangs PENDING."""

from __future__ import annotations

import pytest

from sqrl_rllib.experiments import ExperimentError, available_experiments, prepare_experiment
from sqrl_rllib.pipeline import fit_to_cluster, trial_request
from sqrl_rllib.resources import ResourceFitError, fit_resources

TWO_CORES = {"CPU": 2.0, "memory": 1e9}


def test_request_counts_the_main_process_and_every_env_runner():
    experiment = prepare_experiment("cube", [], quick=False, num_seeds=None)
    assert trial_request(experiment, experiment["resources"])["CPU"] == 5  # 1 + 4 EnvRunners
    assert trial_request(experiment, {"num_env_runners": 0})["CPU"] == 1


def test_strict_request_larger_than_the_cluster_names_the_request_cluster_and_fix():
    experiment = prepare_experiment("cube", [], quick=False, num_seeds=None)
    with pytest.raises(ResourceFitError) as err:
        fit_to_cluster(experiment, TWO_CORES)
    message = str(err.value)
    assert "{CPU: 5}" in message and "{CPU: 2}" in message
    assert "--set resources.num_env_runners=1" in message and "resources.fit=auto" in message


@pytest.mark.parametrize("name", available_experiments())
def test_every_shipped_experiment_fits_two_cores_under_quick(name, capsys):
    experiment = prepare_experiment(name, [], quick=True, num_seeds=None)
    fitted = fit_to_cluster(experiment, TWO_CORES)
    assert trial_request(fitted, fitted["resources"])["CPU"] <= 2
    wanted = trial_request(experiment, experiment["resources"])["CPU"]
    printed = capsys.readouterr().out
    assert ("resources.fit=auto" in printed) == (wanted > 2)  # one line, only when something shrank


def test_quick_samples_in_the_trial_process_so_two_trials_share_two_cores():
    experiment = prepare_experiment("cube", [], quick=True, num_seeds=None)
    assert experiment["resources"]["num_env_runners"] == 0
    assert trial_request(experiment, experiment["resources"])["CPU"] == 1


def test_quick_fit_can_be_made_strict_again():
    overrides = ["resources.fit=strict", "quick.num_env_runners=4"]
    experiment = prepare_experiment("cube", overrides, quick=True, num_seeds=None)
    with pytest.raises(ResourceFitError):
        fit_to_cluster(experiment, TWO_CORES)


def test_resources_auto_keeps_the_file_sizes_and_fits_them():
    experiment = prepare_experiment("minitaur_velocity", ["resources=auto"], quick=False, num_seeds=None)
    assert experiment["resources"]["fit"] == "auto" and experiment["resources"]["num_env_runners"] == 2
    assert fit_to_cluster(experiment, TWO_CORES)["resources"]["num_env_runners"] == 1
    assert fit_to_cluster(experiment, {"CPU": 8.0})["resources"] == experiment["resources"]


def test_gpu_request_without_gpus_is_dropped_under_auto_and_refused_under_strict():
    def request(res):
        return {"CPU": 1 + res.get("num_env_runners", 1), "GPU": res.get("num_gpus_per_learner", 0)}

    fitted, note = fit_resources({"fit": "auto", "num_gpus_per_learner": 1, "num_env_runners": 1}, request, TWO_CORES)
    assert fitted["num_gpus_per_learner"] == 0 and fitted["num_env_runners"] == 1 and "GPU: 1" in note
    with pytest.raises(ResourceFitError, match="GPU: 1"):
        fit_resources({"num_gpus_per_learner": 1}, request, TWO_CORES)


def test_a_cluster_too_small_for_even_one_process_says_so():
    with pytest.raises(ResourceFitError, match="ray start --num-cpus"):
        fit_resources({"fit": "auto"}, lambda res: {"CPU": 1 + res.get("num_env_runners", 1)}, {"CPU": 0.5})


@pytest.mark.parametrize("value", ["sometimes", "loose"])
def test_bad_fit_mode_is_an_experiment_error(value):
    with pytest.raises(ExperimentError, match="resources.fit"):
        prepare_experiment("drunk_spider", [f"resources.fit={value}"], quick=False, num_seeds=None)
