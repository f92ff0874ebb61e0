"""``--pretrained-run``: fine-tune from another run's finished pretraining instead of pretraining again.

The paper pretrains once per robot and fine-tunes on several target tasks (Minitaur: the same 0.3 m/s,
friction 1.0 pretraining for the faster-velocity and the higher-friction task). Checked here, before Ray
starts, so that a wrong directory is a one-line error rather than a failed checkpoint restore in a trial.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

from sqrl_rllib.experiments import ExperimentError, experiment_methods, experiment_seeds
from sqrl_rllib.methods import pretraining_methods


def pretraining_trials(run_dir: pathlib.Path) -> dict[tuple[str, int], dict[str, Any]]:
    """(method, seed) -> the trial's params.json, for every pretraining trial in ``run_dir`` (the stage
    directories ``pretrain`` and ``pretrain_<method>`` that Tune wrote, i.e. that hold a tuner.pkl)."""
    return {key: params for key, (_, params) in _pretraining_trials(run_dir).items()}


def pretraining_stage_of(run_dir: str | pathlib.Path, method: str) -> str:
    """The name of the stage directory of ``run_dir`` that holds ``method``'s pretraining trials
    (``pretrain_<method>``, or ``pretrain``, which held every SQRL-class method before runs were chained
    per method)."""
    stages = sorted(
        {stage for (name, _), (stage, _) in _pretraining_trials(pathlib.Path(run_dir)).items() if name == method}
    )
    if len(stages) != 1:
        raise ValueError(
            f"--pretrained-run {run_dir}: {method}'s pretraining is in {len(stages)} stages ({stages}), not one"
        )
    return stages[0]


def _pretraining_trials(run_dir: pathlib.Path) -> dict[tuple[str, int], tuple[str, dict[str, Any]]]:
    trials = {}
    for stage in sorted(run_dir.glob("pretrain*")):
        if not (stage / "tuner.pkl").is_file():  # e.g. pretrain_critic_fit: not a Tune stage
            continue
        for params_file in sorted(stage.glob("*/params.json")):
            params = json.loads(params_file.read_text())
            trials[(str(params.get("method", "sqrl")), int(params["seed"]))] = (stage.name, params)
    return trials


def resolve_pretrained_run(value: str, storage: str) -> pathlib.Path:
    """The run directory ``value`` names: a path, else a run name under ``storage``."""
    path = pathlib.Path(value).expanduser()
    if not path.is_dir() and "://" not in storage:
        path = pathlib.Path(storage).expanduser() / value
    return path.resolve()


def check_pretrained_run(value: str, storage: str, experiment: dict[str, Any]) -> str:
    """The absolute run directory to fine-tune from; raises ExperimentError unless it holds a pretraining
    trial for every method x seed this experiment pretrains, on an env with the same spaces."""
    run_dir = resolve_pretrained_run(value, storage)
    trials = pretraining_trials(run_dir) if run_dir.is_dir() else {}
    if not trials:
        raise ExperimentError(
            f"--pretrained-run {value}: no pretraining stage in {run_dir}; give the directory (or the name under "
            f"{storage}) of a run whose pretraining finished, e.g. ~/sqrl_results/minitaur_velocity."
        )
    wanted = [(m, s) for m in pretraining_methods(experiment_methods(experiment)) for s in experiment_seeds(experiment)]
    missing = [key for key in wanted if key not in trials]
    if missing:
        raise ExperimentError(
            f"--pretrained-run {value}: {run_dir} has no pretraining for (method, seed) {missing}; it holds "
            f"{sorted(trials)}. Choose --methods / --seeds among those."
        )
    target = _spaces(experiment["env"], experiment["pretrain"].get("env_config") or {})
    for key in wanted:
        source = _spaces(trials[key]["env"], trials[key].get("env_config") or {})
        if source != target:
            raise ExperimentError(
                f"--pretrained-run {value}: its {key} pretraining ran on {trials[key]['env']} with (observation, "
                f"action) spaces {source}, this experiment's env {experiment['env']} has {target}: a checkpoint "
                "only fine-tunes on the spaces it was trained on."
            )
    return str(run_dir)


_SPACES: dict[str, tuple] = {}


def _spaces(env: str, env_config: dict[str, Any]) -> tuple:
    # gymnasium spaces compare shape, dtype and bounds; each env is built once (pybullet / MuJoCo take a second).
    from sqrl_rllib.envs.own_env import make_base_env

    key = json.dumps([env, env_config], sort_keys=True, default=str)
    if key not in _SPACES:
        made = make_base_env(env, env_config)
        try:
            _SPACES[key] = (made.observation_space, made.action_space)
        finally:
            made.close()
    return _SPACES[key]
