"""CPO's pieces at their boundaries, and one whole update against its documented composition (issue 20).

Mutation testing of sqrl_rllib.core.cpo left these unpinned: the exact tuples of cpo_step's degenerate
cases and the comparisons at their thresholds, the line search's acceptance rules case by case, the value
fit's minibatch loop, defaults, and whether cpo_policy_update hands its options through to the pieces.
"""

import copy
import math

import pytest
import torch

from sqrl_rllib.core.cpo import (
    GaussianPolicy,
    backtracking_line_search,
    conjugate_gradient,
    cost_limit_from_eps,
    cpo_policy_update,
    cpo_step,
    fisher_vector_product,
    fit_value,
    flat_grad,
    gae,
    gaussian_kl,
    gaussian_log_prob,
    make_fisher_vector_product,
    value_net,
)

# --- cpo_step with H = I (H^-1 g = g, H^-1 b = b) ----------------------------------------------------------


def step(g, b, c, delta, eps=1e-8):
    g, b = torch.tensor(g, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)
    return cpo_step(g, b, c, g, b, delta, eps)


def test_no_gradients_at_all_is_a_zero_trpo_step():
    out = step([0.0, 0.0], [0.0, 0.0], 0.3, 0.01)
    assert out.status == "trpo" and out.lam == 0.0 and out.nu == 0.0 and not out.x.any()


def test_a_reward_gradient_below_eps_counts_as_none():
    out = step([1e-5, 0.0], [0.0, 0.0], -0.1, 0.01)  # q = 1e-10 <= eps
    assert out.status == "trpo" and out.lam == 0.0 and out.nu == 0.0 and not out.x.any()
    out = step([0.5, 0.0], [3.0, 0.0], 0.0, 0.5, eps=0.25)  # q == eps exactly: still none
    assert out.status == "trpo" and out.lam == 0.0 and out.nu == 0.0 and not out.x.any()


def test_cost_gradient_at_eps_counts_as_none():
    out = step([1.0, 0.0], [0.0, 0.5], 0.1, 0.01, eps=0.25)  # s == eps: the TRPO step, though c > 0
    assert out.status == "trpo" and out.nu == 0.0
    torch.testing.assert_close(out.x, torch.tensor([1.0, 0.0], dtype=torch.float64) / math.sqrt(1.0 / 0.02))


def test_recovery_threshold_is_sqrt_2_delta_s():
    delta, s = 0.01, 4.0
    edge = math.sqrt(2.0 * delta * s)
    assert step([1.0, 0.0], [0.0, 2.0], edge, delta).status != "recovery"  # exactly on the edge: reachable
    between = 0.5 * (edge + math.sqrt(3.0 * delta * s))
    out = step([1.0, 0.0], [0.0, 2.0], between, delta)
    assert out.status == "recovery" and out.lam == 0.0 and out.nu == pytest.approx(math.sqrt(2 * delta / s))


def test_flat_objective_stays_put_when_the_constraint_holds_else_steps_onto_its_plane():
    out = step([0.0, 0.0], [1.0, 1.0], 0.0, 0.5)  # c == 0 holds
    assert out.status == "trpo" and out.lam == 0.0 and out.nu == 0.0 and not out.x.any()
    out = step([0.0, 0.0], [2.0, 1.0], 0.5, 0.5)  # violated, reachable: x = -(c / s) b, s = 5
    assert out.status == "feasible" and out.lam == 0.0 and out.nu == 0.0
    torch.testing.assert_close(out.x, torch.tensor([-0.2, -0.1], dtype=torch.float64))


def test_trpo_step_when_its_linearised_cost_lands_exactly_on_the_limit():
    out = step([1.0, 0.0], [0.5, 0.5], -0.5, 0.5)  # lam_trpo = 1, r / lam_trpo + c == 0
    assert out.status == "trpo" and out.lam == 1.0 and out.nu == 0.0
    torch.testing.assert_close(out.x, torch.tensor([1.0, 0.0], dtype=torch.float64))


def test_near_parallel_gradients_take_the_smallest_step_onto_the_plane():
    out = step([2.0, 0.0], [1.0, 1.0], 0.5, 0.5, eps=0.5)  # A = 2 == eps * q: counts as parallel
    assert out.status == "feasible" and out.lam == 0.0 and out.nu == 1.0  # nu = r / s
    torch.testing.assert_close(out.x, torch.tensor([-0.25, -0.25], dtype=torch.float64))


# --- the line search, on scalar steps ----------------------------------------------------------------------


ONE = torch.tensor([1.0])


