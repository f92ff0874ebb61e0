"""The results table's final_return: the mean of the last 20 episodes, rebuilt from per-iteration means."""

import math

import pandas as pd
import pytest
from ray.rllib.utils.metrics.metrics_logger import MetricsLogger

from sqrl_rllib.pipeline import EPISODES_KEY, FINAL_EPISODES, RETURN_KEY, final_return


def test_rllib_reports_only_the_iterations_episodes():
    """Why final_return exists: an EnvRunner's windowed return mean forgets earlier iterations on reduce.

    Logged as SingleAgentEnvRunner logs it (window 20) and aggregated as Algorithm.training_step does, five
    episodes per iteration: one -1200 episode among twenty -200 ones reads -400 (its iteration's five), not
    -250 (the last 20), and the next iteration has forgotten it. If RLlib starts keeping the window, this
    fails and final_return's reconstruction should be revisited.
    """
    runner, algo = MetricsLogger(), MetricsLogger()
    returns = [-200.0] * 20 + [-1200.0] + [-200.0] * 9
    reported = []
    for start in range(0, len(returns), 5):
        for value in returns[start : start + 5]:
            runner.log_value("episode_return_mean", value, window=20)
        algo.aggregate([runner.reduce()], key="env_runners")
        reported.append(float(algo.reduce()["env_runners"]["episode_return_mean"].peek()))
    assert reported == [-200.0, -200.0, -200.0, -200.0, -400.0, -200.0]


def history(returns, lifetime_episodes):
    return pd.DataFrame({RETURN_KEY: returns, EPISODES_KEY: lifetime_episodes})


def test_final_return_weights_iterations_by_their_episodes_back_to_twenty():
    # Iterations ending 5 episodes each; the last four cover 20: one of them averaged a -1000 drop.
    curve = history([-100.0, -200.0, -200.0, -400.0, -200.0], [5, 10, 15, 20, 25])
    assert final_return(curve) == pytest.approx((-200 * 15 - 400 * 5) / 20)
    # An iteration with more than 20 episodes: RLlib averaged its last 20, which are the last 20.
    assert final_return(history([-5.0, 7.0], [10, 60])) == 7.0
    # 8 + 8 + 8 episodes: the first iteration fills the last 4 of the 20.
    assert final_return(history([0.0, 3.0, 6.0], [8, 16, 24])) == pytest.approx((3.0 * 8 + 6.0 * 8) / 20)
    # WCPG's seed 0: 17 episodes in the last iteration, 3 more from the 37 before.
    curve = history([-25.0, -21.0, -38.0], [9134, 9171, 9188])
    assert final_return(curve) == pytest.approx((3 * -21.0 + 17 * -38.0) / 20)


def test_iterations_without_an_episode_carry_no_weight():
    # Minitaur: long episodes, most iterations end none (RLlib reports NaN); counts may be missing early on.
    curve = history([math.nan, 120.0, math.nan, 80.0, math.nan], [math.nan, 1, 1, 2, 2])
    assert final_return(curve) == pytest.approx(100.0)
    assert FINAL_EPISODES == 20


def test_without_episode_counts_the_last_report_stands():
    assert final_return(None, -3.0) == -3.0
    assert final_return(pd.DataFrame({RETURN_KEY: [1.0, 2.0]}), 2.0) == 2.0
    assert final_return(history([math.nan, math.nan], [0, 0]), -7.0) == -7.0
