"""Networks: a tanh-squashed Gaussian policy, twin Q critics as one batched net, the safety critic.

All trunks are 2 x 256 ReLU (paper appendix B). The twin critics are one module whose weights have
a leading ensemble dimension, so both critics run in one batched matmul per layer (one kernel
instead of two; rllib-notes: the separate-encoder critics dominate stock SAC's update time).
"""

from __future__ import annotations

import math

import torch
from torch import nn

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0


def mlp(
    in_dim: int, out_dim: int, hidden: tuple[int, ...] = (256, 256), activation: type[nn.Module] = nn.ReLU
) -> nn.Sequential:
    """An MLP ``in_dim -> hidden... -> out_dim`` (``activation`` after each hidden layer, ReLU by default) with a
    linear output layer."""
    layers: list[nn.Module] = []
    last = in_dim
    for h in hidden:
        layers += [nn.Linear(last, h), activation()]
        last = h
    layers.append(nn.Linear(last, out_dim))
    return nn.Sequential(*layers)


class EnsembleLinear(nn.Module):
    """``n`` independent linear layers applied in one batched matmul: [n, B, in] -> [n, B, out]."""

    def __init__(self, n: int, in_dim: int, out_dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n, in_dim, out_dim))
        self.bias = nn.Parameter(torch.empty(n, 1, out_dim))
        bound = 1.0 / math.sqrt(in_dim)
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [n, B, in] or [B, in] (broadcast to every member)."""
        if x.dim() == 2:
            return torch.baddbmm(self.bias, x.unsqueeze(0).expand(self.weight.shape[0], -1, -1), self.weight)
        return torch.baddbmm(self.bias, x, self.weight)


class EnsembleQ(nn.Module):
    """``n`` Q critics Q_i(s, a) evaluated together; returns [n, B]."""

    def __init__(self, obs_dim: int, act_dim: int, n: int = 2, hidden: tuple[int, ...] = (256, 256)):
        super().__init__()
        dims = (obs_dim + act_dim, *hidden, 1)
        self.layers = nn.ModuleList(EnsembleLinear(n, a, b) for a, b in zip(dims[:-1], dims[1:], strict=False))
        self.n = n

    def forward(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """obs [B, obs_dim], actions [B, act_dim] -> Q values [n, B]."""
        x = torch.cat([obs, actions], dim=-1)
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = torch.relu(x)
        return x.squeeze(-1)


class SafetyCritic(nn.Module):
    """Q_safe(s, a): logit of the discounted probability of a future failure (sigmoid gives [0, 1])."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...] = (256, 256)):
        super().__init__()
        self.net = mlp(obs_dim + act_dim, 1, hidden)

    def logits(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """obs [..., obs_dim], actions [..., act_dim] -> logits [...]."""
        return self.net(torch.cat([obs, actions], dim=-1)).squeeze(-1)

    def forward(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Failure probability Q_safe(s, a) in [0, 1], shape [...]."""
        return torch.sigmoid(self.logits(obs, actions))


class SquashedGaussianPolicy(nn.Module):
    """pi(a|s): a Gaussian squashed by tanh into [-1, 1]^act_dim (SAC's policy).

    ``mean_init_scale`` multiplies the initial weights and bias of the mean's output units: a small
    value starts every seed from a policy mean near 0 instead of a random direction (TF-Agents'
    ``init_means_output_factor``: 0.1 by default, 0.01 in the SQRL authors' DrunkSpider config).
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...] = (256, 256), mean_init_scale: float = 1.0):
        super().__init__()
        self.net = mlp(obs_dim, 2 * act_dim, hidden)
        self.act_dim = act_dim
        if mean_init_scale != 1.0:
            head = self.net[-1]
            with torch.no_grad():
                head.weight[:act_dim].mul_(mean_init_scale)
                head.bias[:act_dim].mul_(mean_init_scale)

    def distribution_inputs(self, obs: torch.Tensor) -> torch.Tensor:
        """Raw head output [..., 2 * act_dim] (mean, log_std), log_std clamped."""
        out = self.net(obs)
        mean, log_std = out.chunk(2, dim=-1)
        return torch.cat([mean, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)], dim=-1)

    def sample(self, obs: torch.Tensor, n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterised sample(s) and log pi(a|s). With ``n``: actions [B, n, act_dim], logp [B, n]."""
        return sample_squashed(self.distribution_inputs(obs), n)

    def mean_action(self, obs: torch.Tensor) -> torch.Tensor:
        """Deterministic action tanh(mean), [B, act_dim]."""
        return torch.tanh(self.distribution_inputs(obs)[..., : self.act_dim])


def sample_squashed(
    dist_inputs: torch.Tensor, n: int | None = None, mean_first: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample tanh(N(mean, std)) from [..., 2*act_dim] inputs; returns (actions, log_prob).

    With ``n`` the samples get an extra axis before the action axis: [B, n, act_dim] and [B, n].
    ``mean_first`` (with ``n``) makes sample 0 the deterministic action tanh(mean), with its own
    log-probability (deterministic evaluation scores the mean beside n - 1 samples).
    """
    mean, log_std = dist_inputs.chunk(2, dim=-1)
    if n is not None:
        mean = mean.unsqueeze(-2).expand(*mean.shape[:-1], n, mean.shape[-1])
        log_std = log_std.unsqueeze(-2).expand_as(mean)
    std = log_std.exp()
    eps = torch.randn_like(mean)
    if mean_first:
        if n is None:
            raise ValueError("sample_squashed: mean_first needs n (the sample axis)")
        eps[..., 0, :] = 0.0
    u = mean + std * eps
    action = torch.tanh(u)
    # log N(u) - sum log(1 - tanh(u)^2), the latter in the stable form 2*(log2 - u - softplus(-2u)).
    log_prob = (-0.5 * eps.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
    log_prob = log_prob - (2.0 * (math.log(2.0) - u - nn.functional.softplus(-2.0 * u))).sum(-1)
    return action, log_prob