def test_line_search_tries_ten_candidates_by_default_then_gives_up_with_a_zero_step():
    def kl(x):
        return float(x.abs().max())

    delta = 0.8**10 * 1.0001  # only the 11th candidate is small enough
    out = backtracking_line_search(ONE, kl, lambda x: float(x.sum()), delta)
    assert out.accepted is False and out.fraction == 0.0 and out.n_backtracks == 10 and not out.x.any()
    assert backtracking_line_search(ONE, kl, lambda x: float(x.sum()), delta, max_backtracks=11).accepted


def test_line_search_accepts_a_kl_equal_to_delta():
    out = backtracking_line_search(ONE, lambda x: 0.25, lambda x: float(x.sum()), 0.25)
    assert out.accepted and out.n_backtracks == 0


def test_line_search_compares_the_surrogate_with_its_value_at_zero():
    def surrogate(x):
        return 5.0 + float(x.sum())

    out = backtracking_line_search(-0.1 * ONE, lambda x: 0.0, surrogate, 1.0)
    assert not out.accepted  # 4.9 is worse than 5
    out = backtracking_line_search(ONE, lambda x: 0.0, lambda x: 5.0, 1.0)
    assert not out.accepted  # no improvement is no improvement
    # A full step that overshoots, a shorter one that improves: backtrack, do not give up.
    out = backtracking_line_search(ONE, lambda x: 0.0, lambda x: float(x.sum() * (0.9 - x.sum())), 1.0)
    assert out.accepted and out.n_backtracks == 1 and out.fraction == pytest.approx(0.8)


def test_line_search_cost_slack_uses_the_cost_at_zero_and_is_inclusive():
    def cost(x):
        return 3.0 + 0.01 * float(x.sum())

    out = backtracking_line_search(ONE, lambda x: 0.0, lambda x: float(x.sum()), 1.0, cost_fn=cost, c=-0.5)
    assert out.accepted and out.n_backtracks == 0  # rises by 0.01, slack 0.5
    out = backtracking_line_search(
        ONE, lambda x: 0.0, lambda x: float(x.sum()), 1.0, cost_fn=lambda x: 0.5 * float(x.sum()), c=-0.5
    )
    assert out.accepted and out.n_backtracks == 0  # rises by exactly the slack


def test_recovery_ignores_the_reward_and_accepts_a_cost_that_does_not_rise():
    def no_reward(x):
        raise AssertionError("recovery must not evaluate the reward surrogate")

    out = backtracking_line_search(ONE, lambda x: 0.0, no_reward, 1.0, cost_fn=lambda x: 2.0, recovery=True)
    assert out.accepted and out.n_backtracks == 0  # equal cost is fine
    out = backtracking_line_search(
        -ONE, lambda x: 0.0, no_reward, 1.0, cost_fn=lambda x: 3.0 + float(x.sum()), recovery=True
    )
    assert out.accepted and out.n_backtracks == 0  # 2 <= 3 = the cost at zero
    # The full step overshoots the cost valley; the next one is inside it.
    out = backtracking_line_search(
        ONE, lambda x: 0.0, no_reward, 1.0, cost_fn=lambda x: float(x.sum() * (x.sum() - 0.9)), recovery=True
    )
    assert out.accepted and out.n_backtracks == 1


# --- conjugate gradient, Fisher products, flat_grad --------------------------------------------------------


def test_conjugate_gradient_default_iterations_and_strict_tolerance():
    diag = torch.arange(1.0, 21.0, dtype=torch.float64)
    b = torch.ones(20, dtype=torch.float64)

    def hvp(v):
        return diag * v

    ten = conjugate_gradient(hvp, b, iters=10)
    torch.testing.assert_close(conjugate_gradient(hvp, b), ten, rtol=0, atol=0)
    assert not torch.allclose(conjugate_gradient(hvp, b, iters=11), ten)
    one = torch.tensor([1.0], dtype=torch.float64)
    torch.testing.assert_close(conjugate_gradient(lambda v: 2 * v, one, residual_tol=1.0), 0.5 * one)


def test_fisher_products_default_damping_is_0_1_and_passed_through():
    theta = torch.nn.Parameter(torch.tensor([0.3, -0.2]))

    def kl():
        return (theta**2).sum()  # Hessian 2 I

    v = torch.tensor([1.0, 2.0])
    torch.testing.assert_close(make_fisher_vector_product(kl, [theta])(v), 2.1 * v)
    torch.testing.assert_close(fisher_vector_product(kl, [theta], v), 2.1 * v)
    torch.testing.assert_close(fisher_vector_product(kl, [theta], v, damping=0.5), 2.5 * v)


