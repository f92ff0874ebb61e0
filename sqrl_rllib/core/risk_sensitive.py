"""RS, the risk-sensitive baseline (SQRL paper section 7.1): penalise the reward by the safety critic.

RS reuses the pretrained SQRL policy and safety critic but drops the mask: the task critic learns
from the shaped reward r - lambda * Q_safe(s, a), so risky actions look less rewarding, and
lambda >= 0 is adapted by dual ascent on E[Q_safe] against eps_safe, exactly as SQRL's nu is.
The dual loss and its cap are therefore the same functions as nu's (``losses.nu_loss``,
``losses.cap_nu_``): :func:`lambda_loss` only renames the multiplier.
"""

from __future__ import annotations

import torch

from sqrl_rllib.core.losses import cap_nu_, nu_loss, sac_critic_target

__all__ = [
    "cap_lambda_",
    "lambda_loss",
    "lambda_schedule",
    "risk_sensitive_critic_target",
    "risk_sensitive_reward",
]

# Projection of log lambda onto lambda <= lambda_max: the same operation as nu's cap.
cap_lambda_ = cap_nu_


def risk_sensitive_reward(reward: torch.Tensor, q_safe: torch.Tensor, lam: torch.Tensor | float) -> torch.Tensor:
    """The shaped reward r - lambda * Q_safe(s, a) of the RS critic's Bellman target.

    Both lambda and Q_safe are detached: the task critic must not train the safety critic or move
    the multiplier through its TD error (lambda has its own dual loss).

    Args:
        reward: r, shape [B].
        q_safe: Q_safe(s, a) in [0, 1] at the replayed (s, a), shape [B].
        lam: lambda >= 0 (scalar tensor, e.g. log_lambda.exp(), or float from :func:`lambda_schedule`).
    Returns:
        Shaped reward, shape [B], detached.
    """
    lam = torch.as_tensor(lam, dtype=reward.dtype, device=reward.device).detach()
    return (reward - lam * q_safe.detach()).detach()


def risk_sensitive_critic_target(
    reward: torch.Tensor,
    terminated: torch.Tensor,
    q_next_target: torch.Tensor,
    logp_next: torch.Tensor,
    alpha: torch.Tensor | float,
    gamma: float,
    q_safe: torch.Tensor,
    lam: torch.Tensor | float,
) -> torch.Tensor:
    """SAC's soft Bellman target with the shaped reward: (r - lambda Q_safe(s, a)) + gamma (1 - done) V(s').

    a' ~ pi is sampled without the safety mask (RS's difference from SQRL). Shapes as in
    ``losses.sac_critic_target`` (q_next_target [n_critics, B], the rest [B]); returns y [B], detached.
    """
    return sac_critic_target(
        risk_sensitive_reward(reward, q_safe, lam), terminated, q_next_target, logp_next, alpha, gamma
    )


def lambda_loss(log_lambda: torch.Tensor, q_safe: torch.Tensor, eps_safe: float) -> torch.Tensor:
    """Dual loss -lambda * E[Q_safe - eps_safe] for log lambda, lambda = exp(log_lambda) >= 0.

    Minimising it raises lambda while E[Q_safe] > eps_safe and lowers it otherwise. This is the
    same math as SQRL's multiplier, so it is ``losses.nu_loss`` (one implementation for both).

    Args:
        log_lambda: the trainable log multiplier (scalar).
        q_safe: Q_safe at the policy's actions (detached inside), shape [B].
        eps_safe: the safety threshold.
    Returns:
        Scalar loss.
    """
    return nu_loss(log_lambda, q_safe, eps_safe)


def lambda_schedule(step: int, total_steps: int, start: float = 0.0, end: float = 10.0) -> float:
    """Linear schedule of lambda from ``start`` at step 0 to ``end`` at ``total_steps``, then held.

    The alternative to dual ascent: the authors' RS config schedules lambda 0 -> 10 over training.
    ``total_steps <= 0`` means "already at the end".
    """
    if total_steps <= 0:
        return float(end)
    frac = min(max(step / total_steps, 0.0), 1.0)
    return float(start + frac * (end - start))
