"""``python -m sqrl_rllib.tune EXPERIMENT``: SQRL pretraining, then a fine-tuning grid, on Ray Tune.

Stage 1 runs one pretraining trial per method x seed under ``tune.Tuner`` (methods that fine-tune from
another's pretraining, e.g. sac_from_sqrl, reuse it); stage 2 runs fine-tuning trials (method x grid over
eps_safe x gamma_safe x seed), each starting from the stage-1 checkpoint of its own method and seed.
Locally an embedded Ray is started; with ``RAY_ADDRESS`` set (or under ``ray job submit``) the
existing cluster is used. The run ends with a results table, written as CSV and Parquet, plots of
return and cumulative failures, and TensorBoard event files for every trial under the run directory.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shlex
import signal
import sys
from typing import Any

from sqrl_rllib.experiments import (
    ExperimentError,
    available_experiments,
    check_record_transitions,
    parse_seeds,
    prepare_experiment,
)
from sqrl_rllib.methods import DEFAULT_METHODS, METHODS, MethodError, parse_methods

DEFAULT_STORAGE = "~/sqrl_results"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line interface (see ``--help``)."""
    parser = argparse.ArgumentParser(
        prog="python -m sqrl_rllib.tune",
        description="Run SQRL pretraining then a fine-tuning grid on Ray Tune, ending with a results table.",
    )
    parser.add_argument(
        "experiment",
        help=f"experiment name ({', '.join(available_experiments())}) or a path to an experiment YAML",
    )
    parser.add_argument("--quick", action="store_true", help="shrink step counts so the run takes minutes")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a key of the experiment, e.g. --set finetune.grid.eps_safe=[0.05,0.2] (repeatable)",
    )
    parser.add_argument(
        "--storage-path",
        default=os.environ.get("SQRL_STORAGE_PATH", DEFAULT_STORAGE),
        help="where runs are stored: a local directory or a cloud URI visible to every node "
        f"(default: $SQRL_STORAGE_PATH or {DEFAULT_STORAGE})",
    )
    parser.add_argument(
        "--seeds",
        default=None,
        metavar="S1,S2,...",
        help="comma-separated distinct non-negative seeds, e.g. --seeds 3,7,11: one pretraining trial per seed "
        "and every fine-tuning grid point once per seed, from that seed's checkpoint (overrides the "
        "experiment's seeds / num_seeds and --quick's one seed)",
    )
    parser.add_argument(
        "--num-seeds",
        type=int,
        default=None,
        metavar="N",
        help="shorthand for --seeds 0,1,...,N-1 (give --seeds or --num-seeds, not both)",
    )
    parser.add_argument(
        "--methods",
        default=None,
        metavar="M1,M2,...",
        help=f"comma-separated methods to compare, e.g. --methods sqrl,sac (valid: {', '.join(METHODS)}; "
        f"default: the experiment's methods, else {','.join(DEFAULT_METHODS)})",
    )
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run of this experiment")
    parser.add_argument("--name", default=None, help="run directory name (default: the experiment's name)")
    parser.add_argument("--max-failures", type=int, default=3, help="retries of a crashed trial from its checkpoint")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="validate the experiment (envs built), print it, the trial plan and a measured wall-time estimate, "
        "and exit without starting Ray",
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="also show Tune's status tables, Ray's start-up messages, RLlib's notices and the trials' output "
        "(by default they go to RUN_DIR/sqrl_run.log only)",
    )
    parser.add_argument(
        "--record-transitions",
        action="store_true",
        help="at the end of pretraining, write each SQRL seed's pretraining replay (D_offline) to "
        "RUN_DIR/transitions/seed_S.parquet, the schema pretrain.offline_data reads (docs/offline_data.md)",
    )
    parser.add_argument(
        "--pretrained-run",
        default=None,
        metavar="RUN_DIR",
        help="fine-tune from the finished pretraining of another run (a directory, or a run name under the "
        "storage path) instead of pretraining, e.g. minitaur_friction from a minitaur_velocity run (the same "
        "pretraining task); it must hold every method x seed this run pretrains, on the same spaces",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (2 for bad input, before Ray is started)."""
    args = parse_args(argv)
    try:
        seeds = None if args.seeds is None else parse_seeds(args.seeds)
        methods = None if args.methods is None else parse_methods(args.methods)
        experiment = prepare_experiment(
            args.experiment, args.overrides, args.quick, args.num_seeds, seeds=seeds, methods=methods
        )
        if args.record_transitions:
            check_record_transitions(experiment)
        pretrained_run = None
        if args.pretrained_run is not None:
            from sqrl_rllib.pretrained_run import check_pretrained_run

            pretrained_run = check_pretrained_run(args.pretrained_run, _storage(args.storage_path), experiment)
    except (ExperimentError, MethodError) as err:
        return _usage_error(str(err))
    if args.dry_run:
        from sqrl_rllib.plan import describe_plan, measured_steps_per_s

        name = args.name or experiment["name"] + ("_quick" if args.quick else "")
        print(describe_experiment(experiment, str(pathlib.Path(_storage(args.storage_path)) / name), "(none)"))
        print(describe_plan(experiment, measured_steps_per_s(experiment), pretrained_run=pretrained_run))
        return 0
    from sqrl_rllib.pipeline import StageInterrupted, format_table, run_pipeline, start_ray
    from sqrl_rllib.progress import route_logs
    from sqrl_rllib.resources import ResourceFitError

    storage = _storage(args.storage_path)
    name = args.name or experiment["name"] + ("_quick" if args.quick else "")
    run_dir = pathlib.Path(storage if "://" not in storage else ".") / name
    log = route_logs(run_dir / "sqrl_run.log", verbose=args.verbose)
    print(describe_experiment(experiment, str(run_dir), str(log)), flush=True)
    try:
        # Ray's start installs its own SIGTERM handler (abort with a stack dump): ours go in after it.
        start_ray(args.verbose, dashboard=not args.quick)
        _interrupt_on_signals()
        table = run_pipeline(
            experiment,
            storage_path=storage,
            name=name,
            resume=args.resume,
            max_failures=args.max_failures,
            verbose=args.verbose,
            dashboard=not args.quick,
            record_transitions=args.record_transitions,
            pretrained_run=pretrained_run,
        )
    except ResourceFitError as err:  # raised before Tune starts: nothing ran
        return _usage_error(str(err))
    except (KeyboardInterrupt, StageInterrupted) as err:
        _interrupted(err, sys.argv[1:] if argv is None else argv)
    print(format_table(table))
    outputs = table.attrs.get("outputs", {})
    for kind, path in outputs.items():
        print(f"  {kind}: {path}")
    if "://" not in storage:
        print(f"  TensorBoard: tensorboard --logdir {run_dir}")
    return 0


def describe_experiment(experiment: dict[str, Any], run_dir: str, log: str) -> str:
    """The resolved experiment as a short block: env, seeds, both stages' budgets and keys, resources."""
    from sqrl_rllib.experiments import experiment_methods, experiment_seeds

    failure = f" (failure {experiment['failure']})" if experiment.get("failure") is not None else ""
    lines = [
        f"[sqrl] experiment {experiment['name']}: env {experiment['env']}{failure}, methods "
        f"{','.join(experiment_methods(experiment))}, seeds {experiment_seeds(experiment)}"
    ]
    for stage in ("pretrain", "finetune"):
        spec = experiment[stage]
        keys = {**(spec.get("env_config") or {}), **(spec.get("sqrl") or {})}
        extra = f" grid {spec['grid']}" if spec.get("grid") else ""
        extra += f" critic_fit {spec['critic_fit']}" if spec.get("critic_fit") else ""
        extra += f" offline_data {spec['offline_data']}" if spec.get("offline_data") else ""
        lines.append(f"  {stage}: stop {spec['stop']} {keys}{extra}")
    lines.append(f"  resources {experiment.get('resources') or {}}; training {experiment.get('training') or {}}")
    lines.append(f"  run directory {run_dir}; full log {log}")
    return "\n".join(lines)


def _storage(path: str) -> str:
    if "://" in path:
        return path
    return str(pathlib.Path(path).expanduser().resolve())


def _interrupt_on_signals() -> None:
    """Ctrl+C (SIGINT) and a plain ``kill`` (SIGTERM) both stop the run resumably (:func:`_interrupted`),
    also when it was started in the background, where the shell has set SIGINT to be ignored."""

    def stop(signum, frame):
        raise KeyboardInterrupt(signal.Signals(signum).name)

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, stop)


def _interrupted(err: BaseException, argv: list[str]) -> None:
    """Say how to resume, stop Ray's trials and exit 130 (the shell's status for Ctrl+C).

    ``os._exit``: a stage running several Tune runs in threads leaves them behind on Ctrl+C (they cannot
    be told to stop), and a normal exit would join them.
    """
    import ray

    again = " ".join(shlex.quote(a) for a in argv if a != "--resume")
    detail = str(err) or type(err).__name__
    print(f"[sqrl] interrupted ({detail}); continue with: python -m sqrl_rllib.tune {again} --resume", flush=True)
    if ray.is_initialized():
        ray.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(130)


def _usage_error(message: str) -> int:
    print(f"sqrl_rllib.tune: error: {message}", file=sys.stderr)
    return 2


def cli(argv: list[str] | None = None) -> Any:
    """Console-script entry point."""
    sys.exit(main(argv))


if __name__ == "__main__":
    cli()
