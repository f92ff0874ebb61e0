"""CPO's math (sqrl_rllib.core.cpo): GAE, conjugate gradient, Fisher products, the dual step, line search."""

import math

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from sqrl_rllib.core.cpo import (
    backtracking_line_search,
    conjugate_gradient,
    cost_limit_from_eps,
    cpo_step,
    fisher_vector_product,
    flat_grad,
    gae,
    make_fisher_vector_product,
)

DELTA = 0.05


def _spd(n, seed):
    gen = torch.Generator().manual_seed(seed)
    m = torch.randn(n, n, generator=gen, dtype=torch.float64)
    return m @ m.T + 0.5 * torch.eye(n, dtype=torch.float64), gen


def _problem(seed, n=5):
    H, gen = _spd(n, seed)
    g = torch.randn(n, generator=gen, dtype=torch.float64)
    b = torch.randn(n, generator=gen, dtype=torch.float64)
    Hg, Hb = torch.linalg.solve(H, g), torch.linalg.solve(H, b)
    return H, g, b, Hg, Hb


def _slsqp(H, g, b, c, delta):
    """Brute force: maximise g^T x s.t. 1/2 x^T H x <= delta and b^T x + c <= 0."""
    Hn, gn, bn = H.numpy(), g.numpy(), b.numpy()
    cons = [
        {"type": "ineq", "fun": lambda x: delta - 0.5 * x @ Hn @ x, "jac": lambda x: -Hn @ x},
        {"type": "ineq", "fun": lambda x: -(bn @ x + c), "jac": lambda x: -bn},
    ]
    best = None
    for x0 in (np.zeros_like(gn), -0.1 * bn, 0.1 * gn):  # a few starts; keep the best feasible
        res = minimize(lambda x: -gn @ x, x0, jac=lambda x: -gn, constraints=cons, method="SLSQP",
                       options={"ftol": 1e-14, "maxiter": 500})  # fmt: skip
        if res.success and (best is None or res.fun < best.fun):
            best = res
    return torch.from_numpy(best.x)


def test_conjugate_gradient_solves_spd_system():
    A, gen = _spd(10, 0)
    b = torch.randn(10, generator=gen, dtype=torch.float64)
    x = conjugate_gradient(lambda v: A @ v, b, iters=10)
    assert torch.allclose(x, torch.linalg.solve(A, b), atol=1e-6)
    assert (A @ x - b).abs().max() < 1e-6
    # Two iterations are not enough on a 10-dim system: the check above has teeth.
    assert (A @ conjugate_gradient(lambda v: A @ v, b, iters=2) - b).abs().max() > 1e-3


def test_fisher_vector_product_is_kl_hessian():
    # Gaussian policy with mean X w and fixed sigma: KL(old || new) = mean (X (w - w_old))^2 / (2 sigma^2),
    # whose Hessian (the Fisher) is X^T X / (n sigma^2).
    gen = torch.Generator().manual_seed(1)
    X = torch.randn(50, 4, generator=gen, dtype=torch.float64)
    w = torch.randn(4, generator=gen, dtype=torch.float64, requires_grad=True)
    w_old, sigma = w.detach().clone(), 0.7

    def kl_fn():
        return ((X @ (w - w_old)) ** 2).mean() / (2 * sigma**2)

    fisher = X.T @ X / (50 * sigma**2)
    v = torch.randn(4, generator=gen, dtype=torch.float64)
    assert torch.allclose(fisher_vector_product(kl_fn, [w], v, damping=0.1), fisher @ v + 0.1 * v, atol=1e-10)
    fvp = make_fisher_vector_product(kl_fn, [w], damping=0.0)
    x = conjugate_gradient(fvp, v, iters=10)
    assert torch.allclose(x, torch.linalg.solve(fisher, v), atol=1e-8)


