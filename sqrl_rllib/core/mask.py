"""The safety mask Gamma's selection rule (spec section 3, paper eq. 3 and section 6).

Given K candidate actions per state scored by Q_safe, pick one index per state:
  * safe set: Q_safe < eps_safe
  * ``"pretrain"``: the safe sample with the highest Q_safe ("safe but risky": explores the boundary)
  * ``"finetune"``: a safe sample drawn with probability proportional to pi(a|s)
  * no safe sample: the sample with the lowest Q_safe (fallback)
"""

from __future__ import annotations

from typing import NamedTuple

import torch

MASK_MODES = ("pretrain", "finetune")


class MaskChoice(NamedTuple):
    """Result of the selection rule for a batch of B states with K samples each."""

    index: torch.Tensor  # [B] long: chosen sample per state
    q_safe: torch.Tensor  # [B]: Q_safe of the chosen sample
    rejected_fraction: torch.Tensor  # [B]: fraction of the K samples with Q_safe >= eps_safe
    fallback: torch.Tensor  # [B] bool: no sample was safe, the safest was taken


def select_action_index(
    q_safe: torch.Tensor,
    logp: torch.Tensor,
    eps_safe: float,
    mode: str,
    generator: torch.Generator | None = None,
) -> MaskChoice:
    """Apply the mask's rule to ``q_safe`` [B, K] (probabilities) with policy log-probs ``logp`` [B, K]."""
    if mode not in MASK_MODES:
        raise ValueError(f"mask mode must be one of {MASK_MODES}, got {mode!r}")
    safe = q_safe < eps_safe
    any_safe = safe.any(dim=1)
    safest = q_safe.argmin(dim=1)
    if mode == "pretrain":
        # Among safe samples the riskiest; unsafe ones pushed below any probability.
        chosen = torch.where(safe, q_safe, torch.full_like(q_safe, -1.0)).argmax(dim=1)
    else:
        # Importance-sample the safe ones by pi(a|s); softmax over masked log-probs is stable.
        masked_logp = torch.where(safe, logp, torch.full_like(logp, -torch.inf))
        probs = torch.softmax(torch.where(any_safe.unsqueeze(1), masked_logp, logp), dim=1)
        chosen = torch.multinomial(probs, 1, generator=generator).squeeze(1)
    index = torch.where(any_safe, chosen, safest)
    return MaskChoice(
        index=index,
        q_safe=q_safe.gather(1, index.unsqueeze(1)).squeeze(1),
        rejected_fraction=(~safe).float().mean(dim=1),
        fallback=~any_safe,
    )


def select_deterministic(q_safe: torch.Tensor, eps_safe: float) -> torch.Tensor:
    """Deterministic evaluation on ``q_safe`` [B, K] whose sample 0 is the policy mean.

    Returns the index per state ([B] long): 0 (the mean) where it is safe, else the safest sample.
    """
    mean_safe = q_safe[:, 0] < eps_safe
    return torch.where(mean_safe, torch.zeros_like(mean_safe, dtype=torch.long), q_safe.argmin(dim=1))
