"""What a pipeline run prints: one progress line per trial per interval; Ray's and Tune's chatter to a log file.

Tune's own reporter prints a wide status table per interval and RLlib logs notices in every process; a
user watching a run needs steps, return, failures and an ETA per trial. ``ProgressLines`` is a Tune
callback printing exactly that, and ``route_logs`` sends the ``ray`` loggers and Python warnings to the
run's log file instead of the terminal (``--verbose`` keeps them on the terminal too).
"""

from __future__ import annotations

import logging
import math
import os
import pathlib
import time
from typing import Any

from ray import tune

STEPS = ("env_runners", "num_env_steps_sampled_lifetime")
RETURN = ("env_runners", "episode_return_mean")
FAILURES = ("sqrl", "cumulative_failures")
EPISODES = ("sqrl", "cumulative_episodes")


def progress_line(stage: str, trial: str, params: dict[str, Any], result: dict[str, Any], total_steps: float) -> str:
    """One line: stage, trial, its grid values, env steps / total, return, failures, rate, elapsed, ETA."""
    steps = float(_get(result, STEPS, 0) or 0)
    failures = float(_get(result, FAILURES, 0) or 0)
    episodes = float(_get(result, EPISODES, 0) or 0)
    ret = _get(result, RETURN, float("nan"))
    elapsed = float(result.get("time_total_s", 0.0) or 0.0)
    eta = elapsed * (total_steps - steps) / steps if steps > 0 and total_steps > steps else 0.0
    grid = " ".join(f"{k}={v}" for k, v in params.items() if v is not None)
    rate = f"{failures / episodes:.3f}" if episodes else "n/a"
    return (
        f"[{stage}] {trial} {grid}: {steps:.0f}/{total_steps:.0f} steps  return {_number(ret)}  "
        f"failures {failures:.0f}/{episodes:.0f} (rate {rate})  elapsed {_duration(elapsed)}  ETA {_duration(eta)}"
    )


class ProgressLines(tune.Callback):
    """Tune callback: prints ``progress_line`` for each trial at most every ``every_s`` seconds, and its end."""

    def __init__(self, stage: str, total_steps: float, every_s: float = 30.0, grid_keys=("eps_safe", "gamma_safe")):
        self.stage, self.total_steps, self.every_s, self.grid_keys = stage, float(total_steps), every_s, grid_keys
        self._last_print: dict[str, float] = {}
        self._last_result: dict[str, dict] = {}

    def _params(self, trial) -> dict[str, Any]:
        from sqrl_rllib.methods import METHODS

        method = trial.config.get("method", "sqrl")
        # The grid values mean something only for a method that fine-tunes with a safety critic.
        grid = self.stage == "finetune" and METHODS.get(method, METHODS["sqrl"]).safety_grid
        keys = ("method", *self.grid_keys, "seed") if grid else ("method", "seed")
        return {k: trial.config.get(k, "sqrl" if k == "method" else None) for k in keys}

    def on_trial_start(self, iteration, trials, trial, **info):
        """Say which trial starts, with its grid values."""
        grid = " ".join(f"{k}={v}" for k, v in self._params(trial).items())
        print(f"[{self.stage}] {trial} started ({grid})", flush=True)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        """Print a progress line when this trial's last one is ``every_s`` old (always the first)."""
        self._last_result[trial.trial_id] = result
        now = time.monotonic()
        if now - self._last_print.get(trial.trial_id, -math.inf) >= self.every_s:
            self._last_print[trial.trial_id] = now
            print(progress_line(self.stage, str(trial), self._params(trial), result, self.total_steps), flush=True)

    def on_trial_complete(self, iteration, trials, trial, **info):
        """Print the trial's final line."""
        result = self._last_result.get(trial.trial_id, trial.last_result or {})
        line = progress_line(self.stage, str(trial), self._params(trial), result, self.total_steps)
        print(line.replace(f"[{self.stage}] ", f"[{self.stage}] done: ", 1), flush=True)

    def on_trial_error(self, iteration, trials, trial, **info):
        """Say that the trial failed and where its error is (Tune retries it from its checkpoint)."""
        print(f"[{self.stage}] {trial} FAILED; error file in {trial.local_path}", flush=True)


def route_logs(log_file: str | pathlib.Path, verbose: bool = False) -> pathlib.Path:
    """Send the ``ray`` loggers (Ray start-up, RLlib notices, Tune) and Python warnings to ``log_file``.

    Without ``verbose`` only errors of those loggers still reach the terminal, and Tune's own console
    output (its experiment box and status tables) is switched off. Returns the log path.
    """
    import ray.rllib  # noqa: F401  (RLlib and Tune attach their console handlers at import)
    import ray.tune  # noqa: F401

    path = pathlib.Path(log_file)
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.captureWarnings(True)
    names = ["py.warnings"] + [n for n in logging.root.manager.loggerDict if n == "ray" or n.startswith("ray.")]
    for name in names:
        logger = logging.getLogger(name)
        consoles = [
            h
            for h in logger.handlers
            if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
        ]
        # Children that propagate reach the file through "ray" already: one copy per record.
        if name in ("ray", "py.warnings") or (consoles and not logger.propagate):
            logger.addHandler(handler)
            logger.setLevel(min(logger.getEffectiveLevel(), logging.INFO))
        if not verbose:
            for console in consoles:
                console.setLevel(logging.ERROR)
    if not verbose:
        logging.getLogger("py.warnings").propagate = False  # else the last-resort handler prints them
        # Tune's newer console output prints its experiment box even at verbose=0; the legacy one is silent.
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    return path


def _is_console(handler: logging.Handler) -> bool:
    return isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler)


def _get(result: dict, path: tuple[str, ...], default):
    node: Any = result
    for part in path:
        if not isinstance(node, dict) or part not in node:
            flat = result.get("/".join(path))  # Tune may hand over flattened keys
            return default if flat is None else flat
        node = node[part]
    return node


def _number(value) -> str:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return "n/a"
    return "n/a" if math.isnan(value) else f"{value:.2f}"


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"