def test_flat_grad_is_detached_by_default():
    theta = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    grad = flat_grad((theta**2).sum(), [theta])
    assert not grad.requires_grad
    torch.testing.assert_close(grad, torch.tensor([2.0, 4.0]))


# --- gae, log-prob, KL -------------------------------------------------------------------------------------


def test_gae_accepts_bool_flags_and_stops_at_an_unflagged_last_row():
    rewards = torch.tensor([1.0, 0.0, 2.0])
    values, next_values = torch.tensor([0.5, 0.2, 0.1]), torch.tensor([0.2, 0.1, 0.4])
    no = torch.tensor([False, False, False])
    adv, ret = gae(rewards, values, next_values, no, no, 0.9, 0.5)
    deltas = rewards + 0.9 * next_values - values
    a2 = deltas[2]
    a1 = deltas[1] + 0.45 * a2
    a0 = deltas[0] + 0.45 * a1
    torch.testing.assert_close(adv, torch.stack([a0, a1, a2]))
    torch.testing.assert_close(ret, adv + values)
    adv_t, _ = gae(rewards, values, next_values, torch.tensor([False, True, False]), no, 0.9, 0.5)
    assert float(adv_t[1]) == pytest.approx(0.0 - 0.2)  # terminal: no bootstrap, no carry
    adv_tr, _ = gae(rewards, values, next_values, no, torch.tensor([False, True, False]), 0.9, 0.5)
    assert float(adv_tr[1]) == pytest.approx(float(deltas[1]))  # truncated: bootstrap, no carry


