"""CPO, constrained policy optimization (Achiam, Held, Tamar & Abbeel 2017), the SQRL paper's on-policy baseline.

One CPO update, with theta the flat policy parameters and x = theta' - theta the step:

1. advantages of the reward and of the cost (the failure indicator) with :func:`gae`;
2. g = grad of the reward surrogate, b = grad of the cost surrogate (:func:`flat_grad`);
3. H^-1 g and H^-1 b by :func:`conjugate_gradient` on Fisher-vector products
   (:func:`make_fisher_vector_product`, the Hessian of the mean KL);
4. the step of the linearised problem ``max g^T x s.t. 1/2 x^T H x <= delta, b^T x + c <= 0`` in closed
   form (:func:`cpo_step`, Achiam et al. appendix 10.2), c = J_C(theta) - d;
5. :func:`backtracking_line_search` on the true KL, surrogate and cost surrogate.

:func:`cpo_policy_update` runs steps 2-5 on a :class:`GaussianPolicy` (the policy of CPO's and TRPO's
papers: a tanh MLP mean and a state-independent log std), and :func:`fit_value` fits the reward and cost
value networks (:func:`value_net`) to their GAE returns; ``sqrl_rllib.algorithms.cpo`` calls them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
from torch import nn

from sqrl_rllib.core.networks import mlp

__all__ = [
    "CPO_STATUSES",
    "CPOStep",
    "GaussianPolicy",
    "LineSearchResult",
    "backtracking_line_search",
    "conjugate_gradient",
    "cost_limit_from_eps",
    "cpo_policy_update",
    "cpo_step",
    "fisher_vector_product",
    "fit_value",
    "flat_grad",
    "gae",
    "gaussian_kl",
    "gaussian_log_prob",
    "make_fisher_vector_product",
    "value_net",
]

# "trpo": the linearised constraint is inactive at the TRPO step, which is then optimal (nu = 0);
# "feasible": both constraints active, the dual's interior solution (lambda, nu > 0);
# "recovery": no point of the trust region satisfies the linearised constraint; pure cost descent.
CPO_STATUSES = ("trpo", "feasible", "recovery")


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_values: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor,
    gamma: float,
    lam: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation (Schulman et al. 2016) over a flat batch of consecutive episodes.

    Input convention: row t is the transition (s_t, a_t, r_t, s_{t+1}); the rows of each episode are
    contiguous and in time order, episodes follow one another. ``next_values[t]`` = V(s_{t+1}), the
    value of the observation the step led to, so a truncated episode bootstraps from its real final
    observation (not from the next episode's first one). An episode ends at a row with
    ``terminated`` (s_{t+1} terminal: V(s_{t+1}) counts as 0) or ``truncated`` (time limit or the end
    of a rollout fragment: bootstrap from next_values[t]). The batch's last row always ends the
    recursion; an unflagged last row therefore behaves like a truncation.

        delta_t = r_t + gamma (1 - terminated_t) V(s_{t+1}) - V(s_t)
        A_t     = delta_t + gamma lam (1 - terminated_t) (1 - truncated_t) A_{t+1}

    CPO calls this twice: on the rewards with the reward critic and on the costs with the cost critic.

    Args:
        rewards: r_t (or costs), shape [T].
        values: V(s_t), shape [T].
        next_values: V(s_{t+1}), shape [T].
        terminated, truncated: episode-end flags, shape [T] (bool or float).
        gamma: discount; lam: GAE lambda in [0, 1].
    Returns:
        (advantages, returns), each [T], detached; returns = advantages + values (the critic's
        TD(lambda) target).
    """
    rewards, values, next_values = rewards.detach(), values.detach(), next_values.detach()
    cont = 1.0 - terminated.to(rewards.dtype)
    # The recursion stops at either kind of episode end; only a true terminal also drops V(s_{t+1}).
    carry = cont * (1.0 - truncated.to(rewards.dtype))
    deltas = rewards + gamma * cont * next_values - values
    advantages = torch.empty_like(rewards)
    last = torch.zeros((), dtype=rewards.dtype, device=rewards.device)
    for t in range(rewards.shape[0] - 1, -1, -1):
        last = deltas[t] + gamma * lam * carry[t] * last
        advantages[t] = last
    return advantages, advantages + values