def test_flat_grad_zero_fills_unused():
    a = torch.tensor([1.0, 2.0], requires_grad=True)
    unused = torch.zeros(3, requires_grad=True)
    assert torch.equal(flat_grad((a**2).sum(), [a, unused]), torch.tensor([2.0, 4.0, 0.0, 0.0, 0.0]))


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("side", ["violated", "slack"])
def test_cpo_step_matches_brute_force_when_constraint_binds(seed, side):
    H, g, b, Hg, Hb = _problem(seed)
    q, r, s = g @ Hg, g @ Hb, b @ Hb
    if r < 0:  # orient b so that the TRPO step raises the cost
        b, Hb, r = -b, -Hb, -r
    trpo_rise = math.sqrt(2 * DELTA / q) * r
    # c > 0: x = 0 infeasible but the region reaches the constraint; c < 0: the TRPO step overshoots it.
    c = 0.5 * math.sqrt(2 * DELTA * s) if side == "violated" else -0.4 * trpo_rise
    out = cpo_step(g, b, c, Hg, Hb, DELTA)
    assert out.status == "feasible" and out.lam > 0 and out.nu > 0
    ref = _slsqp(H, g, b, c, DELTA)
    assert torch.allclose(out.x, ref, atol=1e-4), (out.x, ref)
    # Both constraints active at the optimum.
    assert (0.5 * out.x @ H @ out.x).item() == pytest.approx(DELTA, rel=1e-6)
    assert (b @ out.x + c).item() == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("seed", range(3))
def test_cpo_step_inactive_constraint_is_trpo(seed):
    H, g, b, Hg, Hb = _problem(seed)
    q = g @ Hg
    out = cpo_step(g, b, -10.0, Hg, Hb, DELTA)  # far inside the constraint
    assert out.status == "trpo" and out.nu == 0.0
    assert torch.allclose(out.x, math.sqrt(2 * DELTA / q) * Hg, atol=1e-12)
    assert torch.allclose(out.x, _slsqp(H, g, b, -10.0, DELTA), atol=1e-4)


@pytest.mark.parametrize("seed", range(3))
def test_cpo_step_infeasible_takes_recovery_step(seed):
    H, g, b, Hg, Hb = _problem(seed)
    s = b @ Hb
    c = 2.0 * math.sqrt(2 * DELTA * s)  # twice what the trust region can remove
    out = cpo_step(g, b, c, Hg, Hb, DELTA)
    assert out.status == "recovery"
    assert torch.allclose(out.x, -math.sqrt(2 * DELTA / s) * Hb, atol=1e-12)
    # It is the trust region's largest cost decrease (brute force: minimise b^T x in the region).
    Hn, bn = H.numpy(), b.numpy()
    res = minimize(lambda x: bn @ x, np.zeros(5), jac=lambda x: bn, method="SLSQP", options={"ftol": 1e-14},
                   constraints=[{"type": "ineq", "fun": lambda x: DELTA - 0.5 * x @ Hn @ x}])  # fmt: skip
    assert torch.allclose(out.x, torch.from_numpy(res.x), atol=1e-4)


def test_cpo_step_degenerate_gradients():
    H, g, b, Hg, Hb = _problem(0)
    q, s = g @ Hg, b @ Hb
    zero = torch.zeros_like(b)
    # No cost gradient: TRPO step, whatever c says.
    out = cpo_step(g, zero, 1.0, Hg, zero, DELTA)
    assert out.status == "trpo" and torch.allclose(out.x, math.sqrt(2 * DELTA / q) * Hg)
    # g parallel to b (reward and cost gradients aligned): land on the constraint plane.
    c = 0.3 * math.sqrt(2 * DELTA * s)
    out = cpo_step(2.0 * b, b, c, 2.0 * Hb, Hb, DELTA)
    assert out.status == "feasible" and (b @ out.x + c).abs() < 1e-9 and (0.5 * out.x @ H @ out.x) <= DELTA
    # Opposite gradients: the TRPO step itself lowers the cost, so it stands.
    assert cpo_step(-2.0 * b, b, c, -2.0 * Hb, Hb, DELTA).status == "trpo"
    # No reward gradient and the constraint holds: stay.
    assert torch.equal(cpo_step(zero, b, -1.0, zero, Hb, DELTA).x, zero)


