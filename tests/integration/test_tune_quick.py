"""`python -m sqrl_rllib.tune drunk_spider --quick` end to end: table, CSV, Parquet, plots, TensorBoard."""

import json
import subprocess
import sys

import pandas as pd


def test_quick_drunk_spider_pipeline(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "sqrl_rllib.tune", "drunk_spider", "--quick", "--storage-path", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "failure_rate" in proc.stdout and "final_return" in proc.stdout
    run_dir = tmp_path / "drunk_spider_quick"
    table = pd.read_parquet(run_dir / "results.parquet")
    assert list(table["stage"]) == ["pretrain", "finetune"]
    # drunk_spider.yaml fits Q_safe on the pretraining data before fine-tuning (quick: 500 steps).
    fit = json.loads((run_dir / "pretrain_critic_fit" / "complete.json").read_text())
    assert fit["num_steps"] == 500 and fit["safety_loss"] > 0
    assert (table["env_steps"] > 0).all() and (table["episodes"] > 0).all()
    assert pd.read_csv(run_dir / "results.csv").shape == table.shape
    for plot in ("return.png", "cumulative_failures.png"):
        assert (run_dir / plot).stat().st_size > 1000
    events = list(run_dir.glob("*/*/events.out.tfevents.*"))
    assert len(events) >= 2, list(run_dir.rglob("*"))[:50]