def test_log_prob_and_kl_reduce_only_the_action_axis():
    gen = torch.Generator().manual_seed(0)
    m0, s0, m1, s1, a = (torch.randn(2, 3, 4, generator=gen) for _ in range(5))
    d0 = torch.distributions.Independent(torch.distributions.Normal(m0, s0.exp()), 1)
    d1 = torch.distributions.Independent(torch.distributions.Normal(m1, s1.exp()), 1)
    lp = gaussian_log_prob(m0, s0, a)
    kl = gaussian_kl(m0, s0, m1, s1)
    assert lp.shape == kl.shape == (2, 3)
    torch.testing.assert_close(lp, d0.log_prob(a), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(kl, torch.distributions.kl_divergence(d0, d1), rtol=1e-5, atol=1e-5)


# --- networks ----------------------------------------------------------------------------------------------


def test_value_net_and_policy_are_tanh_mlps_of_the_given_sizes():
    kinds = [type(m) for m in value_net(3, (5, 4))]
    assert kinds == [torch.nn.Linear, torch.nn.Tanh, torch.nn.Linear, torch.nn.Tanh, torch.nn.Linear]
    assert [m.out_features for m in value_net(3, (5, 4)) if isinstance(m, torch.nn.Linear)] == [5, 4, 1]
    torch.manual_seed(0)
    policy = GaussianPolicy(3, 2, hidden=(6,))
    assert [type(m) for m in policy.mean_net] == [torch.nn.Linear, torch.nn.Tanh, torch.nn.Linear]
    assert [m.out_features for m in policy.mean_net if isinstance(m, torch.nn.Linear)] == [6, 2]
    assert policy.mean_net[-1].weight.abs().max() <= 1.0 / math.sqrt(6)  # unscaled by default
    obs = torch.randn(4, 3)
    torch.manual_seed(1)
    plain = GaussianPolicy(3, 2, hidden=(6,))(obs)[0]
    torch.manual_seed(1)
    doubled = GaussianPolicy(3, 2, hidden=(6,), mean_init_scale=2.0)(obs)[0]
    torch.testing.assert_close(doubled, 2.0 * plain)


# --- fit_value ---------------------------------------------------------------------------------------------


def test_fit_value_is_shuffled_minibatch_sgd_on_half_the_squared_error():
    torch.manual_seed(0)
    net = value_net(2, (4,))
    reference = copy.deepcopy(net)
    obs, returns = torch.randn(10, 2), torch.randn(10)
    loss = fit_value(
        net, torch.optim.SGD(net.parameters(), lr=0.1), obs, returns, 2, 4, torch.Generator().manual_seed(5)
    )
    # The same loop by hand: per epoch one permutation from the generator, minibatches of 4, 4, 2.
    gen, opt = torch.Generator().manual_seed(5), torch.optim.SGD(reference.parameters(), lr=0.1)
    for _ in range(2):
        order = torch.randperm(10, generator=gen)
        for rows in (order[:4], order[4:8], order[8:]):
            opt.zero_grad()
            (0.5 * (reference(obs[rows]).squeeze(-1) - returns[rows]).pow(2).mean()).backward()
            opt.step()
    for p, q in zip(net.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(p, q)
    with torch.no_grad():
        assert loss == pytest.approx(float(0.5 * (reference(obs).squeeze(-1) - returns).pow(2).mean()), rel=1e-6)


def test_fit_value_shuffles_with_the_generator_only():
    obs, returns = torch.randn(12, 2), torch.randn(12)
    fitted = []
    for global_seed in (0, 1):
        torch.manual_seed(7)
        net = value_net(2, (4,))
        torch.manual_seed(global_seed)
        fit_value(net, torch.optim.SGD(net.parameters(), lr=0.1), obs, returns, 1, 5, torch.Generator().manual_seed(3))
        fitted.append(torch.cat([p.detach().reshape(-1) for p in net.parameters()]))
    torch.testing.assert_close(fitted[0], fitted[1], rtol=0, atol=0)


# --- cost_limit_from_eps -----------------------------------------------------------------------------------


def test_cost_limit_accepts_the_closed_ranges_and_names_bad_values():
    assert cost_limit_from_eps(0.0, 0.99) == 0.0 and cost_limit_from_eps(1.0, 0.99) == 1.0
    assert cost_limit_from_eps(0.2, 0.9, horizon=1, conservative=True) == pytest.approx(0.2)
    with pytest.raises(ValueError, match=r"^eps_safe must be in \[0, 1\], got 1.5$"):
        cost_limit_from_eps(1.5, 0.99)
    with pytest.raises(ValueError, match=r"^gamma must be in \(0, 1\], got 1.5$"):
        cost_limit_from_eps(0.1, 1.5)
    with pytest.raises(ValueError, match=r"^conservative cost limit needs a horizon >= 1, got 0$"):
        cost_limit_from_eps(0.1, 0.9, horizon=0, conservative=True)


# --- one whole update against steps 2-5 composed from the pieces -------------------------------------------


def reference_update(policy, obs, actions, radv, cadv, c, cost_scale, max_kl, cg_iters, damping, decay, backtracks):
    """cpo_policy_update as its docstring composes it, written out with the public pieces."""
    params = list(policy.parameters())
    with torch.no_grad():
        mean_old, log_std_old = policy(obs)
        logp_old = gaussian_log_prob(mean_old, log_std_old, actions)
    adv = (radv - radv.mean()) / (radv.std(unbiased=False) + 1e-8)
    cadv = cadv - cadv.mean()

    def surrogates():
        mean, log_std = policy(obs)
        ratio = torch.exp(gaussian_log_prob(mean, log_std, actions) - logp_old)
        return (ratio * adv).mean(), cost_scale * (ratio * cadv).mean()

    def mean_kl():
        return gaussian_kl(mean_old, log_std_old, *policy(obs)).mean()

    reward0, cost0 = surrogates()
    g, b = flat_grad(reward0, params, retain_graph=True), flat_grad(cost0, params)
    fvp = make_fisher_vector_product(mean_kl, params, damping)
    out = cpo_step(g, b, c, conjugate_gradient(fvp, g, cg_iters), conjugate_gradient(fvp, b, cg_iters), max_kl)
    theta_old = torch.nn.utils.parameters_to_vector(params).detach().clone()

    def at(fn):
        def evaluate(x):
            with torch.no_grad():
                torch.nn.utils.vector_to_parameters(theta_old + x, params)
                return float(fn())

        return evaluate

    kl_at, reward_at, cost_at = at(mean_kl), at(lambda: surrogates()[0]), at(lambda: surrogates()[1])
    search = backtracking_line_search(
        out.x, kl_at, reward_at, max_kl, cost_at, c, out.status == "recovery", decay, backtracks
    )
    stats = {
        "kl": kl_at(search.x),
        "surrogate_gain": reward_at(search.x) - reward0.item(),
        "cost_surrogate_change": cost_at(search.x) - cost0.item(),
        "accepted": float(search.accepted),
        "step_fraction": search.fraction,
        "lam": out.lam,
        "nu": out.nu,
        "constraint_value": float(c),
    }
    with torch.no_grad():
        torch.nn.utils.vector_to_parameters(theta_old + search.x, params)
    return out.status, stats


def batch(seed, hidden=(4,)):
    torch.manual_seed(seed)
    policy = GaussianPolicy(2, 1, hidden=hidden, init_log_std=-0.5)
    obs = torch.randn(128, 2)
    with torch.no_grad():
        mean, log_std = policy(obs)
        actions = mean + log_std.exp() * torch.randn_like(mean)
    return policy, obs, actions


class Copying(torch.nn.Module):
    """The policy with outputs that are never views of its parameters (see the KL test at the end)."""

    def __init__(self, policy):
        super().__init__()
        self.policy = policy

    def forward(self, obs):
        return tuple(t.clone() for t in self.policy(obs))


def check_against_reference(c, cadv_of, seed=0, hidden=(4,), radv_scale=1.0, **options):
    policy, obs, actions = batch(seed, hidden)
    reference = copy.deepcopy(policy)
    radv, cadv = radv_scale * (actions[:, 0] + 0.3), cadv_of(actions, policy, obs)
    explicit = {"max_kl": 0.01, "cg_iters": 10, "damping": 0.1, "decay": 0.8, "max_backtracks": 10} | options
    params = list(policy.parameters())
    stats = cpo_policy_update(Copying(policy), params, obs, actions, radv, cadv, c, 30.0, **options)
    status, expected = reference_update(
        Copying(reference), obs, actions, radv, cadv, c, 30.0, *(explicit[k] for k in explicit)
    )
    assert stats["status"] == ["trpo", "feasible", "recovery"].index(status)
    assert set(stats) == set(expected) | {"status"}
    for key, value in expected.items():
        assert stats[key] == pytest.approx(value, rel=1e-5, abs=1e-7), key
    for p, q in zip(policy.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-7)
    return status, stats


def spread_cost(actions, policy, obs):
    """A cost advantage that is flat to first order in the mean but rises with any shift of it."""
    with torch.no_grad():
        mean = policy(obs)[0]
    return (actions[:, 0] - mean[:, 0]).pow(2)


def test_update_with_defaults_is_the_composition_with_the_documented_defaults():
    # A 16-unit policy: conjugate gradient has not converged after the default 10 iterations.
    status, stats = check_against_reference(-0.2, lambda a, p, o: a[:, 0] * 0.5, hidden=(16,))
    assert status in ("trpo", "feasible") and stats["accepted"] == 1.0
    # Here the line search needs its 11th candidate (0.8^10): the default 10 give up.
    status, stats = check_against_reference(-0.0038, spread_cost)
    assert stats["accepted"] == 0.0
    _, stats = check_against_reference(-0.0038, spread_cost, max_backtracks=11)
    assert stats["accepted"] == 1.0 and stats["step_fraction"] == pytest.approx(0.8**10)


def test_update_normalises_tiny_advantages_with_the_documented_epsilon():
    # Advantages with std ~3e-7: the 1e-8 in (A - mean) / (std + 1e-8) shows in the surrogate gain.
    check_against_reference(-0.2, lambda a, p, o: a[:, 0] * 0.5, radv_scale=1e-6)


def test_update_hands_its_options_to_the_pieces():
    options = {"max_kl": 0.03, "cg_iters": 3, "damping": 0.3, "decay": 0.5, "max_backtracks": 4}
    check_against_reference(0.05, lambda a, p, o: a[:, 0] * 0.5, **options)


def test_update_respects_the_true_cost_slack_in_the_line_search():
    # Little slack, and a cost surrogate that rises to second order: the line search backtracks 4 times.
    status, stats = check_against_reference(-1e-3, spread_cost, decay=0.5, max_backtracks=6)
    assert status == "feasible" and stats["accepted"] == 1.0 and stats["step_fraction"] == 0.5**4
    status, stats = check_against_reference(-1e-3, spread_cost, decay=0.5, max_backtracks=4)
    assert stats["accepted"] == 0.0 and stats["step_fraction"] == 0.0


def test_update_in_recovery():
    status, stats = check_against_reference(5.0, lambda a, p, o: a[:, 0])
    assert status == "recovery" and stats["cost_surrogate_change"] < 0


# Found by mutmut (session 15): log_std_old was a view of GaussianPolicy.log_std, which _set_flat updates in
# place, so the line search's KL (and stats['kl']) ignored any change of log_std.
def test_update_kl_is_the_kl_between_the_old_and_the_new_gaussian_policy():
    policy, obs, actions = batch(0)
    with torch.no_grad():
        mean_old, log_std_old = (t.clone() for t in policy(obs))
    # Reward favours actions far from the mean: the step widens the std, which the KL must count.
    radv = (actions[:, 0] - mean_old[:, 0]).abs()
    stats = cpo_policy_update(policy, list(policy.parameters()), obs, actions, radv, torch.zeros(128), -1.0, 30.0)
    with torch.no_grad():
        mean_new, log_std_new = policy(obs)
        true_kl = float(gaussian_kl(mean_old, log_std_old, mean_new, log_std_new).mean())
    assert not torch.equal(log_std_new, log_std_old)
    assert stats["kl"] == pytest.approx(true_kl, rel=1e-4)
