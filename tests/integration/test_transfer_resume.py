"""The transfer benchmark resumes: a finished pretraining is reused and a fine-tuning run continues."""

import json
import pathlib
import subprocess
import sys

SCRIPT = pathlib.Path(__file__).parents[2] / "benchmarks" / "drunk_spider_transfer.py"


def transfer(*flags: str) -> str:
    """Run the transfer script with short runs; returns its stdout."""
    cmd = [sys.executable, str(SCRIPT), "--pretrain-steps", "1000", "--seeds", "1", "--methods", "SQRL", *flags]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def test_resume_reuses_finished_runs_and_continues_fine_tuning(tmp_path):
    transfer("--finetune-steps", "1000", "--checkpoint-dir", str(tmp_path))
    first = json.loads((tmp_path / "SQRL_0" / "complete.json").read_text())
    out = transfer("--finetune-steps", "2000", "--checkpoint-dir", str(tmp_path), "--resume")
    assert "[pretrain seed=0] reusing the finished run" in out
    assert "[SQRL seed=0] resumed from" in out
    second = json.loads((tmp_path / "SQRL_0" / "complete.json").read_text())
    # One more 1024-step iteration on top of the first run's: counters continue, nothing restarts.
    assert first["steps"] == 1024 and second["steps"] == 2048
    assert second["episodes"] > first["episodes"] and second["failures"] >= first["failures"]
