"""Networks of sqrl_rllib.core.networks checked against plain per-member / per-layer arithmetic (issue 20).

These close the gaps mutation testing found: the batched twin critic had no test of its values, and the
policy's ``sample`` / ``mean_action`` / log-std clamp were only exercised through Ray-side tests.
"""

import math

import pytest
import torch

from sqrl_rllib.core.networks import (
    LOG_STD_MAX,
    LOG_STD_MIN,
    EnsembleLinear,
    EnsembleQ,
    SafetyCritic,
    SquashedGaussianPolicy,
    mlp,
    sample_squashed,
)


def test_ensemble_linear_is_n_independent_affine_maps_on_2d_and_3d_inputs():
    torch.manual_seed(0)
    layer = EnsembleLinear(3, 4, 5)
    assert layer.weight.shape == (3, 4, 5) and layer.bias.shape == (3, 1, 5)
    x = torch.randn(7, 4)
    out = layer(x)  # [B, in]: every member sees the same input
    assert out.shape == (3, 7, 5)
    for i in range(3):
        torch.testing.assert_close(out[i], x @ layer.weight[i] + layer.bias[i])
    x3 = torch.randn(3, 7, 4)  # [n, B, in]: member i sees x3[i]
    out3 = layer(x3)
    for i in range(3):
        torch.testing.assert_close(out3[i], x3[i] @ layer.weight[i] + layer.bias[i])


def test_ensemble_linear_init_is_uniform_within_one_over_sqrt_fan_in():
    torch.manual_seed(0)
    layer = EnsembleLinear(2, 16, 64)
    bound = 1.0 / math.sqrt(16)
    for p in (layer.weight, layer.bias):
        assert p.abs().max() <= bound
        # Spread over the whole interval, on both signs (not a constant or a narrower range).
        assert p.max() > 0.9 * bound and p.min() < -0.9 * bound


def test_ensemble_q_equals_each_member_as_a_plain_relu_mlp():
    torch.manual_seed(1)
    q = EnsembleQ(3, 2, n=4, hidden=(8, 6))
    assert q.n == 4 and len(q.layers) == 3
    obs, actions = torch.randn(5, 3), torch.randn(5, 2)
    values = q(obs, actions)
    assert values.shape == (4, 5)
    for i in range(4):
        h = torch.cat([obs, actions], -1)
        for j, layer in enumerate(q.layers):
            h = h @ layer.weight[i] + layer.bias[i]
            if j < len(q.layers) - 1:
                h = torch.relu(h)
        torch.testing.assert_close(values[i], h.squeeze(-1))


def test_ensemble_q_output_is_not_rectified():
    """The last layer is linear: with a negative output bias the critics return negative values."""
    torch.manual_seed(2)
    q = EnsembleQ(2, 1, n=2, hidden=(4,))
    with torch.no_grad():
        q.layers[-1].bias.fill_(-100.0)
    assert (q(torch.randn(6, 2), torch.randn(6, 1)) < 0).all()


def test_mlp_layers_and_activation():
    net = mlp(3, 2, (5, 4), activation=torch.nn.Tanh)
    kinds = [type(m) for m in net]
    assert kinds == [torch.nn.Linear, torch.nn.Tanh, torch.nn.Linear, torch.nn.Tanh, torch.nn.Linear]
    assert [(m.in_features, m.out_features) for m in net if isinstance(m, torch.nn.Linear)] == [(3, 5), (5, 4), (4, 2)]
    assert [type(m) for m in mlp(3, 2, (5,))] == [torch.nn.Linear, torch.nn.ReLU, torch.nn.Linear]


def test_safety_critic_is_the_sigmoid_of_its_logits():
    torch.manual_seed(3)
    critic = SafetyCritic(3, 2, (8,))
    obs, actions = torch.randn(4, 6, 3), torch.randn(4, 6, 2)
    logits = critic.logits(obs, actions)
    assert logits.shape == (4, 6)
    torch.testing.assert_close(logits, critic.net(torch.cat([obs, actions], -1)).squeeze(-1))
    torch.testing.assert_close(critic(obs, actions), torch.sigmoid(logits))


