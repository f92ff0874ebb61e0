"""masked_choice and its resampling rounds, on plain tensors (issue 20: no Ray-free test covered them).

The selection rule itself is property-tested in test_mask.py; here the whole mask is: which candidates
are drawn and scored, which one is returned with which log-probability, and how states without a safe
candidate are redrawn from pi with a widened std.
"""

import math

import pytest
import torch

from sqrl_rllib.core.mask import masked_choice, select_action_index, select_deterministic


def tanh_gaussian_logp(actions: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """log pi(a) of a = tanh(u), u ~ N(mean, exp(log_std)^2), summed over the action axis (float64)."""
    u = torch.atanh(actions)
    normal = torch.distributions.Normal(mean, log_std.exp())
    return (normal.log_prob(u) - torch.log1p(-actions.pow(2))).sum(-1)


class Recorder:
    """q_safe_of that records every call's candidates; Q_safe = 1 - |a_0| (never below 0)."""

    def __init__(self, fn=None):
        self.calls: list[torch.Tensor] = []
        self.fn = fn or (lambda c: 1.0 - c[..., 0].abs())

    def __call__(self, candidates: torch.Tensor) -> torch.Tensor:
        self.calls.append(candidates.clone())
        return self.fn(candidates)


def step_unsafe_near_zero(c: torch.Tensor) -> torch.Tensor:
    """Q_safe 1 for |a| <= 0.5, 0 beyond (safe iff |a| > 0.5 at eps 0.5)."""
    return (c[..., 0].abs() <= 0.5).to(c.dtype)


DIST = torch.tensor([[0.2, math.log(0.3)], [-1.0, math.log(0.5)], [0.8, math.log(0.2)]], dtype=torch.float64)


def test_explore_scores_k_policy_samples_once_and_returns_the_chosen_one_with_its_logp():
    torch.manual_seed(0)
    q_of = Recorder()
    actions, logp, choice = masked_choice(DIST, q_of, k=6, eps_safe=0.9, mode="pretrain")
    assert len(q_of.calls) == 1
    candidates = q_of.calls[0]
    assert candidates.shape == (3, 6, 1)
    # Exploration draws K samples from pi: none is the deterministic mean.
    assert not torch.isclose(candidates[:, 0, 0], torch.tanh(DIST[:, 0])).any()
    rows = torch.arange(3)
    torch.testing.assert_close(actions, candidates[rows, choice.index])
    assert actions.shape == (3, 1) and logp.shape == (3,)
    torch.testing.assert_close(logp, tanh_gaussian_logp(actions, DIST[:, :1], DIST[:, 1:]))
    q = 1.0 - candidates[..., 0].abs()
    torch.testing.assert_close(choice.q_safe, 1.0 - actions[:, 0].abs())
    # pretrain: the riskiest safe sample where one exists.
    safe = q < 0.9
    riskiest = torch.where(safe, q, torch.full_like(q, -1.0)).max(1).values
    has_safe = safe.any(1)
    torch.testing.assert_close(choice.q_safe[has_safe], riskiest[has_safe])


def test_finetune_picks_a_safe_candidate_with_the_given_generator():
    torch.manual_seed(1)
    q_of = Recorder(step_unsafe_near_zero)
    dist = torch.tensor([[0.0, math.log(1.0)]] * 4, dtype=torch.float64)
    picks = []
    for seed in range(2):
        torch.manual_seed(1)
        actions, _, choice = masked_choice(
            dist, q_of, k=8, eps_safe=0.5, mode="finetune", generator=torch.Generator().manual_seed(seed)
        )
        assert (actions.abs() > 0.5).all() and not choice.fallback.any()
        picks.append(choice.index)
    # Same candidates (same global seed), different generator: a different uniform pick somewhere.
    assert not torch.equal(picks[0], picks[1])


def test_deterministic_returns_the_mean_when_it_is_safe_with_its_own_logp():
    torch.manual_seed(2)
    q_of = Recorder()
    # eps 0.9: the means tanh(0.2), tanh(-1), tanh(0.8) have Q_safe 1 - |a| = 0.80, 0.24, 0.34: all safe.
    actions, logp, choice = masked_choice(DIST, q_of, k=5, eps_safe=0.9, mode="pretrain", explore=False)
    mean_action = torch.tanh(DIST[:, :1])
    torch.testing.assert_close(q_of.calls[0][:, 0], mean_action)
    torch.testing.assert_close(actions, mean_action)
    assert torch.equal(choice.index, torch.zeros(3, dtype=torch.long)) and not choice.fallback.any()
    torch.testing.assert_close(logp, tanh_gaussian_logp(actions, DIST[:, :1], DIST[:, 1:]))


def test_deterministic_never_resamples():
    torch.manual_seed(3)
    q_of = Recorder()
    _, _, choice = masked_choice(DIST, q_of, k=4, eps_safe=0.0, mode="pretrain", explore=False, resample_rounds=3)
    assert len(q_of.calls) == 1 and choice.fallback.all()


def test_no_resampling_when_every_state_has_a_safe_candidate():
    torch.manual_seed(4)
    q_of = Recorder()
    masked_choice(DIST, q_of, k=4, eps_safe=1.0, mode="finetune", resample_rounds=3)
    assert len(q_of.calls) == 1


def test_resampling_redraws_only_the_unsafe_states_with_a_widened_std_and_stops_when_all_are_safe():
    torch.manual_seed(5)
    q_of = Recorder(step_unsafe_near_zero)
    # State 0: pi is narrow around 0, every sample unsafe; state 1: pi sits at tanh(-2) ~ -0.96, safe.
    dist = torch.tensor([[0.0, math.log(0.01)], [-2.0, math.log(0.01)]], dtype=torch.float64)
    scale = 1000.0  # one round widens std 0.01 -> 10: almost every draw has |a| > 0.5
    actions, logp, choice = masked_choice(
        dist, q_of, k=8, eps_safe=0.5, mode="pretrain", resample_rounds=4, resample_scale=scale
    )
    assert len(q_of.calls) == 2  # the first round made every state safe: no further rounds
    first, second = q_of.calls
    assert (first[0].abs() <= 0.5).all() and (second[0].abs() > 0.5).any()
    assert not choice.fallback.any()
    # State 0 took the redrawn candidates, state 1 kept its own.
    assert (second[0] == actions[0]).all(-1).any() and not (first[0] == actions[0]).all(-1).any()
    assert (first[1] == actions[1]).all(-1).any()
    # Widening touches the std only: the redrawn ones are centred on the same mean (symmetric here).
    assert (second[0, :, 0] > 0).any() and (second[0, :, 0] < 0).any()
    # Log-probabilities under the distribution each action was drawn from.
    widened_log_std = dist[0, 1] + math.log(scale)
    torch.testing.assert_close(logp[0], tanh_gaussian_logp(actions[0], dist[0, :1], widened_log_std.reshape(1)))
    torch.testing.assert_close(logp[1], tanh_gaussian_logp(actions[1], dist[1, :1], dist[1, 1:]))


def test_resampling_keeps_the_round_with_the_lowest_q_safe_when_none_is_safe():
    torch.manual_seed(6)
    q_of = Recorder()  # Q_safe = 1 - |a| >= 0 is never < eps 0: every round runs, every state falls back
    dist = torch.tensor([[0.0, math.log(0.05)], [0.3, math.log(0.05)], [-0.2, math.log(0.1)]], dtype=torch.float64)
    rounds, scale = 4, 1.5
    actions, logp, choice = masked_choice(
        dist, q_of, k=3, eps_safe=0.0, mode="finetune", resample_rounds=rounds, resample_scale=scale
    )
    assert len(q_of.calls) == rounds + 1 and choice.fallback.all()
    per_round_min = torch.stack([(1.0 - c[..., 0].abs()).min(1).values for c in q_of.calls])  # [rounds + 1, B]
    best_round = per_round_min.argmin(0)
    assert (best_round > 0).any()  # the widening found a safer round for some state
    torch.testing.assert_close(choice.q_safe, per_round_min.min(0).values)
    # The std widens cumulatively, scale-fold per round; the mean stays.
    log_std = dist[:, 1] + best_round.to(torch.float64) * math.log(scale)
    torch.testing.assert_close(logp, tanh_gaussian_logp(actions, dist[:, :1], log_std[:, None]))


def test_threshold_is_strict_and_bad_modes_are_named():
    q = torch.tensor([[0.5, 0.2], [0.5, 0.7]])
    choice = select_action_index(q, 0.5, "pretrain")  # 0.5 == eps is unsafe
    assert choice.index.tolist() == [1, 0] and choice.fallback.tolist() == [False, True]
    det = select_deterministic(q, 0.5)  # the mean (index 0) at q == eps is unsafe: the safest instead
    assert det.index.tolist() == [1, 0] and det.fallback.tolist() == [True, True]
    assert det.index.dtype == torch.long
    with pytest.raises(ValueError, match=r"^mask mode must be one of \('pretrain', 'finetune'\), got 'explore'$"):
        select_action_index(q, 0.5, "explore")


def test_finetune_pick_follows_the_generator_not_the_global_rng():
    q = torch.full((64, 8), 0.1)  # every sample safe: the pick is the uniform draw alone
    picks = []
    for global_seed in (0, 1):
        torch.manual_seed(global_seed)
        picks.append(select_action_index(q, 0.5, "finetune", generator=torch.Generator().manual_seed(3)).index)
    assert torch.equal(picks[0], picks[1])


def test_selection_runs_on_the_device_of_q_safe():
    q = torch.rand(4, 5, device="meta")  # shapes and devices only: every op must stay on q's device
    for mode in ("pretrain", "finetune"):
        choice = select_action_index(q, 0.5, mode)
        assert choice.index.device == q.device and choice.index.shape == (4,)


def test_resampling_counts_q_equal_to_eps_as_unsafe_and_keeps_the_first_round_on_ties():
    torch.manual_seed(7)
    q_of = Recorder(lambda c: torch.full(c.shape[:-1], 0.5, dtype=c.dtype))  # Q_safe == eps everywhere
    actions, _, choice = masked_choice(DIST, q_of, k=4, eps_safe=0.5, mode="pretrain", resample_rounds=2)
    assert len(q_of.calls) == 3 and choice.fallback.all()  # never safe: every round runs
    # No round is safer than the first: the first round's candidates stay.
    assert all((q_of.calls[0][b] == actions[b]).all(-1).any() for b in range(3))


def test_resampling_replaces_a_state_only_if_its_own_round_was_better():
    calls = []

    def q_of(candidates):
        calls.append(candidates)
        first = len(calls) == 1
        q0 = torch.full(candidates.shape[:-1][1:], 0.6 if first else 0.0, dtype=candidates.dtype)  # safe later
        q1 = torch.full(candidates.shape[:-1][1:], 0.6 if first else 0.9, dtype=candidates.dtype)  # worse later
        return torch.stack([q0, q1])

    torch.manual_seed(8)
    actions, _, choice = masked_choice(DIST[:2], q_of, k=3, eps_safe=0.5, mode="pretrain", resample_rounds=2)
    assert len(calls) == 3  # state 1 stays unsafe: both rounds run
    assert choice.q_safe.tolist() == [0.0, 0.6] and choice.fallback.tolist() == [False, True]
    assert (calls[0][1] == actions[1]).all(-1).any()  # state 1 kept its first candidates


def test_masked_choice_defaults_no_resampling_and_a_1_5_fold_std():
    torch.manual_seed(9)
    q_of = Recorder()
    masked_choice(DIST, q_of, k=3, eps_safe=0.0, mode="pretrain")
    assert len(q_of.calls) == 1  # no resampling unless asked, even with every state unsafe
    torch.manual_seed(10)
    q_of = Recorder()
    actions, logp, _ = masked_choice(DIST, q_of, k=3, eps_safe=0.0, mode="pretrain", resample_rounds=1)
    per_round_min = torch.stack([(1.0 - c[..., 0].abs()).min(1).values for c in q_of.calls])
    log_std = DIST[:, 1] + per_round_min.argmin(0).to(torch.float64) * math.log(1.5)
    torch.testing.assert_close(logp, tanh_gaussian_logp(actions, DIST[:, :1], log_std[:, None]))


def test_masked_choice_runs_on_the_device_of_its_inputs():
    dist = torch.zeros(3, 4, device="meta")
    actions, logp, choice = masked_choice(dist, lambda c: c[..., 0], k=5, eps_safe=0.5, mode="finetune")
    assert actions.device.type == logp.device.type == choice.index.device.type == "meta"
    assert actions.shape == (3, 2) and logp.shape == (3,)
