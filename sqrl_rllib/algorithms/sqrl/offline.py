"""Safety data on saved SQRL checkpoints: record a pretraining's D_offline, fit Q_safe on it or on a dataset.

The checkpoint-level counterparts of ``write_transitions(algo.offline_buffer, path)``,
``SQRL.fit_safety_critic`` and ``SQRL.fit_safety_critic_offline``, for the Tune pipeline and the benchmarks
(``--record-transitions``, ``pretrain.critic_fit``, ``pretrain.offline_data``): each builds the Algorithm
from the stage's config without remote EnvRunners, restores the checkpoint into it and stops it again.
Schema and streaming: ``sqrl_rllib.offline_data``.
"""

from __future__ import annotations

import json
import os
import pathlib
from collections.abc import Callable
from typing import Any

from sqrl_rllib.offline_data import inspect_transitions, write_transitions


def _restored(config, checkpoint: str):
    algo = config.copy(copy_frozen=False).env_runners(num_env_runners=0).build_algo()
    try:
        algo.restore_from_path(str(checkpoint))
    except BaseException:
        algo.stop()
        raise
    return algo


def record_checkpoint_transitions(config, checkpoint: str, path: str | os.PathLike) -> int:
    """Write the D_offline saved in the pretraining ``checkpoint`` to the Parquet file ``path``.

    ``config`` is the pretraining config (it builds the Algorithm the checkpoint is restored into). An
    existing ``path`` is kept (a resumed pipeline does not write twice). Returns the rows in the file.
    Raises ValueError when the checkpoint holds no replay (saved with ``checkpoint_replay=False``).
    """
    if os.path.exists(path):
        print(f"[sqrl] keeping the recorded transitions in {path}", flush=True)
        return inspect_transitions(path).num_rows
    algo = _restored(config, checkpoint)
    try:
        if len(algo.offline_buffer) == 0:
            raise ValueError(
                f"checkpoint {checkpoint} holds no pretraining replay to record (saved with checkpoint_replay=False?)"
            )
        rows = write_transitions(algo.offline_buffer, path)
        failures = len(algo.offline_buffer.failing_indices())
    finally:
        algo.stop()
    print(f"[sqrl] recorded {rows} pretraining transitions ({failures} failing) to {path}", flush=True)
    return rows


def _fit_once(config, checkpoint: str, directory: str | pathlib.Path, fit: Callable[[Any], dict]) -> str:
    """Restore ``checkpoint``, run ``fit(algo)`` and save the result to ``directory``; return its path.

    ``fit`` returns what ``complete.json`` records. A ``directory`` holding ``complete.json`` (finished by an
    earlier call) is reused as it is, so a resumed pipeline or benchmark never fits twice; the marker is
    written only after the save, so a fit killed half-way is redone.
    """
    directory = pathlib.Path(directory)
    marker = directory / "complete.json"
    if marker.exists():
        print(f"[sqrl] reusing the fitted safety critic in {directory}", flush=True)
        return str(directory)
    algo = _restored(config, checkpoint)
    try:
        record = fit(algo)
        algo.save_to_path(str(directory))
    finally:
        algo.stop()
    marker.write_text(json.dumps(record))
    return str(directory)


def fit_checkpoint_safety_critic(
    config, checkpoint: str, directory: str | pathlib.Path, num_steps: int, failure_fraction: float
) -> str:
    """Save to ``directory`` the pretraining ``checkpoint`` with Q_safe fitted further on its D_offline.

    ``config`` is the pretraining config (it builds the Algorithm the checkpoint is restored into).
    A ``directory`` finished by an earlier call (it holds ``complete.json``) is reused, so a resumed
    pipeline does not fit twice. Pretraining data without any failure is fitted with
    ``failure_fraction=0`` (and says so). Returns the fitted checkpoint's path.
    """

    def fit(algo) -> dict:
        fraction = failure_fraction
        failures = len(algo.offline_buffer.failing_indices())
        if fraction > 0 and failures == 0:
            print("[sqrl] the pretraining data holds no failure: fitting Q_safe with failure_fraction=0", flush=True)
            fraction = 0.0
        stats = algo.fit_safety_critic(num_steps, fraction)
        print(
            f"[sqrl] Q_safe fitted {num_steps} steps on {len(algo.offline_buffer)} pretraining transitions "
            f"({failures} failing, failure_fraction {fraction}): {stats}",
            flush=True,
        )
        return {"num_steps": num_steps, "failure_fraction": fraction, **stats}

    return _fit_once(config, checkpoint, directory, fit)


def fit_checkpoint_safety_critic_offline(
    config,
    checkpoint: str,
    directory: str | pathlib.Path,
    data: str | os.PathLike,
    num_steps: int,
    failure_fraction: float,
    **stream: Any,
) -> str:
    """Save to ``directory`` the pretraining ``checkpoint`` with Q_safe fitted further on the dataset ``data``.

    ``SQRL.fit_safety_critic_offline(data, num_steps, failure_fraction, **stream)`` (``stream``: its
    keyword arguments, e.g. ``include_sac``, ``window_rows``) on the Algorithm ``config`` builds with
    ``checkpoint`` restored. A ``directory`` finished by an earlier call (it holds ``complete.json``) is
    reused, as ``fit_checkpoint_safety_critic`` does. Returns the fitted checkpoint's path.
    """

    def fit(algo) -> dict:
        stats = algo.fit_safety_critic_offline(data, num_steps, failure_fraction, **stream)
        print(
            f"[sqrl] Q_safe fitted {num_steps} steps on the offline data {data} "
            f"(failure_fraction {failure_fraction}): {stats}",
            flush=True,
        )
        return {"data": os.fspath(data), "num_steps": num_steps, "failure_fraction": failure_fraction, **stats}

    return _fit_once(config, checkpoint, directory, fit)
