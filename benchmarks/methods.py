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

A reduced budget, stated in the CSV's env_steps column, e.g. SQRL vs SAC on Minitaur:

    python benchmarks/methods.py run --experiment minitaur_velocity --methods sqrl,sac --seed 0 \
        --set pretrain.stop.num_env_steps_sampled_lifetime=100000 \
        --set finetune.stop.num_env_steps_sampled_lifetime=50000
"""

from __future__ import annotations

import argparse
import pathlib
import shutil
import subprocess
import sys

import pandas as pd

ROOT = pathlib.Path(__file__).resolve().parent
RESULTS = ROOT / "results" / "methods"
METHODS = "sqrl,sac,esac,wcpg,rs,cpo"
# Columns averaged over seeds in the merged table (those of the pipeline's results.csv that are numbers).
SUMMARY = ["failures", "episodes", "failure_rate", "final_return", "env_steps"]


def stem(experiment: str) -> str:
    """The per-seed CSVs' prefix: none for DrunkSpider (the paper's comparison), else the experiment's name."""
    return "" if experiment == "drunk_spider" else f"{experiment}_"


def run(seed: int, storage: pathlib.Path, methods: str, extra: list[str], experiment: str = "drunk_spider") -> int:
    """Run (or resume) one seed's pipeline; copy its results.csv to RESULTS; returns the exit status."""
    name = f"methods_{stem(experiment)}seed{seed}"
    cmd = [sys.executable, "-m", "sqrl_rllib.tune", experiment, "--methods", methods, "--seeds", str(seed)]
    cmd += ["--storage-path", str(storage), "--name", name, "--set", "resources.num_env_runners=0", *extra]
    if (storage / name).exists():
        cmd.append("--resume")
    print(" ".join(cmd), flush=True)
    status = subprocess.call(cmd)
    table = storage / name / "results.csv"
    if status == 0 and table.exists():
        RESULTS.mkdir(parents=True, exist_ok=True)
        target = RESULTS / f"{stem(experiment)}seed_{seed}.csv"
        shutil.copy(table, target)
        print(f"wrote {target}", flush=True)
    return status


def merge(experiment: str = "drunk_spider") -> pd.DataFrame:
    """Mean and std over the committed seeds, per stage and method (and grid point, where there is one)."""
    files = sorted(RESULTS.glob(f"{stem(experiment)}seed_*.csv"))
    if not files:
        raise SystemExit(f"no per-seed results in {RESULTS}: run `benchmarks/methods.py run --seed S` first")
    rows = pd.concat([pd.read_csv(f) for f in files], ignore_index=True)
    keys = [c for c in ("stage", "method", "eps_safe", "gamma_safe") if c in rows.columns]
    columns = [c for c in SUMMARY if c in rows.columns]
    table = rows.groupby(keys, dropna=False)[columns].agg(["mean", "std"])
    table["seeds"] = rows.groupby(keys, dropna=False).size()
    return table


def main() -> None:
    """``run`` one seed or ``merge`` the committed ones."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    one = sub.add_parser("run", help="run (or resume) one seed through the pipeline")
    one.add_argument("--seed", type=int, required=True, help="the seed (pretraining and fine-tuning)")
    one.add_argument("--experiment", default="drunk_spider", help="a shipped experiment name or a YAML path")
    one.add_argument("--methods", default=METHODS, help=f"comma-separated methods (default {METHODS})")
    one.add_argument("--storage-path", default=str(ROOT / "runs"), help="where the pipeline keeps its runs")
    one.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="passed to the pipeline")
    both = sub.add_parser("merge", help="print the mean and std over the committed seeds")
    both.add_argument("--experiment", default="drunk_spider", help="whose per-seed CSVs to merge")
    args = parser.parse_args()
    if args.command == "run":
        extra = [arg for pair in args.set for arg in ("--set", pair)]
        raise SystemExit(run(args.seed, pathlib.Path(args.storage_path), args.methods, extra, args.experiment))
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(merge(args.experiment))


if __name__ == "__main__":
    main()
