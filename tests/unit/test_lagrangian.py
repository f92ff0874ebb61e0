"""Dual ascent on nu: it rises while the constraint is violated and decays when it is met."""

import torch

from sqrl_rllib.core.losses import lagrangian_actor_term, nu_loss


def run_dual(q_safe_value: float, steps: int = 200) -> list[float]:
    log_nu = torch.nn.Parameter(torch.tensor(0.0))
    opt = torch.optim.Adam([log_nu], lr=1e-2)
    q = torch.full((64,), q_safe_value)
    trace = []
    for _ in range(steps):
        opt.zero_grad()
        nu_loss(log_nu, q, eps_safe=0.1).backward()
        opt.step()
        trace.append(log_nu.exp().item())
    return trace


def test_nu_rises_while_violated():
    trace = run_dual(0.3)
    assert trace[-1] > trace[0] > 1.0


def test_nu_decays_when_met():
    trace = run_dual(0.02)
    assert trace[-1] < trace[0] < 1.0
    assert trace[-1] > 0  # log-parameterised: never negative


def test_actor_term_pushes_actions_off_risky_q_safe():
    action = torch.tensor([0.5], requires_grad=True)
    q_safe = torch.sigmoid(4 * action)  # riskier for larger actions
    lagrangian_actor_term(q_safe, torch.tensor(2.0), 0.1).backward()
    assert action.grad.item() > 0  # gradient descent lowers the action, lowering Q_safe
