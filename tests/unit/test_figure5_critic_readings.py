"""benchmarks/figure5.py's critic readings (``critic --csv``) on a real SQRL RLModule with a hand-set Q_safe."""

import math
import pathlib
import sys

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
import torch

from sqrl_rllib.algorithms.sqrl.torch.sqrl_torch_rl_module import SQRLTorchRLModule
from sqrl_rllib.core.networks import SafetyCritic

sys.path.insert(0, str(pathlib.Path(__file__).parents[2] / "benchmarks"))
import figure5  # noqa: E402


def module_reading_the_action_only() -> SQRLTorchRLModule:
    """DrunkSpider's spaces (2-D position, 2-D action); Q_safe(s, a) = sigmoid(10 * a[0] - 2) everywhere."""
    module = SQRLTorchRLModule(
        observation_space=gym.spaces.Box(0, 11, (2,), np.float32),
        action_space=gym.spaces.Box(-1, 1, (2,), np.float32),
        inference_only=True,
        model_config={"hidden": (8, 8)},
    )
    module.safety_critic = SafetyCritic(2, 2, hidden=())
    with torch.no_grad():
        layer = module.safety_critic.net[0]
        layer.weight.zero_()
        layer.weight[0, 2] = 10.0  # input = (obs, action): column 2 is the action's row component
        layer.bias.fill_(-2.0)
    return module


def heading(module: SQRLTorchRLModule, row: float, col: float) -> None:
    """Make pi a narrow Gaussian around (tanh(row), tanh(col)) in every state."""
    head = module.policy.net[-1]
    with torch.no_grad():
        head.weight.zero_()
        head.bias.copy_(torch.tensor([row, col, -5.0, -5.0]))


def test_rows_read_the_critic_per_route():
    module = module_reading_the_action_only()
    heading(module, -3.0, 0.0)
    rows = figure5.critic_rows("ck", module, k=64, layout="long_detour")
    assert [row["route"] for row in rows] == ["bridge", "around"]
    for row in rows:
        assert row["up"] == pytest.approx(1 / (1 + math.exp(-8.0)), abs=1e-6)  # 'up' is a = (1, 0)
        # pi's samples all head down: Q_safe = sigmoid(10 * -0.995 - 2) ~ 6e-6, kept at both eps.
        assert row["pi_mean"] < 1e-4
        assert row["pi_below_0.05"] == row["pi_below_0.2"] == 1.0
        assert (row["pi_heading_row"], row["pi_heading_col"]) == (-1.0, 0.0)
        assert math.isnan(row["monte_carlo_up_then_pi"])  # no rollouts asked for


def test_critic_table_writes_one_row_per_checkpoint_and_route(tmp_path, monkeypatch):
    module = module_reading_the_action_only()
    monkeypatch.setattr("critic_calibration.load_module", lambda checkpoint: module)
    out = tmp_path / "readings.csv"
    figure5.critic_table(["a", "b"], k=16, layout="authors", csv_path=out)
    table = pd.read_csv(out)
    assert list(zip(table["checkpoint"], table["route"], strict=True)) == [
        ("a", "bridge"),
        ("a", "around"),
        ("b", "bridge"),
        ("b", "around"),
    ]
    assert table["up"].to_numpy() == pytest.approx(np.full(4, 1 / (1 + math.exp(-8.0))))


def test_monte_carlo_of_up_then_pi_discounts_the_failure_pi_walks_into():
    """Without noise, 'up' puts the spider on the bridge (or below the lava on the detour, row 2.5); a pi heading
    right then walks into the lava within two steps (gamma_safe^1 or ^2), one heading down leaves the map at
    step 3 (row -0.5: the edge is a failure too), one standing still never fails."""
    module = module_reading_the_action_only()
    heading(module, 0.0, 3.0)
    right = figure5.critic_rows("ck", module, k=8, rollouts=2, gamma_safe=0.65, levels="0", layout="authors")
    heading(module, -3.0, 0.0)
    down = figure5.critic_rows("ck", module, k=8, rollouts=2, gamma_safe=0.65, levels="0", layout="authors")
    assert right[0]["route"] == "bridge"
    assert right[0]["monte_carlo_up_then_pi"] in (pytest.approx(0.65), pytest.approx(0.65**2))
    heading(module, 0.0, 0.0)
    still = figure5.critic_rows("ck", module, k=8, rollouts=2, gamma_safe=0.65, levels="0", layout="authors")
    assert [row["monte_carlo_up_then_pi"] for row in down] == [pytest.approx(0.65**3)] * 2
    assert [row["monte_carlo_up_then_pi"] for row in still] == [0.0, 0.0]


def test_along_bridge_reads_each_step_size_and_pi():
    module = module_reading_the_action_only()
    heading(module, 3.0, 0.0)  # pi steps straight up: Q_safe = sigmoid(10 * 0.995 - 2), above both eps
    rows = figure5.along_bridge(module, k=32)
    assert [row["row"] for row in rows] == list(figure5.BRIDGE_ROWS)
    for row in rows:
        for size in figure5.STEP_SIZES:
            assert row[f"up_{size}"] == pytest.approx(1 / (1 + math.exp(2.0 - 10.0 * size)), abs=1e-6)
        assert row["pi_mean"] > 0.99 and row["pi_below_0.05"] == row["pi_below_0.2"] == 0.0
        assert row["pi_step_row"] == pytest.approx(math.tanh(3.0), abs=0.01) and abs(row["pi_step_col"]) < 0.01


def test_walk_from_counts_outcomes_and_corridor_entries():
    module = module_reading_the_action_only()
    heading(module, -3.0, 0.0)  # straight down from the start: off the map's bottom edge at once
    assert figure5.walk_from(module, (0.0, 3.0), episodes=5) == {"goal": 0, "failure": 5, "timeout": 0, "corridor": 0}
    heading(module, 3.0, 0.0)  # straight up the corridor (col 9.9): in it above row 2, never at the goal
    up = figure5.walk_from(module, (1.0, 9.9), episodes=5)
    assert up["corridor"] == 5 and up["goal"] == 0 and up["failure"] + up["timeout"] == 5


def test_walk_from_repeats_itself():
    # pi's unmasked samples come from torch's global generator: walk_from seeds it, so a wide pi (std e^-1,
    # heading up) below the corridor gives the same counts twice (unseeded: 16 and 11 corridor entries).
    module = module_reading_the_action_only()
    with torch.no_grad():
        module.policy.net[-1].weight.zero_()
        module.policy.net[-1].bias.copy_(torch.tensor([0.5, 0.0, -1.0, -1.0]))
    first = figure5.walk_from(module, (0.5, 9.9), episodes=20)
    torch.manual_seed(123)
    assert figure5.walk_from(module, (0.5, 9.9), episodes=20) == first
