"""benchmarks/failure_pairs.py reads a checkpoint's failing transitions and refuses checkpoints without them."""

import pathlib
import pickle
import sys

import numpy as np
import pytest

BENCHMARKS = pathlib.Path(__file__).parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
from failure_pairs import failing_pairs  # noqa: E402


def write_state(directory: pathlib.Path, sqrl: dict) -> None:
    with (directory / "algorithm_state.pkl").open("wb") as f:
        pickle.dump({"training_iteration": 1, "sqrl": sqrl}, f)


def test_failing_pairs_are_the_flagged_transitions(tmp_path):
    obs = np.arange(10, dtype=np.float32).reshape(5, 2)
    actions = -obs
    failure = np.array([0, 1, 0, 0, 1], dtype=np.float32)
    write_state(tmp_path, {"offline_buffer": {"columns": {"obs": obs, "actions": actions, "failure": failure}}})
    states, acts = failing_pairs(str(tmp_path))
    np.testing.assert_array_equal(states, obs[[1, 4]])
    np.testing.assert_array_equal(acts, -obs[[1, 4]])


def test_checkpoints_without_buffers_are_refused_with_a_message(tmp_path):
    with pytest.raises(SystemExit, match="not an SQRL Algorithm checkpoint"):
        failing_pairs(str(tmp_path))
    write_state(tmp_path, {"counters": {}})
    with pytest.raises(SystemExit, match="without its buffers"):
        failing_pairs(str(tmp_path))
