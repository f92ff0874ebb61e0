"""Apply each breakage of ``breakages.py`` in a scratch copy of the repository and run the tests that must catch it.

Usage (from the repository root)::

    OMP_NUM_THREADS=1 .venv/bin/python -m tests.sabotage.run            # every breakage
    OMP_NUM_THREADS=1 .venv/bin/python -m tests.sabotage.run --list     # names and subsets only
    OMP_NUM_THREADS=1 .venv/bin/python -m tests.sabotage.run alpha_not_updated warmup_never_ends

The repository is copied once to a temporary folder (without ``.git``, ``.venv`` and caches); each
breakage patches that copy, runs its subset with this interpreter (``PYTHONPATH`` points at the copy,
so Ray's worker processes import the broken package too), and is undone before the next. The package
in the working tree is never modified. First the unbroken copy must pass every subset (else a "caught"
would mean nothing); then a breakage counts as caught when its subset fails. Prints a table and exits 1
if any breakage went uncaught.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

from tests.sabotage.breakages import BREAKAGES, Breakage

ROOT = pathlib.Path(__file__).resolve().parents[2]
IGNORE = shutil.ignore_patterns(
    ".git", ".venv", "__pycache__", ".pytest_cache", ".ruff_cache", ".hypothesis", "*.egg-info", "results", "runs"
)


def copy_repo(dest: pathlib.Path) -> pathlib.Path:
    """Copy the repository's files (not its history, venv or caches) into ``dest``/repo."""
    target = dest / "repo"
    shutil.copytree(ROOT, target, ignore=IGNORE)
    return target


def run_tests(repo: pathlib.Path, tests: tuple[str, ...], timeout: float) -> tuple[int, str]:
    """Run ``tests`` in ``repo`` with this interpreter; returns (pytest exit code, tail of its output)."""
    env = dict(os.environ, PYTHONPATH=str(repo), OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
    try:
        proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return 124, "timed out"
    return proc.returncode, (proc.stdout + proc.stderr)[-3000:]


def check_imports_copy(repo: pathlib.Path) -> None:
    """The copy, not the editable install of the working tree, must be what the tests import."""
    env = dict(os.environ, PYTHONPATH=str(repo))
    out = subprocess.run(
        [sys.executable, "-c", "import sqrl_rllib; print(sqrl_rllib.__file__)"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if not pathlib.Path(out).resolve().is_relative_to(repo.resolve()):
        raise SystemExit(f"the scratch copy's tests would import {out}, not the copy in {repo}")


def apply(repo: pathlib.Path, breakage: Breakage) -> str:
    """Patch the copy; returns the original text of the file (for :func:`undo`)."""
    path = repo / breakage.path
    text = path.read_text()
    count = text.count(breakage.old)
    if count != 1:
        raise ValueError(f"expected the old text once in {breakage.path}, found it {count} times")
    path.write_text(text.replace(breakage.old, breakage.new))
    return text


def undo(repo: pathlib.Path, breakage: Breakage, original: str) -> None:
    """Restore the file ``breakage`` patched."""
    (repo / breakage.path).write_text(original)


def main(argv: list[str] | None = None) -> int:
    """Run the sabotage checks; returns 0 when every breakage was caught."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="breakages to run (default: all)")
    parser.add_argument("--list", action="store_true", help="print the breakages and their subsets, run nothing")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per pytest run")
    parser.add_argument("--skip-baseline", action="store_true", help="do not first run the subsets unbroken")
    args = parser.parse_args(argv)
    known = {b.name: b for b in BREAKAGES}
    unknown = [n for n in args.names if n not in known]
    if unknown:
        parser.error(f"unknown breakage(s) {unknown}; valid: {', '.join(known)}")
    chosen = [known[n] for n in args.names] if args.names else BREAKAGES
    if args.list:
        for b in chosen:
            print(f"{b.name:40s} {b.path}\n{'':40s} {' '.join(b.tests)}")
        return 0

    with tempfile.TemporaryDirectory(prefix="sqrl-sabotage-") as tmp:
        repo = copy_repo(pathlib.Path(tmp))
        check_imports_copy(repo)
        if not args.skip_baseline:
            subsets = sorted({t for b in chosen for t in b.tests})
            start = time.monotonic()
            code, tail = run_tests(repo, tuple(subsets), args.timeout)
            print(f"baseline (unbroken copy, {len(subsets)} subsets): exit {code}, {time.monotonic() - start:.0f} s")
            if code != 0:
                print(tail)
                raise SystemExit("the unbroken copy fails its subsets: fix that before sabotaging it")
        rows = []
        for breakage in chosen:
            try:
                original = apply(repo, breakage)
            except ValueError as err:  # the code moved: the breakage must be updated, it tests nothing now
                print(f"{breakage.name}: stale patch, {err}", flush=True)
                rows.append((breakage.name, " ".join(t.removeprefix("tests/") for t in breakage.tests), "stale", 0.0))
                continue
            start = time.monotonic()
            try:
                code, tail = run_tests(repo, breakage.tests, args.timeout)
            finally:
                undo(repo, breakage, original)
            seconds = time.monotonic() - start
            # pytest exit 1: tests failed (caught). 0: all passed (missed). Anything else (an error in
            # collection, a timeout) is reported as such, not as a catch.
            caught = {0: "no", 1: "yes"}.get(code, f"error {code}")
            rows.append((breakage.name, " ".join(t.removeprefix("tests/") for t in breakage.tests), caught, seconds))
            print(f"{breakage.name}: caught={caught} ({seconds:.0f} s)", flush=True)
            if caught != "yes":
                print(tail)

    width = max(len(r[0]) for r in rows)
    print()
    print(f"| {'breakage':{width}s} | subset | caught | time (s) |")
    print(f"|{'-' * (width + 2)}|--------|--------|----------|")
    for name, subset, caught, seconds in rows:
        print(f"| {name:{width}s} | {subset} | {caught} | {seconds:.0f} |")
    missed = [r[0] for r in rows if r[2] != "yes"]
    print(f"\n{len(rows) - len(missed)} of {len(rows)} breakages caught" + (f"; missed: {missed}" if missed else ""))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
