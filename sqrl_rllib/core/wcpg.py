"""WCPG, worst-case policy gradients (Tang, Zhang & Salakhutdinov 2019), the SQRL paper's risk-averse baseline.

A deterministic actor mu(s, alpha) and a distributional critic that predicts the mean Q(s, a, alpha)
and the variance Upsilon(s, a, alpha) >= 0 of the return, both conditioned on a risk level
alpha in (0, 1] that is sampled per episode during training and fixed at evaluation. Treating the
return as Gaussian N(Q, Upsilon), the actor maximises its lower-tail expectation CVaR_alpha; alpha = 1
is the risk-neutral mean (DDPG), small alpha weighs the worst outcomes.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from sqrl_rllib.core.networks import mlp

__all__ = [
    "WCPGActor",
    "WCPGCritic",
    "cvar",
    "sample_risk_levels",
    "wcpg_actor_loss",
    "wcpg_targets",
]

_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def wcpg_targets(
    reward: torch.Tensor,
    terminated: torch.Tensor,
    q_next: torch.Tensor,
    upsilon_next: torch.Tensor,
    q: torch.Tensor,
    gamma: float,
    clip: bool = True,
    centered: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Bellman targets of the mean and the variance of the return (WCPG eq. 5-6).

    With Z = r + gamma Z' the return and Q' = Q(s', mu(s', alpha), alpha), Upsilon' its variance:

        Q target:        r + gamma Q'
        Upsilon target:  r^2 + 2 gamma r Q' + gamma^2 (Upsilon' + Q'^2) - Q(s, a, alpha)^2

    i.e. E[Z^2] - E[Z]^2 with the second moment bootstrapped from (Q', Upsilon'). At a terminal s'
    the return has no future, so Q' and Upsilon' are zeroed (a terminal's Upsilon target is r^2 - Q^2).

    Each sample's eq. 6 target is unbiased only in expectation: single samples are often negative
    (for a fixed s' and Q > 0, every r between about E[r] - 2 Q and E[r] - gamma^2 Upsilon' / (2 Q)),
    so ``clip=True`` (the paper's max(., 0)) raises the regression's fixed point above the true
    variance, a pessimistic bias. ``clip=False`` is unbiased (the critic's softplus head keeps its
    output >= 0 either way). ``centered=True`` uses (r + gamma Q' - Q)^2 + gamma^2 Upsilon' instead:
    the same expectation when Q is the true mean (law of total variance), never negative, so clipping
    is a no-op and costs nothing.

    Args:
        reward: r, shape [B].
        terminated: 1 where s' is terminal, shape [B].
        q_next: target critic's mean Q'(s', mu'(s', alpha), alpha), shape [B].
        upsilon_next: target critic's variance Upsilon'(s', mu'(s', alpha), alpha) >= 0, shape [B].
        q: current critic's mean Q(s, a, alpha) (the E[Z]^2 term), shape [B].
        gamma: discount.
        clip: clamp the variance target at 0 (WCPG eq. 6).
        centered: use the centered form above instead of eq. 6.
    Returns:
        (q_target, upsilon_target), each [B], detached.
    """
    cont = 1.0 - terminated.to(reward.dtype)
    q_next = cont * q_next
    upsilon_next = cont * upsilon_next
    q_target = reward + gamma * q_next
    if centered:
        upsilon_target = (q_target - q).pow(2) + gamma**2 * upsilon_next
    else:
        upsilon_target = (
            reward.pow(2) + 2.0 * gamma * reward * q_next + gamma**2 * (upsilon_next + q_next.pow(2)) - q.pow(2)
        )
    if clip:
        upsilon_target = upsilon_target.clamp_min(0.0)
    return q_target.detach(), upsilon_target.detach()