def flat_grad(
    y: torch.Tensor,
    params: Sequence[torch.Tensor],
    retain_graph: bool | None = None,
    create_graph: bool = False,
) -> torch.Tensor:
    """Gradient of the scalar ``y`` w.r.t. ``params``, concatenated into one flat vector [sum numel].

    Parameters that ``y`` does not depend on get zeros (a policy head unused by this loss).
    """
    grads = torch.autograd.grad(
        y, list(params), retain_graph=retain_graph, create_graph=create_graph, allow_unused=True
    )
    return torch.cat(
        [(torch.zeros_like(p) if gr is None else gr).reshape(-1) for gr, p in zip(grads, params, strict=True)]
    )


def make_fisher_vector_product(
    kl_fn: Callable[[], torch.Tensor], params: Sequence[torch.Tensor], damping: float = 0.1
) -> Callable[[torch.Tensor], torch.Tensor]:
    """A function v -> (H + damping I) v, H the Hessian of the mean KL at the current parameters.

    At theta = theta_old the KL's Hessian is the Fisher information, which TRPO and CPO use as the
    trust region's metric; it is never formed: each product is a double backward pass. The KL's
    first gradient (with its graph) is built once here and reused by every product, so the ~10
    products of one conjugate-gradient solve cost one forward pass. ``damping`` keeps H + damping I
    positive definite where the sampled Fisher is singular.

    Args:
        kl_fn: returns the scalar mean KL(pi_old || pi_theta) over the batch, differentiable in params.
        params: the policy parameters theta.
        damping: Tikhonov damping added to H.
    """
    params = list(params)
    grad_kl = flat_grad(kl_fn(), params, create_graph=True)

    def fvp(v: torch.Tensor) -> torch.Tensor:
        return flat_grad(grad_kl @ v.detach(), params, retain_graph=True) + damping * v

    return fvp


def fisher_vector_product(
    kl_fn: Callable[[], torch.Tensor], params: Sequence[torch.Tensor], v: torch.Tensor, damping: float = 0.1
) -> torch.Tensor:
    """(H + damping I) v for one vector v [sum numel], H the Hessian of the mean KL (double backprop).

    One-shot form of :func:`make_fisher_vector_product`; use that one inside conjugate gradient.
    """
    return make_fisher_vector_product(kl_fn, params, damping)(v)


def conjugate_gradient(
    hvp_fn: Callable[[torch.Tensor], torch.Tensor],
    b: torch.Tensor,
    iters: int = 10,
    residual_tol: float = 1e-10,
) -> torch.Tensor:
    """Solve H x = b for symmetric positive definite H given only v -> H v (conjugate gradient).

    Exact after dim(b) iterations in exact arithmetic; TRPO/CPO stop at ~10, which approximates
    H^-1 b in the Fisher's dominant directions. Stops early once ||r||^2 < residual_tol.

    Args:
        hvp_fn: v [D] -> H v [D] (damping, if any, included).
        b: right-hand side, shape [D].
        iters: maximum iterations.
        residual_tol: threshold on the squared residual norm.
    Returns:
        x, shape [D], detached.
    """
    b = b.detach()
    x = torch.zeros_like(b)
    r = b.clone()
    p = b.clone()
    rr = r @ r
    for _ in range(iters):
        if rr < residual_tol:
            break
        hp = hvp_fn(p).detach()
        step = rr / (p @ hp)
        x = x + step * p
        r = r - step * hp
        rr_new = r @ r
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x


class CPOStep(NamedTuple):
    """The linearised CPO problem's solution: step x = (H^-1 g - nu H^-1 b) / lam, and which case applied."""

    x: torch.Tensor
    status: str
    lam: float
    nu: float