def test_gae_hand_example_with_boundary_and_truncation():
    # Episode 1: rows 0-2, terminated at row 2. Episode 2: rows 3-4, truncated at row 4 (bootstrap V = 3).
    rewards = torch.tensor([1.0, 0.0, 2.0, 1.0, 1.0], dtype=torch.float64)
    values = torch.tensor([0.5, 1.0, 1.5, 2.0, 1.0], dtype=torch.float64)
    next_values = torch.tensor([1.0, 1.5, 9.9, 1.0, 3.0], dtype=torch.float64)  # 9.9: terminal, ignored
    terminated = torch.tensor([0, 0, 1, 0, 0])
    truncated = torch.tensor([0, 0, 0, 0, 1])
    adv, ret = gae(rewards, values, next_values, terminated, truncated, gamma=0.9, lam=0.8)
    # deltas: 1.4, 0.35, 0.5, -0.1, 2.7; gamma * lam = 0.72, no carry across row 2 -> 3.
    expected = torch.tensor([1.4 + 0.72 * 0.71, 0.35 + 0.72 * 0.5, 0.5, -0.1 + 0.72 * 2.7, 2.7], dtype=torch.float64)
    assert torch.allclose(adv, expected, atol=1e-12)
    assert torch.allclose(ret, expected + values, atol=1e-12)
    # Same episodes, truncated one first: nothing may carry from episode 2 back across the truncation.
    order = torch.tensor([3, 4, 0, 1, 2])
    adv_swapped, _ = gae(rewards[order], values[order], next_values[order], terminated[order], truncated[order],
                         gamma=0.9, lam=0.8)  # fmt: skip
    assert torch.allclose(adv_swapped, expected[order], atol=1e-12)
    # lam = 1: returns are the discounted Monte Carlo returns, bootstrapped at the truncation.
    _, ret1 = gae(rewards, values, next_values, terminated, truncated, gamma=0.9, lam=1.0)
    mc = torch.tensor([1 + 0.9 * 1.8, 1.8, 2.0, 1 + 0.9 * 3.7, 1 + 0.9 * 3.0], dtype=torch.float64)
    assert torch.allclose(ret1, mc, atol=1e-12)


def _quadratic_kl(step):
    return (step**2).sum()


def test_line_search_rejects_kl_violation_then_accepts():
    x = torch.tensor([2.0 * math.sqrt(DELTA), 0.0])  # full step KL = 4 delta
    res = backtracking_line_search(x, _quadratic_kl, lambda st: st.sum(), DELTA)
    # First k with 0.64^k * 4 <= 1 is k = 4.
    assert res.accepted and res.n_backtracks == 4 and res.fraction == pytest.approx(0.8**4)
    assert _quadratic_kl(res.x) <= DELTA and torch.allclose(res.x, 0.8**4 * x)
    # Too few backtracks: nothing passes, keep the old policy.
    res = backtracking_line_search(x, _quadratic_kl, lambda st: st.sum(), DELTA, max_backtracks=3)
    assert not res.accepted and torch.equal(res.x, torch.zeros(2))


def test_line_search_surrogate_and_cost_checks():
    x = torch.tensor([0.1, 0.0])
    # The surrogate gets worse along x: rejected in a normal step.
    assert not backtracking_line_search(x, _quadratic_kl, lambda st: -st.sum(), DELTA).accepted
    # The cost surrogate rises by 10 * sum(step), 1.0 at the full step, but the slack max(-c, 0) is 0.5:
    # accepted at the first k with 0.8^k <= 0.5, k = 4 (without the cost check k would be 0).
    res = backtracking_line_search(
        x, _quadratic_kl, lambda st: st.sum(), DELTA, cost_fn=lambda st: 10 * st.sum(), c=-0.5
    )
    assert res.accepted and res.n_backtracks == 4 and (10 * res.x.sum()).item() <= 0.5
    # With the constraint violated (c > 0) there is no slack: any cost rise is rejected.
    assert not backtracking_line_search(
        x, _quadratic_kl, lambda st: st.sum(), DELTA, cost_fn=lambda st: 10 * st.sum(), c=0.2
    ).accepted
    # Recovery ignores the reward and requires the cost not to increase.
    rec = backtracking_line_search(x, _quadratic_kl, lambda st: -st.sum(), DELTA, cost_fn=lambda st: -st.sum(),
                                   recovery=True)  # fmt: skip
    assert rec.accepted and rec.n_backtracks == 0
    assert not backtracking_line_search(
        x, _quadratic_kl, lambda st: st.sum(), DELTA, cost_fn=lambda st: st.sum(), recovery=True
    ).accepted


def test_cost_limit_from_eps():
    assert cost_limit_from_eps(0.1, 0.99, 1000) == 0.1
    assert cost_limit_from_eps(0.1, 0.99, 100, conservative=True) == pytest.approx(0.1 * 0.99**99)
    assert cost_limit_from_eps(0.1, 1.0, 100, conservative=True) == pytest.approx(0.1)
    for bad in ({"eps_safe": 1.5, "gamma": 0.9}, {"eps_safe": 0.1, "gamma": 0.0}):
        with pytest.raises(ValueError):
            cost_limit_from_eps(**bad)
    with pytest.raises(ValueError):
        cost_limit_from_eps(0.1, 0.9, None, conservative=True)
