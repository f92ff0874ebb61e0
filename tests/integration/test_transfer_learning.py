"""End to end, seeded: SAC and ESAC learn DrunkSpider's pretraining task; SQRL's fine-tuning fails less than SAC's.

Each method is pretrained on its own for 6000 env steps (drunk_spider.yaml's keys at 128 x 128 nets and K 50,
the pretraining noise randomised over [0, 0.4]), SQRL's Q_safe is fitted 500 steps at failure fraction 0.2,
and each is fine-tuned 2000 steps on the finetune task (noise 0.2): `benchmarks/short_transfer.py`'s
`transfer()`. Two departures from drunk_spider.yaml, both measured (benchmarks/README.md, "SQRL vs SAC after a
short pretraining"):
  * DrunkSpider's `failure_penalty="below_timeout"`: under the authors' shaping failing early pays better
    than a timeout until the goal has been found, so in a run this short both methods learn to fail on
    purpose and the comparison would measure that incentive, not safety;
  * SQRL pretrains as the paper's Algorithm 1, without the pretraining Lagrangian: with it, nu climbs to
    6e2-1e5 in 6000 steps, the actor chases the critic's blind spots, and fine-tuning from that policy failed
    17, 37 and 447 times on seeds 0-2 (2, 0 and 0 without it).
About 50 s per SAC seed, 60 s per SQRL seed and 100 s for ESAC on one free core (6 min beside another run).
"""

import pathlib
import sys

import pytest
import ray

sys.path.insert(0, str(pathlib.Path(__file__).parents[2] / "benchmarks"))
from short_transfer import transfer  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.learning]

SEEDS = (0, 1, 2)
PAPER_PRETRAINING = {"pretrain_lagrangian": False}
PRETRAIN_STEPS, FINETUNE_STEPS = 6000, 2000


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(method, seed) -> (pretraining history, fine-tuning history)."""
    root = tmp_path_factory.mktemp("short_transfer")
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        out = {}
        for seed in SEEDS:
            for method in ("sac", "sqrl"):
                out[method, seed] = transfer(
                    method, seed, PRETRAIN_STEPS, FINETUNE_STEPS, str(root), pretrain_set=PAPER_PRETRAINING
                )
                print(method, seed, out[method, seed][0][-1], out[method, seed][1][-1])
        return out
    finally:
        ray.shutdown()


def failure_rate_after(history: list[dict], steps: int) -> float:
    """Failures per episode among the episodes that ended after the first ``steps`` env steps."""
    before = next(row for row in history if row["steps"] >= steps)
    last = history[-1]
    return (last["failures"] - before["failures"]) / max(last["episodes"] - before["episodes"], 1)


def test_sac_learns_the_pretraining_task(runs):
    for seed in SEEDS:
        pretraining = runs["sac", seed][0]
        first = pretraining[0]
        # The untrained policy (its mean initialised near 0, like a random one) fails nearly every episode:
        # return about -60 (a failure also pays the timeout's -30). Measured 2026-12-06, first 512 steps of
        # seeds 0-2: 148/148, 132/134 and 148/148.
        assert first["failures"] >= 0.9 * first["episodes"], (seed, first)
        assert first["return"] < -55, (seed, first)
        # SAC stops failing: measured failure rates after the first 2500 steps 0.12 (seed 0: 15 of 129
        # episodes, while it learns to cross the bridge), 0.0 and 0.0; a policy that does not learn stays ~1.
        assert failure_rate_after(pretraining, 2500) < 0.3, (seed, pretraining)
    # and reaches the goal: final returns -25.5, -21.5 and -48.3 (seed 2 times out: it stopped failing but
    # has not found the goal yet); a never-failing policy that never reaches the goal scores about -47, an
    # unlearned one -60. Two seeds clear the bar, so one seed's arithmetic on another machine cannot flip it.
    finals = [runs["sac", seed][0][-1]["return"] for seed in SEEDS]
    assert max(finals) > -35, finals


def test_sqrl_fine_tuning_fails_less_than_sac_fine_tuning(runs):
    # Failures in the 2000 fine-tuning steps, each method from its own pretraining, seeds 0-2. Measured
    # 2026-12-06: SQRL 2, 0, 0 against SAC 216, 71, 0; measured 2026-12-07 on an AMD EPYC box (AVX2), where
    # the same seeded code runs otherwise: SQRL 9, 0, 2 against SAC 188, 55, 0. SAC's seed 2 has not found
    # the goal and times out safely, so "SQRL <= SAC on every seed" says nothing about safety and does not
    # hold on both machines. Fine-tuned from the same SQRL checkpoints without the mask and the Lagrangian
    # (mask_enabled=False, lagrangian=False), its policy fails 237, 0 and 248 times: the per-seed bound of 20
    # is the mask's doing, ten times below that.
    failures = {key: fine[-1]["failures"] for key, (_, fine) in runs.items()}
    print(failures)
    for seed in SEEDS:
        assert failures["sqrl", seed] <= 20, failures
    sqrl, sac = (sum(failures[method, seed] for seed in SEEDS) for method in ("sqrl", "sac"))
    assert sac >= 50 and sqrl <= 0.2 * sac, failures


def test_esac_learns_the_pretraining_task(tmp_path):
    """ESAC (10 critics, the minimum in the target) on seed 0, 6000 pretraining steps (about 100 s)."""
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        pretraining, _ = transfer("esac", 0, PRETRAIN_STEPS, 0, str(tmp_path))
    finally:
        ray.shutdown()
    first, last = pretraining[0], pretraining[-1]
    # Measured 2026-12-06: 130 of the first 130 episodes fail (return -59.6, like an unlearned policy);
    # by 6144 steps it reaches the goal: return 17.3 (a never-failing policy that times out: about -47).
    assert first["failures"] >= 0.9 * first["episodes"] and first["return"] < -55, first
    assert last["return"] > 0, last