def cpo_step(
    g: torch.Tensor,
    b: torch.Tensor,
    c: float | torch.Tensor,
    H_inv_g: torch.Tensor,
    H_inv_b: torch.Tensor,
    delta: float,
    eps: float = 1e-8,
) -> CPOStep:
    """Solve max_x g^T x s.t. 1/2 x^T H x <= delta, b^T x + c <= 0 by its analytic dual (Achiam et al. 2017, 10.2).

    With q = g^T H^-1 g, r = g^T H^-1 b, s = b^T H^-1 b, the Lagrangian's maximiser over x is
    x = (H^-1 g - nu H^-1 b) / lam, and the dual is

        min_{lam > 0, nu >= 0}  (q - 2 nu r + nu^2 s) / (2 lam) + lam delta - nu c.

    Cases, in order (the problem is convex, so each is exact):

    - s <= eps (no cost gradient): the constraint cannot move to first order; the TRPO step
      (a step cannot repair a violated constraint it does not affect, so reward still improves).
    - the TRPO step x_T = sqrt(2 delta / q) H^-1 g satisfies b^T x_T + c <= 0: it solves the relaxed
      problem and is feasible, hence optimal ("trpo", nu = 0). This covers the constraint holding
      with slack (c < 0) everywhere the step can reach.
    - c - sqrt(2 delta s) > 0: even the trust region's best cost decrease leaves the linearised
      constraint violated (infeasible); the pure recovery step x = -sqrt(2 delta / s) H^-1 b
      ("recovery", lam unused).
    - otherwise both constraints are active. Eliminating nu = (r + lam c) / s gives
      (A / lam + B lam) / 2 - r c / s with A = q - r^2 / s >= 0 (Cauchy-Schwarz), B = 2 delta - c^2 / s > 0,
      so lam = sqrt(A / B) ("feasible"). When A ~ 0 (g parallel to b) every point of the constraint
      plane scores the same; the smallest such step, x = -(c / s) H^-1 b, is returned. The same
      step (or zero, if c <= 0) is returned when q ~ 0 (no reward gradient).

    The reward gradient's sign convention here is ascent (g is the gradient of the surrogate to be
    maximised, b of the cost surrogate), so r enters with the opposite sign to the paper's code,
    which minimises -g.

    Args:
        g: reward-surrogate gradient, shape [D].
        b: cost-surrogate gradient, shape [D].
        c: J_C(theta) - d, the current constraint value (> 0: violated).
        H_inv_g, H_inv_b: H^-1 g and H^-1 b (conjugate gradient), shape [D].
        delta: trust-region size (the KL bound).
        eps: threshold below which s or A count as zero.
    Returns:
        :class:`CPOStep` (x [D], status in :data:`CPO_STATUSES`, lam, nu as floats).
    """
    c = float(c)
    q = float(g @ H_inv_g)
    r = float(g @ H_inv_b)
    s = float(b @ H_inv_b)
    has_reward_grad = q > eps
    lam_trpo = math.sqrt(q / (2.0 * delta)) if has_reward_grad else 0.0
    x_trpo = H_inv_g / lam_trpo if has_reward_grad else torch.zeros_like(g)
    if s <= eps:
        return CPOStep(x_trpo, "trpo", lam_trpo, 0.0)

    if c > math.sqrt(2.0 * delta * s):
        nu = math.sqrt(2.0 * delta / s)
        return CPOStep(-nu * H_inv_b, "recovery", 0.0, nu)

    if not has_reward_grad:
        # A flat objective: stay put if the constraint holds, else step onto its plane (inside the region).
        if c <= 0.0:
            return CPOStep(x_trpo, "trpo", 0.0, 0.0)
        return CPOStep(-(c / s) * H_inv_b, "feasible", 0.0, 0.0)

    if r / lam_trpo + c <= 0.0:
        return CPOStep(x_trpo, "trpo", lam_trpo, 0.0)

    A = q - r * r / s
    B = 2.0 * delta - c * c / s
    if A <= eps * q:
        return CPOStep(-(c / s) * H_inv_b, "feasible", 0.0, r / s)
    # B > 0 here: B <= 0 with c <= 0 would make the whole region feasible (the TRPO case), with c > 0 infeasible.
    lam = math.sqrt(A / max(B, eps))
    nu = max(0.0, (r + lam * c) / s)
    return CPOStep((H_inv_g - nu * H_inv_b) / lam, "feasible", lam, nu)


class LineSearchResult(NamedTuple):
    """Outcome of :func:`backtracking_line_search`: the accepted step (zeros if none) and its scale."""

    x: torch.Tensor
    accepted: bool
    fraction: float
    n_backtracks: int


