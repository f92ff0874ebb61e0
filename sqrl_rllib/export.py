"""Export a trained SQRL policy and its safety critic for deployment outside RLlib (ONNX + JSON).

Usage::

    python -m sqrl_rllib.export CHECKPOINT OUT_DIR [--eps-safe 0.1] [--num-action-samples 100]

``CHECKPOINT`` is an SQRL Algorithm checkpoint (``algo.save_to_path(...)``, a Tune trial's checkpoint)
or an RLModule checkpoint directory (``module.save_to_path(...)``, or the checkpoint's
``learner_group/learner/rl_module[/default_policy]``). ``OUT_DIR`` receives:

* ``policy.onnx``: ``obs`` [B, obs_dim] -> ``mean``, ``log_std`` [B, act_dim], the inputs of the
  tanh-squashed Gaussian pi(a|s) (log_std already clamped as in the module);
* ``q_safe.onnx``: ``obs`` [B, obs_dim], ``actions`` [B, K, act_dim] (in [-1, 1]) -> ``q_safe`` [B, K],
  the failure probability of each candidate (B and K dynamic);
* ``safe_policy.json``: eps_safe, K, the action bounds and how actions map to them, dims, the ONNX
  opset, the source checkpoint and the package version (see :func:`metadata` for every key).

:class:`sqrl_rllib.deploy.SafePolicy` loads that folder with numpy + onnxruntime only and applies
the safety mask (``docs/deploy.md``). Bad input (not a checkpoint, not an SQRL module) exits with
status 2 and a message.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import pickle
import sys
import warnings
from typing import Any

# The ONNX opset of both graphs; onnxruntime >= 1.14 runs it. Pinned so a torch upgrade cannot change
# what a deployed runtime must support.
ONNX_OPSET = 17
POLICY_FILE, Q_SAFE_FILE, METADATA_FILE = "policy.onnx", "q_safe.onnx", "safe_policy.json"
# Defaults of SQRLConfig (appendix B), used for RLModule checkpoints, which carry no config.
DEFAULT_EPS_SAFE, DEFAULT_NUM_ACTION_SAMPLES = 0.1, 100
ACTION_TRANSFORMS = ("unsquash", "clip", "none")
_ACTION_TRANSFORM_DOC = {
    "unsquash": "env_action = clip(low + (a + 1) * (high - low) / 2, low, high)  (RLlib's normalize_actions)",
    "clip": "env_action = clip(a, low, high)  (RLlib's clip_actions with normalize_actions=False)",
    "none": "env_action = a  (normalize_actions and clip_actions off, or an unbounded action space)",
}


# Where an Algorithm checkpoint keeps its RLModule state.
CHECKPOINT_MODULE = ("learner_group", "learner", "rl_module")


class ExportError(Exception):
    """The checkpoint cannot be exported (not a checkpoint, not an SQRL module); the CLI exits 2."""


def _is_module_checkpoint(path: pathlib.Path) -> bool:
    return (path / "class_and_ctor_args.pkl").is_file() and (path / "metadata.json").is_file()


def resolve_checkpoint(checkpoint: str | pathlib.Path) -> tuple[pathlib.Path, dict[str, Any] | None]:
    """Find the SQRL RLModule checkpoint inside ``checkpoint`` and the Algorithm config, if there is one.

    Returns (RLModule checkpoint directory, the Algorithm's config as a dict or None for an RLModule
    checkpoint). Reads no weights and imports neither Ray nor torch unless it must unpickle the config.
    Raises :class:`ExportError` for anything that is not an RLlib checkpoint directory.
    """
    # Absolute: RLlib reads checkpoints through pyarrow, which takes a relative path for a bad URI.
    path = pathlib.Path(checkpoint).expanduser().resolve()
    if not path.is_dir():
        why = "a file, not a directory" if path.exists() else "no such path"
        raise ExportError(f"{str(checkpoint)!r} is not a checkpoint directory ({why})")
    if (path / "rllib_checkpoint.json").is_file() and (path / "learner_group").is_dir():
        config = _algorithm_config(path)  # first: another algorithm's checkpoint is named as such
        return _single_module_dir(path.joinpath(*CHECKPOINT_MODULE), checkpoint), config
    if _is_module_checkpoint(path):
        return _single_module_dir(path, checkpoint), None
    raise ExportError(
        f"{str(checkpoint)!r} is not an RLlib Algorithm or RLModule checkpoint "
        "(no rllib_checkpoint.json with learner_group/, nor class_and_ctor_args.pkl with metadata.json)"
    )


def _single_module_dir(path: pathlib.Path, checkpoint) -> pathlib.Path:
    """A MultiRLModule checkpoint holds its single-agent module under ``default_policy``."""
    from_multi = path / "default_policy"
    if _is_module_checkpoint(from_multi):
        return from_multi
    if _is_module_checkpoint(path):
        return path
    raise ExportError(f"{str(checkpoint)!r} holds no RLModule checkpoint at {path}")


def _algorithm_config(path: pathlib.Path) -> dict[str, Any]:
    """The config an Algorithm checkpoint was built with (RLlib pickles its state as ctor args)."""
    try:
        with open(path / "class_and_ctor_args.pkl", "rb") as f:
            ctor = pickle.load(f)
        config = ctor["ctor_args_and_kwargs"][0][0]
    except Exception as err:  # noqa: BLE001 - any unreadable file is the same user error
        raise ExportError(f"cannot read the Algorithm config of {str(path)!r}: {err!r}") from err
    if not isinstance(config, dict):
        config = config.get_state() if hasattr(config, "get_state") else vars(config)
    if "eps_safe" not in config or "num_action_samples" not in config:
        raise ExportError(
            f"{str(path)!r} is a checkpoint of {ctor.get('class')!r}, not of SQRL (its config has no eps_safe)"
        )
    return config


def load_sqrl_module(module_dir: pathlib.Path):
    """The SQRL RLModule of an RLModule checkpoint directory, in eval mode; :class:`ExportError` if not SQRL."""
    from ray.rllib.core.rl_module.rl_module import RLModule

    from sqrl_rllib.algorithms.sqrl.torch.sqrl_torch_rl_module import SQRLTorchRLModule

    try:
        module = RLModule.from_checkpoint(module_dir)
    except Exception as err:  # noqa: BLE001
        raise ExportError(f"cannot load the RLModule checkpoint at {str(module_dir)!r}: {err!r}") from err
    if not isinstance(module, SQRLTorchRLModule):
        raise ExportError(
            f"the RLModule at {str(module_dir)!r} is a {type(module).__name__}, not an SQRL module "
            "(SQRLTorchRLModule: tanh-Gaussian policy plus safety critic)"
        )
    module.eval()
    return module


def action_transform_from_config(config: dict[str, Any] | None) -> str:
    """How RLlib maps the module's [-1, 1] actions to the env: "unsquash", "clip" or "none".

    RLlib's ``NormalizeAndClipActions``: ``normalize_actions`` (default True) unsquashes, else
    ``clip_actions`` clips; an RLModule checkpoint has no config, so RLlib's default applies.
    """
    if config is None or config.get("normalize_actions", True):
        return "unsquash"
    return "clip" if config.get("clip_actions", False) else "none"


def _torch_graphs(module):
    """Two plain ``nn.Module`` wrappers around the module's policy and safety critic, as exported."""
    import torch

    class PolicyGraph(torch.nn.Module):
        def __init__(self, policy):
            super().__init__()
            self.policy = policy

        def forward(self, obs):
            mean, log_std = self.policy.distribution_inputs(obs).chunk(2, dim=-1)
            return mean, log_std

    class QSafeGraph(torch.nn.Module):
        def __init__(self, critic):
            super().__init__()
            self.critic = critic

        def forward(self, obs, actions):
            # As SQRLTorchRLModule.q_safe: one pass over all B x K (state, candidate) pairs.
            obs_k = obs.unsqueeze(1).expand(-1, actions.shape[1], -1)
            return self.critic(obs_k, actions)

    return PolicyGraph(module.policy).eval(), QSafeGraph(module.safety_critic).eval()


