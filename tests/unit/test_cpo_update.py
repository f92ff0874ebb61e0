"""One whole CPO policy update (sqrl_rllib.core.cpo.cpo_policy_update) on hand-made batches, without Ray.

The batches are drawn from a small Gaussian policy; the advantages are made-up functions of the action, so the
direction every case must move the policy's mean is known: reward favours a_0, cost grows with a_1.
"""

import pytest
import torch

from sqrl_rllib.core.cpo import (
    CPO_STATUSES,
    GaussianPolicy,
    cpo_policy_update,
    fit_value,
    gaussian_kl,
    gaussian_log_prob,
    value_net,
)

MAX_KL = 0.01


def _batch(seed=0, n=2000):
    torch.manual_seed(seed)
    policy = GaussianPolicy(3, 2, hidden=(16,), init_log_std=-0.5)
    obs = torch.randn(n, 3)
    with torch.no_grad():
        mean, log_std = policy(obs)
        actions = mean + log_std.exp() * torch.randn_like(mean)
    return policy, obs, actions


def _update(policy, obs, actions, reward_adv, cost_adv, c):
    with torch.no_grad():
        # Copies: GaussianPolicy's log_std comes out as a view of the parameter the update overwrites.
        mean_before, log_std_before = (t.clone() for t in policy(obs))
    stats = cpo_policy_update(
        policy, list(policy.parameters()), obs, actions, reward_adv, cost_adv, c=c, cost_scale=30.0, max_kl=MAX_KL
    )
    with torch.no_grad():
        mean_after, log_std_after = policy(obs)
        kl = gaussian_kl(mean_before, log_std_before, mean_after, log_std_after).mean()
    return stats, (mean_after - mean_before).mean(0), float(kl)


def test_gaussian_log_prob_and_kl_match_torch_distributions():
    gen = torch.Generator().manual_seed(0)
    m0, s0, m1, s1, a = (torch.randn(5, 3, generator=gen) for _ in range(5))
    d0 = torch.distributions.Independent(torch.distributions.Normal(m0, s0.exp()), 1)
    d1 = torch.distributions.Independent(torch.distributions.Normal(m1, s1.exp()), 1)
    assert torch.allclose(gaussian_log_prob(m0, s0, a), d0.log_prob(a), atol=1e-5)
    assert torch.allclose(gaussian_kl(m0, s0, m1, s1), torch.distributions.kl_divergence(d0, d1), atol=1e-5)


def test_constraint_with_slack_takes_the_trpo_step_up_the_reward():
    policy, obs, actions = _batch()
    stats, shift, kl = _update(policy, obs, actions, actions[:, 0], torch.zeros(len(obs)), c=-0.5)
    assert CPO_STATUSES[int(stats["status"])] == "trpo" and stats["accepted"] == 1.0
    # Measured: a_0's mean +0.084 (std 0.61), a_1's -0.002, surrogate gain 0.127, KL 0.0097.
    assert stats["surrogate_gain"] > 0 and shift[0] > 0.04
    assert abs(float(shift[1])) < 0.3 * float(shift[0])  # nothing rewards a_1
    # The trust region holds for the accepted step (the line search checks the true KL).
    assert kl <= MAX_KL * 1.001 and abs(kl - stats["kl"]) < 1e-6


def test_violated_constraint_out_of_reach_recovers_by_pure_cost_descent():
    policy, obs, actions = _batch(1)
    # Reward pulls a_1 up, cost pushes it down; c = 5 is far more than one trust region can repair.
    stats, shift, kl = _update(policy, obs, actions, actions[:, 1], actions[:, 1], c=5.0)
    assert CPO_STATUSES[int(stats["status"])] == "recovery" and stats["accepted"] == 1.0
    # Measured: cost surrogate -2.48, a_1's mean -0.084, a_0's +0.003; the reward surrogate falls (-0.13).
    assert stats["cost_surrogate_change"] < -1.0 and shift[1] < -0.04 and abs(float(shift[0])) < 0.02
    assert kl <= MAX_KL * 1.001


def test_violated_constraint_within_reach_trades_reward_for_cost():
    policy, obs, actions = _batch(2)
    # Reward favours a_0 + a_1, cost grows with a_1, and the constraint is violated by a little.
    reward, cost = actions[:, 0] + actions[:, 1], actions[:, 1]
    trpo, trpo_shift, _ = _update(_batch(2)[0], obs, actions, reward, cost, c=-10.0)  # slack: the plain TRPO step
    stats, shift, kl = _update(policy, obs, actions, reward, cost, c=0.05)
    assert CPO_STATUSES[int(trpo["status"])] == "trpo" and CPO_STATUSES[int(stats["status"])] == "feasible"
    # Measured: the TRPO step raises a_0 and a_1 alike (+0.060, +0.059) and the cost surrogate by +1.71; the CPO
    # step lands on the linearised constraint b^T x = -c (cost change -0.057 for c = 0.05), keeps a_1 put
    # (-0.002) and puts the whole trust region into a_0 (+0.084), still gaining reward (+0.085).
    assert trpo["cost_surrogate_change"] > 1.0 and trpo_shift[1] > 0.03
    assert -0.1 < stats["cost_surrogate_change"] < -0.025 and stats["nu"] > 0
    assert shift[0] > trpo_shift[0] and abs(float(shift[1])) < 0.01 and stats["surrogate_gain"] > 0.05
    assert kl <= MAX_KL * 1.001


def test_fit_value_regresses_on_the_returns():
    torch.manual_seed(0)
    obs = torch.randn(512, 3)
    returns = obs[:, 0] * 2.0 - 1.0
    net = value_net(3, (32,))
    with torch.no_grad():
        before = float(0.5 * (net(obs).squeeze(-1) - returns).pow(2).mean())
    after = fit_value(net, torch.optim.Adam(net.parameters(), 1e-2), obs, returns, 20, 64, torch.Generator())
    # A zero predictor scores 0.5 * E[(2x - 1)^2] = 2.5; the fit must get far below it.
    assert before > 1.0 and after < 0.1


@pytest.mark.parametrize("scale", [0.01, 1.0])
def test_policy_mean_init_scale_shrinks_the_initial_mean(scale):
    torch.manual_seed(0)
    with torch.no_grad():
        mean, log_std = GaussianPolicy(3, 2, hidden=(16,), init_log_std=-1.0, mean_init_scale=scale)(torch.randn(64, 3))
    assert torch.allclose(log_std, torch.full_like(log_std, -1.0))
    assert (float(mean.abs().max()) < 0.02) is (scale == 0.01)
