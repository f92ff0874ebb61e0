"""docs/own_env.md's snippets run as written: its ``# file:`` blocks are written to a scratch directory, then
its ``--dry-run`` command and its Python block are run there (issue 18)."""

from __future__ import annotations

import os
import pathlib
import re
import shlex
import subprocess
import sys

DOC = pathlib.Path(__file__).parents[2] / "docs" / "own_env.md"
FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)


def _blocks() -> list[tuple[str, str]]:
    return FENCE.findall(DOC.read_text())


def _write_files(directory: pathlib.Path) -> list[str]:
    names = []
    for _, body in _blocks():
        first = body.splitlines()[0]
        if first.startswith("# file: "):
            names.append(first.removeprefix("# file: ").strip())
            (directory / names[-1]).write_text(body)
    return names


def _run(argv: list[str], cwd: pathlib.Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(cwd)}
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_doc_dry_run_command_validates_the_doc_task(tmp_path):
    assert _write_files(tmp_path) == ["my_task.py", "my_task.yaml"]
    commands = [
        line
        for lang, body in _blocks()
        if lang == "bash"
        for line in body.splitlines()
        if "my_task.yaml --dry-run" in line
    ]
    assert commands == ["python -m sqrl_rllib.tune my_task.yaml --dry-run"]
    argv = shlex.split(commands[0])
    proc = _run([sys.executable, *argv[1:]], tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    out = proc.stdout
    assert "env my_task:make_env (failure {'python': 'my_task:spins_too_fast'})" in out
    # Grid eps_safe [0.05, 0.1] for SQRL, one SAC trial: 3 fine-tuning trials of 10000 steps.
    assert "finetune: 3 trial(s)" in out and "10000 env steps each" in out


def test_doc_python_block_runs_and_prints_the_registry_name(tmp_path):
    _write_files(tmp_path)
    code = [body for lang, body in _blocks() if lang == "python" and not body.startswith("# file: ")]
    assert len(code) == 1
    (tmp_path / "snippet.py").write_text(code[0])
    proc = _run([sys.executable, "snippet.py"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "my_task:make_env|python.my_task:spins_too_fast"
    # The comment under the print says what it prints.
    assert "# my_task:make_env|python.my_task:spins_too_fast" in code[0]


def test_doc_lists_every_failure_form_and_the_probe_length():
    from sqrl_rllib.envs.failure_spec import FAILURE_KEYS
    from sqrl_rllib.envs.own_env import PROBE_STEPS

    text = DOC.read_text()
    for key in FAILURE_KEYS:
        assert f"{key}:" in text or f"`{key}`" in text, key
    assert f"{PROBE_STEPS} seeded random steps" in text
