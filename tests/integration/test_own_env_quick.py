"""`python -m sqrl_rllib.tune examples/pendulum --quick` end to end (issue 18): a plain gymnasium id with a
YAML failure spec runs both stages, each on its own env_config, and its failures reach the results table."""

import json
import pathlib
import subprocess
import sys

import pandas as pd

# One method, one 512-step iteration per stage (RLlib samples at least 500 steps per iteration): the
# shortest run that pretrains, hands the checkpoint over and fine-tunes.
QUICK = ["--quick", "--methods", "sqrl", "--set", "quick.pretrain_steps=500", "--set", "quick.finetune_steps=500"]
# Sampling in the trial process (no EnvRunner actor to start per trial) keeps the run short on 2 cores.
QUICK += ["--set", "resources.num_env_runners=0"]


def test_quick_pendulum_example_pipeline(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "sqrl_rllib.tune", "examples/pendulum", *QUICK, "--storage-path", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "env Pendulum-v1 (failure {'obs': 2, 'above': 6.0})" in proc.stdout
    table = pd.read_parquet(tmp_path / "example_pendulum_quick" / "results.parquet")
    assert list(table["stage"]) == ["pretrain", "finetune"] and list(table["method"]) == ["sqrl", "sqrl"]
    pre, fine = (table.iloc[i] for i in (0, 1))
    assert pre["env_steps"] >= 500 and fine["env_steps"] >= 500
    # Pendulum never terminates by itself and truncates at 200 steps: 512 steps hold at most 3 truncated
    # episodes, so more episodes than that, and any failure, come from the {obs: 2, above: 6.0} predicate.
    # A random policy fails in about half its episodes (pendulum.yaml); seed 0 fails in the first 512 steps.
    assert pre["failures"] >= 1 and pre["episodes"] >= 3
    for row, g in ((pre, 10.0), (fine, 11.0)):
        params = json.loads((pathlib.Path(row["trial_dir"]) / "params.json").read_text())
        assert params["env"] == "Pendulum-v1|obs2>6.0"
        assert params["env_config"] == {"g": g}
    params = json.loads((pathlib.Path(fine["trial_dir"]) / "params.json").read_text())
    assert params["pretrained_checkpoint"].startswith(str(pre["trial_dir"]))
