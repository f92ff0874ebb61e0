"""``--dry-run``: the trial plan of an experiment and an estimate of its wall time, without training.

The estimate is measured, not guessed: a plain PyTorch SAC loop (``core.lean_sac``) runs a few hundred
steps on the experiment's own env and network sizes in this process, and SQRL on RLlib is taken to run at
``SQRL_VS_LEAN`` of that rate (the ratio ``benchmarks/throughput.py`` records on 2 cores,
benchmarks/README.md). Trials of a stage run side by side as the CPUs allow.
"""

from __future__ import annotations

import math
import os
from typing import Any

# SQRL env steps/s over lean SAC's, measured by benchmarks/throughput.py (0.65-0.90 over sessions 6-9).
SQRL_VS_LEAN = 0.7
PROBE_STEPS = 600


def trial_plan(experiment: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per stage: trials (method grid points x seeds), env steps per trial, total env steps."""
    from sqrl_rllib.experiments import experiment_seeds
    from sqrl_rllib.pipeline import stage_points

    seeds = experiment_seeds(experiment)
    rows = []
    for stage in ("pretrain", "finetune"):
        grid = experiment[stage].get("grid") or {}
        points = stage_points(experiment, stage)
        methods: dict[str, int] = {}
        for point in points:
            methods[point["method"]] = methods.get(point["method"], 0) + 1
        steps = experiment[stage]["stop"].get("num_env_steps_sampled_lifetime")
        trials = len(points) * len(seeds)
        rows.append(
            {
                "stage": stage,
                "methods": methods,
                "grid": {k: list(v) for k, v in grid.items()},
                "seeds": seeds,
                "trials": trials,
                "env_steps_per_trial": steps,
                "env_steps_total": None if steps is None else steps * trials,
            }
        )
    return rows


def measured_steps_per_s(experiment: dict[str, Any]) -> float:
    """Lean SAC's env steps/s on the pretraining env with the experiment's hidden sizes, one thread."""
    import torch

    from sqrl_rllib.core.lean_sac import run_lean_sac
    from sqrl_rllib.envs.own_env import OwnEnvCreator

    hidden = (experiment["pretrain"].get("sqrl") or {}).get("hidden", (256, 256))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        creator = OwnEnvCreator(experiment["env"], experiment.get("failure"))
        env = creator(experiment["pretrain"].get("env_config") or {})
        rate = run_lean_sac(env, PROBE_STEPS + 256, hidden=hidden)
        env.close()
    finally:
        torch.set_num_threads(threads)
    return rate


def describe_plan(experiment: dict[str, Any], lean_steps_per_s: float, cpus: int | None = None) -> str:
    """The plan as text lines, with the estimated wall time per stage and in all."""
    cpus = cpus or os.cpu_count() or 1
    per_trial_cpus = 1 + int((experiment.get("resources") or {}).get("num_env_runners", 1))
    parallel = max(1, cpus // per_trial_cpus)
    rate = lean_steps_per_s * SQRL_VS_LEAN
    lines = [
        f"[sqrl] dry run: lean SAC measured {lean_steps_per_s:.0f} env steps/s here; SQRL estimated at "
        f"{rate:.0f} per trial (x{SQRL_VS_LEAN}), {parallel} trial(s) at a time on {cpus} CPUs"
    ]
    total = 0.0
    for row in trial_plan(experiment):
        steps = row["env_steps_per_trial"]
        if steps is None:
            lines.append(f"  {row['stage']}: {row['trials']} trial(s), stopped by {experiment[row['stage']]['stop']}")
            continue
        seconds = math.ceil(row["trials"] / parallel) * steps / rate
        total += seconds
        grid = f" (grid {row['grid']} for the methods with a safety critic)" if row["grid"] else ""
        methods = ", ".join(f"{m} x{n}" if n > 1 else m for m, n in row["methods"].items())
        lines.append(
            f"  {row['stage']}: {row['trials']} trial(s) = methods {methods}{grid} x seeds {row['seeds']}; "
            f"{steps} env steps each, "
            f"{row['env_steps_total']} in all; about {_minutes(seconds)}"
        )
    lines.append(f"  estimated training time: about {_minutes(total)} (plus Ray and trial start-up)")
    return "\n".join(lines)


def _minutes(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 5400 else f"{max(seconds / 60, 0.1):.1f} min"
