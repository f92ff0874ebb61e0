"""Offline safety data end to end: a Q_safe fitted from a recorded DrunkSpider pretraining's Parquet file
ranks the moves off the map above the safe ones, as the online Q_safe does (tests/integration/test_learning.py).

Per seed: the learning test's 6000-step SQRL pretraining, its D_offline recorded to Parquet the way
``--record-transitions`` does it (``record_checkpoint_transitions``), then a fresh SQRL algorithm (another
seed, a new, untrained Q_safe) given the pretrained policy and fitted from the file alone
(``SQRL.fit_safety_critic_offline``, read in 512-row batches). The pretrained policy is kept because Q_safe
is the failure probability *of a policy* (its Bellman target draws a' from it): under an untrained policy
INSIDE_BACK really is risky (measured 0.67-0.73 with a fresh policy on seed 0's data), so only with the
same policy can the offline critic be compared with the online one.
"""

import numpy as np
import pytest
import ray

from sqrl_rllib.algorithms.sqrl import SQRLConfig
from sqrl_rllib.algorithms.sqrl.offline import record_checkpoint_transitions
from sqrl_rllib.offline_data import inspect_transitions
from tests.integration.test_learning import EDGE_BACK, EDGE_FORWARD, EPS_SAFE, INSIDE_BACK, SEEDS, pretrain, q_safe

FIT_STEPS = 2000
FAILURE_FRACTION = 0.2


def config(seed: int) -> SQRLConfig:
    """The learning test's network and safety keys (its checkpoint loads into this), no remote EnvRunner."""
    return (
        SQRLConfig()
        .environment("sqrl/DrunkSpider-v0", env_config={"task": "pretrain"})
        .env_runners(num_env_runners=0)
        .training(train_batch_size_per_learner=128)
        .sqrl(eps_safe=EPS_SAFE, num_action_samples=20, hidden=(64, 64), gamma_safe=0.65)
        .debugging(seed=seed)
    )


def probes(module) -> dict[str, np.ndarray]:
    pairs = {"edge_back": EDGE_BACK, "inside_back": INSIDE_BACK, "edge_forward": EDGE_FORWARD}
    return {name: q_safe(module, p) for name, p in pairs.items()}


def fit_offline(seed: int, checkpoint: str, path) -> tuple[dict, dict, dict]:
    """A fresh algorithm with the pretrained policy and a new Q_safe, fitted from ``path``: (before, after, stats)."""
    algo = config(seed + 100).build_algo()
    try:
        learner = algo.learner_group._learner
        new_q_safe = {
            k: v.clone() for k, v in learner.module["default_policy"].state_dict().items() if "safety_critic" in k
        }
        algo.load_pretrained(checkpoint)
        module = learner.module["default_policy"]
        module.load_state_dict(new_q_safe, strict=False)  # Q_safe and its target: back to the untrained ones
        before = probes(module)
        stats = algo.fit_safety_critic_offline(path, FIT_STEPS, FAILURE_FRACTION, read_rows=512)
        return before, probes(module), stats
    finally:
        algo.stop()


@pytest.mark.slow
def test_q_safe_fitted_offline_from_recorded_pretraining_ranks_like_the_online_one(tmp_path):
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        for seed in SEEDS:
            online, checkpoint = pretrain(seed, tmp_path)
            path = tmp_path / f"transitions/seed_{seed}.parquet"
            rows = record_checkpoint_transitions(config(seed), checkpoint, path)
            assert rows == inspect_transitions(path).num_rows >= 6000
            before, q, stats = fit_offline(seed, checkpoint, path)
            for name, values in (("online", online), ("fresh", before), ("offline", q)):
                print(f"seed {seed} {name}: " + " ".join(f"{k} {np.round(v, 3)}" for k, v in values.items()))
            print(f"seed {seed} offline fit: {stats}")
            # The untrained Q_safe reads ~0.5 everywhere (measured 0.48-0.54): the ranking below is the fit's.
            assert not (before["edge_back"] > before["edge_forward"] + 0.3).all(), before
            # Pretraining and fit are deterministic per seed. Measured 2026-12-06 (seed 0 / seed 1, cols 2.5-3.5):
            # edge_back 0.995-0.997 / 0.943-0.946, edge_forward 0.28-0.29 / 0.19-0.33, smallest gaps 0.71 / 0.62
            # (fit seeds 10, 200, 300 instead of 100: 0.70-0.75 / 0.37-0.66). A constant or action-blind critic
            # scores 0, so the learning test's 0.3 applies as it is.
            assert (q["edge_back"] > q["edge_forward"] + 0.3).all(), (seed, q)
            assert (q["edge_back"] >= EPS_SAFE).all(), (seed, q)
            # The state: inside_back 0.81-0.83 / 0.17-0.30, smallest gaps to edge_back 0.16 / 0.65 (other fit
            # seeds: 0.19-0.41 / 0.49-0.70). Seed 0's policy (still failing on purpose at 6000 steps) does fail
            # from there: Monte Carlo 0.40 / 0.27 / 0.005 at cols 2.5 / 3.0 / 3.5, which the offline critic
            # overestimates (the online one read 0.22-0.50). So 0.1 here, not the learning test's 0.3; a constant
            # or state-blind critic scores 0. Shuffling the failure column before writing fails this test (edge_back
            # 0.42 < edge_forward 0.55).
            assert (q["edge_back"] > q["inside_back"] + 0.1).all(), (seed, q)
    finally:
        ray.shutdown()
