"""Start a run's chains of Tune runs one after another, so that the costliest chain gets Ray's CPUs first.

Chains started all at once ask Ray for CPUs in whatever order their threads get going: in methods seed 2
(2 CPUs) the SAC and WCPG pretraining trials took both, and ESAC's 80-minute chain waited behind them. So
each chain starts only after the chain before it has a trial running, or after ``STAGGER_S`` seconds (the
CPUs are taken and its trials wait for them). Among waiting trials Ray keeps no strict order (a quick run of
five methods on 2 CPUs: ESAC and SQRL started first, then a chain's next stage often took the CPU its
previous stage freed), so this orders the start only.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, Future
from typing import Any

from ray import tune

# Tune asks for a trial's resources within a second or two of fit(); a chain that cannot start a trial in
# this time waits for CPUs already taken, and holding the next chain back longer gains nothing.
STAGGER_S = 15.0


class FirstTrialStarted(tune.Callback):
    """Tune callback: sets ``event`` when a trial of the run starts (has its resources).

    Tune pickles a run's callbacks into its experiment state; the event, a lock, stays out of it, so a
    restored run's copy signals nothing (the next chain then waits ``STAGGER_S``).
    """

    def __init__(self, event: threading.Event):
        self.event: threading.Event | None = event

    def __getstate__(self) -> dict:
        return {"event": None}

    def on_trial_start(self, iteration, trials, trial, **info):
        """Signal the waiting caller that this run holds resources now."""
        if self.event is not None:
            self.event.set()


def submit_in_order(
    pool: Executor,
    chain: Callable[[str, threading.Event], Any],
    sources: Iterable[str],
    wait_s: float = STAGGER_S,
) -> list[Future]:
    """Submit ``chain(source, started)`` for each source in order, each once the one before has set its
    ``started`` event (a trial of its first run started), has ended, or ``wait_s`` seconds have passed."""
    futures = []
    for source in sources:
        started = threading.Event()
        future = pool.submit(chain, source, started)
        # A chain that fails, or whose first run has nothing left to start, must not hold the next one back.
        future.add_done_callback(lambda _, event=started: event.set())
        futures.append(future)
        started.wait(wait_s)
    return futures
