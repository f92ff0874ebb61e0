"""The two Tune stages (pretrain per method x seed -> fine-tuning per method x grid x seed) and their results.

Every pretraining method (``methods.pretraining_methods``) x seed (``experiments.experiment_seeds``) runs
its own pretraining trial (and critic fit); each fine-tuning trial starts from the checkpoint of its
method's pretraining and its own seed. A stage's trials are a Tune grid over ``grid_point`` (a dict: the
method and its SQRL keys, e.g. eps_safe) x seed; every key a point sets is a ``tune.sample_from`` that
reads it, and the fine-tuning ``pretrained_checkpoint`` is a ``tune.sample_from(PretrainedCheckpoint(..))``.

Each pretraining method is one chain of Tune runs (``stage_run_name``): its pretraining, then the
fine-tuning of the methods that start from it. The chains run at the same time on the cluster, so a
method's fine-tuning starts as soon as its own pretraining is done rather than after the slowest method's.
"""

from __future__ import annotations

import math
import os
import pathlib
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pandas as pd

PROGRESS_EVERY_S = 30.0
STEPS_KEY = "env_runners/num_env_steps_sampled_lifetime"
RETURN_KEY = "env_runners/episode_return_mean"
FAILURES_KEY = "sqrl/cumulative_failures"
EPISODES_KEY = "sqrl/cumulative_episodes"
# Episodes the results table's final_return averages (pipeline's metrics_num_episodes_for_smoothing too).
FINAL_EPISODES = 20
# The metrics a trial's curves are drawn from (trial_history).
HISTORY_KEYS = (STEPS_KEY, RETURN_KEY, FAILURES_KEY, EPISODES_KEY)

# The results table: one "trial" row per stage x method x grid point x seed, then (for grid points run with
# two or more seeds) a "mean" and a "std" row over those seeds, whose seed and trial_dir are empty.
GROUP_COLUMNS = ["stage", "method", "eps_safe", "gamma_safe"]
METRIC_COLUMNS = ["env_steps", "episodes", "failures", "failure_rate", "final_return", "return_auc"]
TABLE_COLUMNS = [*GROUP_COLUMNS, "seed", "kind", *METRIC_COLUMNS, "trial_dir"]
STAGE_ORDER = {"pretrain": 0, "finetune": 1}
GRID_KEYS = ("eps_safe", "gamma_safe")
# Trial directory names spell these resolved values (not the checkpoint path or the grid point's dict).
DIRNAME_KEYS = ("method", "eps_safe", "gamma_safe", "seed")


def build_config(experiment: dict[str, Any], stage: str, config_class: str | None = None):
    """The config of one stage of ``experiment`` (grid values are filled in by the caller): an instance of
    ``config_class`` (an import path, ``Method.config_class``; default SQRL's SQRLConfig)."""
    from sqrl_rllib.envs.own_env import own_env_name
    from sqrl_rllib.methods import SQRL_CONFIG, load_object

    spec = experiment[stage]
    res = experiment.get("resources") or {}
    config = (
        load_object(config_class or SQRL_CONFIG)()
        # A sqrl id keeps its name; an own env (failure: key, any gymnasium id or creator) is registered by
        # run_pipeline under own_env_name.
        .environment(
            own_env_name(experiment["env"], experiment.get("failure")), env_config=dict(spec.get("env_config") or {})
        )
        .env_runners(
            num_env_runners=int(res.get("num_env_runners", 1)),
            num_envs_per_env_runner=int(res.get("num_envs_per_env_runner", 1)),
        )
        .learners(
            num_learners=int(res.get("num_learners", 0)),
            num_gpus_per_learner=res.get("num_gpus_per_learner", 0),
        )
        # A dead EnvRunner is replaced instead of failing the trial.
        .fault_tolerance(restart_failed_env_runners=True)
        .reporting(min_sample_timesteps_per_iteration=500, metrics_num_episodes_for_smoothing=FINAL_EPISODES)
        .training(**(experiment.get("training") or {}))
        .sqrl(phase=stage, **(spec.get("sqrl") or {}))
    )
    return config


def trial_request(experiment: dict[str, Any], resources: dict[str, Any]) -> dict[str, float]:
    """Total CPUs / GPUs one trial of ``experiment`` asks Tune for with ``resources`` (its placement group)."""
    from sqrl_rllib.algorithms.sqrl import SQRL

    config = build_config({**experiment, "resources": resources}, "pretrain")
    return dict(SQRL.default_resource_request(config).required_resources)


def fit_to_cluster(experiment: dict[str, Any], cluster: dict[str, float]) -> dict[str, Any]:
    """``experiment`` with its resources fitted to ``cluster`` (``resources.fit``; see ``sqrl_rllib.resources``).

    Prints one line when it shrinks something; raises ResourceFitError when a strict request does not fit.
    """
    from sqrl_rllib.resources import fit_resources

    resources = dict(experiment.get("resources") or {})
    fitted, note = fit_resources(resources, lambda res: trial_request(experiment, res), cluster)
    if note:
        print(note, flush=True)
    return {**experiment, "resources": fitted}


