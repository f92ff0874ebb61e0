"""WCPG's variance Bellman target and Gaussian CVaR (sqrl_rllib.core.wcpg) against Monte Carlo."""

import math

import pytest
import torch

from sqrl_rllib.core.wcpg import WCPGActor, WCPGCritic, cvar, sample_risk_levels, wcpg_actor_loss, wcpg_targets

N_MC = 200_000
GAMMA = 0.9


def _two_step_samples(gen):
    # Step 1: r1 ~ N(1, 0.5^2); step 2 (terminal): r2 ~ N(2, 1). Return Z = r1 + gamma r2.
    r1 = 1.0 + 0.5 * torch.randn(N_MC, generator=gen, dtype=torch.float64)
    r2 = 2.0 + torch.randn(N_MC, generator=gen, dtype=torch.float64)
    return r1, r2


@pytest.mark.parametrize("centered", [False, True])
def test_variance_target_matches_monte_carlo(centered):
    gen = torch.Generator().manual_seed(0)
    r1, r2 = _two_step_samples(gen)
    ones, zeros = torch.ones(N_MC, dtype=torch.float64), torch.zeros(N_MC, dtype=torch.float64)
    # Step 2 from the function itself: terminal, so targets are r2 and r2^2 - Q^2 (unclipped: eq. 6
    # samples are negative whenever |r2| < 2 and only their mean is the variance).
    q2_target, ups2_target = wcpg_targets(r2, ones, zeros, zeros, torch.full_like(r2, 2.0), GAMMA, clip=False)
    q2, ups2 = q2_target.mean(), ups2_target.mean()
    assert q2.item() == pytest.approx(2.0, abs=0.01) and ups2.item() == pytest.approx(1.0, rel=0.02)
    # Step 1 with the exact step-2 moments and the exact Q1 = 1 + gamma * 2.
    q1 = torch.full_like(r1, 1.0 + GAMMA * 2.0)
    q1_target, ups1_target = wcpg_targets(
        r1, zeros, torch.full_like(r1, 2.0), torch.full_like(r1, 1.0), q1, GAMMA, clip=centered, centered=centered
    )
    mc_var = (r1 + GAMMA * r2).var()  # = 0.25 + 0.81 = 1.06
    assert mc_var.item() == pytest.approx(1.06, rel=0.02)
    assert ups1_target.mean().item() == pytest.approx(mc_var.item(), rel=0.02)
    assert q1_target.mean().item() == pytest.approx((r1 + GAMMA * r2).mean().item(), rel=0.01)
    # A target that forgot gamma^2 Upsilon' (variance of step 2) would give ~0.25: far outside 2%.


def test_clip_is_max_zero_and_biased_up():
    gen = torch.Generator().manual_seed(1)
    r1, _ = _two_step_samples(gen)
    zeros = torch.zeros_like(r1)
    args = (r1, zeros, torch.full_like(r1, 2.0), torch.ones_like(r1), torch.full_like(r1, 2.8), GAMMA)
    _, raw = wcpg_targets(*args, clip=False)
    _, clipped = wcpg_targets(*args)
    assert torch.equal(clipped, raw.clamp_min(0.0))
    assert (raw < 0).float().mean() > 0.3  # a large share of eq. 6's samples is negative here
    assert clipped.mean() > 1.3 * raw.mean()  # hence the clip's pessimistic bias (documented)


def test_terminal_zeroes_next_moments():
    r = torch.tensor([1.0, 1.0])
    q_t, u_t = wcpg_targets(r, torch.tensor([1.0, 0.0]), torch.tensor([5.0, 5.0]), torch.tensor([3.0, 3.0]),
                            torch.tensor([1.0, 1.0]), 0.5, clip=False)  # fmt: skip
    assert torch.allclose(q_t, torch.tensor([1.0, 3.5]))
    # terminal: 1 - 1 = 0; non-terminal: 1 + 2*0.5*1*5 + 0.25*(3 + 25) - 1 = 12
    assert torch.allclose(u_t, torch.tensor([0.0, 12.0]))


@pytest.mark.parametrize("alpha", [0.1, 0.5])
def test_cvar_matches_monte_carlo_lower_tail(alpha):
    mu, sigma = 3.0, 2.0
    gen = torch.Generator().manual_seed(2)
    z = mu + sigma * torch.randn(1_000_000, generator=gen, dtype=torch.float64)
    tail = z.sort().values[: int(alpha * z.numel())]
    closed = cvar(torch.tensor([mu], dtype=torch.float64), torch.tensor([sigma**2], dtype=torch.float64), alpha)
    assert closed.item() == pytest.approx(tail.mean().item(), rel=0.01)
    # Multiplying the tail factor by the variance (the authors' code) instead of sigma doubles it here.
    tail_factor = (mu - closed.item()) / sigma
    assert abs((mu - tail_factor * sigma**2) - tail.mean().item()) > 0.5


def test_cvar_alpha_one_is_mean_and_tensor_alpha():
    q = torch.tensor([1.0, -2.0, 0.0])
    ups = torch.tensor([4.0, 1.0, 0.0], requires_grad=True)
    assert torch.allclose(cvar(q, ups, 1.0), q)
    alpha = torch.tensor([1.0, 0.5, 0.1])
    out = cvar(q, ups, alpha)
    # alpha = 0.5: phi(0) / 0.5 = 0.7979; alpha = 0.1 with zero variance: the mean.
    assert torch.allclose(out, torch.tensor([1.0, -2.0 - 2.0 / math.sqrt(2 * math.pi), 0.0]), atol=1e-5)
    out.sum().backward()
    assert torch.isfinite(ups.grad).all()


def test_actor_loss_prefers_low_variance_at_small_alpha():
    # Same mean, different variance: the risk-averse loss must be lower for the low-variance one.
    q = torch.tensor([1.0])
    assert wcpg_actor_loss(q, torch.tensor([0.1]), 0.1) < wcpg_actor_loss(q, torch.tensor([2.0]), 0.1)
    assert wcpg_actor_loss(q, torch.tensor([2.0]), 1.0).item() == pytest.approx(-1.0)


def test_modules_and_risk_levels():
    gen = torch.Generator().manual_seed(3)
    alpha = sample_risk_levels(1000, generator=gen)
    assert alpha.min() >= 0.1 and alpha.max() <= 1.0 and abs(alpha.mean().item() - 0.55) < 0.03
    with pytest.raises(ValueError):
        sample_risk_levels(3, low=0.0)
    critic, actor = WCPGCritic(4, 2, hidden=(16,)), WCPGActor(4, 2, hidden=(16,))
    obs = torch.randn(5, 4)
    act = actor(obs, alpha[:5])
    assert act.shape == (5, 2) and act.abs().max() <= 1.0
    q, ups = critic(obs, act, 0.3)
    assert q.shape == (5,) and ups.shape == (5,) and (ups > 0).all()
    # The risk level is an input: changing it changes the outputs.
    assert not torch.allclose(actor(obs, 0.1), actor(obs, 1.0))


def test_actor_mean_init_scale_starts_near_the_zero_action():
    obs, alpha = torch.randn(256, 4), torch.full((256,), 0.5)
    torch.manual_seed(0)
    wide = WCPGActor(4, 2, hidden=(16,))
    torch.manual_seed(0)
    small = WCPGActor(4, 2, hidden=(16,), mean_init_scale=0.01)
    # Same draw, output layer scaled by 0.01: tanh is ~linear there, so the actions shrink ~100-fold.
    ratio = small(obs, alpha).abs().mean() / wide(obs, alpha).abs().mean()
    assert 0.005 < ratio.item() < 0.02
