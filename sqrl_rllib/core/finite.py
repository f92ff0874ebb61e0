"""Stop training on non-finite numbers at the update that produced them, naming what went bad."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch


class NonFiniteError(FloatingPointError):
    """A loss or a parameter became NaN or infinite; the message names it."""


def check_finite(losses: Mapping[str, torch.Tensor], parameters: Iterable[tuple[str, torch.Tensor]]) -> None:
    """Raise NonFiniteError naming the first non-finite loss, else the first non-finite parameter.

    One host transfer for everything (meant for once per update call, not per SGD step): the losses and
    the parameters' norms are stacked, and only when that stack holds a NaN / inf are they searched.

    Args:
        losses: name -> 0-d tensor (e.g. the last minibatch's critic_loss, actor_loss, ...).
        parameters: (name, tensor) pairs, e.g. ``module.named_parameters()``.
    """
    names = list(losses)
    params = list(parameters)
    values = [losses[n].detach().reshape(()).float() for n in names]
    norms = list(torch._foreach_norm([p.detach() for _, p in params])) if params else []
    stacked = torch.stack(values + [n.float() for n in norms]) if values or norms else torch.zeros(1)
    if bool(torch.isfinite(stacked).all()):
        return
    for name, value in zip(names, values, strict=True):
        if not bool(torch.isfinite(value)):
            raise NonFiniteError(f"loss {name} is {float(value)}: training stopped before applying it further")
    for (name, param), norm in zip(params, norms, strict=True):
        if not bool(torch.isfinite(norm)):
            bad = int((~torch.isfinite(param.detach())).sum())
            raise NonFiniteError(f"parameter {name} has {bad} non-finite entries of {param.numel()}")
