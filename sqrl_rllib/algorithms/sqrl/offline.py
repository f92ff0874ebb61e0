"""Offline safety data on saved SQRL checkpoints: record a pretraining's D_offline, fit Q_safe from a dataset.

The checkpoint-level counterparts of ``write_transitions(algo.offline_buffer, path)`` and
``SQRL.fit_safety_critic_offline``, for the Tune pipeline (``--record-transitions``,
``pretrain.offline_data``): each builds the Algorithm from the stage's config without remote EnvRunners,
restores the checkpoint into it and stops it again. Schema and streaming: ``sqrl_rllib.offline_data``.
"""

from __future__ import annotations

import json
import os
import pathlib
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
    directory = pathlib.Path(directory)
    marker = directory / "complete.json"
    if marker.exists():
        print(f"[sqrl] reusing the offline-fitted safety critic in {directory}", flush=True)
        return str(directory)
    algo = _restored(config, checkpoint)
    try:
        stats = algo.fit_safety_critic_offline(data, num_steps, failure_fraction, **stream)
        print(
            f"[sqrl] Q_safe fitted {num_steps} steps on the offline data {data} "
            f"(failure_fraction {failure_fraction}): {stats}",
            flush=True,
        )
        algo.save_to_path(str(directory))
    finally:
        algo.stop()
    marker.write_text(
        json.dumps({"data": os.fspath(data), "num_steps": num_steps, "failure_fraction": failure_fraction, **stats})
    )
    return str(directory)
