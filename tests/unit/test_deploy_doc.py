"""docs/deploy.md's snippets run as written: the export command, then SafePolicy on DrunkSpider."""

import pathlib
import re
import shlex
import subprocess
import sys

import gymnasium as gym
import torch

from sqrl_rllib.algorithms.sqrl.torch.sqrl_torch_rl_module import SQRLTorchRLModule
from sqrl_rllib.envs.drunk_spider import DrunkSpiderEnv

DOC = pathlib.Path(__file__).parents[2] / "docs" / "deploy.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), flags=re.S)


def test_deploy_doc_snippets_run(tmp_path):
    (command,) = [b.strip() for b in blocks("bash") if "sqrl_rllib.export" in b]
    (snippet,) = [b for b in blocks("python") if "SafePolicy" in b]
    argv = shlex.split(command)
    assert argv[:3] == ["python", "-m", "sqrl_rllib.export"]
    # The checkpoint the doc names, made here: an SQRL module with DrunkSpider's spaces.
    env = DrunkSpiderEnv(task="finetune")
    torch.manual_seed(0)
    module = SQRLTorchRLModule(
        observation_space=env.observation_space, action_space=env.action_space, model_config={"hidden": (16, 16)}
    )
    module.save_to_path(tmp_path / argv[3])
    assert isinstance(env.action_space, gym.spaces.Box)

    export = subprocess.run([sys.executable, *argv[1:]], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert export.returncode == 0, export.stderr
    run = subprocess.run([sys.executable, "-c", snippet], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].startswith("q_safe=") and "failure=" in lines[0], run.stdout
    assert lines[1].startswith("(2, 2)"), run.stdout  # the batch of two observations, act_dim 2
