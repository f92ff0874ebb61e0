"""The paper's method comparison through the product: every method pretrained and fine-tuned by the Tune
pipeline, one seed per process, merged from committed per-seed CSVs (DrunkSpider by default; any shipped
experiment with ``--experiment``, e.g. Minitaur at a reduced budget via ``--set``).

Run one seed (resumable: a killed run continues from its trials' checkpoints when started again):

    OMP_NUM_THREADS=1 nohup python benchmarks/methods.py run --seed 0 &

It runs ``python -m sqrl_rllib.tune drunk_spider --methods sqrl,sac,esac,wcpg,rs,cpo --seeds S`` with
``drunk_spider.yaml``'s budgets (5e4 pretraining, 5e4 fine-tuning steps) into ``--storage-path`` (default
``benchmarks/runs/``, not committed), one env runner per trial folded into the trial (``num_env_runners=0``)
so that two trials share the 2-core box, and when the pipeline has finished copies its ``results.csv`` to
``benchmarks/results/methods/seed_S.csv`` (``EXPERIMENT_seed_S.csv`` for another experiment). Merge the
committed seeds into one table (mean and std over seeds per method and stage):

    python benchmarks/methods.py merge [--experiment minitaur_velocity]

Each finished seed also leaves its learning curves (env steps, return, cumulative failures and episodes per
iteration of every trial) in ``results/methods/curves_seed_S.csv``; ``plot`` draws the paper's figure 4 and
7 (fine-tuning return and cumulative failures) and 8-9 (the same in pretraining) from the committed curves,
one line per method (the mean over seeds) with a band from the lowest to the highest seed:

    python benchmarks/methods.py plot [--experiment minitaur_velocity] [--out docs/img/methods_drunk_spider.png]

``curves RUN_DIR --seed S`` writes the curves CSV of a run made before this existed (or by hand).
``windows --experiment X --seed S`` prints one seed's episodes, failures and return per 5k env steps
(``--run RUN_DIR``: a finished run's own curves, e.g. a probe that is not committed).
``run --label L`` names the run and its CSVs ``L`` instead of the experiment: a variant of it, e.g.
``--experiment minitaur_velocity --label minitaur_velocity_replay --set finetune.sqrl.restore_replay=true``
(with ``--pretrained-run`` the seed's pretraining is shared); the other subcommands then take ``--experiment L``.
``handover --experiment X [--pretrain-experiment Y]`` prints, per committed seed and method, the falls over
pretraining's last 10k env steps and over fine-tuning's first 10k (Minitaur's steps before the first update).
``final-return [--experiment X]`` recomputes the committed CSVs' ``final_return`` (the mean of the last 20
episodes, ``pipeline.final_return``) from their curves: CSVs written before session 25 hold RLlib's last
reported return, the mean of the last iteration's episodes only.

A reduced budget, stated in the CSV's env_steps column, e.g. SQRL vs SAC on Minitaur:

    python benchmarks/methods.py run --experiment minitaur_velocity --methods sqrl,sac --seed 0 \
        --set pretrain.stop.num_env_steps_sampled_lifetime=100000 \
        --set finetune.stop.num_env_steps_sampled_lifetime=50000

Minitaur friction shares velocity's pretraining task (0.3 m/s, friction 1.0), as in the paper: fine-tune
from that run's pretraining with ``--pretrained-run benchmarks/runs/methods_minitaur_velocity_seed0``.
"""

from __future__ import annotations

import argparse
import pathlib
import shutil
import subprocess
import sys

import pandas as pd

from sqrl_rllib import pipeline

ROOT = pathlib.Path(__file__).resolve().parent
RESULTS = ROOT / "results" / "methods"
METHODS = "sqrl,sac,esac,wcpg,rs,cpo"
# Columns averaged over seeds in the merged table (those of the pipeline's results.csv that are numbers).
SUMMARY = ["failures", "episodes", "failure_rate", "final_return", "env_steps"]
# A trial's metric (pipeline.trial_history) -> the curves CSV's column.
CURVE_COLUMNS = {
    pipeline.STEPS_KEY: "env_steps",
    pipeline.RETURN_KEY: "episode_return",
    pipeline.FAILURES_KEY: "cumulative_failures",
    pipeline.EPISODES_KEY: "cumulative_episodes",
}
# (column, y label, the paper's figure for pretraining and for fine-tuning) of each row of panels ``plot`` draws.
PANELS = [
    ("episode_return", "episode return (mean of the iteration's episodes)", ("figure 8", "figure 4")),
    ("cumulative_failures", "cumulative failures", ("figure 9", "figure 7")),
]


