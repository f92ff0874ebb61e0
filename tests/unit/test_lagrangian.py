"""Dual ascent on nu: it rises while the constraint is violated and decays when it is met."""

import math

import torch

from sqrl_rllib.core.losses import cap_nu_, lagrangian_actor_term, nu_loss


def run_dual(q_safe_value: float, steps: int = 200, nu_max: float | None = None) -> list[float]:
    log_nu = torch.nn.Parameter(torch.tensor(0.0))
    opt = torch.optim.Adam([log_nu], lr=1e-2)
    q = torch.full((64,), q_safe_value)
    trace = []
    for _ in range(steps):
        opt.zero_grad()
        nu_loss(log_nu, q, eps_safe=0.1).backward()
        opt.step()
        cap_nu_(log_nu, nu_max)
        trace.append(log_nu.exp().item())
    return trace


def test_nu_rises_while_violated():
    trace = run_dual(0.3)
    assert trace[-1] > trace[0] > 1.0


def test_nu_decays_when_met():
    trace = run_dual(0.02)
    assert trace[-1] < trace[0] < 1.0
    assert trace[-1] > 0  # log-parameterised: never negative


def test_nu_max_caps_dual_ascent_and_nu_still_decays():
    capped = run_dual(0.9, steps=400, nu_max=2.0)
    assert max(capped) <= 2.0 + 1e-6 and capped[-1] > 1.99
    assert run_dual(0.9, steps=400)[-1] > 10.0  # uncapped it keeps rising
    # Pinned at the cap, it moves down as soon as the constraint is met.
    log_nu = torch.nn.Parameter(torch.tensor(math.log(2.0)))
    opt = torch.optim.Adam([log_nu], lr=1e-2)
    for _ in range(50):
        opt.zero_grad()
        nu_loss(log_nu, torch.full((8,), 0.02), eps_safe=0.1).backward()
        opt.step()
        cap_nu_(log_nu, 2.0)
    assert log_nu.exp().item() < 1.9


def test_actor_term_pushes_actions_off_risky_q_safe():
    action = torch.tensor([0.5], requires_grad=True)
    q_safe = torch.sigmoid(4 * action)  # riskier for larger actions
    lagrangian_actor_term(q_safe, torch.tensor(2.0), 0.1).backward()
    assert action.grad.item() > 0  # gradient descent lowers the action, lowering Q_safe
