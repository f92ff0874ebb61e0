"""ESAC's pessimistic ensemble target and actor loss (sqrl_rllib.core.esac), on hand-made batches."""

import pytest
import torch

from sqrl_rllib.core.esac import aggregate_ensemble, esac_actor_loss, esac_critic_loss, esac_critic_target
from sqrl_rllib.core.losses import sac_critic_loss


def _batch():
    # 3 samples, 4 critics; each column's minimum sits in a different critic.
    q_next = torch.tensor([[1.0, 5.0, -2.0], [3.0, 0.5, 4.0], [2.0, 7.0, 1.0], [0.0, 6.0, 3.0]])
    reward = torch.tensor([1.0, -1.0, 0.5])
    terminated = torch.tensor([0.0, 1.0, 0.0])
    logp_next = torch.tensor([-1.0, 2.0, 0.5])
    return reward, terminated, q_next, logp_next


def test_min_target_matches_hand_computation():
    reward, terminated, q_next, logp_next = _batch()
    alpha, gamma = 0.2, 0.9
    y = esac_critic_target(reward, terminated, q_next, logp_next, alpha, gamma)
    # min per column: 0.0, 0.5, -2.0; the second sample is terminal.
    expected = torch.tensor([1.0 + 0.9 * (0.0 + 0.2), -1.0, 0.5 + 0.9 * (-2.0 - 0.1)])
    assert torch.allclose(y, expected, atol=1e-6)
    assert not y.requires_grad


def test_entropy_false_drops_the_term():
    reward, terminated, q_next, logp_next = _batch()
    y = esac_critic_target(reward, terminated, q_next, logp_next, 0.2, 0.9, entropy=False)
    expected = torch.tensor([1.0 + 0.9 * 0.0, -1.0, 0.5 + 0.9 * -2.0])
    assert torch.allclose(y, expected, atol=1e-6)


def test_percentile_matches_quantile_by_hand():
    # Every sample's ensemble holds 0..9 (shuffled per column): the 30th percentile with linear
    # interpolation is position 0.3 * 9 = 2.7 between order statistics 2 and 3, i.e. 2.7.
    gen = torch.Generator().manual_seed(0)
    q_next = torch.stack([torch.randperm(10, generator=gen).float() for _ in range(5)], dim=1)  # [10, 5]
    assert torch.allclose(aggregate_ensemble(q_next, 30.0), torch.full((5,), 2.7), atol=1e-6)
    assert torch.allclose(aggregate_ensemble(q_next, 0.0), torch.zeros(5))
    assert torch.allclose(aggregate_ensemble(q_next, 50), torch.full((5,), 4.5))
    # The authors' effective call, percentile 0.3 of 0-100, is ~ the minimum: 0.027 here.
    assert torch.allclose(aggregate_ensemble(q_next, 0.3), torch.full((5,), 0.027), atol=1e-6)
    reward = torch.zeros(5)
    y = esac_critic_target(reward, torch.zeros(5), q_next, torch.zeros(5), 0.0, 1.0, aggregate=30.0)
    assert torch.allclose(y, torch.full((5,), 2.7), atol=1e-6)


def test_bad_aggregate_rejected():
    q = torch.zeros(3, 2)
    for bad in ("mean", 101.0, -1.0, True):
        with pytest.raises(ValueError):
            aggregate_ensemble(q, bad)


def test_actor_loss_uses_per_sample_minimum():
    # Per-sample minima are (1, 4); the batch's scalar minimum is 1 (the authors' bug).
    q_pi = torch.tensor([[1.0, 4.0], [3.0, 9.0]], requires_grad=True)
    logp = torch.tensor([0.5, -0.5])
    alpha = 0.1
    loss = esac_actor_loss(q_pi, logp, alpha)
    per_sample = (alpha * logp - torch.tensor([1.0, 4.0])).mean()
    batch_scalar = (alpha * logp - 1.0).mean()
    assert loss.item() == pytest.approx(per_sample.item(), abs=1e-6)
    assert abs(per_sample.item() - batch_scalar.item()) > 1.0  # the two readings are far apart
    loss.backward()
    # Gradient reaches each sample's own minimum (critic 0 for both here), -1/B each.
    assert torch.allclose(q_pi.grad, torch.tensor([[-0.5, -0.5], [0.0, 0.0]]))


def test_critic_loss_is_sacs():
    q = torch.tensor([[1.0, 2.0], [0.0, 4.0], [2.0, 2.0]])
    target = torch.tensor([1.0, 3.0])
    assert esac_critic_loss is sac_critic_loss
    # 0.5 * sum_i mean_b (q_ib - y_b)^2 = 0.5 * (0.5 + 1.0 + 1.0)
    assert esac_critic_loss(q, target).item() == pytest.approx(1.25)
