"""Why did a pretraining stall? Probe a saved SQRL checkpoint's policy and safety critic on its own D_offline.

For states drawn from the checkpoint's pretraining data (all of it, and the last ``--last`` transitions) it
prints, at eps_safe (``--eps``):
  * ``E[Q_safe(s,pi)]``: the critic's risk of pi's proposals (what the pretraining Lagrangian pushes down);
  * ``no safe pi sample``: share of states where none of K samples from pi is below eps_safe (the mask
    falls back on the safest of them);
  * ``no safe grid action``: share of states where none of a 21 x 21 grid over the action box is below
    eps_safe, i.e. where the critic says the constraint cannot be met at all;
  * ``|pre-tanh mean|`` (median, 90th percentile) and the policy's std: a mean of 2.5 puts tanh's slope at
    0.03, so gradients through the squashing (the critic's and the Lagrangian's) hardly move pi any more;
  * nu and alpha;
  * the outward pull on the pre-tanh mean (the gradient of each actor-loss term with respect to the mean,
    the descent step projected on sign(mean): positive pushes the mean further out, toward saturation), for SAC's
    entropy term alpha log pi, its return term -min Q and the Lagrangian nu Q_safe: which force holds a
    saturated policy where it is.

A stalled run shows pi proposing unsafe actions in states where the critic knows safe ones (no safe pi
sample >> no safe grid action), with a saturated mean: the trap of benchmarks/README.md, "Session 17".

Usage: python benchmarks/stall_probe.py CHECKPOINT [CHECKPOINT ...] [--k 100] [--eps 0.1]
(a checkpoint of ``benchmarks/drunk_spider_transfer.py`` or ``benchmarks/seeds.py``, saved with its replay).
"""

from __future__ import annotations

import argparse
import pathlib

import numpy as np
import torch
from ray.rllib.core import DEFAULT_MODULE_ID
from ray.rllib.core.rl_module.rl_module import RLModule

from sqrl_rllib.algorithms.sqrl.sqrl import stored_replay
from sqrl_rllib.core.networks import sample_squashed

GRID_POINTS = 21


def load(checkpoint: pathlib.Path) -> tuple[RLModule, dict[str, np.ndarray]]:
    """The checkpoint's RLModule and its D_offline columns."""
    module = RLModule.from_checkpoint(checkpoint / "learner_group" / "learner" / "rl_module" / DEFAULT_MODULE_ID)
    try:
        columns = stored_replay(checkpoint)["columns"]
    except ValueError as err:
        raise SystemExit(str(err)) from None
    return module, columns


@torch.no_grad()
def probe(module: RLModule, obs: np.ndarray, k: int, eps: float) -> dict[str, float]:
    """The stall statistics over the states ``obs`` (see the module docstring)."""
    obs_t = torch.as_tensor(obs, dtype=torch.float32)
    dist_inputs = module.policy.distribution_inputs(obs_t)
    mean, log_std = dist_inputs.chunk(2, -1)
    actions, _ = module.sample_candidates(dist_inputs, k)
    q_pi = module.q_safe(obs_t, actions)
    axis = torch.linspace(-1.0, 1.0, GRID_POINTS)
    act_dim = actions.shape[-1]
    grid = torch.cartesian_prod(*[axis] * act_dim).reshape(1, -1, act_dim) if act_dim > 1 else axis.reshape(1, -1, 1)
    q_grid = module.q_safe(obs_t, grid.expand(len(obs), -1, -1))
    return {
        "E[Q_safe(s,pi)]": float(q_pi.mean()),
        "no safe pi sample": float((q_pi.min(1).values >= eps).float().mean()),
        "no safe grid action": float((q_grid.min(1).values >= eps).float().mean()),
        "|pre-tanh mean| median": float(mean.abs().median()),
        "|pre-tanh mean| q90": float(mean.abs().quantile(0.9)),
        "std median": float(log_std.exp().median()),
    }


def outward_pull(module: RLModule, obs: np.ndarray, samples: int = 16) -> dict[str, float]:
    """Mean outward pull of each actor-loss term on pi's pre-tanh mean over ``obs`` (module docstring)."""
    obs_t = torch.as_tensor(obs, dtype=torch.float32)
    act_dim = module.policy.act_dim
    with torch.no_grad():
        inputs = module.policy.distribution_inputs(obs_t)
    mean = inputs[..., :act_dim].clone().requires_grad_(True)
    dist_inputs = torch.cat([mean, inputs[..., act_dim:]], -1)
    actions, logp = sample_squashed(dist_inputs, samples)
    obs_k = obs_t.unsqueeze(1).expand(-1, samples, -1)
    alpha, nu = module.log_alpha.detach().exp(), module.log_nu.detach().exp()
    terms = {
        "entropy term": alpha * logp,
        "return term": -module.qf(obs_k.reshape(-1, obs_k.shape[-1]), actions.reshape(-1, act_dim))
        .min(dim=0)
        .values.reshape(len(obs), samples),
        "Lagrangian term": nu * module.safety_critic(obs_k, actions),
    }
    pulls = {}
    for name, term in terms.items():
        (grad,) = torch.autograd.grad(term.mean(dim=1).sum(), mean, retain_graph=True)
        # Gradient descent moves the mean along -grad: outward where that agrees with sign(mean).
        pulls[f"pull {name}"] = float((-grad * torch.sign(mean.detach())).mean())
    return pulls


def main() -> None:
    """Print the stall statistics of each checkpoint."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+", type=pathlib.Path, help="SQRL checkpoint directories")
    parser.add_argument("--k", type=int, default=100, help="samples from pi per state (SQRL's K)")
    parser.add_argument("--eps", type=float, default=0.1, help="eps_safe the mask and the Lagrangian use")
    parser.add_argument("--states", type=int, default=2000, help="states drawn per row")
    parser.add_argument("--last", type=int, default=10000, help="the second row draws from this many newest rows")
    args = parser.parse_args()
    for checkpoint in args.checkpoints:
        # Seeded per checkpoint, so that its numbers do not depend on which checkpoints come before it.
        torch.manual_seed(0)
        rng = np.random.default_rng(0)
        module, columns = load(checkpoint)
        n = len(columns["obs"])
        nu, alpha = float(module.log_nu.detach().exp()), float(module.log_alpha.detach().exp())
        print(f"{checkpoint}: nu {nu:.3g}, alpha {alpha:.3g}, {n} transitions, {int(columns['failure'].sum())} failing")
        for name, low in (("all", 0), (f"last {min(args.last, n)}", max(n - args.last, 0))):
            obs = columns["obs"][rng.integers(low, n, args.states)]
            stats = probe(module, obs, args.k, args.eps) | outward_pull(module, obs)
            print(f"  {name:>10}: " + ", ".join(f"{key} {value:.3f}" for key, value in stats.items()))


if __name__ == "__main__":
    main()
