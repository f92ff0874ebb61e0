"""docs/shield.md's snippet runs as written: stock PPO on DrunkSpider shielded by an SQRL checkpoint."""

import os
import pathlib
import re
import subprocess
import sys

import torch

from sqrl_rllib.algorithms.sqrl.torch.sqrl_torch_rl_module import SQRLTorchRLModule
from sqrl_rllib.envs.drunk_spider import DrunkSpiderEnv

DOC = pathlib.Path(__file__).parents[2] / "docs" / "shield.md"


def test_shield_doc_snippet_runs(tmp_path):
    (snippet,) = [
        b for b in re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S) if "add_safety_shield" in b
    ]
    (checkpoint,) = re.findall(r'add_safety_shield\(config, "([^"]+)"', snippet)
    # The checkpoint the doc names, made here: an (untrained) SQRL module with DrunkSpider's spaces.
    env = DrunkSpiderEnv(task="finetune")
    torch.manual_seed(0)
    module = SQRLTorchRLModule(
        observation_space=env.observation_space, action_space=env.action_space, model_config={"hidden": (16, 16)}
    )
    module.save_to_path(tmp_path / checkpoint)
    run = subprocess.run(
        [sys.executable, "-c", snippet],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert run.returncode == 0, run.stderr[-3000:]
    failures, scores = run.stdout.splitlines()[-2:]
    assert failures.startswith("failures=") and "episodes=" in failures, run.stdout
    # An untrained Q_safe reads ~0.5 everywhere: at eps_safe 0.1 every candidate is vetoed, every step falls back.
    assert scores == "rejected=1.00 fallback=1.00", run.stdout