def backtracking_line_search(
    x: torch.Tensor,
    kl_fn: Callable[[torch.Tensor], float | torch.Tensor],
    surrogate_fn: Callable[[torch.Tensor], float | torch.Tensor],
    delta: float,
    cost_fn: Callable[[torch.Tensor], float | torch.Tensor] | None = None,
    c: float | None = None,
    recovery: bool = False,
    decay: float = 0.8,
    max_backtracks: int = 10,
) -> LineSearchResult:
    """Shrink the step to decay^k x, k = 0..max_backtracks-1, until the true (not linearised) checks pass.

    Each callable evaluates the policy at theta_old + step (the caller sets and restores parameters)
    and returns a scalar. A candidate is accepted when

    - KL(pi_old || pi_{theta + step}) <= delta, and
    - normal step: the reward surrogate improves on its value at step 0, and, with ``cost_fn`` and
      ``c``, the cost surrogate rises by at most max(-c, 0) (the constraint's slack; the CPO
      paper's code does the same);
    - ``recovery``: the reward is ignored and the cost surrogate must not increase.

    Args:
        x: the full step from :func:`cpo_step`, shape [D].
        kl_fn, surrogate_fn, cost_fn: step [D] -> scalar mean KL / reward surrogate / cost surrogate.
        delta: KL bound.
        c: J_C(theta) - d, as given to :func:`cpo_step`.
        recovery: the step is a recovery step (status "recovery").
        decay: shrink factor per backtrack.
        max_backtracks: number of candidates tried.
    Returns:
        :class:`LineSearchResult`; if nothing passes, a zero step with ``accepted=False`` (keep theta_old).
    """
    zero = torch.zeros_like(x)
    surr0 = float(surrogate_fn(zero)) if not recovery else 0.0
    cost0 = float(cost_fn(zero)) if cost_fn is not None else 0.0
    for k in range(max_backtracks):
        frac = decay**k
        step = frac * x
        if float(kl_fn(step)) > delta:
            continue
        if recovery:
            if cost_fn is None or float(cost_fn(step)) <= cost0:
                return LineSearchResult(step, True, frac, k)
            continue
        if float(surrogate_fn(step)) <= surr0:
            continue
        if cost_fn is not None and c is not None and float(cost_fn(step)) - cost0 > max(-float(c), 0.0):
            continue
        return LineSearchResult(step, True, frac, k)
    return LineSearchResult(zero, False, 0.0, max_backtracks)


def cost_limit_from_eps(eps_safe: float, gamma: float, horizon: int | None = None, conservative: bool = False) -> float:
    """The CPO cost limit d for "an episode fails with probability at most eps_safe".

    The cost is the failure indicator c_t = I(s_{t+1}), and a failure ends the episode, so an
    episode pays cost at most once, at its failure step T (T = inf if it never fails). Its
    discounted cost is gamma^T, and for a horizon H:

        gamma^(H-1) P(T < H)  <=  J_C = E[gamma^T]  <=  P(T < H).

    - ``conservative=False`` (default): d = eps_safe. J_C is then the same discounted failure
      probability that SQRL's Q_safe thresholds at eps_safe (use the cost discount gamma_safe), and
      with gamma = 1 it is exactly the episode's failure probability. For gamma < 1 the constraint is
      a relaxation: P(fail) <= eps_safe implies J_C <= d, not the reverse (late failures are cheap).
    - ``conservative=True``: d = gamma^(H-1) eps_safe, which guarantees P(T < H) <= eps_safe
      whenever J_C <= d (the worst case fails at the last step); needs ``horizon``. For long horizons
      it is very tight (0.99^999 ~ 4e-5).

    Args:
        eps_safe: allowed failure probability per episode, in [0, 1].
        gamma: the cost's discount, in (0, 1].
        horizon: maximum episode length H (required when ``conservative``).
        conservative: choose the sufficient limit instead of the matching one.
    Returns:
        d, the limit on the expected discounted episode cost.
    """
    if not 0.0 <= eps_safe <= 1.0:
        raise ValueError(f"eps_safe must be in [0, 1], got {eps_safe}")
    if not 0.0 < gamma <= 1.0:
        raise ValueError(f"gamma must be in (0, 1], got {gamma}")
    if not conservative:
        return float(eps_safe)
    if horizon is None or horizon < 1:
        raise ValueError(f"conservative cost limit needs a horizon >= 1, got {horizon}")
    return float(eps_safe * gamma ** (horizon - 1))


# --- the policy, the value networks and one whole CPO update (used by sqrl_rllib.algorithms.cpo) ---------


def value_net(obs_dim: int, hidden: Sequence[int] = (256, 256)) -> nn.Sequential:
    """V(s): obs [..., obs_dim] -> [..., 1] (a tanh MLP; squeeze the last axis for [...] values)."""
    return mlp(obs_dim, 1, tuple(hidden), activation=nn.Tanh)