def export_module(module, out_dir: str | pathlib.Path) -> dict[str, float]:
    """Write ``policy.onnx`` and ``q_safe.onnx`` of an SQRL RLModule into ``out_dir``.

    Both graphs have a dynamic batch axis B (and a dynamic K for Q_safe). After writing, both run once
    in onnxruntime on random inputs; returns their max abs differences to torch
    (``{"policy": .., "q_safe": ..}``) and raises :class:`ExportError` above 1e-4.
    """
    import numpy as np
    import onnxruntime as ort
    import torch

    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    obs_dim = int(np.prod(module.observation_space.shape))
    act_dim = int(np.prod(module.action_space.shape))
    policy_graph, q_graph = _torch_graphs(module)
    gen = torch.Generator().manual_seed(0)
    obs = torch.randn(4, obs_dim, generator=gen)
    actions = torch.rand(4, 3, act_dim, generator=gen) * 2 - 1
    with warnings.catch_warnings():
        # torch >= 2.9 prefers its torch.export-based exporter, which needs the extra onnxscript package;
        # the TorchScript exporter handles these plain MLPs with no further dependency.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            policy_graph,
            (obs,),
            str(out / POLICY_FILE),
            dynamo=False,
            opset_version=ONNX_OPSET,
            input_names=["obs"],
            output_names=["mean", "log_std"],
            dynamic_axes={"obs": {0: "batch"}, "mean": {0: "batch"}, "log_std": {0: "batch"}},
        )
        torch.onnx.export(
            q_graph,
            (obs, actions),
            str(out / Q_SAFE_FILE),
            dynamo=False,
            opset_version=ONNX_OPSET,
            input_names=["obs", "actions"],
            output_names=["q_safe"],
            dynamic_axes={"obs": {0: "batch"}, "actions": {0: "batch", 1: "k"}, "q_safe": {0: "batch", 1: "k"}},
        )
    # Check on other shapes than the traced ones, so a baked-in B or K shows up here.
    obs = torch.randn(7, obs_dim, generator=gen)
    actions = torch.rand(7, 5, act_dim, generator=gen) * 2 - 1
    with torch.no_grad():
        mean, log_std = policy_graph(obs)
        q = q_graph(obs, actions)
    policy_sess = ort.InferenceSession(str(out / POLICY_FILE), providers=["CPUExecutionProvider"])
    q_sess = ort.InferenceSession(str(out / Q_SAFE_FILE), providers=["CPUExecutionProvider"])
    onnx_mean, onnx_log_std = policy_sess.run(None, {"obs": obs.numpy()})
    (onnx_q,) = q_sess.run(None, {"obs": obs.numpy(), "actions": actions.numpy()})
    errors = {
        "policy": float(max(np.abs(onnx_mean - mean.numpy()).max(), np.abs(onnx_log_std - log_std.numpy()).max())),
        "q_safe": float(np.abs(onnx_q - q.numpy()).max()),
    }
    if max(errors.values()) > 1e-4:
        raise ExportError(f"the exported graphs disagree with torch: max abs error {errors}")
    return errors


