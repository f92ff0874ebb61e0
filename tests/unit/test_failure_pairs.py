"""benchmarks/failure_pairs.py reads a checkpoint's failing transitions and refuses checkpoints without them."""

import pathlib
import pickle
import sys

import numpy as np
import pytest

BENCHMARKS = pathlib.Path(__file__).parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
from failure_pairs import stored_transitions  # noqa: E402


def write_state(directory: pathlib.Path, sqrl: dict) -> None:
    with (directory / "algorithm_state.pkl").open("wb") as f:
        pickle.dump({"training_iteration": 1, "sqrl": sqrl}, f)


def test_stored_transitions_are_the_checkpoint_buffer(tmp_path):
    obs = np.arange(10, dtype=np.float32).reshape(5, 2)
    actions = -obs
    failure = np.array([0, 1, 0, 0, 1], dtype=np.float32)
    write_state(tmp_path, {"offline_buffer": {"columns": {"obs": obs, "actions": actions, "failure": failure}}})
    columns = stored_transitions(str(tmp_path))
    failed = columns["failure"] > 0
    np.testing.assert_array_equal(columns["obs"][failed], obs[[1, 4]])
    np.testing.assert_array_equal(columns["actions"][failed], -obs[[1, 4]])


def test_checkpoints_without_buffers_are_refused_with_a_message(tmp_path):
    with pytest.raises(SystemExit, match="not an SQRL Algorithm checkpoint"):
        stored_transitions(str(tmp_path))
    write_state(tmp_path, {"counters": {}})
    with pytest.raises(SystemExit, match="without its buffers"):
        stored_transitions(str(tmp_path))
