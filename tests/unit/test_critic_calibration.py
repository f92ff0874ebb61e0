"""The critic-calibration diagnostic's own measurements: Monte-Carlo failure probability, hazard distance."""

import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).parents[2] / "benchmarks"))
from critic_calibration import hazard_distance, one_step_failure  # noqa: E402


def test_calibration_one_step_failure_probability():
    states = np.array([[5.5, 1.5], [3.5, 0.5], [1.97, 2.5]])
    actions = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 0.0]])
    # Straight into lava col 2; down the free left corridor; standing 0.03 above lava: fails when the
    # row noise (uniform +-0.05) exceeds 0.03, P = 0.2.
    p1 = one_step_failure("pretrain", states, actions, samples=200, seed=0)
    assert p1[0] == 1.0 and p1[1] == 0.0
    assert 0.1 < p1[2] < 0.3
    assert np.allclose(hazard_distance(np.array([[0.0, 3.0], [5.5, 1.5], [7.0, 3.0]])), [0.0, 0.5, 1.0])
