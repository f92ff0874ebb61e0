"""The DrunkSpider transfer benchmark's command line: noise levels, run names and flag validation."""

import argparse
import pathlib
import subprocess
import sys

import pytest

BENCHMARKS = pathlib.Path(__file__).parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
from drunk_spider_transfer import (  # noqa: E402
    EPS_SAFE,
    METHODS,
    config,
    critic_fit_name,
    noise_levels,
    run_name,
    sets_name,
)


def test_noise_levels_parse_ranges_lists_and_none():
    assert noise_levels("0:0.4:5") == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])
    assert noise_levels("0.1,0.2") == [0.1, 0.2]
    assert noise_levels("") is None
    with pytest.raises(argparse.ArgumentTypeError, match="LO:HI:N"):
        noise_levels("0:0.4")


def test_methods_compare_sqrl_with_sac_from_the_same_checkpoint():
    assert METHODS["SAC"] == {"mask_enabled": False, "lagrangian": False}
    assert METHODS["SQRL"] == {}
    assert METHODS["SQRL-online"] == {"finetune_safety_critic": True}


def test_run_names_keep_default_runs_and_share_sac_across_thresholds():
    assert run_name("SQRL", EPS_SAFE) == "SQRL"
    assert run_name("SQRL", 0.003) == "SQRL-eps0.003"
    assert run_name("SQRL-online", 0.02) == "SQRL-online-eps0.02"
    assert run_name("SAC", 0.003) == "SAC"
    fit = critic_fit_name(4000, 0.2)
    assert fit == "fit4000f0.2"
    assert run_name("SQRL", EPS_SAFE, fit) == "SQRL-fit4000f0.2"
    assert run_name("SQRL", 0.02, fit) == "SQRL-eps0.02-fit4000f0.2"
    # SAC never reads Q_safe, so a fitted critic does not make it a different run.
    assert run_name("SAC", EPS_SAFE, fit) == "SAC"
    # --finetune-set overrides make another run (its own checkpoint directory), for every method.
    sets = sets_name({"mask_resample_rounds": 4, "eps_safe": 0.05})
    assert sets == "eps_safe0.05-mask_resample_rounds4"
    assert run_name("SQRL", EPS_SAFE, fit, sets) == "SQRL-fit4000f0.2-eps_safe0.05-mask_resample_rounds4"
    assert run_name("SAC", EPS_SAFE, fit, sets) == "SAC-eps_safe0.05-mask_resample_rounds4"
    assert sets_name({}) == ""


def test_finetune_threshold_reaches_the_config():
    assert config("finetune", "finetune", 0, eps_safe=0.003).eps_safe == 0.003
    assert config("pretrain", "pretrain", 0).eps_safe == EPS_SAFE


def test_bad_flags_fail_before_ray_starts():
    for flag in (
        ["--methods", "PPO"],
        ["--pretrain-noise-levels", "loud"],
        ["--finetune-eps-safe", "1.5"],
        ["--critic-failure-fraction", "1"],
        ["--critic-fit-steps", "-3"],
    ):
        proc = subprocess.run(
            [sys.executable, str(BENCHMARKS / "drunk_spider_transfer.py"), *flag],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr
