"""The project's Adam: fused on CPU, and the same update as torch's reference foreach Adam."""

import pathlib
import subprocess
import sys

import torch

from sqrl_rllib.core.networks import EnsembleQ, SquashedGaussianPolicy
from sqrl_rllib.core.optim import adam


def nets(seed: int):
    torch.manual_seed(seed)
    policy, critics = SquashedGaussianPolicy(4, 2, (16, 16)), EnsembleQ(4, 2, 2, (16, 16))
    log_alpha = torch.nn.Parameter(torch.zeros(()))
    return [*policy.parameters(), *critics.parameters(), log_alpha]


def test_fused_on_cpu():
    assert adam(nets(0)).defaults["fused"] is True


def test_steps_match_foreach_adam_and_state_round_trips():
    fused_params, ref_params = nets(0), nets(0)
    fused, ref = adam(fused_params, 1e-2), torch.optim.Adam(ref_params, lr=1e-2, eps=1e-7, foreach=True)
    for step in range(5):
        torch.manual_seed(100 + step)
        grads = [torch.randn_like(p) for p in fused_params]
        for params, opt in ((fused_params, fused), (ref_params, ref)):
            for p, g in zip(params, grads, strict=True):
                p.grad = g.clone()
            opt.step()
    for p, q in zip(fused_params, ref_params, strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    restored = adam(nets(1), 1e-2)
    restored.load_state_dict(fused.state_dict())
    assert restored.state_dict()["state"][0]["step"] == 5


def test_optimizer_benchmark_prints_result_line():
    script = pathlib.Path(__file__).parents[2] / "benchmarks" / "optimizer_step.py"
    out = subprocess.run(
        [sys.executable, str(script), "--steps", "3", "--hidden", "16"], capture_output=True, text=True, check=True
    )
    last = out.stdout.strip().splitlines()[-1]
    fields = dict(kv.split("=") for kv in last.removeprefix("RESULT ").split())
    assert set(fields) == {"fused_ms", "foreach_ms", "foreach_vs_fused"}
    assert all(float(v) > 0 for v in fields.values())