def stem(experiment: str) -> str:
    """The per-seed CSVs' prefix: none for DrunkSpider (the paper's comparison), else the experiment's name."""
    return "" if experiment == "drunk_spider" else f"{experiment}_"


def run(
    seed: int,
    storage: pathlib.Path,
    methods: str,
    extra: list[str],
    experiment: str = "drunk_spider",
    label: str | None = None,
) -> int:
    """Run (or resume) one seed's pipeline; copy its results.csv to RESULTS; returns the exit status.

    ``label`` names the run and its CSVs instead of the experiment (a variant of it, e.g. with another
    ``--set``): ``merge`` / ``plot`` / ``windows`` then take ``--experiment LABEL``."""
    prefix = stem(label or experiment)
    name = f"methods_{prefix}seed{seed}"
    cmd = [sys.executable, "-m", "sqrl_rllib.tune", experiment, "--methods", methods, "--seeds", str(seed)]
    cmd += ["--storage-path", str(storage), "--name", name, "--set", "resources.num_env_runners=0", *extra]
    if (storage / name).exists():
        cmd.append("--resume")
    print(" ".join(cmd), flush=True)
    status = wait_through_interrupts(subprocess.Popen(cmd))
    table = storage / name / "results.csv"
    if status == 0 and table.exists():
        RESULTS.mkdir(parents=True, exist_ok=True)
        target = RESULTS / f"{prefix}seed_{seed}.csv"
        shutil.copy(table, target)
        print(f"wrote {target}", flush=True)
        write_curves(storage / name, seed, label or experiment)
    return status


def wait_through_interrupts(child: subprocess.Popen) -> int:
    """The pipeline's exit status. A Ctrl-C (SIGINT to the process group) reaches the pipeline too, which
    stops its trials, keeps their checkpoints and prints how to resume; wait for it rather than kill it, as
    ``subprocess.call`` would (SIGKILL: no checkpoint kept, Ray's agents orphaned)."""
    while True:
        try:
            return child.wait()
        except KeyboardInterrupt:
            print("[methods] interrupted: waiting for the pipeline to stop; run the same command to resume", flush=True)


def curves(run_dir: pathlib.Path) -> pd.DataFrame:
    """Every trial's learning curve in a finished pipeline run: its results.csv rows joined to the
    trials' result.json (``pipeline.trial_history``: one row per training iteration, CURVE_COLUMNS)."""
    if not (run_dir / "results.csv").exists():
        raise SystemExit(f"no {run_dir / 'results.csv'}: the run has not finished (or is not a pipeline run)")
    table = pd.read_csv(run_dir / "results.csv")
    frames = []
    for row in table[table["kind"] == "trial"].itertuples(index=False):
        history = pipeline.trial_history(row.trial_dir)
        if history is None:
            raise SystemExit(f"{row.trial_dir}/result.json is missing: the run's trial directories must still be there")
        frame = history[list(CURVE_COLUMNS)].rename(columns=CURVE_COLUMNS).dropna(subset=["env_steps"])
        for position, key in enumerate(("stage", "method", "eps_safe", "gamma_safe", "seed")):
            frame.insert(position, key, int(row.seed) if key == "seed" else getattr(row, key))
        frames.append(frame)
    if not frames:
        raise SystemExit(f"{run_dir / 'results.csv'} lists no trials")
    return pd.concat(frames, ignore_index=True)


