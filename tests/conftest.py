"""Shared test setup: keep torch and Ray small on the 2-core CI machine."""

import os

os.environ.setdefault("RAY_DEDUP_LOGS", "0")
os.environ.setdefault("MUJOCO_GL", "egl")

# Under pytest-xdist each worker gets its own Ray temp dir: ray.init() without an address joins the latest
# cluster it finds recorded there, and must never join one that a test on the other worker started.
_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
if _WORKER:
    os.environ["RAY_TMPDIR"] = f"/tmp/ray_{_WORKER}"
    os.makedirs(os.environ["RAY_TMPDIR"], exist_ok=True)

# Sabotage checks break the package on purpose in a scratch copy: run them with `python -m tests.sabotage.run`.
collect_ignore = ["sabotage"]