class GaussianPolicy(nn.Module):
    """pi(a|s) = N(mu(s), diag(sigma^2)): a tanh MLP mean and a state-independent log std (CPO's policy).

    Unsquashed, as in the CPO authors' setup: the sample a is what the batch stores and what the
    likelihood ratio pi_new(a|s) / pi_old(a|s) and the closed-form KL use; the environment receives
    it clipped to the action box. (A tanh-squashed Gaussian would have the same KL and ratio as its
    pre-tanh Gaussian, but the batch would then have to carry the pre-tanh sample.)

    Args:
        obs_dim, act_dim: flat observation and action sizes.
        hidden: hidden layer sizes of the mean network.
        init_log_std: initial log sigma, one parameter per action dimension.
        mean_init_scale: factor on the initial weights and bias of the mean's output layer (small: every
            seed starts near mean 0; SQRL's ``policy_mean_init_scale``).
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden: Sequence[int] = (256, 256),
        init_log_std: float = -0.5,
        mean_init_scale: float = 1.0,
    ):
        super().__init__()
        self.mean_net = mlp(obs_dim, act_dim, tuple(hidden), activation=nn.Tanh)
        self.log_std = nn.Parameter(torch.full((act_dim,), float(init_log_std)))
        if mean_init_scale != 1.0:
            with torch.no_grad():
                self.mean_net[-1].weight.mul_(mean_init_scale)
                self.mean_net[-1].bias.mul_(mean_init_scale)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean [B, act_dim], log_std [B, act_dim]) for obs [B, obs_dim]."""
        mean = self.mean_net(obs)
        return mean, self.log_std.expand_as(mean)


def gaussian_log_prob(mean: torch.Tensor, log_std: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """log N(actions; mean, diag(exp(log_std)^2)) summed over the last axis: [..., A] -> [...]."""
    z = (actions - mean) * torch.exp(-log_std)
    return (-0.5 * z.pow(2) - log_std - 0.5 * math.log(2.0 * math.pi)).sum(-1)


def gaussian_kl(
    mean_old: torch.Tensor, log_std_old: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor
) -> torch.Tensor:
    """KL(N_old || N) of diagonal Gaussians, summed over the last axis: [..., A] -> [...]."""
    var_old, var = torch.exp(2.0 * log_std_old), torch.exp(2.0 * log_std)
    return (log_std - log_std_old + (var_old + (mean_old - mean).pow(2)) / (2.0 * var) - 0.5).sum(-1)


def fit_value(
    net: nn.Module,
    optimizer: torch.optim.Optimizer,
    obs: torch.Tensor,
    returns: torch.Tensor,
    epochs: int,
    minibatch_size: int,
    generator: torch.Generator | None = None,
) -> float:
    """Regress V(s) [B] on ``returns`` [B] (0.5 squared error): ``epochs`` shuffled passes of minibatches.

    ``generator`` (a CPU generator) fixes the shuffling. Returns the full-batch loss after fitting.
    """
    obs, returns = obs.detach(), returns.detach()
    n = obs.shape[0]
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator).to(obs.device)
        for start in range(0, n, minibatch_size):
            rows = order[start : start + minibatch_size]
            loss = 0.5 * (net(obs[rows]).squeeze(-1) - returns[rows]).pow(2).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        return float(0.5 * (net(obs).squeeze(-1) - returns).pow(2).mean())


def _set_flat(params: Sequence[torch.Tensor], flat: torch.Tensor) -> None:
    """Copy the flat vector ``flat`` into ``params`` (in place: the Parameter objects stay the same)."""
    with torch.no_grad():
        start = 0
        for p in params:
            p.copy_(flat[start : start + p.numel()].view_as(p))
            start += p.numel()


