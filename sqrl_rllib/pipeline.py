"""The two Tune stages (pretrain per seed -> fine-tuning grid per seed) and the results they produce.

Every seed of the experiment (``experiments.experiment_seeds``) runs its own pretraining trial (and
critic fit); each fine-tuning trial starts from the checkpoint of its own seed: the fine-tuning config's
``pretrained_checkpoint`` is a ``tune.sample_from(SeedCheckpoint(...))`` that Tune resolves from the
trial's ``seed`` once the grid (eps_safe x gamma_safe x seed) is expanded.
"""

from __future__ import annotations

import math
import os
import pathlib
import re
from typing import Any

import pandas as pd

PROGRESS_EVERY_S = 30.0
STEPS_KEY = "env_runners/num_env_steps_sampled_lifetime"
RETURN_KEY = "env_runners/episode_return_mean"
FAILURES_KEY = "sqrl/cumulative_failures"
EPISODES_KEY = "sqrl/cumulative_episodes"

# The results table: one "trial" row per stage x grid point x seed, then (for grid points run with two or
# more seeds) a "mean" and a "std" row over those seeds, whose seed and trial_dir are empty.
GROUP_COLUMNS = ["stage", "eps_safe", "gamma_safe"]
METRIC_COLUMNS = ["env_steps", "episodes", "failures", "failure_rate", "final_return"]
TABLE_COLUMNS = [*GROUP_COLUMNS, "seed", "kind", *METRIC_COLUMNS, "trial_dir"]
STAGE_ORDER = {"pretrain": 0, "finetune": 1}
GRID_KEYS = ("eps_safe", "gamma_safe")


def build_config(experiment: dict[str, Any], stage: str):
    """The SQRLConfig of one stage of ``experiment`` (grid values are filled in by the caller)."""
    from sqrl_rllib.algorithms.sqrl import SQRLConfig

    spec = experiment[stage]
    res = experiment.get("resources") or {}
    config = (
        SQRLConfig()
        .environment(experiment["env"], env_config=dict(spec.get("env_config") or {}))
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
        .reporting(min_sample_timesteps_per_iteration=500, metrics_num_episodes_for_smoothing=20)
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


def pretrain_config(experiment: dict[str, Any], seeds: list[int]):
    """Stage 1's Tune search space: the pretraining config with a grid over ``seeds`` (one trial each)."""
    from ray import tune

    return build_config(experiment, "pretrain").debugging(seed=tune.grid_search(list(seeds)))


def finetune_config(experiment: dict[str, Any], seeds: list[int], checkpoints: dict[int, str]):
    """Stage 2's Tune search space: grid eps_safe x gamma_safe x ``seeds``, each from its seed's checkpoint.

    ``checkpoints`` maps every seed to its pretraining (or critic-fitted) checkpoint; the config's
    ``pretrained_checkpoint`` is ``tune.sample_from(SeedCheckpoint(checkpoints))``, which Tune resolves
    after the grid, from the trial's own ``seed``.
    """
    from ray import tune

    missing = sorted(set(seeds) - set(checkpoints))
    if missing:
        raise ValueError(f"no pretraining checkpoint for seeds {missing}")
    grid = experiment["finetune"].get("grid") or {}
    config = build_config(experiment, "finetune")
    for key in GRID_KEYS:
        if key in grid:
            setattr(config, key, tune.grid_search(list(grid[key])))
    config.debugging(seed=tune.grid_search(list(seeds)))
    config.pretrained_checkpoint = tune.sample_from(SeedCheckpoint(checkpoints))
    return config


def _run_config(name: str, run_dir: str, stop: dict, max_failures: int, verbose: bool = False):
    from ray import tune

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
    return tune.RunConfig(
        name=name,
        storage_path=run_dir,
        stop=stop,
        checkpoint_config=tune.CheckpointConfig(checkpoint_frequency=5, checkpoint_at_end=True, num_to_keep=2),
        failure_config=tune.FailureConfig(max_failures=max_failures),
        **output,
    )


class SeedCheckpoint:
    """``tune.sample_from`` callable: a fine-tuning trial's pretrained checkpoint, chosen by its ``seed``.

    ``checkpoints`` maps each seed to the checkpoint path its pretraining trial (or critic fit) left.
    Tune calls it with the trial's resolved config, so grid_search over the seed picks the matching path.
    """

    def __init__(self, checkpoints: dict[int, str]):
        self.checkpoints = {int(seed): str(path) for seed, path in checkpoints.items()}

    def __call__(self, config: dict[str, Any]) -> str:
        seed = config.get("seed")
        if seed not in self.checkpoints:
            # ValueError, not KeyError: Tune retries a sample_from that raises KeyError with another argument.
            raise ValueError(
                f"no pretraining checkpoint for seed {seed!r}; pretrained seeds: {sorted(self.checkpoints)}"
            )
        return self.checkpoints[seed]

    def __repr__(self) -> str:
        return f"SeedCheckpoint({self.checkpoints!r})"


def pretrain_checkpoints(results, seeds: list[int]) -> dict[int, str]:
    """Seed -> final checkpoint path of each pretraining trial in ``results``; checks they ran ``seeds``."""
    checkpoints = {}
    for result in results:
        if result.checkpoint is None:
            raise RuntimeError(f"pretraining trial {result.path} left no checkpoint")
        checkpoints[int(result.config["seed"])] = result.checkpoint.path
    if sorted(checkpoints) != sorted(seeds):
        raise RuntimeError(
            f"the pretraining stage holds seeds {sorted(checkpoints)} but this run asks for {sorted(seeds)}: "
            "--resume a run with the seeds it started with, or start a new run (--name)."
        )
    return checkpoints


def critic_fit_dir(run_dir: str, seed: int) -> str:
    """Where the critic fit of ``seed``'s pretraining checkpoint is saved: ``RUN/pretrain_critic_fit/seed_S``."""
    return os.path.join(run_dir, "pretrain_critic_fit", f"seed_{int(seed)}")


def trial_dirname(trial) -> str:
    """Trial directory name: Tune's default (trainable, id, index, grid values) without the checkpoint path.

    The default spells every resolved search value, ``pretrained_checkpoint`` included, which would fill
    the name with a path (and truncate the seed off it).
    """
    index = str(trial.experiment_tag).split("_", 1)[0]
    params = {k: v for k, v in sorted(trial.evaluated_params.items()) if k != "pretrained_checkpoint"}
    tag = ",".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())
    return re.sub(r"[^a-zA-Z0-9_.,=-]+", "_", f"{trial}_{index}_{tag}".rstrip("_"))


