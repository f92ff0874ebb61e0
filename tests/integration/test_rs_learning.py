"""RS (the paper's risk-sensitive baseline) learns: SQRL pretraining, then RS fine-tuning, on InvertedPendulum-v5.

The pole falling ends the episode and is the failure (``failure: terminated``, the own-env plug-in), so the
return (1 per step alive, at most 1000) rises only as the policy stops failing: learning to fail fast scores
less, not more. DrunkSpider is no learning task for RS at CI budgets (after a short SQRL pretraining its
unmasked policy fails within ~7 steps on two of three seeds and 4000 RS steps do not turn it), and neither is
Pendulum-v1 with a speed limit (a failure cuts the episode's costs); benchmarks/README.md, "RS in a short run"
and "RS where failing never pays". This is ``benchmarks/rs_pole.py --seed 1 --pretrain-steps 3000
--finetune-steps 12000``.

RS fine-tunes SQRL's pretrained policy and frozen Q_safe with no mask; its critic learns r - lambda * Q_safe,
lambda by dual ascent against eps_safe (``methods.METHODS["rs"]``). The pretraining must be long enough for
Q_safe to have seen survival: after 1000 steps (every episode failing within ~12 steps) Q_safe reads every
state as risky, lambda grows without bound and RS un-learns the task at ~10k steps (measured, same README).
"""

import sys
from pathlib import Path

import pytest
import ray

sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))
from rs_pole import config, train  # noqa: E402

from sqrl_rllib.envs.own_env import register_own_env  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.learning]

SEED, PRETRAIN_STEPS, FINETUNE_STEPS = 1, 3000, 12000


def test_rs_learns_to_balance_the_pole(tmp_path):
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        env = register_own_env("InvertedPendulum-v5", "terminated")
        checkpoint = str(tmp_path / "pretrain")
        pretraining = train(config(env, "pretrain", SEED), PRETRAIN_STEPS, "SQRL pretrain", save_to=checkpoint)
        fine_tuning = train(config(env, "finetune", SEED, pretrained_checkpoint=checkpoint), FINETUNE_STEPS, "RS")
    finally:
        ray.shutdown()
    # Measured 2026-12-06 (seed 1): the untrained policy balances 6.6 steps on average (a random policy's
    # level); the pretrained one 52 when fine-tuning starts.
    assert pretraining[0]["return"] < 20, pretraining[0]
    assert fine_tuning[0]["return"] < 100, fine_tuning[0]
    # RS learns to balance: measured, no failure after 8.2k fine-tuning steps, the 3 episodes of the last
    # 3072 steps all ran the full 1000 steps. A policy that still falls ends an episode every < 200 steps.
    before = next(row for row in fine_tuning if row["steps"] >= fine_tuning[-1]["steps"] - 3000)
    last = fine_tuning[-1]
    assert last["failures"] - before["failures"] <= 2, fine_tuning
    assert last["episodes"] - before["episodes"] <= 6, fine_tuning
    # The risk penalty was at work: every early episode failed, E[Q_safe] > eps_safe and lambda rose from
    # 1 by dual ascent (measured: peak 5.8, 3.4 at the end, falling once the policy stopped failing).
    assert max(row["lambda"] for row in fine_tuning) > 2, fine_tuning
