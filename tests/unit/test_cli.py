"""Bad input to `python -m sqrl_rllib.tune` exits 2 with one clear paragraph, before Ray starts."""

import subprocess
import sys

import pytest
import ray

from sqrl_rllib.tune import main


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["spiderr"], "Unknown experiment 'spiderr'"),
        (["drunk_spider", "--set", "finetune.sqrl.eps_safee=0.1"], "unknown key 'eps_safee'"),
        (["drunk_spider", "--set", "finetune.sqrl.eps_safe=1.5"], "eps_safe"),
        (["drunk_spider", "--set", "pretrain.sqrl.phase=train"], "phase"),
        (["drunk_spider", "--set", "finetune.grid.eps_safe=[0.1,-2]"], "eps_safe"),
        (["drunk_spider", "--set", "pretrain.env_config.task=transfer"], "task"),
        (["drunk_spider", "--set", "pretrain.sqrl.num_action_samples=0"], "num_action_samples"),
        (["drunk_spider", "--set", "nonsense"], "KEY=VALUE"),
        (["drunk_spider", "--num-seeds", "0"], "--num-seeds"),
        (["drunk_spider", "--set", "pretrain.critic_fit.num_steps=0"], "critic_fit.num_steps"),
        (["drunk_spider", "--set", "pretrain.critic_fit.failure_fraction=1.0"], "critic_fit.failure_fraction"),
        (["drunk_spider", "--set", "pretrain.critic_fit.steps=10"], "unknown key 'steps'"),
        (["drunk_spider", "--set", "finetune.critic_fit.num_steps=10"], "finetune.critic_fit is not supported"),
        (["drunk_spider", "--set", "pretrain.sqrl.checkpoint_replay=false"], "checkpoint_replay"),
    ],
)
def test_bad_input_exits_2_without_ray(argv, needle, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
    assert not ray.is_initialized()


def test_malformed_yaml_exits_2(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("env: [unclosed\n")
    assert main([str(bad)]) == 2
    assert "Malformed YAML" in capsys.readouterr().err


def test_unknown_key_lists_valid_choices(capsys):
    assert main(["drunk_spider", "--set", "pretrain.sqrl.eps=0.1"]) == 2
    err = capsys.readouterr().err
    assert "eps_safe" in err and "gamma_safe" in err


def test_cli_subprocess_reports_unknown_experiment():
    proc = subprocess.run(
        [sys.executable, "-m", "sqrl_rllib.tune", "nope"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2
    assert "Valid names: cube, drunk_spider, minitaur_friction, minitaur_velocity" in proc.stderr
    assert "Started a local Ray instance" not in proc.stderr + proc.stdout
