"""The safety mask Gamma (spec section 3, paper eq. 3 and section 6), as plain PyTorch.

Given K candidate actions per state sampled from pi and scored by Q_safe, pick one per state:
  * safe set: Q_safe < eps_safe
  * ``"pretrain"``: the safe sample with the highest Q_safe ("safe but risky": explores the boundary)
  * ``"finetune"``: a safe sample picked uniformly. The candidates are already draws from pi, so a
    uniform pick among the safe ones is a draw from pi_safe(a|s) ~ pi(a|s) 1[Q_safe(s,a) < eps_safe]
    (rejection sampling); weighting them again by pi(a|s) would sample pi^2 and shrink exploration.
  * no safe sample: optionally (``resample_rounds``, the authors' ``SafeActorPolicyRSVar``) K new
    samples with the policy's std widened by ``resample_scale`` per round, up to that many rounds;
    then the sample with the lowest Q_safe seen (fallback)
  * deterministic evaluation: the policy mean if it is safe, else the safest sample.

:func:`masked_choice` owns the whole rule (sampling, one scoring call, selection), so the mask
connector, the calibration tools and any other user of the mask apply exactly the same one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch

from sqrl_rllib.core.networks import sample_squashed

MASK_MODES = ("pretrain", "finetune")


class MaskChoice(NamedTuple):
    """Result of the selection rule for a batch of B states with K samples each."""

    index: torch.Tensor  # [B] long: chosen sample per state
    q_safe: torch.Tensor  # [B]: Q_safe of the chosen sample
    rejected_fraction: torch.Tensor  # [B]: fraction of the K samples with Q_safe >= eps_safe
    fallback: torch.Tensor  # [B] bool: the rule's own choice was unsafe, the safest sample was taken


def _choice(q_safe: torch.Tensor, safe: torch.Tensor, index: torch.Tensor, fallback: torch.Tensor) -> MaskChoice:
    return MaskChoice(
        index=index,
        q_safe=q_safe.gather(1, index.unsqueeze(1)).squeeze(1),
        rejected_fraction=(~safe).float().mean(dim=1),
        fallback=fallback,
    )


def select_action_index(
    q_safe: torch.Tensor, eps_safe: float, mode: str, generator: torch.Generator | None = None
) -> MaskChoice:
    """Apply the mask's exploration rule to ``q_safe`` [B, K] (probabilities of K samples from pi)."""
    if mode not in MASK_MODES:
        raise ValueError(f"mask mode must be one of {MASK_MODES}, got {mode!r}")
    safe = q_safe < eps_safe
    any_safe = safe.any(dim=1)
    if mode == "pretrain":
        # Among safe samples the riskiest; unsafe ones pushed below any probability.
        score = q_safe
    else:
        # Uniform among the safe ones: i.i.d. uniform keys, the largest safe key wins.
        score = torch.rand(q_safe.shape, generator=generator, device=q_safe.device, dtype=q_safe.dtype)
    chosen = torch.where(safe, score, torch.full_like(score, -1.0)).argmax(dim=1)
    index = torch.where(any_safe, chosen, q_safe.argmin(dim=1))
    return _choice(q_safe, safe, index, ~any_safe)


def select_deterministic(q_safe: torch.Tensor, eps_safe: float) -> MaskChoice:
    """Deterministic rule on ``q_safe`` [B, K] whose sample 0 is the policy mean (see :func:`masked_choice`).

    Index 0 (the mean) where it is safe, else the safest sample (``fallback`` marks those states).
    """
    safe = q_safe < eps_safe
    mean_safe = safe[:, 0]
    index = torch.where(mean_safe, torch.zeros_like(mean_safe, dtype=torch.long), q_safe.argmin(dim=1))
    return _choice(q_safe, safe, index, ~mean_safe)


def masked_choice(
    dist_inputs: torch.Tensor,
    q_safe_of: Callable[[torch.Tensor], torch.Tensor],
    k: int,
    eps_safe: float,
    mode: str,
    explore: bool = True,
    generator: torch.Generator | None = None,
    resample_rounds: int = 0,
    resample_scale: float = 1.5,
) -> tuple[torch.Tensor, torch.Tensor, MaskChoice]:
    """The mask for B states: K samples from pi, one ``q_safe_of`` call, one choice per state.

    Args:
        dist_inputs: the tanh-Gaussian policy's inputs [B, 2 * act_dim] (mean, log_std).
        q_safe_of: maps candidates [B, K, act_dim] to Q_safe [B, K] (one batched forward pass).
        k: K, candidates per state.
        eps_safe: threshold; candidates with Q_safe >= eps_safe are rejected.
        mode: ``"pretrain"`` or ``"finetune"`` (see the module docstring).
        explore: False is deterministic evaluation: candidate 0 is the policy mean itself.
        generator: RNG of the finetune mode's uniform pick (the candidates use torch's global RNG).
        resample_rounds: exploration only: states without a safe candidate draw K new ones from pi
            with its std widened ``resample_scale``-fold per round, up to this many rounds, keeping the
            round with a safe candidate (or the lowest Q_safe). Checking for such states reads one
            bool on the host per call.
        resample_scale: std factor per resampling round.
    Returns:
        actions [B, act_dim] in [-1, 1], their log-probabilities [B] under the distribution they were
        drawn from (pi, or its widened version for resampled states) and the :class:`MaskChoice`
        (``fallback`` still marks states left without a safe candidate).
    """
    candidates, logp = sample_squashed(dist_inputs, k, mean_first=not explore)
    q_safe = q_safe_of(candidates)
    if explore and resample_rounds:
        candidates, logp, q_safe = _resample_unsafe_states(
            dist_inputs, q_safe_of, candidates, logp, q_safe, eps_safe, resample_rounds, resample_scale
        )
    choice = (
        select_action_index(q_safe, eps_safe, mode, generator) if explore else select_deterministic(q_safe, eps_safe)
    )
    rows = torch.arange(candidates.shape[0], device=candidates.device)
    return candidates[rows, choice.index], logp[rows, choice.index], choice


def _resample_unsafe_states(dist_inputs, q_safe_of, candidates, logp, q_safe, eps_safe, rounds, scale):
    """Redraw the K candidates of states without a safe one from pi with a widening std (see masked_choice)."""
    act_dim = candidates.shape[-1]
    widened = dist_inputs.clone()
    for _ in range(rounds):
        unsafe = ~(q_safe < eps_safe).any(dim=1)
        if not bool(unsafe.any()):
            break
        widened[:, act_dim:] += math.log(scale)
        new_candidates, new_logp = sample_squashed(widened, candidates.shape[1])
        new_q = q_safe_of(new_candidates)
        # A round replaces a state's candidates if it found a safe one, or at least a safer one.
        better = unsafe & (((new_q < eps_safe).any(dim=1)) | (new_q.min(dim=1).values < q_safe.min(dim=1).values))
        candidates = torch.where(better[:, None, None], new_candidates, candidates)
        logp = torch.where(better[:, None], new_logp, logp)
        q_safe = torch.where(better[:, None], new_q, q_safe)
    return candidates, logp, q_safe
