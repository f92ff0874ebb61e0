"""Property tests of the mask's selection rule over random batches."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sqrl_rllib.core.mask import select_action_index, select_deterministic


@settings(max_examples=200, deadline=None)
@given(
    batch=st.integers(1, 16),
    k=st.integers(1, 32),
    eps=st.floats(0.01, 0.99),
    seed=st.integers(0, 2**31 - 1),
    mode=st.sampled_from(["pretrain", "finetune"]),
)
def test_mask_never_picks_unsafe_when_a_safe_sample_exists(batch, k, eps, seed, mode):
    g = torch.Generator().manual_seed(seed)
    q_safe = torch.rand(batch, k, generator=g)
    choice = select_action_index(q_safe, eps, mode, generator=g)
    any_safe = (q_safe < eps).any(1)
    chosen_q = q_safe.gather(1, choice.index.unsqueeze(1)).squeeze(1)
    assert torch.all(chosen_q[any_safe] < eps)
    # No safe sample: the safest one.
    assert torch.equal(choice.index[~any_safe], q_safe[~any_safe].argmin(1))
    assert torch.equal(choice.fallback, ~any_safe)
    assert torch.allclose(choice.q_safe, chosen_q)
    assert torch.allclose(choice.rejected_fraction, (q_safe >= eps).float().mean(1))
    if mode == "pretrain":
        riskiest_safe = torch.where(q_safe < eps, q_safe, torch.full_like(q_safe, -1)).max(1).values
        assert torch.allclose(chosen_q[any_safe], riskiest_safe[any_safe])


@settings(max_examples=200, deadline=None)
@given(batch=st.integers(1, 16), k=st.integers(1, 32), eps=st.floats(0.01, 0.99), seed=st.integers(0, 2**31 - 1))
def test_deterministic_takes_the_mean_when_safe_else_the_safest_sample(batch, k, eps, seed):
    g = torch.Generator().manual_seed(seed)
    q_safe = torch.rand(batch, k, generator=g)  # sample 0 stands for the policy mean
    choice = select_deterministic(q_safe, eps)
    mean_safe = q_safe[:, 0] < eps
    assert torch.all(choice.index[mean_safe] == 0)
    assert torch.equal(choice.index[~mean_safe], q_safe[~mean_safe].argmin(1))
    assert torch.equal(choice.fallback, ~mean_safe)