def stage_points(experiment: dict[str, Any], stage: str) -> list[dict[str, Any]]:
    """The trial points of ``stage`` besides the seed: one dict of method name and SQRL keys per point.

    Pretraining: one point per method that pretrains (``methods.pretraining_methods``). Fine-tuning: per
    method, the grid eps_safe x gamma_safe where the method uses it (``Method.safety_grid``), else one point.
    """
    from sqrl_rllib.experiments import experiment_methods, method_stage_keys
    from sqrl_rllib.methods import METHODS, pretraining_methods

    methods = experiment_methods(experiment)
    if stage == "pretrain":
        return [{"method": m, **method_stage_keys(experiment, m, stage)} for m in pretraining_methods(methods)]
    grid = experiment["finetune"].get("grid") or {}
    grid_points: list[dict[str, Any]] = [{}]
    for key in GRID_KEYS:
        if key in grid:
            grid_points = [{**p, key: v} for p in grid_points for v in grid[key]]
    points = []
    for name in methods:
        method = METHODS[name]
        for values in grid_points if method.safety_grid else [{}]:
            points.append({"method": name, **values, **method_stage_keys(experiment, name, stage)})
    return points


class PointValue:
    """``tune.sample_from`` callable: a key's value in the trial's ``grid_point`` (else ``default``)."""

    def __init__(self, key: str, default: Any):
        self.key, self.default = key, default

    def __call__(self, config: dict[str, Any]) -> Any:
        return config["grid_point"].get(self.key, self.default)

    def __repr__(self) -> str:
        return f"PointValue({self.key!r})"


def stage_config_classes(experiment: dict[str, Any], stage: str) -> list[str]:
    """The config classes (``Method.config_class``) of ``stage``'s points, in order: one Tune run each."""
    from sqrl_rllib.methods import METHODS

    return list(dict.fromkeys(METHODS[p["method"]].config_class for p in stage_points(experiment, stage)))


def stage_run_name(stage: str, source: str) -> str:
    """The Tune run (``RUN/<name>``) of ``stage`` in the chain of pretraining method ``source``: ``pretrain``
    and ``finetune`` for SQRL's chain, ``pretrain_<source>`` and ``finetune_<source>`` for another's."""
    return stage if source == "sqrl" else f"{stage}_{source}"


def chain_cost(experiment: dict[str, Any], source: str) -> float:
    """CPU time of pretraining method ``source``'s chain of runs in SAC env steps: its pretraining trials and
    the fine-tuning trials that start from them, each weighted by its method's ``step_cost``
    (``plan.trial_seconds`` at the rate that makes one SAC step one unit)."""
    from sqrl_rllib.methods import METHODS
    from sqrl_rllib.plan import trial_seconds

    return sum(seconds for _, seconds in trial_seconds(experiment, 1.0 / METHODS["sqrl"].step_cost)[source])


def _class_points(
    experiment: dict[str, Any], stage: str, config_class: str | None, source: str | None = None
) -> list[dict[str, Any]]:
    """``stage``'s points of the methods of ``config_class`` (default SQRL's), and of ``source``'s chain
    (those ``Method.pretrained_by`` it) when given."""
    from sqrl_rllib.methods import METHODS, SQRL_CONFIG

    wanted = config_class or SQRL_CONFIG
    points = [p for p in stage_points(experiment, stage) if METHODS[p["method"]].config_class == wanted]
    return [p for p in points if source is None or METHODS[p["method"]].pretrained_by == source]


def _stage_space(
    experiment: dict[str, Any], stage: str, seeds: list[int], config_class: str | None = None, source: str | None = None
):
    """``stage``'s config of ``config_class`` with a grid over the points of the methods of that class (of
    ``source``'s chain, when given) x ``seeds``; the point's keys are read from it."""
    from ray import tune

    config = build_config(experiment, stage, config_class)
    points = _class_points(experiment, stage, config_class, source)
    if not points:
        raise ValueError(f"stage {stage!r} has no trial of config class {config_class} and pretraining source {source}")
    for key in sorted({key for point in points for key in point}):
        setattr(config, key, tune.sample_from(PointValue(key, getattr(config, key))))
    # Not an SQRL key: RLlib keeps it as a plain attribute, and the trial's keys are read from it.
    config.grid_point = tune.grid_search(points)
    config.debugging(seed=tune.grid_search(list(seeds)))
    return config


def pretrain_config(
    experiment: dict[str, Any], seeds: list[int], config_class: str | None = None, source: str | None = None
):
    """Stage 1's Tune search space: one pretraining trial per pretraining method (of ``config_class``,
    default SQRL's; only ``source`` when given) x seed."""
    return _stage_space(experiment, "pretrain", seeds, config_class, source)


def finetune_config(
    experiment: dict[str, Any],
    seeds: list[int],
    checkpoints: dict[tuple[str, int], str],
    config_class: str | None = None,
    source: str | None = None,
):
    """Stage 2's Tune search space: methods (of ``config_class``, default SQRL's; those fine-tuned from
    ``source``'s pretraining when given) x their grid points x ``seeds``, each from its own checkpoint.

    ``checkpoints`` maps (pretraining method, seed) to the pretraining (or critic-fitted) checkpoint; the
    config's ``pretrained_checkpoint`` is ``tune.sample_from(PretrainedCheckpoint(checkpoints))``, which
    Tune resolves after the grid, from the trial's method and seed.
    """
    from ray import tune

    from sqrl_rllib.methods import METHODS

    points = _class_points(experiment, "finetune", config_class, source)
    needed = {(METHODS[p["method"]].pretrained_by, s) for p in points for s in seeds}
    missing = sorted(needed - set(checkpoints))
    if missing:
        raise ValueError(f"no pretraining checkpoint for (method, seed) {missing}")
    config = _stage_space(experiment, "finetune", seeds, config_class, source)
    config.pretrained_checkpoint = tune.sample_from(PretrainedCheckpoint(checkpoints))
    return config


