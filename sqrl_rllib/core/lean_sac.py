"""A plain PyTorch SAC loop (no Ray) on the project's networks and losses: the speed reference.

Reads top to bottom like a CleanRL file. Used by ``benchmarks/throughput.py`` as the reference an
RLlib-based SQRL must approach, and runnable on a GPU machine where Ray is not installed.
"""

from __future__ import annotations

import copy
import time

import gymnasium as gym
import numpy as np
import torch

from sqrl_rllib.core import losses
from sqrl_rllib.core.networks import EnsembleQ, SquashedGaussianPolicy, sample_squashed
from sqrl_rllib.core.optim import adam
from sqrl_rllib.core.replay import ColumnarReplay


class LeanSAC:
    """SAC with twin critics as one batched net, one backward per step, fused Adam, in-place polyak."""

    def __init__(self, obs_dim: int, act_dim: int, hidden=(256, 256), lr: float = 3e-4, device: str = "cpu"):
        self.device = torch.device(device)
        self.policy = SquashedGaussianPolicy(obs_dim, act_dim, hidden).to(self.device)
        self.qf = EnsembleQ(obs_dim, act_dim, 2, hidden).to(self.device)
        self.target_qf = copy.deepcopy(self.qf).requires_grad_(False)
        self.log_alpha = torch.zeros((), device=self.device, requires_grad=True)
        self.target_entropy = -float(act_dim)
        params = list(self.policy.parameters()) + list(self.qf.parameters()) + [self.log_alpha]
        self.opt = adam(params, lr)
        self.gamma, self.tau = 0.99, 5e-3

    @torch.no_grad()
    def act(self, obs: np.ndarray) -> np.ndarray:
        """One stochastic action for one observation."""
        dist = self.policy.distribution_inputs(torch.as_tensor(obs, device=self.device).unsqueeze(0))
        return sample_squashed(dist)[0][0].cpu().numpy()

    def update(self, batch: dict[str, np.ndarray]) -> float:
        """One SGD step on a batch of columns; returns the total loss."""
        t = {k: torch.as_tensor(v, device=self.device) for k, v in batch.items()}
        obs2 = torch.cat([t["obs"], t["next_obs"]])
        a, logp = sample_squashed(self.policy.distribution_inputs(obs2))
        n = t["obs"].shape[0]
        a_pi, logp_pi, a_next, logp_next = a[:n], logp[:n], a[n:], logp[n:]
        alpha = self.log_alpha.exp()
        with torch.no_grad():
            target = losses.sac_critic_target(
                t["rewards"], t["terminated"], self.target_qf(t["next_obs"], a_next), logp_next, alpha, self.gamma
            )
        critic = losses.sac_critic_loss(self.qf(t["obs"], t["actions"]), target)
        self.qf.requires_grad_(False)
        actor = losses.sac_actor_loss(self.qf(t["obs"], a_pi), logp_pi, alpha.detach())
        self.qf.requires_grad_(True)
        loss = critic + actor + losses.alpha_loss(self.log_alpha, logp_pi, self.target_entropy)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        with torch.no_grad():
            torch._foreach_lerp_(list(self.target_qf.parameters()), list(self.qf.parameters()), self.tau)
        return float(loss.detach())


def run_lean_sac(
    env: gym.Env, steps: int, batch_size: int = 256, learning_starts: int = 256, seed: int = 0, hidden=(256, 256)
):
    """Train for ``steps`` env steps (one update per step after ``learning_starts``); returns steps/s.

    The rate is measured over the steps after ``learning_starts`` (the part with updates).
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    obs_dim = int(np.prod(env.observation_space.shape))
    act_dim = int(np.prod(env.action_space.shape))
    agent = LeanSAC(obs_dim, act_dim, tuple(hidden))
    buffer = ColumnarReplay(max(steps, 1), obs_dim, act_dim)
    obs, _ = env.reset(seed=seed)
    start = None
    for step in range(steps):
        if step == learning_starts:
            start = time.perf_counter()
        action = agent.act(obs.astype(np.float32))
        next_obs, reward, terminated, truncated, info = env.step(action)
        buffer.add(
            {
                "obs": obs[None],
                "actions": action[None],
                "rewards": np.array([reward]),
                "next_obs": next_obs[None],
                "terminated": np.array([float(terminated)]),
                "failure": np.array([float(info.get("failure", False))]),
            }
        )
        obs = next_obs
        if terminated or truncated:
            obs, _ = env.reset()
        if step >= learning_starts:
            agent.update(buffer.sample(batch_size, rng))
    return (steps - learning_starts) / (time.perf_counter() - start)
