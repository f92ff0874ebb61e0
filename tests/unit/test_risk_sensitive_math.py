"""RS's shaped reward, dual loss for lambda (shared with nu) and linear schedule (sqrl_rllib.core.risk_sensitive)."""

import pytest
import torch

from sqrl_rllib.core.losses import nu_loss, sac_critic_target
from sqrl_rllib.core.risk_sensitive import (
    cap_lambda_,
    lambda_loss,
    lambda_schedule,
    risk_sensitive_critic_target,
    risk_sensitive_reward,
)

EPS_SAFE = 0.1


def test_shaped_reward_is_r_minus_lambda_q_safe_and_detached():
    reward = torch.tensor([1.0, 0.0, -2.0])
    q_safe = torch.tensor([0.5, 0.9, 0.0], requires_grad=True)
    log_lam = torch.tensor(1.0, requires_grad=True)
    out = risk_sensitive_reward(reward, q_safe, log_lam.exp())
    lam = torch.e
    assert torch.allclose(out, torch.tensor([1.0 - 0.5 * lam, -0.9 * lam, -2.0]))
    assert not out.requires_grad  # neither the safety critic nor lambda learn through the TD error
    assert torch.allclose(risk_sensitive_reward(reward, q_safe, 2.0), torch.tensor([0.0, -1.8, -2.0]))


def test_critic_target_uses_shaped_reward():
    reward, q_safe = torch.tensor([1.0, 2.0]), torch.tensor([0.5, 0.25])
    terminated, logp = torch.tensor([0.0, 1.0]), torch.tensor([0.1, 0.2])
    q_next = torch.tensor([[1.0, 3.0], [2.0, 1.0]])
    y = risk_sensitive_critic_target(reward, terminated, q_next, logp, 0.5, 0.9, q_safe, 4.0)
    # r - 4 Q_safe = (-1, 1); row 0 bootstraps min(1, 2) - 0.5 * 0.1 = 0.95.
    assert torch.allclose(y, torch.tensor([-1.0 + 0.9 * 0.95, 1.0]))
    assert torch.allclose(y, sac_critic_target(reward - 4.0 * q_safe, terminated, q_next, logp, 0.5, 0.9))


def _dual(loss_fn, q_value, steps=100):
    log_m = torch.nn.Parameter(torch.tensor(0.0))
    opt = torch.optim.SGD([log_m], lr=0.1)
    q = torch.full((32,), q_value)
    for _ in range(steps):
        opt.zero_grad()
        loss_fn(log_m, q, EPS_SAFE).backward()
        opt.step()
    return log_m.exp().item()


@pytest.mark.parametrize("loss_fn", [lambda_loss, nu_loss], ids=["lambda", "nu"])
def test_multiplier_direction(loss_fn):
    assert _dual(loss_fn, 0.4) > 2.0  # E[Q_safe] above eps_safe: the multiplier grows from 1
    assert _dual(loss_fn, 0.0) < 0.5  # below: it shrinks (and stays positive)
    assert _dual(loss_fn, EPS_SAFE) == pytest.approx(1.0)  # on the threshold: no push


def test_lambda_loss_is_nu_loss_and_cap():
    log_m, q = torch.tensor(0.3), torch.rand(16)
    assert lambda_loss(log_m, q, EPS_SAFE).item() == pytest.approx(nu_loss(log_m, q, EPS_SAFE).item())
    log_lam = torch.tensor(5.0)
    cap_lambda_(log_lam, 10.0)
    assert log_lam.exp().item() == pytest.approx(10.0)


def test_lambda_schedule():
    assert lambda_schedule(0, 100) == 0.0
    assert lambda_schedule(100, 100) == 10.0
    assert lambda_schedule(25, 100) == pytest.approx(2.5)
    assert lambda_schedule(500, 100) == 10.0 and lambda_schedule(-5, 100) == 0.0  # held at the ends
    assert lambda_schedule(50, 100, start=2.0, end=4.0) == pytest.approx(3.0)
    assert lambda_schedule(3, 0) == 10.0