def cvar(q: torch.Tensor, upsilon: torch.Tensor, alpha: torch.Tensor | float) -> torch.Tensor:
    """CVaR_alpha of a Gaussian return Z ~ N(q, upsilon), the mean of its worst alpha-fraction.

        CVaR_alpha = E[Z | Z <= VaR_alpha] = q - phi(Phi^-1(alpha)) / alpha * sqrt(upsilon)

    phi and Phi are the standard normal pdf and cdf (WCPG section 4, the Gaussian closed form of the
    lower-tail expectation). alpha = 1 gives the mean q; alpha -> 0 the worst case.

    The authors' code multiplies phi(Phi^-1(alpha)) / alpha by the variance instead of the standard
    deviation, which is not a CVaR (wrong units, and it overweights the tail wherever Upsilon > 1);
    this follows the paper.

    Args:
        q: mean return, shape [B].
        upsilon: variance of the return, >= 0, shape [B].
        alpha: risk level in (0, 1], a float or a tensor broadcastable to [B].
    Returns:
        CVaR_alpha, shape [B]; differentiable in q and upsilon.
    """
    alpha = torch.as_tensor(alpha, dtype=q.dtype, device=q.device)
    z = torch.special.ndtri(alpha)
    # phi(Phi^-1(1)) = phi(inf) = 0 exactly, so alpha = 1 gives the mean without a special case.
    tail = _INV_SQRT_2PI * torch.exp(-0.5 * z.pow(2)) / alpha
    # The clamp keeps sqrt's gradient finite at upsilon = 0 (where it would be inf * 0 = nan at alpha = 1).
    return q - tail * upsilon.clamp_min(1e-12).sqrt()


def wcpg_actor_loss(q_pi: torch.Tensor, upsilon_pi: torch.Tensor, alpha: torch.Tensor | float) -> torch.Tensor:
    """WCPG's actor loss -E_s[CVaR_alpha(Q(s, mu(s, alpha), alpha), Upsilon(s, mu(s, alpha), alpha))].

    Args:
        q_pi: critic mean at the actor's action, shape [B].
        upsilon_pi: critic variance at the actor's action, shape [B].
        alpha: the risk levels the actor was conditioned on, float or [B].
    Returns:
        Scalar loss; its gradient reaches the actor through q_pi and upsilon_pi.
    """
    return -cvar(q_pi, upsilon_pi, alpha).mean()


def sample_risk_levels(
    n: int,
    low: float = 0.1,
    high: float = 1.0,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """n risk levels alpha ~ U[low, high], shape [n] (WCPG samples one per episode while training).

    ``low`` > 0 keeps phi(Phi^-1(alpha)) / alpha, which grows like sqrt(2 log(1 / alpha)), bounded.
    """
    if not 0.0 < low <= high <= 1.0:
        raise ValueError(f"risk levels need 0 < low <= high <= 1, got low={low}, high={high}")
    u = torch.rand(n, generator=generator, device=device)
    return low + (high - low) * u


def _alpha_column(alpha: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor:
    """alpha (float, [B] or [B, 1]) as a [B, 1] column matching ``like``'s batch, dtype and device."""
    alpha = torch.as_tensor(alpha, dtype=like.dtype, device=like.device)
    return alpha.reshape(-1, 1).expand(like.shape[0], 1) if alpha.numel() == 1 else alpha.reshape(-1, 1)


class WCPGCritic(nn.Module):
    """(s, a, alpha) -> (Q, Upsilon): mean and variance (softplus, > 0) of the return, one shared trunk."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...] = (256, 256)):
        super().__init__()
        self.net = mlp(obs_dim + act_dim + 1, 2, hidden)

    def forward(
        self, obs: torch.Tensor, actions: torch.Tensor, alpha: torch.Tensor | float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """obs [B, obs_dim], actions [B, act_dim], alpha float or [B] -> (q [B], upsilon [B])."""
        out = self.net(torch.cat([obs, actions, _alpha_column(alpha, obs)], dim=-1))
        return out[..., 0], nn.functional.softplus(out[..., 1])


class WCPGActor(nn.Module):
    """Deterministic risk-conditioned policy mu(s, alpha) in [-1, 1]^act_dim (tanh head).

    ``mean_init_scale`` multiplies the initial weights and bias of the output units, as for SAC's policy
    mean (``SquashedGaussianPolicy``): a small value starts every seed near the action 0.
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...] = (256, 256), mean_init_scale: float = 1.0):
        super().__init__()
        self.net = mlp(obs_dim + 1, act_dim, hidden)
        if mean_init_scale != 1.0:
            with torch.no_grad():
                self.net[-1].weight.mul_(mean_init_scale)
                self.net[-1].bias.mul_(mean_init_scale)

    def forward(self, obs: torch.Tensor, alpha: torch.Tensor | float) -> torch.Tensor:
        """obs [B, obs_dim], alpha float or [B] -> actions [B, act_dim]."""
        return torch.tanh(self.net(torch.cat([obs, _alpha_column(alpha, obs)], dim=-1)))
