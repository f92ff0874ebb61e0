"""The mechanism behind figure 5's dial, learned: Q_safe trained by SQRL's own target and loss reads the
bridge between the two eps_safe values and the detour below both.

Pure PyTorch, no Ray (seconds). Data: a scripted controller drives each route (up the bridge centre, or
around the lava at col 1.0) from its start under Gaussian action noise drawn per episode from figure5.yaml's
pretraining levels ([0, 0.4], which the critic does not observe). The critic learns with
``core.losses.safety_target`` (gamma_safe 0.65, figure5.yaml's) and ``safety_critic_loss`` ('bce'), a'
from the same controller at s', a Polyak target network, as SQRL's learner does. A calibrated critic reads
the Monte-Carlo average of the discounted failure at the bridge entrance, 0.118 (``benchmarks/figure5.py
gamma --noise-levels 0:0.4:10``), and ~0.003 on the detour: eps_safe 0.05 must veto the bridge and keep the
detour, eps_safe 0.2 keep both. This checks the critic side of the dial; whether SQRL's pretraining gets
there is what ``benchmarks/figure5.py critic`` measures on a figure5 run's checkpoints.
"""

import pathlib
import sys

import numpy as np
import torch

from sqrl_rllib.core.losses import safety_critic_loss, safety_target
from sqrl_rllib.core.networks import SafetyCritic
from sqrl_rllib.envs.drunk_spider import GOAL, DrunkSpiderEnv

sys.path.insert(0, str(pathlib.Path(__file__).parents[2] / "benchmarks"))
from figure5 import AROUND, BRIDGE, parse_levels  # noqa: E402

GAMMA_SAFE = 0.65
UP = (1.0, 0.0)


def controller(pos: np.ndarray, route) -> np.ndarray:
    """Full speed towards the route's next waypoint (its top, then the goal): a function of the state only,
    so that it also gives the a' of the Bellman target."""
    target = route[1] if pos[0] < route[1][0] - 0.3 else GOAL
    return np.clip(np.subtract(target, pos), -1.0, 1.0).astype(np.float32)


def transitions(episodes_per_level: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """(s, a, s', a'(s'), failure, terminated) of the controller on both routes at every noise level."""
    rows = {k: [] for k in ("obs", "action", "next_obs", "next_action", "failure", "terminated")}
    for i, noise in enumerate(parse_levels("0:0.4:10")):
        env = DrunkSpiderEnv(task="finetune", action_noise=noise, noise_type="gaussian")
        env.reset(seed=seed + i)
        for route in (BRIDGE, AROUND):
            for _ in range(episodes_per_level):
                obs, _ = env.reset(options={"position": route[0]})
                done = False
                while not done:
                    action = controller(obs, route)
                    next_obs, _, terminated, truncated, info = env.step(action)
                    for key, value in (
                        ("obs", obs),
                        ("action", action),
                        ("next_obs", next_obs),
                        ("next_action", controller(next_obs, route)),
                        ("failure", float(info["failure"])),
                        ("terminated", float(terminated)),
                    ):
                        rows[key].append(value)
                    obs, done = next_obs, terminated or truncated
    return {k: torch.as_tensor(np.array(v), dtype=torch.float32) for k, v in rows.items()}


def test_a_critic_trained_by_sqrls_target_reads_the_bridge_between_the_two_eps():
    torch.manual_seed(0)
    data = transitions(episodes_per_level=150)
    n = len(data["obs"])
    assert data["failure"].sum() > 50, "the bridge must fail often enough to be learned"
    critic, target = SafetyCritic(2, 2, (64, 64)), SafetyCritic(2, 2, (64, 64))
    target.load_state_dict(critic.state_dict())
    optimizer = torch.optim.Adam(critic.parameters(), lr=3e-4)
    generator = torch.Generator().manual_seed(0)
    for _ in range(6000):
        idx = torch.randint(n, (256,), generator=generator)
        with torch.no_grad():
            q_next = target(data["next_obs"][idx], data["next_action"][idx])
        y = safety_target(data["failure"][idx], q_next, GAMMA_SAFE, data["terminated"][idx])
        loss = safety_critic_loss(critic.logits(data["obs"][idx], data["action"][idx]), y, "bce")
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            for p, p_target in zip(critic.parameters(), target.parameters(), strict=True):
                p_target.mul_(0.995).add_(0.005 * p)
    with torch.no_grad():
        bridge = float(critic(torch.tensor([BRIDGE[0]]), torch.tensor([UP])))
        around = float(critic(torch.tensor([AROUND[0]]), torch.tensor([UP])))
    # Monte Carlo: 0.118 and 0.003; measured here (2026-12-06) 0.1145 and 0.0020. The same training at
    # gamma_safe 0.99 reads the bridge at 0.2006 and fails the first bound: eps 0.2 would no longer cross.
    assert 0.06 < bridge < 0.18, (bridge, around)
    assert around < 0.03, (bridge, around)
