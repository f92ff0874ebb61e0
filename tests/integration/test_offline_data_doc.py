"""docs/offline_data.md's Python snippet runs as written: record a short pretraining, fit a fresh Q_safe from it."""

import pathlib
import re
import subprocess
import sys

import pytest

DOC = pathlib.Path(__file__).parents[2] / "docs" / "offline_data.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), flags=re.S)


@pytest.mark.slow
def test_offline_data_doc_snippet_runs(tmp_path):
    (snippet,) = [b for b in blocks("python") if "fit_safety_critic_offline" in b]
    run = subprocess.run([sys.executable, "-c", snippet], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert (tmp_path / "transitions.parquet").exists()
    lines = [line for line in run.stdout.splitlines() if line.startswith(("TransitionData(", "{"))]
    assert lines[0].startswith("TransitionData(") and "obs_dim=2, act_dim=2" in lines[0], run.stdout
    assert "'safety_loss'" in lines[1], run.stdout


def test_offline_data_doc_yaml_keys_are_the_documented_ones():
    import yaml

    from sqrl_rllib.experiments import OFFLINE_DATA_DEFAULTS, OFFLINE_DATA_KEYS

    (block,) = [b for b in blocks("yaml") if "offline_data" in b]
    documented = yaml.safe_load(block)["pretrain"]["offline_data"]
    assert set(documented) == set(OFFLINE_DATA_KEYS)
    assert {k: documented[k] for k in OFFLINE_DATA_DEFAULTS} == OFFLINE_DATA_DEFAULTS
