"""Every shipped experiment starts on a 2-CPU Ray under --quick (issue 19: no trial left PENDING forever).

drunk_spider's whole quick run is tested in test_tune_quick.py; the others (whose files ask for 3 and 5
CPUs per trial) run here until their first pretraining trial is RUNNING, then are stopped.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from tests.integration.processes import kill_all, process_tree

# The CLI connects to an initialised Ray: start one with exactly 2 CPUs, then hand over to the CLI.
LAUNCH = (
    "import sys, ray; ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False); "
    "from sqrl_rllib.tune import main; sys.exit(main(sys.argv[1:]))"
)


@pytest.mark.parametrize("name", ["cube", "minitaur_velocity", "minitaur_friction"])
def test_quick_experiment_reaches_running_on_two_cpus(name, tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-c", LAUNCH, name, "--quick", "--storage-path", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    lines, started = [], False
    deadline = time.monotonic() + 300
    try:
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("[pretrain] ") and " started (" in line:
                started = True
                break
            if time.monotonic() > deadline:
                break
    finally:
        kill_all(process_tree([proc.pid]))
    output = "".join(lines)
    assert started, output[-3000:]
    # The file asks for more than 2 CPUs; --quick samples in the trial process (one CPU per trial), so
    # nothing needs shrinking (tests/unit/test_resources.py covers the announced shrink).
    assert "'num_env_runners': 0" in output
    assert "Configuration for experiment" not in output  # Tune's console box stays in the log file