def metadata(
    module,
    checkpoint: str | pathlib.Path,
    config: dict[str, Any] | None,
    eps_safe: float | None = None,
    num_action_samples: int | None = None,
    action_transform: str | None = None,
) -> dict[str, Any]:
    """The content of ``safe_policy.json``.

    Keys: ``eps_safe`` and ``num_action_samples`` (K), each with a ``*_source`` (the flag, the
    checkpoint's config, or SQRL's default); ``obs_dim``, ``act_dim``; ``action_low``/``action_high``
    (the env's action bounds, lists of act_dim floats, null when unbounded) and ``action_transform``
    (``"unsquash"``, ``"clip"`` or ``"none"``) with its formula in ``action_transform_formula``: the
    policy and Q_safe work in [-1, 1], the env gets the transformed action; ``log_std_min``/``max``;
    ``opset``; the file names; ``phase`` and ``mask_resample_rounds`` of the config (None for an
    RLModule checkpoint; SafePolicy does not resample); ``source_checkpoint`` (absolute path);
    ``sqrl_rllib_version``.
    """
    import numpy as np

    import sqrl_rllib
    from sqrl_rllib.core.networks import LOG_STD_MAX, LOG_STD_MIN

    def pick(flag, key, default):
        if flag is not None:
            return flag, f"--{key.replace('_', '-')}"
        if config is not None:
            return config[key], "checkpoint config"
        return default, "SQRL default (RLModule checkpoint without config)"

    eps, eps_source = pick(eps_safe, "eps_safe", DEFAULT_EPS_SAFE)
    k, k_source = pick(num_action_samples, "num_action_samples", DEFAULT_NUM_ACTION_SAMPLES)
    space = module.action_space
    low = np.asarray(space.low, dtype=np.float64).ravel()
    high = np.asarray(space.high, dtype=np.float64).ravel()
    bounded = bool(np.all(np.isfinite(low)) and np.all(np.isfinite(high)))
    transform = action_transform or action_transform_from_config(config)
    if transform not in ACTION_TRANSFORMS:
        raise ExportError(f"action transform must be one of {ACTION_TRANSFORMS}, got {transform!r}")
    if not bounded and transform != "none":
        # RLlib's unsquash_action and clip_action leave unbounded Box actions as they are.
        transform = "none"
    return {
        "format_version": 1,
        "eps_safe": float(eps),
        "eps_safe_source": eps_source,
        "num_action_samples": int(k),
        "num_action_samples_source": k_source,
        "obs_dim": int(np.prod(module.observation_space.shape)),
        "act_dim": int(np.prod(space.shape)),
        "action_low": low.tolist() if bounded else None,
        "action_high": high.tolist() if bounded else None,
        "action_transform": transform,
        "action_transform_formula": _ACTION_TRANSFORM_DOC[transform],
        "log_std_min": LOG_STD_MIN,
        "log_std_max": LOG_STD_MAX,
        "opset": ONNX_OPSET,
        "policy_file": POLICY_FILE,
        "q_safe_file": Q_SAFE_FILE,
        "phase": None if config is None else config.get("phase"),
        "mask_resample_rounds": None if config is None else config.get("mask_resample_rounds"),
        "source_checkpoint": str(pathlib.Path(checkpoint).resolve()),
        "sqrl_rllib_version": sqrl_rllib.__version__,
    }