def _run_config(name: str, run_dir: str, stop: dict, max_failures: int, verbose: bool = False, started=None):
    """The stage's Tune RunConfig; ``started`` (a threading.Event) is set when one of its trials starts."""
    from ray import tune

    from sqrl_rllib.chain_start import FirstTrialStarted
    from sqrl_rllib.progress import ProgressLines

    if verbose:  # Tune's own status tables, as before
        output = {
            "progress_reporter": tune.CLIReporter(
                metric_columns={STEPS_KEY: "steps", RETURN_KEY: "return", FAILURES_KEY: "failures"},
                parameter_columns={"eps_safe": "eps_safe", "gamma_safe": "gamma_safe", "seed": "seed"},
                max_report_frequency=int(PROGRESS_EVERY_S),
            ),
            "verbose": 1,
        }
    else:  # one line per trial per interval
        total = stop.get("num_env_steps_sampled_lifetime", float("nan"))
        output = {"callbacks": [ProgressLines(name, total, every_s=PROGRESS_EVERY_S)], "verbose": 0}
    if started is not None:
        output["callbacks"] = [*output.get("callbacks", []), FirstTrialStarted(started)]
    return tune.RunConfig(
        name=name,
        storage_path=run_dir,
        stop=stop,
        checkpoint_config=tune.CheckpointConfig(checkpoint_frequency=5, checkpoint_at_end=True, num_to_keep=2),
        failure_config=tune.FailureConfig(max_failures=max_failures),
        **output,
    )


class PretrainedCheckpoint:
    """``tune.sample_from`` callable: a fine-tuning trial's pretrained checkpoint, by its method and seed.

    ``checkpoints`` maps (pretraining method, seed) to the checkpoint path that pretraining trial (or its
    critic fit) left. Tune calls it with the trial's resolved config: the grid point's method names the
    pretraining method (``Method.pretrained_by``) and the seed picks the path.
    """

    def __init__(self, checkpoints: dict[tuple[str, int], str]):
        self.checkpoints = {(str(m), int(seed)): str(path) for (m, seed), path in checkpoints.items()}

    def __call__(self, config: dict[str, Any]) -> str:
        from sqrl_rllib.methods import METHODS

        # The grid point, not config["method"]: grid values are resolved before any sample_from.
        key = (METHODS[config["grid_point"]["method"]].pretrained_by, config.get("seed"))
        if key not in self.checkpoints:
            # ValueError, not KeyError: Tune retries a sample_from that raises KeyError with another argument.
            raise ValueError(
                f"no pretraining checkpoint for (method, seed) {key!r}; pretrained: {sorted(self.checkpoints)}"
            )
        return self.checkpoints[key]

    def __repr__(self) -> str:
        return f"PretrainedCheckpoint({self.checkpoints!r})"


def pretrain_checkpoints(results, seeds: list[int], methods: list[str]) -> dict[tuple[str, int], str]:
    """(method, seed) -> final checkpoint of each pretraining trial in ``results``; checks they ran
    ``methods`` x ``seeds``."""
    checkpoints = {}
    for result in results:
        if result.checkpoint is None:
            raise RuntimeError(f"pretraining trial {result.path} left no checkpoint")
        checkpoints[(str(result.config.get("method", "sqrl")), int(result.config["seed"]))] = result.checkpoint.path
    wanted = {(m, s) for m in methods for s in seeds}
    if set(checkpoints) != wanted:
        raise RuntimeError(
            f"the pretraining stage holds (method, seed) {sorted(checkpoints)} but this run asks for "
            f"{sorted(wanted)}: --resume a run with the methods and seeds it started with, or start a new run (--name)."
        )
    return checkpoints


def critic_fit_dir(run_dir: str, seed: int, method: str = "sqrl") -> str:
    """Where the critic fit of a pretraining checkpoint is saved: ``RUN/pretrain_critic_fit/seed_S`` for
    SQRL's, ``RUN/pretrain_critic_fit/METHOD_seed_S`` for another method's."""
    prefix = "" if method == "sqrl" else f"{method}_"
    return os.path.join(run_dir, "pretrain_critic_fit", f"{prefix}seed_{int(seed)}")


def _pretrain_algo_config(experiment: dict[str, Any], method: str, seed: int):
    """The pretraining config of ``method`` and ``seed`` that its checkpoints are restored into."""
    from sqrl_rllib.experiments import method_stage_keys
    from sqrl_rllib.methods import METHODS

    keys = method_stage_keys(experiment, method, "pretrain")
    config = build_config(experiment, "pretrain", METHODS[method].config_class).sqrl(**keys, method=method)
    return config.debugging(seed=seed)


def transitions_path(run_dir: str, seed: int) -> str:
    """Where ``--record-transitions`` writes SQRL seed ``seed``'s pretraining replay:
    ``RUN/transitions/seed_S.parquet`` (``sqrl_rllib.offline_data`` schema)."""
    return os.path.join(run_dir, "transitions", f"seed_{int(seed)}.parquet")


