"""Find and kill exactly the processes a test started (never `ray stop`, which kills every Ray on the host)."""

from __future__ import annotations

import os
import pathlib
import signal
import time


def _ppid(pid: int) -> int | None:
    try:
        # Field 4 of /proc/PID/stat; the command name (field 2) may hold spaces, so split after its ')'.
        return int(pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _cmdline(pid: int) -> str:
    try:
        return pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _pids() -> list[int]:
    return [int(p.name) for p in pathlib.Path("/proc").iterdir() if p.name.isdigit()]


def process_tree(roots: list[int]) -> list[int]:
    """``roots`` and all their descendants that are alive now."""
    children: dict[int, list[int]] = {}
    for pid in _pids():
        parent = _ppid(pid)
        if parent is not None:
            children.setdefault(parent, []).append(pid)
    tree, todo = [], list(roots)
    while todo:
        pid = todo.pop()
        if pid not in tree:
            tree.append(pid)
            todo.extend(children.get(pid, []))
    return tree


def pids_with_cmdline(fragment: str) -> list[int]:
    """Processes whose command line contains ``fragment`` (other than this one)."""
    return [pid for pid in _pids() if pid != os.getpid() and fragment in _cmdline(pid)]


def descendants_named(root: int, fragment: str) -> list[int]:
    """Descendants of ``root`` whose command line (or title, for Ray workers) contains ``fragment``."""
    return [pid for pid in process_tree([root]) if pid != root and fragment in _cmdline(pid)]


def kill_all(pids: list[int], timeout: float = 30.0) -> None:
    """SIGKILL ``pids`` and wait until they are gone (or zombies)."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    end = time.time() + timeout
    while time.time() < end and any(_alive(pid) for pid in pids):
        time.sleep(0.2)


def _alive(pid: int) -> bool:
    try:
        state = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"