def _fit(stage_name: str, run_dir: str, trainable, param_space, run_config, resume: bool):
    from ray import tune

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
    return results


def run_pipeline(
    experiment: dict[str, Any],
    *,
    storage_path: str,
    name: str,
    resume: bool = False,
    max_failures: int = 3,
    verbose: bool = False,
) -> pd.DataFrame:
    """Run pretraining (one trial per seed) then the fine-tuning grid x seeds; returns (and writes) the table.

    Each fine-tuning trial starts from the pretraining checkpoint of its own seed (the critic-fitted one
    when the experiment has ``pretrain.critic_fit``). The table is ``results_table``'s.
    """
    import ray

    from sqrl_rllib.algorithms.sqrl import SQRL
    from sqrl_rllib.algorithms.sqrl.sqrl import fit_checkpoint_safety_critic
    from sqrl_rllib.envs.rllib import register_rllib_envs
    from sqrl_rllib.experiments import experiment_seeds

    if not ray.is_initialized():
        # Connects to RAY_ADDRESS / the job's cluster when there is one, else starts a local Ray.
        ray.init(log_to_driver=verbose)
    register_rllib_envs()
    experiment = fit_to_cluster(experiment, ray.cluster_resources())
    run_dir = storage_path.rstrip("/") + "/" + name

    def stage(name: str, config):
        run_config = _run_config(name, run_dir, experiment[name]["stop"], max_failures, verbose)
        return _fit(name, run_dir, SQRL, config, run_config, resume)

    seeds = experiment_seeds(experiment)
    pre_results = stage("pretrain", pretrain_config(experiment, seeds))
    checkpoints = pretrain_checkpoints(pre_results, seeds)
    fit = experiment["pretrain"].get("critic_fit")
    if fit:
        for seed in seeds:  # one after the other in the driver; each is reused on --resume
            print(f"[sqrl] seed {seed}: fitting Q_safe on its pretraining data", flush=True)
            checkpoints[seed] = fit_checkpoint_safety_critic(
                build_config(experiment, "pretrain").debugging(seed=seed),
                checkpoints[seed],
                critic_fit_dir(run_dir, seed),
                int(fit["num_steps"]),
                float(fit.get("failure_fraction", 0.0)),
            )
    for seed in seeds:
        print(f"[sqrl] pretraining done; seed {seed} fine-tunes from {checkpoints[seed]}", flush=True)

    ft_results = stage("finetune", finetune_config(experiment, seeds, checkpoints))

    results = [("pretrain", r) for r in pre_results] + [("finetune", r) for r in ft_results]
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
    # None sorts first; numbers by value.
    return tuple((row[c] is not None, row[c] if row[c] is not None else 0) for c in GROUP_COLUMNS[1:])


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


def _row(stage: str, result) -> dict[str, Any]:
    cfg, m = result.config, result.metrics or {}
    failures = int(_get(m, FAILURES_KEY, 0))
    episodes = int(_get(m, EPISODES_KEY, 0))
    return {
        "stage": stage,
        "eps_safe": cfg.get("eps_safe"),
        "gamma_safe": cfg.get("gamma_safe"),
        "seed": cfg.get("seed"),
        "kind": "trial",
        "env_steps": int(_get(m, STEPS_KEY, 0)),
        "episodes": episodes,
        "failures": failures,
        "failure_rate": round(failures / episodes, 4) if episodes else float("nan"),
        "final_return": round(float(_get(m, RETURN_KEY, float("nan"))), 3),
        "trial_dir": result.path,
    }


def _get(metrics: dict, dotted: str, default):
    node: Any = metrics
    for part in dotted.split("/"):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def write_outputs(table: pd.DataFrame, results: list[tuple[str, Any]], run_dir: str) -> dict[str, str]:
    """Write results.csv, results.parquet and the two PNG plots into ``run_dir`` (local runs)."""
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
        (RETURN_KEY, "episode return (mean of last 20)", "return.png"),
        (FAILURES_KEY, "cumulative failures", "cumulative_failures.png"),
    ):
        fig, ax = plt.subplots(figsize=(7, 4))
        for stage, result in results:
            df = result.metrics_dataframe
            if df is None or key not in df or STEPS_KEY not in df:
                continue
            cfg = result.config
            label = f"{stage} eps={cfg.get('eps_safe')} gamma={cfg.get('gamma_safe')} seed={cfg.get('seed')}"
            ax.plot(df[STEPS_KEY], df[key], label=label)
        ax.set_xlabel("env steps")
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=7)
        fig.tight_layout()
        paths[fname] = str(out / fname)
        fig.savefig(paths[fname], dpi=100)
        plt.close(fig)
    print(f"[sqrl] results written to {out}", flush=True)
    return paths
