"""Shared test setup: keep torch and Ray small on the 2-core CI machine."""

import os

os.environ.setdefault("RAY_DEDUP_LOGS", "0")
os.environ.setdefault("MUJOCO_GL", "egl")

# Sabotage checks break the package on purpose in a scratch copy: run them with `python -m tests.sabotage.run`.
collect_ignore = ["sabotage"]