def test_policy_clamps_log_std_but_not_the_mean():
    policy = SquashedGaussianPolicy(2, 2, (4,))
    head = policy.net[-1]
    with torch.no_grad():
        head.weight.zero_()
        head.bias.copy_(torch.tensor([50.0, -50.0, 50.0, -50.0]))  # mean (50, -50), log_std (50, -50)
    out = policy.distribution_inputs(torch.zeros(3, 2))
    torch.testing.assert_close(out, torch.tensor([[50.0, -50.0, LOG_STD_MAX, LOG_STD_MIN]]).expand(3, 4))


def test_policy_mean_action_and_sample_use_the_head():
    torch.manual_seed(4)
    policy = SquashedGaussianPolicy(3, 2, (8,))
    obs = torch.randn(5, 3)
    inputs = policy.distribution_inputs(obs)
    torch.testing.assert_close(policy.mean_action(obs), torch.tanh(inputs[:, :2]))
    for n, shape in ((None, (5, 2)), (7, (5, 7, 2))):
        torch.manual_seed(10)
        actions, logp = policy.sample(obs, n)
        torch.manual_seed(10)
        ref_actions, ref_logp = sample_squashed(inputs, n)
        assert actions.shape == shape and logp.shape == shape[:-1]
        torch.testing.assert_close(actions, ref_actions)
        torch.testing.assert_close(logp, ref_logp)


def test_sample_squashed_mean_first_needs_n_and_puts_the_mean_at_index_0():
    with pytest.raises(ValueError, match=r"^sample_squashed: mean_first needs n \(the sample axis\)$"):
        sample_squashed(torch.zeros(2, 2), mean_first=True)
    inputs = torch.tensor([[0.3, -0.4, math.log(0.5), math.log(2.0)]])
    actions, _ = sample_squashed(inputs, 4, mean_first=True)
    torch.testing.assert_close(actions[0, 0], torch.tanh(torch.tensor([0.3, -0.4])))
    assert not torch.allclose(actions[0, 1], actions[0, 0])


def test_sample_squashed_on_batched_inputs_with_three_action_dims():
    """[T, B, 2 * act_dim] inputs with act_dim = 3 (the docstring's [..., 2 * act_dim])."""
    torch.manual_seed(5)
    inputs = torch.randn(2, 4, 6)
    actions, logp = sample_squashed(inputs, 5, mean_first=True)
    assert actions.shape == (2, 4, 5, 3) and logp.shape == (2, 4, 5)
    torch.testing.assert_close(actions[:, :, 0], torch.tanh(inputs[..., :3]))
    one, one_logp = sample_squashed(inputs)
    assert one.shape == (2, 4, 3) and one_logp.shape == (2, 4)


def test_networks_honour_hidden_sizes_and_defaults():
    torch.manual_seed(6)
    critic = SafetyCritic(3, 2, (7,))
    assert [m.out_features for m in critic.net if isinstance(m, torch.nn.Linear)] == [7, 1]
    policy = SquashedGaussianPolicy(3, 3, (5,))
    assert [m.out_features for m in policy.net if isinstance(m, torch.nn.Linear)] == [5, 6]
    assert EnsembleQ(3, 2).n == 2
    # Batched observations [T, B, obs_dim]: (mean, clamped log_std) along the last axis.
    obs = torch.randn(2, 4, 3)
    out = policy.distribution_inputs(obs)
    raw = policy.net(obs)
    assert out.shape == (2, 4, 6)
    torch.testing.assert_close(out, torch.cat([raw[..., :3], raw[..., 3:].clamp(LOG_STD_MIN, LOG_STD_MAX)], -1))


def test_policy_mean_head_scale_default_and_factor_two():
    torch.manual_seed(7)
    default = SquashedGaussianPolicy(4, 2, (8,))
    assert default.net[-1].weight.abs().max() <= 1.0 / math.sqrt(8)  # torch's own init, unscaled
    obs = torch.randn(6, 4)
    torch.manual_seed(8)
    plain = SquashedGaussianPolicy(4, 2, (8,)).distribution_inputs(obs)
    torch.manual_seed(8)
    doubled = SquashedGaussianPolicy(4, 2, (8,), mean_init_scale=2.0).distribution_inputs(obs)
    torch.testing.assert_close(doubled[:, :2], 2.0 * plain[:, :2])
    torch.testing.assert_close(doubled[:, 2:], plain[:, 2:])
