"""SQRL's losses as plain PyTorch functions (spec sections 2 and 4; paper eq. 2-4, Algorithms 1-2).

Every function takes tensors and returns tensors; the RLlib Learner and the lean reference loop
both call these, so the math lives in exactly one place.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

SAFETY_LOSSES = ("bce", "mse")


def safety_target(
    failure: torch.Tensor, q_safe_next: torch.Tensor, gamma_safe: float, terminated: torch.Tensor
) -> torch.Tensor:
    """Bellman target of the safety critic: y = I(s') + (1 - done(s')) * gamma_safe * Qbar_safe(s', a').

    With failure the only terminal event this is the paper's y = I(s') + (1 - I(s')) gamma Qbar. Episodes
    can also terminate without failure (DrunkSpider's goal): nothing can fail after such an s', so it
    must not bootstrap, or Qbar's arbitrary value at never-trained terminal states leaks back along
    every successful path and lifts Q_safe above eps_safe everywhere.

    Args:
        failure: I(s') in {0, 1}, shape [B] (float or bool).
        q_safe_next: Qbar_safe(s', a') with a' ~ pi(.|s'), probabilities in [0, 1], shape [B].
        gamma_safe: discount of the failure probability.
        terminated: 1 where s' is terminal (failure or not), shape [B]; a failure counts as terminal
            even if a wrapper forgot to set it.
    Returns:
        y in [0, 1], shape [B], detached (no gradient flows through the target).
    """
    failure = failure.to(q_safe_next.dtype)
    done = torch.maximum(failure, terminated.to(q_safe_next.dtype))
    return (failure + (1.0 - done) * gamma_safe * q_safe_next).detach()


def masked_policy_value(q_next: torch.Tensor, eps_safe: float) -> torch.Tensor:
    """E_{a' ~ pi_safe}[Q(s', a')] from M samples a' ~ pi(.|s'): the mean of Q over the safe samples.

    pi_safe (paper eq. 5) is pi restricted to {a: Q_safe(s', a) < eps_safe}; with samples from pi that is a
    uniform pick among the safe ones, so its expectation is their mean. A state with no safe sample gets
    the smallest Q, the sample the mask would fall back to.

    Args:
        q_next: Q(s', a'_m) for M samples per state, shape [B, M].
        eps_safe: the mask's threshold.
    Returns:
        shape [B].
    """
    safe = (q_next < eps_safe).to(q_next.dtype)
    n_safe = safe.sum(-1)
    mean_safe = (q_next * safe).sum(-1) / n_safe.clamp(min=1.0)
    return torch.where(n_safe > 0, mean_safe, q_next.min(-1).values)


def safety_critic_loss(logits: torch.Tensor, target: torch.Tensor, kind: str = "bce") -> torch.Tensor:
    """Loss of the safety critic's logits against the soft label ``target`` in [0, 1].

    ``"bce"``: sigmoid cross-entropy on the logits (the authors' code); ``"mse"``: squared error of
    the probability sigmoid(logits) (the paper's equation).
    """
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(logits, target)
    if kind == "mse":
        return F.mse_loss(torch.sigmoid(logits), target)
    raise ValueError(f"safety_loss must be one of {SAFETY_LOSSES}, got {kind!r}")


def sac_critic_target(
    reward: torch.Tensor,
    terminated: torch.Tensor,
    q_next_target: torch.Tensor,
    logp_next: torch.Tensor,
    alpha: torch.Tensor,
    gamma: float,
) -> torch.Tensor:
    """SAC's soft Bellman target r + gamma * (1 - done) * (min_i Qbar_i(s', a') - alpha log pi(a'|s')).

    ``q_next_target`` is [n_critics, B]; the minimum over critics is taken here.
    """
    soft_value = q_next_target.min(dim=0).values - alpha * logp_next
    return (reward + gamma * (1.0 - terminated.to(reward.dtype)) * soft_value).detach()


def sac_critic_loss(q: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Sum over critics of the mean squared TD error; ``q`` is [n_critics, B], ``target`` [B]."""
    return 0.5 * (q - target.unsqueeze(0)).pow(2).mean(dim=1).sum()


def sac_actor_loss(q_pi: torch.Tensor, logp_pi: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """SAC's actor loss E[alpha log pi(a|s) - min_i Q_i(s, a)], a ~ pi; ``q_pi`` is [n_critics, B]."""
    return (alpha * logp_pi - q_pi.min(dim=0).values).mean()


def alpha_loss(log_alpha: torch.Tensor, logp_pi: torch.Tensor, target_entropy: float | torch.Tensor) -> torch.Tensor:
    """SAC's temperature loss -log_alpha * E[log pi + target_entropy] (automatic entropy tuning)."""
    return -(log_alpha * (logp_pi.detach() + target_entropy)).mean()


def lagrangian_actor_term(q_safe_pi: torch.Tensor, nu: torch.Tensor, eps_safe: float) -> torch.Tensor:
    """Fine-tuning's constraint term nu * E[Q_safe(s, a') - eps_safe], a' ~ pi (eq. 4).

    Added to the actor loss, its gradient pushes pi away from actions with high Q_safe; ``nu`` is
    detached so the actor does not move the multiplier.
    """
    return nu.detach() * (q_safe_pi - eps_safe).mean()


def nu_loss(log_nu: torch.Tensor, q_safe_pi: torch.Tensor, eps_safe: float) -> torch.Tensor:
    """Dual loss for log nu: minimising it raises nu while E[Q_safe] > eps_safe, lowers it otherwise.

    The multiplier is nu = exp(log_nu) >= 0 (the authors keep log nu with its own Adam).
    """
    violation = (q_safe_pi.detach() - eps_safe).mean()
    return -(log_nu.exp() * violation)


@torch.no_grad()
def cap_nu_(log_nu: torch.Tensor, nu_max: float | None) -> None:
    """Project log nu onto nu <= nu_max in place after a dual step (no-op for ``None``).

    While the constraint is never met (a critic that reads every policy action as unsafe), dual ascent
    grows nu without bound and the actor's safety term drowns the return; a cap keeps both in play.
    """
    if nu_max is not None:
        log_nu.clamp_(max=math.log(nu_max))
