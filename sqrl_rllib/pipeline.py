"""The two Tune stages (pretrain -> fine-tuning grid) and the results they produce."""

from __future__ import annotations

import os
import pathlib
from typing import Any

import pandas as pd

PROGRESS_EVERY_S = 30.0
STEPS_KEY = "env_runners/num_env_steps_sampled_lifetime"
RETURN_KEY = "env_runners/episode_return_mean"
FAILURES_KEY = "sqrl/cumulative_failures"
EPISODES_KEY = "sqrl/cumulative_episodes"


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


def _run_config(name: str, run_dir: str, stop: dict, max_failures: int):
    from ray import tune

    return tune.RunConfig(
        name=name,
        storage_path=run_dir,
        stop=stop,
        checkpoint_config=tune.CheckpointConfig(checkpoint_frequency=5, checkpoint_at_end=True, num_to_keep=2),
        failure_config=tune.FailureConfig(max_failures=max_failures),
        progress_reporter=tune.CLIReporter(
            metric_columns={STEPS_KEY: "steps", RETURN_KEY: "return", FAILURES_KEY: "failures"},
            parameter_columns={"eps_safe": "eps_safe", "gamma_safe": "gamma_safe", "seed": "seed"},
            max_report_frequency=int(PROGRESS_EVERY_S),
        ),
        verbose=1,
    )


def _fit(stage_name: str, run_dir: str, trainable, param_space, run_config, resume: bool):
    from ray import tune

    stage_path = os.path.join(run_dir, stage_name)
    if resume and tune.Tuner.can_restore(stage_path):
        print(f"[sqrl] resuming stage {stage_name!r} from {stage_path}", flush=True)
        tuner = tune.Tuner.restore(stage_path, trainable=trainable, resume_errored=True, param_space=param_space)
    else:
        print(f"[sqrl] starting stage {stage_name!r} in {stage_path}", flush=True)
        tuner = tune.Tuner(trainable, param_space=param_space, run_config=run_config)
    results = tuner.fit()
    errors = [r.error for r in results if r.error is not None]
    if errors:
        raise RuntimeError(f"stage {stage_name!r}: {len(errors)} trial(s) failed; first error: {errors[0]}")
    return results


def run_pipeline(
    experiment: dict[str, Any], *, storage_path: str, name: str, resume: bool = False, max_failures: int = 3
) -> pd.DataFrame:
    """Run pretraining then the fine-tuning grid; returns (and writes) the results table."""
    import ray
    from ray import tune

    from sqrl_rllib.algorithms.sqrl import SQRL
    from sqrl_rllib.algorithms.sqrl.sqrl import fit_checkpoint_safety_critic
    from sqrl_rllib.envs.rllib import register_rllib_envs

    if not ray.is_initialized():
        # Connects to RAY_ADDRESS / the job's cluster when there is one, else starts a local Ray.
        ray.init(log_to_driver=False)
    register_rllib_envs()
    run_dir = storage_path.rstrip("/") + "/" + name

    def stage(name: str, config):
        run_config = _run_config(name, run_dir, experiment[name]["stop"], max_failures)
        return _fit(name, run_dir, SQRL, config, run_config, resume)

    pre_results = stage("pretrain", build_config(experiment, "pretrain").debugging(seed=0))
    pre_result = pre_results[0]
    checkpoint = pre_result.checkpoint.path
    fit = experiment["pretrain"].get("critic_fit")
    if fit:
        checkpoint = fit_checkpoint_safety_critic(
            build_config(experiment, "pretrain").debugging(seed=0),
            checkpoint,
            os.path.join(run_dir, "pretrain_critic_fit"),
            int(fit["num_steps"]),
            float(fit.get("failure_fraction", 0.0)),
        )
    print(f"[sqrl] pretraining done; fine-tuning starts from {checkpoint}", flush=True)

    grid = experiment["finetune"].get("grid") or {}
    ft_config = build_config(experiment, "finetune")
    ft_config.sqrl(pretrained_checkpoint=checkpoint)
    for key in ("eps_safe", "gamma_safe"):
        if key in grid:
            setattr(ft_config, key, tune.grid_search(list(grid[key])))
    ft_config.debugging(seed=tune.grid_search(list(range(int(experiment.get("num_seeds", 1))))))
    ft_results = stage("finetune", ft_config)

    rows = [_row("pretrain", pre_result)] + [_row("finetune", r) for r in ft_results]
    table = pd.DataFrame(rows)
    write_outputs(table, [("pretrain", pre_result)] + [("finetune", r) for r in ft_results], run_dir)
    return table


def _row(stage: str, result) -> dict[str, Any]:
    cfg, m = result.config, result.metrics or {}
    failures = int(_get(m, FAILURES_KEY, 0))
    episodes = int(_get(m, EPISODES_KEY, 0))
    return {
        "stage": stage,
        "eps_safe": cfg.get("eps_safe"),
        "gamma_safe": cfg.get("gamma_safe"),
        "seed": cfg.get("seed"),
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
    table.to_csv(paths["csv"], index=False)
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