def cpo_policy_update(
    policy: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
    params: Sequence[torch.Tensor],
    obs: torch.Tensor,
    actions: torch.Tensor,
    reward_advantages: torch.Tensor,
    cost_advantages: torch.Tensor,
    c: float,
    cost_scale: float,
    max_kl: float = 0.01,
    cg_iters: int = 10,
    damping: float = 0.1,
    decay: float = 0.8,
    max_backtracks: int = 10,
) -> dict[str, float]:
    """One CPO policy step on an on-policy batch: steps 2-5 of the module docstring; updates ``params`` in place.

    The reward surrogate is mean_t[ratio_t A_t] with the reward advantages normalised (the step of the
    linearised problem does not depend on g's scale). The cost surrogate must be in the constraint's units,
    J_C(theta') - J_C(theta) ~ ``cost_scale`` * mean_t[ratio_t (A^C_t - mean A^C)]: with ``cost_scale`` the
    mean episode length, mean over the batch's rows times the episode length estimates the per-episode sum
    of the performance-difference lemma (the cost advantages are centred, not scaled, as in the CPO
    authors' code). ``c`` = J_C(theta) - d.

    Args:
        policy: obs [B, O] -> (mean, log_std), each [B, A] (e.g. a :class:`GaussianPolicy`).
        params: the policy's parameters theta (those the step moves).
        obs, actions: the batch, [B, O] and [B, A] (the unclipped samples the old policy drew).
        reward_advantages, cost_advantages: GAE advantages [B] (:func:`gae`).
        c: the constraint value J_C(theta) - d (> 0: violated).
        cost_scale: factor turning the per-row cost surrogate into per-episode cost (mean episode length).
        max_kl: trust region delta on the mean KL(pi_old || pi_new).
        cg_iters, damping: conjugate gradient iterations and Fisher damping.
        decay, max_backtracks: the line search's shrink factor and number of candidates.
    Returns:
        Statistics (floats): ``status`` (index into :data:`CPO_STATUSES`), ``accepted`` (1/0), ``step_fraction``,
        ``kl``, ``surrogate_gain``, ``cost_surrogate_change`` (predicted J_C change, J_C units),
        ``lam``, ``nu``, ``constraint_value`` (c).
    """
    params = list(params)
    obs, actions = obs.detach(), actions.detach()
    with torch.no_grad():
        # Copies: a policy may return views of its parameters (GaussianPolicy's expanded log_std), which the
        # line search overwrites in place; the old policy's KL terms must not move with it.
        mean_old, log_std_old = (t.clone() for t in policy(obs))
        logp_old = gaussian_log_prob(mean_old, log_std_old, actions)
    adv = reward_advantages.detach()
    adv = (adv - adv.mean()) / (adv.std(unbiased=False) + 1e-8)
    cadv = cost_advantages.detach() - cost_advantages.detach().mean()

    def surrogates() -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = policy(obs)
        ratio = torch.exp(gaussian_log_prob(mean, log_std, actions) - logp_old)
        return (ratio * adv).mean(), cost_scale * (ratio * cadv).mean()

    def mean_kl() -> torch.Tensor:
        mean, log_std = policy(obs)
        return gaussian_kl(mean_old, log_std_old, mean, log_std).mean()

    surrogate, cost_surrogate = surrogates()
    g = flat_grad(surrogate, params, retain_graph=True)
    b = flat_grad(cost_surrogate, params)
    fvp = make_fisher_vector_product(mean_kl, params, damping)
    step = cpo_step(g, b, c, conjugate_gradient(fvp, g, cg_iters), conjugate_gradient(fvp, b, cg_iters), max_kl)

    theta_old = torch.cat([p.detach().reshape(-1) for p in params]).clone()

    def at(fn: Callable[[], torch.Tensor]) -> Callable[[torch.Tensor], float]:
        def evaluate(x: torch.Tensor) -> float:
            _set_flat(params, theta_old + x)
            with torch.no_grad():
                return float(fn())

        return evaluate

    kl_at, reward_at, cost_at = at(mean_kl), at(lambda: surrogates()[0]), at(lambda: surrogates()[1])
    search = backtracking_line_search(
        step.x,
        kl_at,
        reward_at,
        max_kl,
        cost_fn=cost_at,
        c=c,
        recovery=step.status == "recovery",
        decay=decay,
        max_backtracks=max_backtracks,
    )
    stats = {
        "kl": kl_at(search.x),
        "surrogate_gain": reward_at(search.x) - float(surrogate.detach()),
        "cost_surrogate_change": cost_at(search.x) - float(cost_surrogate.detach()),
    }
    _set_flat(params, theta_old + search.x)
    return stats | {
        "status": float(CPO_STATUSES.index(step.status)),
        "accepted": float(search.accepted),
        "step_fraction": float(search.fraction),
        "lam": float(step.lam),
        "nu": float(step.nu),
        "constraint_value": float(c),
    }