def write_curves(run_dir: pathlib.Path, seed: int, experiment: str = "drunk_spider") -> pathlib.Path:
    """Write one seed's curves to RESULTS/{experiment_}curves_seed_S.csv (committed beside its results)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    target = RESULTS / f"{stem(experiment)}curves_seed_{seed}.csv"
    curves(run_dir).to_csv(target, index=False, float_format="%.6g")
    print(f"wrote {target}", flush=True)
    return target


def final_returns(experiment: str = "drunk_spider") -> list[pathlib.Path]:
    """Recompute ``final_return`` (``pipeline.final_return``: the last 20 episodes' mean) of the committed
    per-seed CSVs from their committed curves and rewrite them; returns the files rewritten.

    CSVs written before session 25, or by a run started before it, hold RLlib's last reported return, the
    mean of the last iteration's episodes only (five on CubeRotate); the curves hold what recomputes it.
    """
    written = []
    for table_path in sorted(RESULTS.glob(f"{stem(experiment)}seed_*.csv")):
        curves_path = table_path.with_name(table_path.name.replace("seed_", "curves_seed_"))
        if not curves_path.exists():
            print(f"skipped {table_path.name}: no {curves_path.name}")
            continue
        table, rows = pd.read_csv(table_path), pd.read_csv(curves_path)
        trials = table[table["kind"] == "trial"] if "kind" in table.columns else table
        for index, row in trials.iterrows():
            mine = pd.Series(True, index=rows.index)
            for key in ("stage", "method", "eps_safe", "gamma_safe", "seed"):  # a trial's key; NaN matches NaN
                mine &= (rows[key] == row[key]) | (rows[key].isna() & pd.isna(row[key]))
            history = rows[mine].rename(columns={v: k for k, v in CURVE_COLUMNS.items()})
            table.loc[index, "final_return"] = round(pipeline.final_return(history, row["final_return"]), 3)
        table.to_csv(table_path, index=False, float_format="%.10g")
        written.append(table_path)
        print(f"rewrote {table_path}")
    return written


def windows(
    experiment: str, seed: int, stage: str = "finetune", every: int = 5000, run_dir: pathlib.Path | None = None
) -> pd.DataFrame:
    """Per method and window of ``every`` env steps of one committed seed's curves (or, with ``run_dir``, of
    a finished run's own, uncommitted: a probe): episodes ended, failures, and their episode-weighted mean
    return (where in a run the failures fall, e.g. Minitaur's collapse)."""
    if run_dir is not None:
        rows = curves(run_dir)
    else:
        path = RESULTS / f"{stem(experiment)}curves_seed_{seed}.csv"
        if not path.exists():
            raise SystemExit(f"no {path}: run `benchmarks/methods.py run --seed {seed}` first")
        rows = pd.read_csv(path)
    return window_table(rows, stage, every)


def window_table(rows: pd.DataFrame, stage: str = "finetune", every: int = 5000) -> pd.DataFrame:
    """``windows`` of curve rows (CURVE_COLUMNS' names, one trial per method in ``stage``)."""
    frames = []
    for method, trial in rows[rows["stage"] == stage].groupby("method"):
        trial = trial.sort_values("env_steps")
        ended = trial["cumulative_episodes"].diff().fillna(trial["cumulative_episodes"])
        failed = trial["cumulative_failures"].diff().fillna(trial["cumulative_failures"])
        # A report at exactly k * every closes window k - 1.
        start = ((trial["env_steps"] - 1) // every * every).astype(int)
        frame = pd.DataFrame({"start": start, "episodes": ended, "failures": failed})
        frame["weighted"] = ended * trial["episode_return"].fillna(0.0)
        table = frame.groupby("start").sum()
        table["return"] = (table.pop("weighted") / table["episodes"]).round(1)
        frames.append(table.reset_index().assign(method=method))
    return pd.concat(frames, ignore_index=True)[["method", "start", "episodes", "failures", "return"]]


def handover(experiment: str, span: int = 10_000, pretrain_experiment: str | None = None) -> pd.DataFrame:
    """Per committed seed and method: falls / episodes over pretraining's last ``span`` env steps and over
    fine-tuning's first ``span`` (before fine-tuning's first update when ``span`` is
    ``num_steps_sampled_before_learning_starts``). On a task that changes only the reward (Minitaur velocity)
    the same weights then act in the same dynamics, so the two differ only by where the last pretraining
    updates left the policy (and, for SQRL, by the mask's pick: safe-but-risky vs uniform among safe).
    ``pretrain_experiment``: whose curves hold the pretraining (friction fine-tunes velocity's)."""
    rows = []
    for path in sorted(RESULTS.glob(f"{stem(experiment)}curves_seed_*.csv")):
        seed = int(path.stem.rsplit("_", 1)[1])
        fine = pd.read_csv(path)
        pre_path = RESULTS / f"{stem(pretrain_experiment or experiment)}curves_seed_{seed}.csv"
        pre = pd.read_csv(pre_path) if pre_path.exists() else fine.iloc[0:0]
        for method in sorted(set(fine.loc[fine["stage"] == "finetune", "method"])):
            row = {"seed": seed, "method": method}
            trial = pre[(pre["stage"] == "pretrain") & (pre["method"] == method)].sort_values("env_steps")
            if not trial.empty:
                end = trial.iloc[-1]
                before = trial[trial["env_steps"] <= end["env_steps"] - span]
                start = before.iloc[-1] if not before.empty else end * 0
                row["pretrain_last_failures"] = int(end["cumulative_failures"] - start["cumulative_failures"])
                row["pretrain_last_episodes"] = int(end["cumulative_episodes"] - start["cumulative_episodes"])
            trial = fine[(fine["stage"] == "finetune") & (fine["method"] == method)].sort_values("env_steps")
            # Up to the first report at or past ``span``: that iteration sampled before its update ran.
            first = trial[trial["env_steps"] >= span]
            if not first.empty:
                row["finetune_first_failures"] = int(first["cumulative_failures"].iloc[0])
                row["finetune_first_episodes"] = int(first["cumulative_episodes"].iloc[0])
            rows.append(row)
    if not rows:
        raise SystemExit(f"no committed curves for {experiment} under {RESULTS}")
    return pd.DataFrame(rows)


def curve_bands(rows: pd.DataFrame, stage: str, column: str) -> dict[str, tuple]:
    """Per method x grid point of ``stage``: ``pipeline.band`` of ``column`` over the seeds."""
    rows = rows[rows["stage"] == stage]
    groups: dict[str, list] = {}
    for keys, trial in rows.groupby(["method", "eps_safe", "gamma_safe", "seed"], dropna=False):
        curve = trial[["env_steps", column]].dropna().sort_values("env_steps")
        if len(curve) < 2:
            continue
        label = pipeline.curve_label(*keys[:3])
        groups.setdefault(label, []).append((curve["env_steps"].to_numpy(float), curve[column].to_numpy(float)))
    return {label: pipeline.band(trials) for label, trials in sorted(groups.items())}


def plot(experiment: str = "drunk_spider", out: pathlib.Path | None = None) -> pathlib.Path:
    """Draw the committed seeds' curves: a row per PANELS entry, pretraining left and fine-tuning right."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = sorted(RESULTS.glob(f"{stem(experiment)}curves_seed_*.csv"))
    if not files:
        raise SystemExit(f"no curves in {RESULTS}: run `benchmarks/methods.py run --seed S` first")
    rows = pd.concat([pd.read_csv(f) for f in files], ignore_index=True)
    seeds = sorted(rows["seed"].unique().tolist())
    fig, axes = plt.subplots(len(PANELS), 2, figsize=(12, 4 * len(PANELS)), squeeze=False)
    for ax_row, (column, ylabel, figures) in zip(axes, PANELS, strict=True):
        for ax, stage, figure in zip(ax_row, ("pretrain", "finetune"), figures, strict=True):
            title = f"{experiment} {stage} (paper {figure}), seeds {','.join(map(str, seeds))}"
            pipeline.draw_bands(ax, curve_bands(rows, stage, column), title, ylabel)
            if column == "cumulative_failures":
                # Linear up to 10, logarithmic above: a handful of failures stays readable beside thousands.
                ax.set_yscale("symlog", linthresh=10)
    fig.tight_layout()
    out = out or ROOT.parent / "docs" / "img" / f"methods_{experiment}.png"
    fig.savefig(out, dpi=90)
    plt.close(fig)
    print(f"wrote {out}", flush=True)
    return out


def seed_rows(experiment: str = "drunk_spider") -> pd.DataFrame:
    """The committed per-seed CSVs' rows, one table; exits saying what to run when there are none."""
    files = sorted(RESULTS.glob(f"{stem(experiment)}seed_*.csv"))
    if not files:
        raise SystemExit(f"no per-seed results in {RESULTS}: run `benchmarks/methods.py run --seed S` first")
    return pd.concat([pd.read_csv(f) for f in files], ignore_index=True)


def merge(experiment: str = "drunk_spider") -> pd.DataFrame:
    """Mean and std over the committed seeds, per stage and method (and grid point, where there is one)."""
    rows = seed_rows(experiment)
    keys = [c for c in ("stage", "method", "eps_safe", "gamma_safe") if c in rows.columns]
    columns = [c for c in SUMMARY if c in rows.columns]
    table = rows.groupby(keys, dropna=False)[columns].agg(["mean", "std"])
    table[("seeds", "")] = rows.groupby(keys, dropna=False).size()  # a full (metric, stat) column key
    return table


# The docs table's method order and labels (the paper's order: SQRL, then the baselines).
LABELS = {
    "sqrl": "SQRL",
    "sac": "SAC",
    "esac": "ESAC",
    "rs": "RS",
    "wcpg": "WCPG",
    "cpo": "CPO",
}


def _seed_counts(rows: pd.DataFrame, seeds: list[int]) -> str:
    """ "F/E; F/E; ..." (failures / episodes) per seed of one stage's rows; "-" for a seed without a row."""
    if rows.empty:
        return "-"
    by_seed = rows.set_index("seed")
    return "; ".join(
        f"{int(by_seed.loc[s, 'failures'])}/{int(by_seed.loc[s, 'episodes'])}" if s in by_seed.index else "-"
        for s in seeds
    )


def _mean_std(values: pd.Series, spec: str, unit: str = "") -> str:
    """ "mean +- std" over seeds; the value alone for one seed, whose std is undefined (NaN)."""
    if len(values) < 2:
        return f"{values.mean():{spec}}{unit}"
    return f"{values.mean():{spec}}{unit} +- {values.std():{spec}}{unit}"


def markdown(experiment: str = "drunk_spider") -> str:
    """The committed seeds as docs/methods.md's Markdown table: per method, failures / episodes of each seed
    in pretraining and fine-tuning, and the fine-tuning failure rate and final return as mean +- std."""
    rows = seed_rows(experiment)
    rows = rows[rows["kind"] == "trial"] if "kind" in rows.columns else rows
    seeds = sorted(int(seed) for seed in rows["seed"].unique())
    names = "; ".join(f"seed {seed}" for seed in seeds)
    lines = [
        f"| method | pretraining failures / episodes ({names}) | fine-tuning failures / episodes ({names}) "
        "| fine-tuning failure rate, mean +- std | fine-tuning final return, mean +- std |",
        "|---|---|---|---|---|",
    ]
    order = [m for m in LABELS if m in set(rows["method"])] + sorted(set(rows["method"]) - set(LABELS))
    for method in order:
        own = rows[rows["method"] == method]
        counts = {stage: _seed_counts(own[own["stage"] == stage], seeds) for stage in ("pretrain", "finetune")}
        if method == "rs" and counts["pretrain"] == "-":
            counts["pretrain"] = "(SQRL's)"
        fine = own[own["stage"] == "finetune"]
        rate, ret = fine["failure_rate"], fine["final_return"]
        label = LABELS.get(method, method)
        if fine["eps_safe"].notna().any():
            label += f" (eps_safe {fine['eps_safe'].iloc[0]:g}, gamma_safe {fine['gamma_safe'].iloc[0]:g})"
        lines.append(
            f"| {label} | {counts['pretrain']} | {counts['finetune']} "
            f"| {_mean_std(100 * rate, '.2g', '%')} | {_mean_std(ret, '.1f')} |"
        )
    return "\n".join(lines)


def main() -> None:
    """``run`` one seed, or ``merge``, ``plot`` or refresh (``final-return``) the committed ones."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    one = sub.add_parser("run", help="run (or resume) one seed through the pipeline")
    one.add_argument("--seed", type=int, required=True, help="the seed (pretraining and fine-tuning)")
    one.add_argument("--experiment", default="drunk_spider", help="a shipped experiment name or a YAML path")
    one.add_argument("--methods", default=METHODS, help=f"comma-separated methods (default {METHODS})")
    one.add_argument("--storage-path", default=str(ROOT / "runs"), help="where the pipeline keeps its runs")
    one.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="passed to the pipeline")
    one.add_argument(
        "--label",
        help="name the run and its CSVs LABEL instead of the experiment (a variant, e.g. minitaur_velocity_replay "
        "with --set finetune.sqrl.restore_replay=true); later subcommands take --experiment LABEL",
    )
    one.add_argument(
        "--pretrained-run",
        metavar="RUN_DIR",
        help="passed to the pipeline: fine-tune from that run's pretraining (e.g. minitaur_friction from the "
        "same seed's minitaur_velocity run, benchmarks/runs/methods_minitaur_velocity_seedS)",
    )
    both = sub.add_parser("merge", help="print the mean and std over the committed seeds")
    both.add_argument("--experiment", default="drunk_spider", help="whose per-seed CSVs to merge")
    both.add_argument(
        "--markdown", action="store_true", help="print docs/methods.md's table (per-seed counts, mean +- std)"
    )
    draw = sub.add_parser("plot", help="draw the committed seeds' learning curves (paper figures 4, 7, 8, 9)")
    draw.add_argument("--experiment", default="drunk_spider", help="whose curves to draw")
    draw.add_argument("--out", type=pathlib.Path, help="PNG path (default docs/img/methods_EXPERIMENT.png)")
    extract = sub.add_parser("curves", help="write a finished run's curves CSV into results/methods/")
    extract.add_argument("run_dir", type=pathlib.Path, help="the pipeline's run directory (has results.csv)")
    extract.add_argument("--seed", type=int, required=True, help="the run's seed (names the CSV)")
    extract.add_argument("--experiment", default="drunk_spider", help="the run's experiment (names the CSV)")
    split = sub.add_parser("windows", help="one committed seed's episodes, failures and return per window of steps")
    split.add_argument("--experiment", default="drunk_spider", help="whose curves to read")
    split.add_argument("--seed", type=int, help="the committed seed (required unless --run)")
    split.add_argument(
        "--run", type=pathlib.Path, help="read a finished run directory's curves instead (e.g. a probe's)"
    )
    split.add_argument("--stage", default="finetune", help="pretrain or finetune (default finetune)")
    split.add_argument("--every", type=int, default=5000, help="window length in env steps (default 5000)")
    hand = sub.add_parser(
        "handover", help="per seed: falls over pretraining's last N steps and fine-tuning's first N (before updates)"
    )
    hand.add_argument("--experiment", default="drunk_spider", help="whose committed fine-tuning curves to read")
    hand.add_argument(
        "--pretrain-experiment", help="whose curves hold the pretraining (default: --experiment; friction: velocity's)"
    )
    hand.add_argument("--span", type=int, default=10_000, help="N env steps (default 10000, Minitaur's warm-up)")
    refresh = sub.add_parser(
        "final-return", help="recompute the committed per-seed CSVs' final_return (last 20 episodes) from their curves"
    )
    refresh.add_argument("--experiment", default="drunk_spider", help="whose per-seed CSVs to rewrite")
    args = parser.parse_args()
    if args.command == "windows":
        if args.seed is None and args.run is None:
            parser.error("windows needs --seed (a committed seed) or --run (a run directory)")
        with pd.option_context("display.width", 200, "display.max_rows", 500):
            print(windows(args.experiment, args.seed, args.stage, args.every, args.run).to_string(index=False))
        return
    if args.command == "handover":
        print(handover(args.experiment, args.span, args.pretrain_experiment).to_string(index=False))
        return
    if args.command == "final-return":
        final_returns(args.experiment)
        return
    if args.command == "run":
        extra = [arg for pair in args.set for arg in ("--set", pair)]
        extra += ["--pretrained-run", args.pretrained_run] if args.pretrained_run else []
        raise SystemExit(
            run(args.seed, pathlib.Path(args.storage_path), args.methods, extra, args.experiment, args.label)
        )
    if args.command == "plot":
        plot(args.experiment, args.out)
        return
    if args.command == "curves":
        write_curves(args.run_dir, args.seed, args.experiment)
        return
    if args.markdown:
        print(markdown(args.experiment))
        return
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(merge(args.experiment))


if __name__ == "__main__":
    main()
