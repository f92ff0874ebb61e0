"""The DrunkSpider transfer benchmark's command line: noise-level parsing and method validation."""

import argparse
import pathlib
import subprocess
import sys

import pytest

BENCHMARKS = pathlib.Path(__file__).parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
from drunk_spider_transfer import METHODS, noise_levels  # noqa: E402


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


def test_bad_flags_fail_before_ray_starts():
    for flag in (["--methods", "PPO"], ["--pretrain-noise-levels", "loud"]):
        proc = subprocess.run(
            [sys.executable, str(BENCHMARKS / "drunk_spider_transfer.py"), *flag],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr
