"""policy_mean_init_scale: a small factor starts the policy mean near 0 on every seed, std untouched."""

import torch

from sqrl_rllib.core.networks import SquashedGaussianPolicy


def _initial(seed: int, scale: float):
    torch.manual_seed(seed)
    policy = SquashedGaussianPolicy(2, 2, (64, 64), mean_init_scale=scale)
    obs = torch.rand(512, 2) * torch.tensor([8.0, 7.0])  # DrunkSpider's raw positions
    with torch.no_grad():
        mean, log_std = policy.distribution_inputs(obs).chunk(2, dim=-1)
    return mean, log_std


def test_small_scale_shrinks_the_initial_mean_on_every_seed_and_leaves_the_std():
    for seed in range(5):
        mean_1, log_std_1 = _initial(seed, 1.0)
        mean_small, log_std_small = _initial(seed, 0.01)
        # Same seed, same hidden layers: the mean output is exactly scaled, the std head is the same.
        assert torch.allclose(mean_small, 0.01 * mean_1, atol=1e-6)
        assert torch.equal(log_std_small, log_std_1)
        assert mean_small.abs().max() < 0.05 <= mean_1.abs().max()
