"""Cost of the masked safety target (``safety_target_policy="masked"``) against the 'pi' target, per SGD step.

The masked target scores M draws a' ~ pi per next state with the target Q_safe (one batched pass of
B x M rows) and averages the safe ones; the 'pi' target scores one a'. Both are timed inside a whole
safety-critic step (target, BCE loss, backward, Adam), so the ratio is what a Q_safe update costs more.
Prints ``RESULT pi_ms=.. masked_ms=.. masked_vs_pi=..``.

Usage: python benchmarks/safety_target.py [--samples 20] [--batch 256] [--hidden 256] [--threads 1]
    [--device cpu]. No Ray needed.
"""

from __future__ import annotations

import argparse

import torch
from timing import ms_per_call

from sqrl_rllib.core import losses
from sqrl_rllib.core.networks import SafetyCritic, SquashedGaussianPolicy, sample_squashed
from sqrl_rllib.core.optim import adam


def step_ms(policy_kind: str, samples: int, batch: int, hidden: int, device: str, steps: int = 200) -> float:
    """Mean wall time of one safety-critic SGD step with the given target policy."""
    obs_dim, act_dim, sizes = 2, 2, (hidden, hidden)
    critic = SafetyCritic(obs_dim, act_dim, sizes).to(device)
    target = SafetyCritic(obs_dim, act_dim, sizes).to(device)
    policy = SquashedGaussianPolicy(obs_dim, act_dim, sizes).to(device)
    optimizer = adam(list(critic.parameters()), 3e-4)
    obs, next_obs = torch.randn(batch, obs_dim, device=device), torch.randn(batch, obs_dim, device=device)
    actions = torch.rand(batch, act_dim, device=device) * 2 - 1
    failure = (torch.rand(batch, device=device) < 0.1).float()

    def one_step():
        with torch.no_grad():
            if policy_kind == "masked":
                candidates, _ = sample_squashed(policy.distribution_inputs(next_obs), samples)
                q_next = target(next_obs.unsqueeze(-2).expand(-1, samples, -1), candidates)
                q_next = losses.masked_policy_value(q_next, 0.1)
            else:
                a_next, _ = sample_squashed(policy.distribution_inputs(next_obs))
                q_next = target(next_obs, a_next)
            y = losses.safety_target(failure, q_next, 0.65, terminated=failure)
        loss = losses.safety_critic_loss(critic.logits(obs, actions), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return ms_per_call(one_step, steps, device)


def main() -> None:
    """Time both targets, interleaved twice, and print the RESULT line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=20, help="M: draws of a' per next state (masked target)")
    parser.add_argument("--batch", type=int, default=256, help="safety minibatch rows")
    parser.add_argument("--hidden", type=int, default=256, help="hidden layer width (two layers)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--device", default="cpu", help="torch device")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    times = {"pi": [], "masked": []}
    for _ in range(2):  # interleaved, so a noisy neighbour hits both
        for kind in times:
            times[kind].append(step_ms(kind, args.samples, args.batch, args.hidden, args.device))
    pi_ms, masked_ms = min(times["pi"]), min(times["masked"])
    print(f"RESULT pi_ms={pi_ms:.3f} masked_ms={masked_ms:.3f} masked_vs_pi={masked_ms / pi_ms:.2f}")


if __name__ == "__main__":
    main()
