"""Nothing lost when a worker dies: kill -9 an EnvRunner mid-run; kill the whole run, then --resume."""

import os
import signal
import subprocess
import sys
import time

import pandas as pd

from tests.integration.processes import descendants_named, kill_all, process_tree

QUICK = ["-m", "sqrl_rllib.tune", "drunk_spider", "--quick", "--methods", "sqrl", "--set", "quick.pretrain_steps=3000"]


def wait_for(predicate, timeout: float, poll: float = 0.5):
    end = time.time() + timeout
    while time.time() < end:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise TimeoutError("condition not reached")


def test_killed_env_runner_is_replaced_and_run_completes(tmp_path):
    # --quick samples in the trial's own process; one remote EnvRunner gives the test something to kill.
    proc = subprocess.Popen(
        [sys.executable, *QUICK, "--set", "quick.num_env_runners=1", "--storage-path", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        # Only this run's runners: the embedded Ray (raylet, workers) is the driver's process tree.
        runner = wait_for(lambda: descendants_named(proc.pid, "ray::SingleAgentEnvRunner"), timeout=300)[0]
        time.sleep(5)  # mid-sampling
        os.kill(runner, signal.SIGKILL)
        out, _ = proc.communicate(timeout=900)
    finally:
        if proc.poll() is None:
            kill_all(process_tree([proc.pid]))
    assert proc.returncode == 0, out[-4000:]
    table = pd.read_csv(tmp_path / "drunk_spider_quick" / "results.csv")
    assert list(table["stage"]) == ["pretrain", "finetune"]
    assert table.loc[0, "env_steps"] >= 3000


def test_resume_after_killing_the_run_does_not_redo_finished_trials(tmp_path):
    args = [sys.executable, *QUICK, "--storage-path", str(tmp_path)]
    run_dir = tmp_path / "drunk_spider_quick"
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        # Kill everything once fine-tuning has started, i.e. pretraining finished.
        wait_for(lambda: list((run_dir / "finetune").glob("SQRL*")), timeout=600)
        time.sleep(3)
    finally:
        # The whole run: driver, its embedded Ray (GCS, raylet) and every worker.
        kill_all(process_tree([proc.pid]))
        proc.wait()
    pretrain_trials = list((run_dir / "pretrain").glob("SQRL*"))
    assert len(pretrain_trials) == 1
    progress = pretrain_trials[0] / "progress.csv"
    rows_before = len(pd.read_csv(progress))

    resumed = subprocess.run([*args, "--resume"], capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "resuming stage 'pretrain'" in resumed.stdout
    # The finished pretraining trial was not run again.
    assert list((run_dir / "pretrain").glob("SQRL*")) == pretrain_trials
    assert len(pd.read_csv(progress)) == rows_before
    table = pd.read_csv(run_dir / "results.csv")
    assert list(table["stage"]) == ["pretrain", "finetune"] and table["episodes"].gt(0).all()
