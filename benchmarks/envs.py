"""Env-stepping throughput of the sqrl gymnasium envs with random actions.

For every registered ``sqrl/...`` id this measures env steps per second (a) for one env made with
``gymnasium.make`` and (b) for a 4-env ``gymnasium.vector.SyncVectorEnv`` (counted as env steps, i.e.
4 per vector step). A reference, gymnasium's ``Pendulum-v1`` single env, is measured in the same run
so that numbers from different machines can be compared through the ratio ``id / reference``.

Usage::

    python benchmarks/envs.py [--seconds 3] [--task pretrain] [--ids sqrl/DrunkSpider-v0 ...]

The last line printed is ``RESULT key=value ...`` (steps/s rounded to integers, ratios to 4 digits).
"""

from __future__ import annotations

import argparse
import ctypes
import os
import platform
import time

import gymnasium as gym

import sqrl_rllib.envs  # noqa: F401  (registers the sqrl ids)
from sqrl_rllib.envs import ENV_IDS, CheckedEnv

REFERENCE_ID = "Pendulum-v1"
NUM_VECTOR_ENVS = 4
SEED = 0


def _flush_c_stdout() -> None:
    """Flush C-level stdio buffers (pybullet prints its build time from C at import) so that
    such text comes out before ours and ``RESULT`` stays the last line."""
    try:
        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):
        pass


def _short_name(env_id: str) -> str:
    """Key-friendly name of an env id, e.g. ``sqrl/DrunkSpider-v0`` -> ``DrunkSpider``."""
    return env_id.split("/")[-1].split("-v")[0]


def timed_rate(step, steps_per_call: int, seconds: float, calls_per_check: int) -> float:
    """Steps/s of calling ``step()`` (each call = ``steps_per_call`` env steps) for about ``seconds``.

    The clock is read every ``calls_per_check`` calls only, so timing costs stay out of the rate.
    """
    steps = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(calls_per_check):
            step()
        steps += calls_per_check * steps_per_call
        now = time.perf_counter()
        if now >= deadline:
            return steps / (now - start)


def measure_single(env_id: str, seconds: float, env_kwargs: dict | None = None, checked: bool = False) -> float:
    """Env steps/s of one ``gymnasium.make(env_id)`` env stepped with random actions for ``seconds``.

    The env is reset whenever an episode ends (terminated or truncated); resets are inside the timed loop.
    Construction and the first reset are not timed. ``checked`` wraps it in ``CheckedEnv`` as RLlib's env
    creator does (``sqrl_rllib.envs.rllib.make_env``), to price the output checks.
    """
    env = gym.make(env_id, **(env_kwargs or {}))
    if checked:
        env = CheckedEnv(env)
    try:
        env.reset(seed=SEED)
        env.action_space.seed(SEED)
        sample = env.action_space.sample

        def step():
            _, _, terminated, truncated, _ = env.step(sample())
            if terminated or truncated:
                env.reset()

        return timed_rate(step, 1, seconds, calls_per_check=50)
    finally:
        env.close()


def measure_vector(
    env_id: str, seconds: float, num_envs: int = NUM_VECTOR_ENVS, env_kwargs: dict | None = None
) -> float:
    """Env steps/s (``num_envs`` per vector step) of a ``SyncVectorEnv`` of ``num_envs`` copies of ``env_id``.

    Random actions come from the batched action space; the vector env auto-resets finished sub-envs.
    """
    kwargs = env_kwargs or {}
    envs = gym.vector.SyncVectorEnv([lambda: gym.make(env_id, **kwargs) for _ in range(num_envs)])
    try:
        envs.reset(seed=SEED)
        envs.action_space.seed(SEED)
        sample = envs.action_space.sample
        return timed_rate(lambda: envs.step(sample()), num_envs, seconds, calls_per_check=10)
    finally:
        envs.close()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line arguments: ``--seconds`` per measurement, ``--task``, ``--ids``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds per measurement (default 3)")
    parser.add_argument("--task", default="pretrain", choices=["pretrain", "finetune"], help="env task")
    parser.add_argument("--ids", nargs="+", default=list(ENV_IDS), help="env ids to measure (default: all)")
    args = parser.parse_args(argv)
    if args.seconds <= 0:
        parser.error("--seconds must be > 0")
    unknown = [i for i in args.ids if i not in ENV_IDS]
    if unknown:
        parser.error(f"unknown ids {unknown}; valid: {list(ENV_IDS)}")
    return args


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Run all measurements, print the table and the ``RESULT`` line; return the result dict."""
    args = parse_args(argv)
    _flush_c_stdout()
    print(
        f"# {time.strftime('%Y-%m-%d %H:%M:%S %Z')}  python {platform.python_version()}  "
        f"gymnasium {gym.__version__}  cpus={os.cpu_count()}  seconds={args.seconds}  task={args.task}",
        flush=True,
    )
    reference = measure_single(REFERENCE_ID, args.seconds)
    result: dict[str, float] = {"reference": round(reference)}
    rows = []
    for env_id in args.ids:
        kwargs = {"task": args.task}
        single = measure_single(env_id, args.seconds, kwargs)
        vector = measure_vector(env_id, args.seconds, NUM_VECTOR_ENVS, kwargs)
        checked = measure_single(env_id, args.seconds, kwargs, checked=True)
        rows.append((env_id, single, vector))
        name = _short_name(env_id)
        result[f"{name}_checked"] = round(checked)
        result[f"{name}_checked_vs_plain"] = round(checked / single, 4)
        result[f"{name}_single"] = round(single)
        result[f"{name}_vec{NUM_VECTOR_ENVS}"] = round(vector)
        result[f"{name}_single_ratio"] = round(single / reference, 4)
        result[f"{name}_vec{NUM_VECTOR_ENVS}_ratio"] = round(vector / reference, 4)

    header = (
        f"| {'env id':<26} | {'single steps/s':>14} | {f'vec{NUM_VECTOR_ENVS} steps/s':>13} "
        f"| {'single / ref':>12} | {f'vec{NUM_VECTOR_ENVS} / ref':>11} |"
    )
    print(header)
    print("|" + "|".join("-" * (len(cell)) for cell in header.split("|")[1:-1]) + "|")
    print(f"| {REFERENCE_ID + ' (reference)':<26} | {reference:>14,.0f} | {'-':>13} | {1.0:>12.4f} | {'-':>11} |")
    for env_id, single, vector in rows:
        print(
            f"| {env_id:<26} | {single:>14,.0f} | {vector:>13,.0f} "
            f"| {single / reference:>12.4f} | {vector / reference:>11.4f} |"
        )
    print("RESULT " + " ".join(f"{k}={v}" for k, v in result.items()), flush=True)
    return result


if __name__ == "__main__":
    main()
