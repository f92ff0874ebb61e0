"""``--dry-run``: the trial plan of an experiment and an estimate of its wall time, without training.

The estimate is measured, not guessed: a plain PyTorch SAC loop (``core.lean_sac``) runs a few hundred
steps on the experiment's own env and network sizes in this process, and SQRL on RLlib is taken to run at
``SQRL_VS_LEAN`` of that rate (the ratio ``benchmarks/throughput.py`` records on 2 cores,
benchmarks/README.md), every other method at SQRL's rate scaled by the ratio of their ``Method.step_cost``.
Each pretraining method's chain of runs (its pretraining, then the fine-tuning trials that start from it) is
scheduled on the trial slots the CPUs allow, costliest chain first, as the pipeline runs them.
"""

from __future__ import annotations

import heapq
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


def trial_seconds(
    experiment: dict[str, Any], sqrl_steps_per_s: float, pretrained: bool = False
) -> dict[str, list[tuple[str, float]]]:
    """Pretraining method -> its chain's trials as (stage, estimated seconds), pretraining first: each
    trial's env steps at SQRL's rate scaled by its method's ``step_cost``. ``pretrained``: the run fine-tunes
    from another run's pretraining (``--pretrained-run``), so its chains hold fine-tuning trials only."""
    from sqrl_rllib.experiments import experiment_methods, experiment_seeds
    from sqrl_rllib.methods import METHODS, pretraining_methods
    from sqrl_rllib.pipeline import stage_points

    seeds = experiment_seeds(experiment)
    chains: dict[str, list[tuple[str, float]]] = {m: [] for m in pretraining_methods(experiment_methods(experiment))}
    for stage in ("finetune",) if pretrained else ("pretrain", "finetune"):
        steps = experiment[stage]["stop"].get("num_env_steps_sampled_lifetime") or 0
        for point in stage_points(experiment, stage):
            method = METHODS[point["method"]]
            seconds = steps * method.step_cost / (METHODS["sqrl"].step_cost * sqrl_steps_per_s)
            chains[method.pretrained_by] += [(stage, seconds)] * len(seeds)
    return chains


def schedule_seconds(chains: dict[str, list[tuple[str, float]]], slots: int) -> float:
    """Wall seconds of ``chains`` (``trial_seconds``) on ``slots`` trials at a time: a chain's fine-tuning
    trials wait for all its pretraining trials; a free slot takes the next trial of the costliest chain that
    has one ready."""
    order = sorted(chains, key=lambda m: -sum(seconds for _, seconds in chains[m]))
    ready = {m: [t for t in chains[m] if t[0] == "pretrain"] for m in order}
    waiting = {m: [t for t in chains[m] if t[0] != "pretrain"] for m in order}
    left = {m: len(ready[m]) for m in order}
    for m in order:  # a chain without pretraining (--pretrained-run) fine-tunes at once
        if not left[m]:
            ready[m], waiting[m] = waiting[m], []
    running: list[tuple[float, str, str]] = []
    now = 0.0
    while any(ready.values()) or running:
        for m in order:
            while ready[m] and len(running) < slots:
                stage, seconds = ready[m].pop(0)
                heapq.heappush(running, (now + seconds, m, stage))
        now, m, stage = heapq.heappop(running)
        if stage == "pretrain":
            left[m] -= 1
            if left[m] == 0:
                ready[m], waiting[m] = waiting[m], []
    return now


def describe_plan(
    experiment: dict[str, Any], lean_steps_per_s: float, cpus: int | None = None, pretrained_run: str | None = None
) -> str:
    """The plan as text lines, with the estimated wall time per stage and in all; with ``pretrained_run``
    (``--pretrained-run``) the pretraining stage is reported as taken from that run, at no cost."""
    cpus = cpus or os.cpu_count() or 1
    per_trial_cpus = 1 + int((experiment.get("resources") or {}).get("num_env_runners", 1))
    parallel = max(1, cpus // per_trial_cpus)
    rate = lean_steps_per_s * SQRL_VS_LEAN
    lines = [
        f"[sqrl] dry run: lean SAC measured {lean_steps_per_s:.0f} env steps/s here; SQRL estimated at "
        f"{rate:.0f} per trial (x{SQRL_VS_LEAN}), {parallel} trial(s) at a time on {cpus} CPUs"
    ]
    chains = trial_seconds(experiment, rate, pretrained=pretrained_run is not None)
    timed = True
    for row in trial_plan(experiment):
        steps = row["env_steps_per_trial"]
        if pretrained_run is not None and row["stage"] == "pretrain":
            lines.append(f"  pretrain: none run; fine-tuning starts from the pretraining of {pretrained_run}")
            continue
        if steps is None:
            timed = False
            lines.append(f"  {row['stage']}: {row['trials']} trial(s), stopped by {experiment[row['stage']]['stop']}")
            continue
        # The stage's trials on their own, all slots busy: its share of the run, in wall time.
        seconds = sum(s for chain in chains.values() for stage, s in chain if stage == row["stage"]) / parallel
        grid = f" (grid {row['grid']} for the methods with a safety critic)" if row["grid"] else ""
        methods = ", ".join(f"{m} x{n}" if n > 1 else m for m, n in row["methods"].items())
        lines.append(
            f"  {row['stage']}: {row['trials']} trial(s) = methods {methods}{grid} x seeds {row['seeds']}; "
            f"{steps} env steps each, "
            f"{row['env_steps_total']} in all; about {_minutes(seconds)} of trials"
        )
    if timed:
        total = schedule_seconds(chains, parallel)
        lines.append(
            f"  estimated training time: about {_minutes(total)} (each method's chain of runs side by side, the "
            "costliest first; plus Ray and trial start-up)"
        )
    return "\n".join(lines)


def _minutes(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 5400 else f"{max(seconds / 60, 0.1):.1f} min"
