"""Per-call latency of the exported safe policy (onnxruntime) vs the torch RLModule's mask, one state at a time.

Both sides do one env step's work at batch 1: the policy's forward pass, K candidates from pi, one Q_safe
pass over them and the masked choice: ``SafePolicy.act(obs, deterministic=...)`` against
``module.policy.distribution_inputs`` + ``module.masked_actions`` under ``torch.no_grad`` (what the mask
connector runs per step). Both use one thread. Rounds of the two alternate, so background load hits both
alike; the median round is reported.

Usage: python benchmarks/export_latency.py [CHECKPOINT] [--num-action-samples 100] [--calls 500] [--rounds 7]
Without CHECKPOINT a fresh SQRL module with DrunkSpider's spaces and the paper's 2 x 256 networks is
exported into a temporary folder. The last line is
``RESULT onnx_vs_torch=.. onnx_us=.. torch_us=.. deterministic_onnx_vs_torch=..`` (ratios of the median
per-call times, K-sample mode first; below 1: the export is faster).
"""

from __future__ import annotations

import argparse
import pathlib
import statistics
import tempfile
import time
from collections.abc import Callable

import numpy as np
import torch


def us_per_call(fn: Callable[[], object], calls: int) -> float:
    """Mean wall time of ``fn()`` over ``calls`` calls, in microseconds."""
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1e6


def fresh_module_checkpoint(folder: pathlib.Path) -> pathlib.Path:
    """An untrained SQRL RLModule (DrunkSpider spaces, hidden 256 x 256) saved as an RLModule checkpoint."""
    from sqrl_rllib.algorithms.sqrl.torch.sqrl_torch_rl_module import SQRLTorchRLModule
    from sqrl_rllib.envs.drunk_spider import DrunkSpiderEnv

    env = DrunkSpiderEnv(task="finetune")
    module = SQRLTorchRLModule(
        observation_space=env.observation_space, action_space=env.action_space, model_config={"hidden": (256, 256)}
    )
    module.save_to_path(folder / "module")
    return folder / "module"


def main() -> None:
    """Export, time both paths in alternating rounds, print the table and the RESULT line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", nargs="?", default=None, help="SQRL Algorithm or RLModule checkpoint")
    parser.add_argument("--num-action-samples", type=int, default=100, help="K candidates per call")
    parser.add_argument("--eps-safe", type=float, default=None, help="mask threshold (default: the checkpoint's)")
    parser.add_argument("--calls", type=int, default=500, help="calls per timed round")
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds per path and mode (median reported)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the observations and both RNGs")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)

    from sqrl_rllib.deploy import SafePolicy
    from sqrl_rllib.export import export_checkpoint, load_sqrl_module, resolve_checkpoint

    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = args.checkpoint or fresh_module_checkpoint(pathlib.Path(tmp))
        meta = export_checkpoint(checkpoint, pathlib.Path(tmp) / "out", args.eps_safe, args.num_action_samples)
        policy = SafePolicy.load(pathlib.Path(tmp) / "out", seed=args.seed, num_threads=1)
        module = load_sqrl_module(resolve_checkpoint(checkpoint)[0])
    k, eps = meta["num_action_samples"], meta["eps_safe"]
    space = module.observation_space
    obs = np.random.default_rng(args.seed).uniform(space.low, space.high).astype(np.float32)
    obs_t = torch.as_tensor(obs)[None]
    generator = torch.Generator().manual_seed(args.seed)

    def torch_step(explore: bool) -> Callable[[], object]:
        def step():
            with torch.no_grad():
                dist_inputs = module.policy.distribution_inputs(obs_t)
                return module.masked_actions(obs_t, dist_inputs, k, eps, "finetune", explore, generator)

        return step

    paths = {
        ("onnx", "k-sample"): lambda: policy.act(obs, deterministic=False),
        ("torch", "k-sample"): torch_step(True),
        ("onnx", "deterministic"): lambda: policy.act(obs, deterministic=True),
        ("torch", "deterministic"): torch_step(False),
    }
    times: dict[tuple[str, str], list[float]] = {key: [] for key in paths}
    for fn in paths.values():
        us_per_call(fn, 50)  # warm-up: allocator, onnxruntime's first runs
    for _ in range(args.rounds):
        for key, fn in paths.items():
            times[key].append(us_per_call(fn, args.calls))
    median = {key: statistics.median(values) for key, values in times.items()}

    print(
        f"batch 1, K={k}, obs_dim={meta['obs_dim']}, act_dim={meta['act_dim']}, 1 thread each, "
        f"{args.rounds} rounds x {args.calls} calls, checkpoint={checkpoint if args.checkpoint else 'fresh 2x256'}"
    )
    print("  mode           onnx us/call  torch us/call  onnx/torch")
    for mode in ("k-sample", "deterministic"):
        onnx_us, torch_us = median[("onnx", mode)], median[("torch", mode)]
        print(f"  {mode:13s}  {onnx_us:12.1f}  {torch_us:13.1f}  {onnx_us / torch_us:10.3f}")
    ratio = median[("onnx", "k-sample")] / median[("torch", "k-sample")]
    det_ratio = median[("onnx", "deterministic")] / median[("torch", "deterministic")]
    print(
        f"RESULT onnx_vs_torch={ratio:.3f} onnx_us={median[('onnx', 'k-sample')]:.1f} "
        f"torch_us={median[('torch', 'k-sample')]:.1f} deterministic_onnx_vs_torch={det_ratio:.3f}"
    )


if __name__ == "__main__":
    main()
