"""check_finite names the non-finite loss or parameter (issue 19: NaN-safe learning)."""

import pytest
import torch

from sqrl_rllib.core.finite import NonFiniteError, check_finite


def test_finite_losses_and_parameters_pass():
    net = torch.nn.Linear(3, 2)
    check_finite({"critic_loss": torch.tensor(1.5)}, net.named_parameters())


def test_a_nan_loss_is_named():
    with pytest.raises(NonFiniteError, match="loss actor_loss is nan"):
        check_finite({"critic_loss": torch.tensor(0.1), "actor_loss": torch.tensor(float("nan"))}, [])


def test_an_inf_parameter_is_named_with_its_count():
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 1))
    with torch.no_grad():
        net[1].weight[0, 2] = float("inf")
    with pytest.raises(NonFiniteError, match=r"parameter 1.weight has 1 non-finite entries of 4"):
        check_finite({"critic_loss": torch.tensor(0.1)}, net.named_parameters())