def export_checkpoint(
    checkpoint: str | pathlib.Path,
    out_dir: str | pathlib.Path,
    eps_safe: float | None = None,
    num_action_samples: int | None = None,
    action_transform: str | None = None,
) -> dict[str, Any]:
    """Export an SQRL Algorithm or RLModule checkpoint into ``out_dir``; returns the written metadata.

    ``eps_safe``, ``num_action_samples`` and ``action_transform`` override what the checkpoint's
    config says (an RLModule checkpoint has none: SQRL's defaults 0.1 and 100, RLlib's "unsquash").
    Raises :class:`ExportError` on bad input.
    """
    if eps_safe is not None and not 0.0 < eps_safe < 1.0:
        raise ExportError(f"--eps-safe must lie in (0, 1), got {eps_safe}")
    if num_action_samples is not None and num_action_samples < 1:
        raise ExportError(f"--num-action-samples must be >= 1, got {num_action_samples}")
    module_dir, config = resolve_checkpoint(checkpoint)
    module = load_sqrl_module(module_dir)
    meta = metadata(module, checkpoint, config, eps_safe, num_action_samples, action_transform)
    meta["export_max_abs_error"] = export_module(module, out_dir)
    (pathlib.Path(out_dir) / METADATA_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def build_parser() -> argparse.ArgumentParser:
    """The CLI's argument parser."""
    parser = argparse.ArgumentParser(
        prog="python -m sqrl_rllib.export",
        description="Export an SQRL checkpoint's policy and Q_safe as ONNX plus safe_policy.json "
        "(load it with sqrl_rllib.deploy.SafePolicy; see docs/deploy.md).",
    )
    parser.add_argument(
        "checkpoint", help="SQRL Algorithm checkpoint directory, or an RLModule checkpoint directory of an SQRL module"
    )
    parser.add_argument("out_dir", help="output folder for policy.onnx, q_safe.onnx and safe_policy.json")
    parser.add_argument(
        "--eps-safe",
        type=float,
        default=None,
        help="mask threshold in (0, 1) (default: the checkpoint config's eps_safe, else 0.1)",
    )
    parser.add_argument(
        "--num-action-samples",
        type=int,
        default=None,
        help="K, candidates per state of the K-sample mode (default: the checkpoint config's, else 100)",
    )
    parser.add_argument(
        "--action-transform",
        choices=ACTION_TRANSFORMS,
        default=None,
        help="how [-1, 1] actions map to the env's bounds (default: from the config's normalize_actions / "
        "clip_actions, else RLlib's default 'unsquash')",
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    """CLI entry point: export, print a summary; exit 2 with a message on bad input."""
    args = build_parser().parse_args(argv)
    try:
        meta = export_checkpoint(
            args.checkpoint, args.out_dir, args.eps_safe, args.num_action_samples, args.action_transform
        )
    except ExportError as err:
        print(f"sqrl_rllib.export: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    print(
        f"exported {meta['source_checkpoint']} -> {pathlib.Path(args.out_dir).resolve()}: "
        f"{POLICY_FILE}, {Q_SAFE_FILE}, {METADATA_FILE} (eps_safe={meta['eps_safe']}, "
        f"K={meta['num_action_samples']}, opset {ONNX_OPSET}, max abs error vs torch {meta['export_max_abs_error']})"
    )


if __name__ == "__main__":
    main()
