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
    # One torch / OpenMP thread per worker (subprocesses inherit it): with two workers on two cores, torch's
    # default of one thread per core oversubscribes the box, and its threads then wait on each other.
    # Measured: test_transfer_resume.py beside one busy core takes 125 s with the default, 39 s with one.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)

# The longest test files first (measured 2026-12-06, seconds on 2 cores beside another worker): with
# pytest-xdist's --dist loadfile --no-loadscope-reorder (which keeps this order instead of sorting files by
# their number of tests) the two workers start on them at once instead of one finishing them alone at the end.
LONGEST_FIRST = (
    "test_transfer_learning.py",  # 450 (beside one other run)
    "test_tune_quick.py",  # 165
    "test_fault_tolerance.py",  # 136
    "test_rs_learning.py",  # 90 (measured alone: 90 s of CPU, 197 s beside four training runs)
    "test_offline_data.py",  # 75
    "test_learning.py",  # 74
    "test_wcpg_algorithm.py",  # 70
    "test_job_submit.py",  # 69
    "test_cpo_algorithm.py",  # 66
    "test_sqrl_algorithm.py",  # 55
    "test_experiments_start.py",  # 54
    "test_transfer_resume.py",  # 40
)


def pytest_collection_modifyitems(items):
    """Order the collected tests longest file first (a stable sort: the rest keep their order)."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


# Sabotage checks break the package on purpose in a scratch copy: run them with `python -m tests.sabotage.run`.
collect_ignore = ["sabotage"]
