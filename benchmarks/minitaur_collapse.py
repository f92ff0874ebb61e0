"""Probes of the Minitaur collapse: why the first fine-tuning updates knock a pretrained policy down.

Every arm fine-tunes SQRL and SAC on EXPERIMENT (minitaur_velocity or minitaur_friction) from the same
finished pretraining (``--pretrained-run``, a ``methods.py run --experiment minitaur_velocity`` directory:
both tasks fine-tune from it) for 25k env steps through the pipeline (``python -m sqrl_rllib.tune``),
changing one thing against the committed ``methods.py`` run of that experiment and seed:

    python benchmarks/minitaur_collapse.py run sametask --seed 1   # one arm, ~10 min on 2 cores
    python benchmarks/minitaur_collapse.py run replay --experiment minitaur_friction --seed 1
    python benchmarks/minitaur_collapse.py table --seed 1          # falls per window, every arm

``run`` writes the arm's fine-tuning curves to ``results/minitaur_collapse/EXPERIMENT_ARM_seed_S.csv``
(committed); ``table`` prints episodes and falls per window of env steps for each committed arm beside the
committed run (arm ``baseline``: the fine-tuning task, fresh replay, 10k steps before the first update).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import subprocess
import sys

import pandas as pd

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import methods  # noqa: E402  (benchmarks/methods.py: curves and windows of a run)

ROOT = pathlib.Path(__file__).parent
RESULTS = ROOT / "results" / "minitaur_collapse"
STEPS = 25_000
# Arm -> the --set overrides it adds (each changes one thing against the baseline run).
ARMS = {
    "sametask": ["finetune.env_config.task=pretrain"],  # no task shift: keep pretraining's goal 0.3 m/s
    "lowlr": ["training.actor_lr=3e-5", "training.critic_lr=3e-5", "training.alpha_lr=3e-5"],  # steps / 10
    "sametask_replay": ["finetune.env_config.task=pretrain", "finetune.sqrl.restore_replay=true"],
    "replay": ["finetune.sqrl.restore_replay=true"],  # D_offline starts with pretraining's 1e5 transitions
}


def run(
    arm: str, seed: int, pretrained_run: pathlib.Path, storage: pathlib.Path, experiment: str = "minitaur_velocity"
) -> pathlib.Path:
    """Fine-tune SQRL and SAC for arm ``arm`` and write its fine-tuning curves CSV; returns its path."""
    cmd = [sys.executable, "-m", "sqrl_rllib.tune", experiment, "--methods", "sqrl,sac"]
    cmd += ["--seeds", str(seed), "--storage-path", str(storage), "--name", f"{experiment}_{arm}_seed{seed}"]
    cmd += ["--pretrained-run", str(pretrained_run)]
    sets = [
        "resources.num_env_runners=0",
        f"finetune.stop.num_env_steps_sampled_lifetime={STEPS}",
        "finetune.grid.eps_safe=[0.1]",
        *ARMS[arm],
    ]
    cmd += [arg for pair in sets for arg in ("--set", pair)]
    print("+", " ".join(cmd), flush=True)
    status = methods.wait_through_interrupts(subprocess.Popen(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}))
    if status != 0:
        raise SystemExit(status)
    rows = methods.curves(storage / f"{experiment}_{arm}_seed{seed}")
    rows = rows[rows["stage"] == "finetune"]
    rows.insert(0, "probe", arm)
    RESULTS.mkdir(parents=True, exist_ok=True)
    target = RESULTS / f"{experiment}_{arm}_seed_{seed}.csv"
    rows.to_csv(target, index=False, float_format="%.6g")
    print(f"wrote {target}", flush=True)
    return target


def table(seed: int, every: int = 5000, experiment: str = "minitaur_velocity") -> pd.DataFrame:
    """Episodes and falls per window of ``every`` env steps (first STEPS steps) of the committed
    ``methods.py`` run of ``experiment`` and ``seed`` (arm ``baseline``) and of each committed arm."""
    frames = [methods.windows(experiment, seed, every=every).assign(arm="baseline")]
    for path in sorted(RESULTS.glob(f"{experiment}_*_seed_{seed}.csv")):
        rows = pd.read_csv(path)
        frames.append(methods.window_table(rows, "finetune", every).assign(arm=rows["probe"].iloc[0]))
    out = pd.concat(frames, ignore_index=True)
    return out[out["start"] < STEPS][["arm", "method", "start", "episodes", "failures", "return"]]


def totals(windows: pd.DataFrame, first_update: int = 10_000) -> pd.DataFrame:
    """Per arm and method, falls / episodes over all of ``windows`` (``table``) and from ``first_update``
    on (the baseline's first update; with ``restore_replay`` updates start at step 0)."""
    rows = []
    for (arm, method), group in windows.groupby(["arm", "method"], sort=False):
        late = group[group["start"] >= first_update]
        rows.append(
            {
                "arm": arm,
                "method": method,
                "falls": f"{group['failures'].sum():.0f}/{group['episodes'].sum():.0f}",
                "rate": round(group["failures"].sum() / group["episodes"].sum(), 3),
                f"falls_from_{first_update}": f"{late['failures'].sum():.0f}/{late['episodes'].sum():.0f}",
            }
        )
    return pd.DataFrame(rows)


def main() -> None:
    """``run`` one arm or print the ``table`` of the committed ones."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    one = sub.add_parser("run", help="fine-tune SQRL and SAC for one arm and commit-ready its curves")
    one.add_argument("arm", choices=sorted(ARMS), help="what the arm changes (see ARMS)")
    one.add_argument("--seed", type=int, default=1, help="the seed of the pretraining run (default 1)")
    one.add_argument(
        "--experiment", default="minitaur_velocity", help="minitaur_velocity (default) or minitaur_friction"
    )
    one.add_argument(
        "--pretrained-run",
        type=pathlib.Path,
        help="the finished methods.py minitaur_velocity run (default benchmarks/runs/methods_minitaur_velocity_seedS)",
    )
    one.add_argument("--storage-path", type=pathlib.Path, default=ROOT / "runs" / "probes", help="where runs go")
    show = sub.add_parser("table", help="falls per window of each committed arm beside the committed run")
    show.add_argument("--seed", type=int, default=1, help="the seed (default 1)")
    show.add_argument(
        "--experiment", default="minitaur_velocity", help="minitaur_velocity (default) or minitaur_friction"
    )
    show.add_argument("--every", type=int, default=5000, help="window length in env steps (default 5000)")
    args = parser.parse_args()
    if args.command == "run":
        pretrained = args.pretrained_run or ROOT / "runs" / f"methods_minitaur_velocity_seed{args.seed}"
        run(args.arm, args.seed, pretrained, args.storage_path, args.experiment)
        return
    with pd.option_context("display.width", 200, "display.max_rows", 500):
        windows = table(args.seed, args.every, args.experiment)
        print(windows.to_string(index=False))
        print(f"\nfirst {STEPS} fine-tuning steps, {args.experiment}, seed {args.seed}:")
        print(totals(windows).to_string(index=False))


if __name__ == "__main__":
    main()
