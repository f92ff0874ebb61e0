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

# The longest test files first (measured, seconds on 2 cores beside another worker): with pytest-xdist's
# --dist loadfile --no-loadscope-reorder (which keeps this order instead of sorting files by their number of
# tests) the two workers start on them at once instead of one finishing them alone at the end.
LONGEST_FIRST = (
    "test_learning.py",  # 440
    "test_fault_tolerance.py",  # 410
    "test_transfer_resume.py",  # 330
    "test_tune_quick.py",  # 190
    "test_offline_data.py",  # 170
    "test_sqrl_algorithm.py",  # 170
    "test_wcpg_algorithm.py",  # 160
    "test_cpo_algorithm.py",  # 90
)


def pytest_collection_modifyitems(items):
    """Order the collected tests longest file first (a stable sort: the rest keep their order)."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


# Sabotage checks break the package on purpose in a scratch copy: run them with `python -m tests.sabotage.run`.
collect_ignore = ["sabotage"]
