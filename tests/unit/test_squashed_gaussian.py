"""The tanh-Gaussian policy's log-probabilities: log N(u) minus the tanh change-of-variables correction.

SAC's actor and alpha losses, the mask's action_logp and the critic target's entropy term all read
these values, so they are checked against the density the samples actually follow, not just a formula.
"""

import math

import numpy as np
import torch
from torch.distributions import Independent, Normal, TransformedDistribution
from torch.distributions.transforms import TanhTransform

from sqrl_rllib.core.networks import sample_squashed


def test_log_prob_matches_the_histogram_of_the_samples():
    """exp(log p) of the samples equals their empirical density in every bin of (-1, 1)."""
    torch.manual_seed(0)
    dist = torch.tensor([[0.3, math.log(0.8)]])
    actions, logp = sample_squashed(dist, 400_000)
    a, p = actions[0, :, 0].numpy(), logp[0].exp().numpy()
    edges = np.linspace(-0.95, 0.95, 20)
    counts, _ = np.histogram(a, edges)
    empirical = counts / (len(a) * np.diff(edges))
    which = np.digitize(a, edges) - 1
    claimed = np.array([p[which == i].mean() for i in range(len(edges) - 1)])
    ratio = claimed / empirical
    # Measured: ratios within [0.988, 1.021] (bins of ~2e4 samples: ~1% noise). Without the tanh
    # correction the claimed density is N(u) alone, off by 1 - a^2: ratio 0.10 in the outer bins.
    assert np.all(np.abs(ratio - 1) < 0.05), np.round(ratio, 3)


def test_log_prob_equals_torchs_tanh_transformed_normal_in_two_dimensions():
    torch.manual_seed(1)
    dist = torch.tensor([[0.5, -1.0, math.log(0.3), math.log(1.5)], [-2.0, 0.0, 0.0, math.log(0.1)]])
    actions, logp = sample_squashed(dist, 1000)
    mean, log_std = dist.chunk(2, dim=-1)
    reference = Independent(
        TransformedDistribution(Normal(mean.unsqueeze(1), log_std.exp().unsqueeze(1)), [TanhTransform()]), 1
    )
    # The reference sums the per-dimension log-densities (Independent). Clamped away from +-1, where
    # float32's atanh in the reference loses precision.
    inside = actions.abs().amax(-1) < 0.999
    expected = reference.log_prob(actions.clamp(-0.999999, 0.999999))
    assert inside.float().mean() > 0.9
    assert torch.allclose(logp[inside], expected[inside], atol=1e-3)


def test_log_prob_stays_finite_far_in_the_tails():
    """The stable form of log(1 - tanh(u)^2) holds where tanh(u) rounds to +-1 (u = +-12)."""
    dist = torch.tensor([[12.0, math.log(1e-3)], [-12.0, math.log(1e-3)]])
    actions, logp = sample_squashed(dist, 4, mean_first=True)
    assert torch.all(actions.abs() == 1.0)  # float32 tanh(12) is exactly 1
    assert torch.isfinite(logp).all()
    # At the mean: log N(0) - log std - log(1 - tanh(12)^2),
    # with log(1 - tanh^2 u) = 2 (log 2 - |u| - log(1 + e^-2|u|)).
    expected = -0.5 * math.log(2 * math.pi) - math.log(1e-3) - 2 * (math.log(2) - 12 - math.log1p(math.exp(-24)))
    assert torch.allclose(logp[:, 0], torch.tensor([expected, expected]), atol=1e-3)
