"""Ctrl+C or kill stops a run where it is, says how to resume it, and --resume finishes it.

Before: Tune ends a run early on Ctrl+C and returns as if done, so the pipeline went on to fine-tune from
unfinished pretraining; and a stage with two algorithm classes (Tune runs in threads) hung, waiting for
every trial's whole budget.
"""

import signal
import subprocess
import sys
import time

import pandas as pd

from tests.integration.processes import kill_all, process_tree
from tests.integration.test_fault_tolerance import wait_for

QUICK = ["-m", "sqrl_rllib.tune", "drunk_spider", "--quick", "--set", "quick.pretrain_steps=8000"]


def interrupt_during_pretraining(
    args: list[str], run_dir, classes: list[str], signum: int = signal.SIGINT
) -> tuple[int, str, float]:
    """Start ``args``, send ``signum`` once every class's pretraining trial has reported; (status, output,
    seconds from the signal to the exit). The run may inherit SIGINT ignored (a background shell's), as a
    user's ``nohup ... &`` would: the CLI must stop on it all the same."""
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        wait_for(
            lambda: all(list(run_dir.glob(f"{stage}/*/result.json")) for stage in classes),
            timeout=600,
        )
        sent = time.time()
        proc.send_signal(signum)
        out, _ = proc.communicate(timeout=180)
        took = time.time() - sent
    finally:
        tree = process_tree([proc.pid])
        kill_all(tree)
        proc.wait()
    return proc.returncode, out, took


def test_ctrl_c_stops_the_pretraining_stage_without_fine_tuning(tmp_path):
    run_dir = tmp_path / "drunk_spider_quick"
    args = [sys.executable, *QUICK, "--methods", "sqrl", "--storage-path", str(tmp_path)]
    status, out, took = interrupt_during_pretraining(args, run_dir, ["pretrain"])
    assert status == 130, out[-3000:]
    assert "interrupted" in out and "--resume" in out, out[-3000:]
    assert not (run_dir / "finetune").exists(), "fine-tuning started from an unfinished pretraining"
    assert took < 120, took


def test_kill_stops_a_stage_of_two_algorithm_classes_and_resume_finishes_it(tmp_path):
    run_dir = tmp_path / "drunk_spider_quick"
    args = [sys.executable, *QUICK, "--methods", "sqrl,cpo", "--storage-path", str(tmp_path)]
    # SIGTERM (a plain kill) stops it the same way.
    status, out, took = interrupt_during_pretraining(args, run_dir, ["pretrain", "pretrain_cpo"], signal.SIGTERM)
    assert status == 130, out[-3000:]
    assert "--resume" in out and took < 120, (took, out[-3000:])
    assert not (run_dir / "finetune").exists()

    resumed = subprocess.run([*args, "--resume"], capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    table = pd.read_csv(run_dir / "results.csv")
    trials = table[table["kind"] == "trial"]
    assert set(trials["method"]) == {"sqrl", "cpo"} and set(trials["stage"]) == {"pretrain", "finetune"}
    assert (trials.loc[trials["stage"] == "pretrain", "env_steps"] >= 8000).all()