def record_pretraining_transitions(
    experiment: dict[str, Any], checkpoints: dict[tuple[str, int], str], run_dir: str
) -> dict[int, str]:
    """Write the D_offline of each SQRL pretraining checkpoint to ``transitions_path``; returns seed -> path.

    A file already there (an earlier run of this ``--resume``) is kept.
    """
    from sqrl_rllib.algorithms.sqrl.offline import record_checkpoint_transitions

    paths = {}
    for (method, seed), checkpoint in sorted(checkpoints.items()):
        if method == "sqrl":
            paths[seed] = transitions_path(run_dir, seed)
            record_checkpoint_transitions(_pretrain_algo_config(experiment, method, seed), checkpoint, paths[seed])
    return paths


def offline_fit_dir(run_dir: str, seed: int, method: str = "sqrl") -> str:
    """Where the offline-data fit of a pretraining checkpoint is saved: ``RUN/pretrain_offline_fit/seed_S``
    (``METHOD_seed_S`` for a method other than SQRL)."""
    prefix = "" if method == "sqrl" else f"{method}_"
    return os.path.join(run_dir, "pretrain_offline_fit", f"{prefix}seed_{int(seed)}")


def offline_data_fits(
    experiment: dict[str, Any], checkpoints: dict[tuple[str, int], str], run_dir: str
) -> dict[tuple[str, int], str]:
    """``checkpoints`` with those of the methods with a safety critic fitted further on ``pretrain.offline_data``.

    Each (method, seed) checkpoint (the critic-fitted one when ``pretrain.critic_fit`` ran) is restored, its
    Q_safe trained on the seed's dataset (``SQRL.fit_safety_critic_offline``, streamed) and saved in
    ``offline_fit_dir``, which fine-tuning then starts from; one after the other in the driver, each reused
    on ``--resume``. Without ``pretrain.offline_data``, ``checkpoints`` unchanged.
    """
    from sqrl_rllib.algorithms.sqrl.offline import fit_checkpoint_safety_critic_offline
    from sqrl_rllib.experiments import offline_data_spec
    from sqrl_rllib.methods import METHODS

    if offline_data_spec(experiment) is None:
        return checkpoints
    fitted = dict(checkpoints)
    for (method, seed), checkpoint in sorted(checkpoints.items()):
        if not METHODS[method].critic_fit:
            continue
        spec = offline_data_spec(experiment, seed)
        print(f"[sqrl] {method} seed {seed}: fitting Q_safe on the offline data {spec['path']}", flush=True)
        fitted[(method, seed)] = fit_checkpoint_safety_critic_offline(
            _pretrain_algo_config(experiment, method, seed),
            checkpoint,
            offline_fit_dir(run_dir, seed, method),
            spec["path"],
            int(spec["num_steps"]),
            float(spec["failure_fraction"]),
            include_sac=bool(spec["include_sac"]),
            window_rows=int(spec["window_rows"]),
        )
    return fitted


def trial_dirname(trial) -> str:
    """Trial directory name: Tune's default (trainable, id, index, grid values) without the checkpoint path.

    The default spells every resolved search value, ``pretrained_checkpoint`` and the grid point included,
    which would fill the name with a path (and truncate the seed off it); this one spells DIRNAME_KEYS.
    """
    index = str(trial.experiment_tag).split("_", 1)[0]
    # The grid point's values (method, eps_safe, ...) are resolved per trial, but Tune lists only the
    # grid variable itself among the evaluated params.
    values = {**(trial.evaluated_params.get("grid_point") or {}), **trial.evaluated_params}
    params = {k: v for k, v in sorted(values.items()) if k in DIRNAME_KEYS}
    tag = ",".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())
    return re.sub(r"[^a-zA-Z0-9_.,=-]+", "_", f"{trial}_{index}_{tag}".rstrip("_"))


def _fit(stage_name: str, run_dir: str, trainable, param_space, run_config, resume: bool, source: str | None = None):
    from ray import tune

    if source is not None:  # another run's finished stage: read, never run or written
        stage_path = os.path.join(source, stage_name)
        if not tune.Tuner.can_restore(stage_path):
            raise RuntimeError(f"--pretrained-run: {stage_path} is not a Tune stage this run can read")
        print(f"[sqrl] reusing the finished stage {stage_name!r} of {source}", flush=True)
        results = tune.Tuner.restore(stage_path, trainable=trainable).get_results()
    else:
        stage_path = os.path.join(run_dir, stage_name)
        if resume and tune.Tuner.can_restore(stage_path):
            print(f"[sqrl] resuming stage {stage_name!r} from {stage_path}", flush=True)
            tuner = tune.Tuner.restore(stage_path, trainable=trainable, resume_errored=True, param_space=param_space)
        else:
            print(f"[sqrl] starting stage {stage_name!r} in {stage_path}", flush=True)
            tuner = tune.Tuner(
                trainable,
                param_space=param_space,
                run_config=run_config,
                tune_config=tune.TuneConfig(trial_dirname_creator=trial_dirname),
            )
        results = tuner.fit()
    errors = [r.error for r in results if r.error is not None]
    if errors:
        raise RuntimeError(f"stage {stage_name!r}: {len(errors)} trial(s) failed; first error: {errors[0]}")
    # Tune ends a run early on Ctrl+C and returns as if done; a trial that met its stop criterion reported
    # done=True last, one cut short did not. Going on would fine-tune from unfinished pretraining.
    unfinished = sum(not (r.metrics or {}).get("done") for r in results)
    if unfinished and source is not None:
        raise RuntimeError(f"--pretrained-run: {unfinished} trial(s) of {stage_path} did not finish; --resume that run")
    if unfinished:
        raise StageInterrupted(f"stage {stage_name!r} interrupted with {unfinished} trial(s) unfinished")
    return results


def start_ray(verbose: bool = False, dashboard: bool = True) -> None:
    """Connect to RAY_ADDRESS / the job's cluster when there is one, else start a local Ray; no-op when Ray
    is already up. ``verbose`` streams the workers' logs to the driver."""
    import ray

    if not ray.is_initialized():
        ray.init(log_to_driver=verbose, include_dashboard=dashboard)


class StageInterrupted(Exception):
    """A stage stopped before its trials met their budgets (Ctrl+C); ``--resume`` continues the run."""


def run_pipeline(
    experiment: dict[str, Any],
    *,
    storage_path: str,
    name: str,
    resume: bool = False,
    max_failures: int = 3,
    verbose: bool = False,
    dashboard: bool = True,
    record_transitions: bool = False,
    pretrained_run: str | None = None,
) -> pd.DataFrame:
    """Run pretraining (one trial per pretraining method x seed) and fine-tuning (methods x grid x seeds);
    returns (and writes) the table.

    Each pretraining method's chain (its pretraining, critic fits, then the fine-tuning of the methods that
    start from it; ``stage_run_name``) runs at the same time as the others, costliest first (``chain_cost``).

    ``pretrained_run`` (a run directory, checked by ``pretrained_run.check_pretrained_run``) replaces the
    pretraining stage by that run's finished one: its trials are read, not rerun, and their rows lead the
    table as this run's pretraining.

    Each fine-tuning trial starts from the pretraining checkpoint of its method's pretraining and its own
    seed (the critic-fitted one when the experiment has ``pretrain.critic_fit`` and the method a safety
    critic). The table is ``results_table``'s. ``dashboard`` False starts a local Ray without its dashboard
    (a few seconds and a process less; ``--quick`` does so). With ``pretrain.offline_data`` those
    checkpoints are then fitted further on the dataset (``offline_data_fits``); ``record_transitions`` writes
    each SQRL seed's pretraining replay to ``RUN/transitions/seed_S.parquet`` (``record_pretraining_transitions``).
    """
    import ray
    from ray import tune

    from sqrl_rllib.algorithms.sqrl.offline import fit_checkpoint_safety_critic
    from sqrl_rllib.chain_start import submit_in_order
    from sqrl_rllib.envs.own_env import register_own_env
    from sqrl_rllib.envs.rllib import register_rllib_envs
    from sqrl_rllib.experiments import experiment_methods, experiment_seeds
    from sqrl_rllib.methods import METHODS, load_object, pretraining_methods
    from sqrl_rllib.pretrained_run import pretraining_stage_of

    start_ray(verbose, dashboard)
    register_rllib_envs()
    register_own_env(experiment["env"], experiment.get("failure"))
    experiment = fit_to_cluster(experiment, ray.cluster_resources())
    run_dir = storage_path.rstrip("/") + "/" + name
    seeds = experiment_seeds(experiment)
    fit = experiment["pretrain"].get("critic_fit")
    # Tune's trainable registry is not thread-safe: each Algorithm class is registered here, in the driver's
    # thread, under the name Tune would give it, and the chains' Tuners get that name.
    trainables = {}
    for config_class in stage_config_classes(experiment, "pretrain"):
        algo_class = load_object(config_class)().algo_class
        tune.register_trainable(algo_class.__name__, algo_class)
        trainables[config_class] = algo_class.__name__

    def chain(source: str, started: threading.Event) -> list[tuple[str, Any]]:
        # One pretraining method's runs: its pretraining, its critic fits, then the fine-tuning of every method
        # that starts from it. ``started`` is set once its pretraining holds resources (or is done).
        method = METHODS[source]
        trainable = trainables[method.config_class]
        pre_name = stage_run_name("pretrain", source)
        pre_space = pretrain_config(experiment, seeds, method.config_class, source)
        if pretrained_run:  # that run's stage holding this method (older runs kept several methods in one)
            pre_name = pretraining_stage_of(pretrained_run, source)
        stop = experiment["pretrain"]["stop"]
        pre = _fit(
            pre_name,
            run_dir,
            trainable,
            pre_space,
            _run_config(pre_name, run_dir, stop, max_failures, verbose, started),
            resume,
            pretrained_run,
        )
        started.set()
        # A --pretrained-run may hold more methods and seeds than this run fine-tunes.
        pre = [r for r in pre if str(r.config.get("method", "sqrl")) == source and int(r.config["seed"]) in seeds]
        checkpoints = pretrain_checkpoints(pre, seeds, [source])
        for seed in seeds if fit and method.critic_fit else []:  # each is reused on --resume
            print(f"[sqrl] {source} seed {seed}: fitting Q_safe on its pretraining data", flush=True)
            checkpoints[(source, seed)] = fit_checkpoint_safety_critic(
                _pretrain_algo_config(experiment, source, seed),
                checkpoints[(source, seed)],
                critic_fit_dir(run_dir, seed, source),
                int(fit["num_steps"]),
                float(fit.get("failure_fraction", 0.0)),
            )
        if record_transitions:
            record_pretraining_transitions(experiment, checkpoints, run_dir)
        checkpoints = offline_data_fits(experiment, checkpoints, run_dir)
        for (_, seed), path in sorted(checkpoints.items()):
            print(f"[sqrl] pretraining done; {source} seed {seed} fine-tunes from {path}", flush=True)
        ft_name = stage_run_name("finetune", source)
        ft_space = finetune_config(experiment, seeds, checkpoints, method.config_class, source)
        stop = experiment["finetune"]["stop"]
        ft = _fit(
            ft_name, run_dir, trainable, ft_space, _run_config(ft_name, run_dir, stop, max_failures, verbose), resume
        )
        return [("pretrain", r) for r in pre] + [("finetune", r) for r in ft]

    # Costliest first: the slowest chain bounds the run (chain_start: started one after another).
    sources = sorted(pretraining_methods(experiment_methods(experiment)), key=lambda m: -chain_cost(experiment, m))
    if len(sources) == 1:  # in the driver's own thread, where Tune catches Ctrl+C and checkpoints
        results = chain(sources[0], threading.Event())
    else:
        # Tune catches Ctrl+C only in the main thread, so here it interrupts the wait: the runs are left to the
        # caller's exit (their trials restart from their last checkpoints on --resume), not joined, which would
        # wait for every trial to finish its budget.
        pool = ThreadPoolExecutor(max_workers=len(sources), thread_name_prefix="sqrl-chain")
        try:
            futures = submit_in_order(pool, chain, sources)
            results = [result for future in futures for result in future.result()]
        except KeyboardInterrupt:
            pool.shutdown(wait=False, cancel_futures=True)
            raise StageInterrupted("run interrupted") from None
        pool.shutdown()
    table = results_table([_row(stage_name, r) for stage_name, r in results])
    table.attrs["outputs"] = write_outputs(table, results, run_dir)
    return table


def results_table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The results table from one row per trial (``TABLE_COLUMNS``; ``kind`` "trial").

    Rows are ordered by stage (pretrain first), grid point and seed. After the trials of each stage x
    grid point run with two or more seeds come a ``kind`` "mean" and a ``kind`` "std" row (sample
    standard deviation, ddof=1) of every metric column over those seeds; their ``seed`` and
    ``trial_dir`` are empty. ``seed`` is a nullable integer column, the metric columns are floats.
    """
    trials = [{**{c: row.get(c) for c in TABLE_COLUMNS}, "kind": "trial"} for row in rows]
    trials.sort(key=lambda r: (STAGE_ORDER.get(r["stage"], len(STAGE_ORDER)), *_group_sort_key(r), r["seed"] or 0))
    out: list[dict[str, Any]] = []
    for start, end in _runs(trials):
        group = trials[start:end]
        out.extend(group)
        if len(group) < 2:
            continue
        values = pd.DataFrame(group)[METRIC_COLUMNS].astype(float)
        for kind, stat in (("mean", values.mean()), ("std", values.std(ddof=1))):
            row = {c: group[0][c] for c in GROUP_COLUMNS}
            row.update(seed=None, kind=kind, trial_dir=None, **{c: round(float(stat[c]), 4) for c in METRIC_COLUMNS})
            out.append(row)
    table = pd.DataFrame(out, columns=TABLE_COLUMNS)
    table["seed"] = table["seed"].astype("Int64")
    # Floats whatever the number of seeds, so a consumer sees the same types in every run.
    table[METRIC_COLUMNS] = table[METRIC_COLUMNS].astype(float)
    return table


def _group_sort_key(row: dict[str, Any]) -> tuple:
    # Methods in registry order; then None first and numbers by value.
    from sqrl_rllib.methods import METHODS

    names = list(METHODS)
    method = names.index(row["method"]) if row["method"] in names else len(names)
    return (method, *((row[c] is not None, row[c] if row[c] is not None else 0) for c in GROUP_COLUMNS[2:]))


def _runs(rows: list[dict[str, Any]]) -> list[tuple[int, int]]:
    """[start, end) of each run of consecutive rows with equal GROUP_COLUMNS."""
    runs, start = [], 0
    for i in range(1, len(rows) + 1):
        if i == len(rows) or any(rows[i][c] != rows[start][c] for c in GROUP_COLUMNS):
            runs.append((start, i))
            start = i
    return runs


def format_table(table: pd.DataFrame) -> str:
    """The results table as the CLI prints it: whole numbers without ".0", empty cells blank."""
    shown = table.copy()
    for column in METRIC_COLUMNS:
        shown[column] = shown[column].map(_format_number)
    for column in GRID_KEYS:  # empty for a method without a safety critic
        shown[column] = shown[column].map(lambda v: "" if v is None or pd.isna(v) else _format_number(v))
    shown["seed"] = shown["seed"].map(lambda seed: "" if pd.isna(seed) else str(seed))
    shown["trial_dir"] = shown["trial_dir"].map(lambda path: "" if pd.isna(path) else str(path))
    return shown.to_string(index=False)


def _format_number(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "nan"
    value = float(value)
    if value.is_integer():
        return str(int(value))
    return f"{value:.4f}".rstrip("0").rstrip(".")


def _grid_point(stage: str, result) -> tuple[str, Any, Any]:
    """(method, eps_safe, gamma_safe) of a trial; the safety keys are None for a method without a safety
    critic in this stage."""
    from sqrl_rllib.methods import METHODS

    cfg = result.config
    method = cfg.get("method", "sqrl")
    safety = cfg.get("safety_critic", True) and (
        stage == "pretrain" or METHODS.get(method, METHODS["sqrl"]).safety_grid
    )
    return method, cfg.get("eps_safe") if safety else None, cfg.get("gamma_safe") if safety else None


def _row(stage: str, result) -> dict[str, Any]:
    m = result.metrics or {}
    failures = int(_get(m, FAILURES_KEY, 0))
    episodes = int(_get(m, EPISODES_KEY, 0))
    method, eps_safe, gamma_safe = _grid_point(stage, result)
    history = result_history(result)
    return {
        "stage": stage,
        "method": method,
        "eps_safe": eps_safe,
        "gamma_safe": gamma_safe,
        "seed": result.config.get("seed"),
        "kind": "trial",
        "env_steps": int(_get(m, STEPS_KEY, 0)),
        "episodes": episodes,
        "failures": failures,
        "failure_rate": round(failures / episodes, 4) if episodes else float("nan"),
        "final_return": round(final_return(history, float(_get(m, RETURN_KEY, float("nan")))), 3),
        "return_auc": round(return_auc(history), 3),
        "trial_dir": result.path,
    }


def trial_history(trial_dir: str | os.PathLike) -> pd.DataFrame | None:
    """A trial's curves (HISTORY_KEYS by training iteration) from its ``result.json``; None without one.

    Not progress.csv: Tune keeps that file's header from the trial's first run, and a trial resumed with
    more metrics appends longer rows, which pandas reads shifted by the extra columns (measured on a resumed
    methods run: the env-steps column held losses). result.json has one self-describing report per line. An
    iteration reported twice (re-run after a restore from an older checkpoint) keeps its last report.
    """
    import json

    path = pathlib.Path(trial_dir) / "result.json"
    if not path.is_file():
        return None
    rows = []
    for line in path.read_text().splitlines():
        if line.strip():
            report = json.loads(line)
            row = {key: _get(report, key, float("nan")) for key in HISTORY_KEYS}
            rows.append({"training_iteration": report.get("training_iteration", len(rows) + 1), **row})
    if not rows:
        return None
    history = pd.DataFrame(rows).drop_duplicates("training_iteration", keep="last")
    return history.sort_values("training_iteration", ignore_index=True)


def result_history(result) -> pd.DataFrame | None:
    """:func:`trial_history` of a Tune ``Result``; its ``metrics_dataframe`` where the trial directory is
    not local (e.g. cloud storage)."""
    history = trial_history(result.path) if result.path and os.path.isdir(result.path) else None
    return history if history is not None else result.metrics_dataframe


def final_return(history: pd.DataFrame | None, last_reported: float = float("nan")) -> float:
    """Mean return of the trial's last ``FINAL_EPISODES`` episodes, from its per-iteration curve.

    RLlib 2.60's EnvRunner reduces, and so empties, its episode-return window at every training iteration:
    the reported ``episode_return_mean`` is the mean of the episodes that ended in that iteration (at most
    the last ``metrics_num_episodes_for_smoothing`` of them), five 100-step CubeRotate episodes, not the last
    20 (``tests/unit/test_final_return.py`` pins that). Each iteration's mean is weighted by the episodes it
    averaged, going back from the end until ``FINAL_EPISODES`` are covered (the earliest of those iterations
    counts only the episodes still missing, as if its own were alike). ``last_reported`` is returned
    where the curve lacks the episode counts (a history from cloud storage without ``EPISODES_KEY``).
    """
    if history is None or RETURN_KEY not in history or EPISODES_KEY not in history:
        return last_reported
    curve = history[[RETURN_KEY, EPISODES_KEY]].astype(float).reset_index(drop=True)
    lifetime = curve[EPISODES_KEY].ffill().fillna(0.0)
    ended = lifetime.diff().fillna(lifetime)
    weights = ended.clip(upper=FINAL_EPISODES).where(curve[RETURN_KEY].notna(), 0.0).fillna(0.0)
    if weights.sum() <= 0:
        return last_reported
    # Episodes the later iterations cover; an iteration counts only the episodes still missing from the 20.
    later = weights[::-1].cumsum()[::-1] - weights
    window = (FINAL_EPISODES - later).clip(lower=0.0, upper=weights)
    return float((window * curve[RETURN_KEY].fillna(0.0)).sum() / window.sum())


def return_auc(history: pd.DataFrame | None) -> float:
    """Mean episode return over the trial's env steps (area under the return curve / steps spanned).

    Trapezoids over the reported (env steps, return) points; NaN when fewer than two points have a return.
    It rewards learning early, which the final return alone does not show.
    """
    if history is None or RETURN_KEY not in history or STEPS_KEY not in history:
        return float("nan")
    curve = history[[STEPS_KEY, RETURN_KEY]].dropna().sort_values(STEPS_KEY)
    steps, returns = curve[STEPS_KEY].to_numpy(float), curve[RETURN_KEY].to_numpy(float)
    if len(steps) < 2 or steps[-1] <= steps[0]:
        return float("nan")
    area = float(((returns[1:] + returns[:-1]) * 0.5 * (steps[1:] - steps[:-1])).sum())
    return area / float(steps[-1] - steps[0])


def _get(metrics: dict, dotted: str, default):
    node: Any = metrics
    for part in dotted.split("/"):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def seed_curves(results: list[tuple[str, Any]], stage: str, key: str, points: int = 100) -> dict[str, tuple]:
    """Per method x grid point of ``stage``: (steps, mean, low, high) of metric ``key`` over its seeds.

    Each trial's curve is interpolated onto ``points`` env-step values up to the shortest trial's last
    step; low / high are the minimum and maximum over seeds (None with one seed). Keys are legend labels.
    """
    import numpy as np

    groups: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    for stage_name, result in results:
        df = result_history(result)
        if stage_name != stage or df is None or key not in df or STEPS_KEY not in df:
            continue
        curve = df[[STEPS_KEY, key]].dropna().sort_values(STEPS_KEY)
        if curve.empty:
            continue
        label = curve_label(*_grid_point(stage, result))  # not _row: it would read the history again
        groups.setdefault(label, []).append((curve[STEPS_KEY].to_numpy(float), curve[key].to_numpy(float)))
    return {label: band(curves, points) for label, curves in groups.items()}


def curve_label(method: str, eps_safe: Any = None, gamma_safe: Any = None) -> str:
    """A plot legend's label for a method x grid point: the method, then the safety keys it has (None or
    NaN, as for a method without a safety critic, leaves a key out)."""
    keys = (("eps_safe", eps_safe), ("gamma_safe", gamma_safe))
    return method + "".join(f" {k}={v:g}" for k, v in keys if v is not None and not pd.isna(v))


def band(curves: list[tuple[Any, Any]], points: int = 100) -> tuple:
    """(steps, mean, low, high) of several (steps, values) curves of one metric, e.g. one per seed.

    Each curve is interpolated onto ``points`` env-step values up to the shortest curve's last step, so
    that seeds which stopped at different counts are compared where all of them have data; low / high
    are the minimum and maximum over curves (None with one curve).
    """
    import numpy as np

    end = min(steps[-1] for steps, _ in curves)
    grid = np.linspace(min(steps[0] for steps, _ in curves), end, points)
    values = np.stack([np.interp(grid, steps, vals) for steps, vals in curves])
    many = len(curves) > 1
    return grid, values.mean(0), values.min(0) if many else None, values.max(0) if many else None


def draw_bands(ax, bands: dict[str, tuple], title: str, ylabel: str) -> None:
    """Draw ``band`` results on a matplotlib axis: one line per label (the mean) and its low-high band.

    A method keeps one colour in every panel and run (its place in the method registry); its grid points
    (labels ``curve_label`` spells with eps_safe / gamma_safe) differ by line style.
    """
    from sqrl_rllib.methods import METHODS

    names, styles = list(METHODS), ("-", "--", ":", "-.")
    seen: dict[str, int] = {}
    for label, (steps, mean, low, high) in bands.items():
        method = label.split(" ", 1)[0]
        colour = f"C{names.index(method) % 10}" if method in names else None
        style = styles[seen.get(method, 0) % len(styles)]
        seen[method] = seen.get(method, 0) + 1
        (line,) = ax.plot(steps, mean, label=label, color=colour, linestyle=style)
        if low is not None:
            ax.fill_between(steps, low, high, color=line.get_color(), alpha=0.2)
    ax.set_title(title)
    ax.set_xlabel("env steps")
    ax.set_ylabel(ylabel)
    if ax.lines:
        ax.legend(fontsize=7)


def write_outputs(table: pd.DataFrame, results: list[tuple[str, Any]], run_dir: str) -> dict[str, str]:
    """Write results.csv, results.parquet and the two PNG plots into ``run_dir`` (local runs).

    Each plot has a pretraining and a fine-tuning panel with one curve per method x grid point: the mean
    over seeds, with a band from the lowest to the highest seed (``seed_curves``).
    """
    if "://" in run_dir:
        out = pathlib.Path(os.environ.get("SQRL_LOCAL_RESULTS", ".")) / pathlib.Path(run_dir).name
    else:
        out = pathlib.Path(run_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": str(out / "results.csv"), "parquet": str(out / "results.parquet")}
    # %.10g: whole numbers without ".0" (5000, not 5000.0), the rest as stored.
    table.to_csv(paths["csv"], index=False, float_format="%.10g")
    table.to_parquet(paths["parquet"], index=False, engine="pyarrow")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for key, ylabel, fname in (
        (RETURN_KEY, "episode return (mean of the iteration's episodes)", "return.png"),
        (FAILURES_KEY, "cumulative failures", "cumulative_failures.png"),
    ):
        fig, axes = plt.subplots(1, 2, figsize=(11, 4), squeeze=False)
        for ax, stage in zip(axes[0], ("pretrain", "finetune"), strict=True):
            draw_bands(ax, seed_curves(results, stage, key), stage, ylabel)
        fig.tight_layout()
        paths[fname] = str(out / fname)
        fig.savefig(paths[fname], dpi=100)
        plt.close(fig)
    print(f"[sqrl] results written to {out}", flush=True)
    return paths
