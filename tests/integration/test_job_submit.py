"""`ray start --head` on 127.0.0.1 with token auth, then `ray job submit -- python -m sqrl_rllib.tune ...`."""

import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request

import pytest

from tests.integration.processes import kill_all, pids_with_cmdline, process_tree

BIN = pathlib.Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))  # free on every interface: Ray's agents bind the node's address, not loopback
        return s.getsockname()[1]


@pytest.fixture
def token_cluster(tmp_path):
    env = dict(os.environ, RAY_AUTH_MODE="token")
    port, dash = free_port(), free_port()
    # Every port Ray would otherwise take from a fixed default (52365, 8085, ...), so that another
    # Ray instance on the host does not make this one's dashboard agent fail to start.
    agent_ports = [
        ("--dashboard-agent-listen-port", free_port()), ("--dashboard-agent-grpc-port", free_port()),
        ("--runtime-env-agent-port", free_port()), ("--metrics-export-port", free_port()),
        ("--ray-client-server-port", free_port()),
    ]  # fmt: skip
    # A short private temp dir (unix socket paths are length-limited) marks this cluster's processes.
    temp_dir = tempfile.mkdtemp(prefix="rayt", dir="/tmp")
    subprocess.run(
        [
            str(BIN / "ray"), "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port),
            "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dash), "--num-cpus", "2",
            "--temp-dir", temp_dir, "--disable-usage-stats",
            *[str(x) for flag_port in agent_ports for x in flag_port],
        ],
        env=env, check=True, capture_output=True, timeout=180,
    )  # fmt: skip
    try:
        yield env, f"http://127.0.0.1:{dash}"
    finally:
        # Not `ray stop`: it would kill every Ray instance on the host, not just this test's.
        kill_all(process_tree(pids_with_cmdline(temp_dir)))
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_job_submit_with_token_runs_quick_pipeline_and_rejects_tokenless(token_cluster, tmp_path):
    env, address = token_cluster
    storage = tmp_path / "results"
    proc = subprocess.run(
        [
            str(BIN / "ray"), "job", "submit", "--address", address, "--",
            str(BIN / "python"), "-m", "sqrl_rllib.tune", "drunk_spider", "--quick", "--storage-path", str(storage),
        ],
        env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "succeeded" in proc.stdout
    assert "failure_rate" in proc.stdout
    assert (storage / "drunk_spider_quick" / "results.parquet").exists()

    # The same jobs API without the token is refused.
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{address}/api/jobs/", timeout=30)
    assert err.value.code in (401, 403)
    # ...and with it, listed.
    token = (pathlib.Path.home() / ".ray" / "auth_token").read_text().strip()
    request = urllib.request.Request(f"{address}/api/jobs/", headers={"Authorization": f"Bearer {token}"})
    jobs = json.loads(urllib.request.urlopen(request, timeout=30).read())
    assert any(job.get("status") == "SUCCEEDED" for job in jobs)
