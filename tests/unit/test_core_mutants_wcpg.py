"""WCPG's networks, targets and risk levels: edge cases mutation testing found unpinned (issue 20)."""

import math

import pytest
import torch

from sqrl_rllib.core.wcpg import WCPGActor, WCPGCritic, cvar, sample_risk_levels, wcpg_targets


def test_centered_variance_target_value_and_bool_terminal_flags():
    reward, q_next, ups_next, q = (torch.tensor(v) for v in ([1.0, 2.0], [3.0, 5.0], [4.0, 0.5], [2.5, 1.0]))
    terminated = torch.tensor([False, True])
    q_t, ups_t = wcpg_targets(reward, terminated, q_next, ups_next, q, 0.5, clip=False, centered=True)
    # Row 0 bootstraps: Q target 1 + 0.5 * 3 = 2.5, Upsilon (2.5 - 2.5)^2 + 0.25 * 4 = 1; row 1 is terminal.
    torch.testing.assert_close(q_t, torch.tensor([2.5, 2.0]))
    torch.testing.assert_close(ups_t, torch.tensor([1.0, (2.0 - 1.0) ** 2]))


def test_cvar_keeps_the_dtype_of_q_for_a_float64_alpha():
    q, ups = torch.tensor([1.0, 2.0]), torch.tensor([4.0, 1.0])
    out = cvar(q, ups, torch.tensor([0.5, 0.5], dtype=torch.float64))
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, cvar(q, ups, 0.5))


def test_risk_levels_bounds_generator_and_device():
    assert torch.equal(sample_risk_levels(4, low=0.3, high=0.3), torch.full((4,), 0.3))  # a fixed level
    assert torch.equal(sample_risk_levels(2, low=1.0, high=1.0), torch.ones(2))
    with pytest.raises(ValueError, match=r"^risk levels need 0 < low <= high <= 1, got low=0.5, high=1.5$"):
        sample_risk_levels(3, low=0.5, high=1.5)
    draws = []
    for global_seed in (0, 1):
        torch.manual_seed(global_seed)
        draws.append(sample_risk_levels(16, generator=torch.Generator().manual_seed(9)))
    assert torch.equal(draws[0], draws[1])  # the generator, not torch's global RNG, decides
    assert sample_risk_levels(3, device="meta").device.type == "meta"


def test_critic_outputs_are_the_heads_mean_and_softplus_variance():
    torch.manual_seed(0)
    critic = WCPGCritic(3, 2, hidden=(6, 5))
    linear = [m for m in critic.net if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linear] == [(6, 6), (6, 5), (5, 2)]
    obs, actions = torch.randn(4, 3), torch.randn(4, 2)
    q, ups = critic(obs, actions, 0.25)
    raw = critic.net(torch.cat([obs, actions, torch.full((4, 1), 0.25)], -1))
    torch.testing.assert_close(q, raw[:, 0])
    torch.testing.assert_close(ups, torch.nn.functional.softplus(raw[:, 1]))


def test_float64_risk_levels_feed_float32_networks():
    torch.manual_seed(1)
    critic, actor = WCPGCritic(3, 2, hidden=(8,)), WCPGActor(3, 2, hidden=(8,))
    obs, actions = torch.randn(4, 3), torch.randn(4, 2)
    alpha64 = torch.tensor([0.1, 0.4, 0.7, 1.0], dtype=torch.float64)
    q64, ups64 = critic(obs, actions, alpha64)
    q32, ups32 = critic(obs, actions, alpha64.float())
    torch.testing.assert_close(q64, q32)
    torch.testing.assert_close(ups64, ups32)
    torch.testing.assert_close(actor(obs, alpha64), actor(obs, alpha64.float()))


def test_actor_layers_default_scale_and_factor_two():
    torch.manual_seed(2)
    actor = WCPGActor(3, 2, hidden=(7,))
    linear = [m for m in actor.net if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linear] == [(4, 7), (7, 2)]
    assert linear[-1].weight.abs().max() <= 1.0 / math.sqrt(7)  # torch's own init, unscaled by default
    obs = torch.randn(5, 3)
    torch.manual_seed(3)
    plain = WCPGActor(3, 2, hidden=(7,))
    torch.manual_seed(3)
    doubled = WCPGActor(3, 2, hidden=(7,), mean_init_scale=2.0)
    pre_tanh = torch.atanh(doubled(obs, 0.5)) / torch.atanh(plain(obs, 0.5))
    torch.testing.assert_close(pre_tanh, torch.full_like(pre_tanh, 2.0), rtol=1e-4, atol=1e-4)


def test_networks_and_cvar_keep_cpu_risk_levels_off_other_devices():
    """Shapes and devices only (the meta device): a CPU alpha must follow the batch to its device."""
    critic, actor = WCPGCritic(3, 2, hidden=(4,)).to("meta"), WCPGActor(3, 2, hidden=(4,)).to("meta")
    obs, actions = torch.zeros(5, 3, device="meta"), torch.zeros(5, 2, device="meta")
    for alpha in (0.5, torch.full((5,), 0.5)):
        q, ups = critic(obs, actions, alpha)
        assert q.device.type == ups.device.type == "meta" and q.shape == (5,)
        assert actor(obs, alpha).device.type == "meta"
    out = cvar(torch.zeros(5, device="meta"), torch.ones(5, device="meta"), torch.full((5,), 0.3))
    assert out.device.type == "meta" and out.shape == (5,)
