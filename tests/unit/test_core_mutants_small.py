"""Edge cases of core's small modules that mutation testing showed no test pinned (issue 20).

finite.py, optim.py, esac.py, risk_sensitive.py and losses.py: defaults, boundary values (a threshold hit
exactly, a percentile of 100, one safe sample), dtypes of the targets and the error messages.
"""

import math

import pytest
import torch

from sqrl_rllib.core import losses
from sqrl_rllib.core.esac import aggregate_ensemble
from sqrl_rllib.core.finite import check_finite
from sqrl_rllib.core.optim import adam
from sqrl_rllib.core.risk_sensitive import lambda_schedule, risk_sensitive_reward

# --- finite.py ---------------------------------------------------------------------------------------------


def test_check_finite_accepts_nothing_to_check():
    assert check_finite({}, []) is None


def test_check_finite_names_the_first_bad_loss_before_any_parameter():
    bad = torch.nn.Parameter(torch.tensor([float("nan"), 1.0]))
    with pytest.raises(FloatingPointError, match="loss b is inf"):
        check_finite({"a": torch.tensor(1.0), "b": torch.tensor(float("inf"))}, [("w", bad)])


# --- optim.py ----------------------------------------------------------------------------------------------


def test_adam_defaults_lr_3e_4_and_eps_1e_7():
    opt = adam([torch.nn.Parameter(torch.zeros(3))])
    assert opt.defaults["lr"] == 3e-4 and opt.defaults["eps"] == 1e-7


def test_adam_falls_back_to_foreach_where_no_fused_kernel_exists():
    opt = adam([torch.nn.Parameter(torch.zeros(3, device="meta"))], 1e-3)
    assert opt.defaults["fused"] is False and opt.defaults["foreach"] is True
    assert adam([torch.nn.Parameter(torch.zeros(3))]).defaults["foreach"] is None  # fused: foreach unset


# --- esac.py -----------------------------------------------------------------------------------------------


def test_aggregate_defaults_to_min_and_accepts_the_100th_percentile():
    q = torch.tensor([[1.0, 5.0], [3.0, 2.0], [2.0, 4.0]])
    torch.testing.assert_close(aggregate_ensemble(q), torch.tensor([1.0, 2.0]))
    torch.testing.assert_close(aggregate_ensemble(q, 100.0), torch.tensor([3.0, 5.0]))


def test_aggregate_errors_name_the_bad_value():
    q = torch.zeros(2, 3)
    with pytest.raises(ValueError, match=r"aggregate must be 'min' or a percentile in \[0, 100\], got 'max'"):
        aggregate_ensemble(q, "max")
    with pytest.raises(ValueError, match=r"aggregate percentile must be a number in \[0, 100\], got 101"):
        aggregate_ensemble(q, 101)


# --- risk_sensitive.py -------------------------------------------------------------------------------------


def test_schedule_over_one_step_starts_at_start():
    assert lambda_schedule(0, 1, start=2.0, end=6.0) == 2.0
    assert lambda_schedule(1, 1, start=2.0, end=6.0) == 6.0
    assert lambda_schedule(0, 0, start=2.0, end=6.0) == 6.0


def test_shaped_reward_keeps_the_rewards_precision_for_a_float_lambda():
    reward = torch.tensor([1.0, -0.5], dtype=torch.float64)
    q_safe = torch.tensor([0.3, 0.7], dtype=torch.float64)
    out = risk_sensitive_reward(reward, q_safe, 0.1)
    assert out.dtype == torch.float64
    assert torch.equal(out, reward - 0.1 * q_safe)  # lambda not rounded through float32


# --- losses.py ---------------------------------------------------------------------------------------------


def test_safety_critic_loss_defaults_to_bce():
    logits, target = torch.tensor([0.3, -1.2]), torch.tensor([1.0, 0.25])
    torch.testing.assert_close(
        losses.safety_critic_loss(logits, target), losses.safety_critic_loss(logits, target, "bce")
    )
    assert not torch.allclose(
        losses.safety_critic_loss(logits, target), losses.safety_critic_loss(logits, target, "mse")
    )


def test_targets_take_the_q_dtype_and_accept_bool_flags():
    q32 = torch.tensor([0.5, 0.5])
    flags64 = torch.tensor([1.0, 0.0], dtype=torch.float64)
    y = losses.safety_target(flags64, q32, 0.9, flags64)
    assert y.dtype == torch.float32
    torch.testing.assert_close(y, torch.tensor([1.0, 0.45]))
    y = losses.safety_target(torch.tensor([False, False]), q32, 0.9, flags64)
    assert y.dtype == torch.float32
    torch.testing.assert_close(y, torch.tensor([0.0, 0.45]))
    reward = torch.tensor([1.0, 2.0])
    target = losses.sac_critic_target(
        reward, torch.tensor([True, False]), torch.ones(2, 2), torch.zeros(2), torch.tensor(1.0), 0.5
    )
    assert target.dtype == torch.float32
    torch.testing.assert_close(target, torch.tensor([1.0, 2.5]))


def test_masked_policy_value_threshold_is_strict_and_one_safe_sample_is_its_own_mean():
    # 0.2 == eps is unsafe; the one safe sample 0.1 is the value (not halved, not the min by accident).
    q_next = torch.tensor([[0.2, 0.1, 0.9], [0.2, 0.2, 0.3], [0.05, 0.15, 0.5]])
    value = losses.masked_policy_value(q_next, eps_safe=0.2)
    torch.testing.assert_close(value, torch.tensor([0.1, 0.2, 0.1]))


def test_actor_loss_is_alpha_log_pi_minus_the_critic_minimum():
    q_pi = torch.tensor([[1.0, 4.0], [2.0, 3.0]])
    logp = torch.tensor([-1.0, 2.0])
    loss = losses.sac_actor_loss(q_pi, logp, torch.tensor(0.5))
    assert float(loss) == pytest.approx(((0.5 * -1.0 - 1.0) + (0.5 * 2.0 - 3.0)) / 2)


def test_alpha_loss_value_and_gradient():
    log_alpha = torch.tensor(0.7, requires_grad=True)
    logp = torch.tensor([-1.0, -3.0], requires_grad=True)
    loss = losses.alpha_loss(log_alpha, logp, -1.0)
    assert loss.item() == pytest.approx(-0.7 * ((-1.0 - 1.0) + (-3.0 - 1.0)) / 2)
    loss.backward()
    assert float(log_alpha.grad) == pytest.approx(3.0)  # -(mean logp + target_entropy)
    assert logp.grad is None  # log pi is detached: the temperature loss does not train the policy


def test_lagrangian_actor_term_value():
    q_safe = torch.tensor([0.3, 0.5])
    term = losses.lagrangian_actor_term(q_safe, torch.tensor(2.0), eps_safe=0.1)
    assert float(term) == pytest.approx(2.0 * (0.4 - 0.1))


def test_cap_nu_clamps_at_log_nu_max():
    log_nu = torch.tensor(5.0)
    losses.cap_nu_(log_nu, 10.0)
    assert float(log_nu) == pytest.approx(math.log(10.0))
