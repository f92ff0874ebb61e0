"""The safety critic trained by the project's loss converges to the exact discounted failure probability."""

import math

import numpy as np
import pytest
import torch

from sqrl_rllib.core.losses import masked_policy_value, safety_critic_loss, safety_target
from sqrl_rllib.core.networks import SafetyCritic

N_STATES, P_INTENDED, GAMMA_SAFE = 6, 0.8, 0.7
ACTIONS = (-1.0, 1.0)
FAIL_STATE, SAFE_ABSORB = 0, N_STATES - 1


def step_distribution(s: int, a: float) -> dict[int, float]:
    """Stochastic chain: the intended move happens with prob 0.8, the opposite one otherwise."""
    d = 1 if a > 0 else -1
    return {s + d: P_INTENDED, s - d: 1 - P_INTENDED}


def exact_q_safe() -> np.ndarray:
    """Dynamic programming under the uniform policy: Q[s, a] for non-terminal s in 1..N-2."""
    q = np.zeros((N_STATES, 2))
    for _ in range(500):
        new = np.zeros_like(q)
        for s in range(1, N_STATES - 1):
            for i, a in enumerate(ACTIONS):
                for s2, p in step_distribution(s, a).items():
                    if s2 == FAIL_STATE:
                        new[s, i] += p
                    elif s2 != SAFE_ABSORB:
                        new[s, i] += p * GAMMA_SAFE * q[s2].mean()
        q = new
    return q


def one_hot(s: np.ndarray) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.as_tensor(s), N_STATES).float()


@pytest.mark.parametrize("kind", ["bce", "mse"])
def test_safety_critic_matches_dynamic_programming(kind):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    critic, target = SafetyCritic(N_STATES, 1, (64, 64)), SafetyCritic(N_STATES, 1, (64, 64))
    target.load_state_dict(critic.state_dict())
    opt = torch.optim.Adam(critic.parameters(), lr=3e-3)
    for _ in range(2500):
        s = rng.integers(1, N_STATES - 1, size=512)
        a = rng.choice(ACTIONS, size=512)
        intended = rng.random(512) < P_INTENDED
        s2 = s + np.where(intended, np.sign(a), -np.sign(a)).astype(int)
        failure = torch.as_tensor(s2 == FAIL_STATE, dtype=torch.float32)
        terminal_safe = torch.as_tensor(s2 == SAFE_ABSORB, dtype=torch.float32)
        with torch.no_grad():
            a2 = torch.as_tensor(rng.choice(ACTIONS, size=512), dtype=torch.float32).unsqueeze(1)
            q_next = target(one_hot(s2), a2)
        # The safe absorbing state is terminal without failure: the target must not bootstrap from it.
        y = safety_target(failure, q_next, GAMMA_SAFE, terminated=torch.maximum(failure, terminal_safe))
        logits = critic.logits(one_hot(s), torch.as_tensor(a, dtype=torch.float32).unsqueeze(1))
        loss = safety_critic_loss(logits, y, kind)
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            for p, tp in zip(critic.parameters(), target.parameters(), strict=False):
                tp.lerp_(p, 0.05)
    exact = exact_q_safe()
    with torch.no_grad():
        states = np.repeat(np.arange(1, N_STATES - 1), 2)
        acts = torch.tensor(ACTIONS * (N_STATES - 2)).unsqueeze(1)
        learned = critic(one_hot(states), acts).numpy().reshape(N_STATES - 2, 2)
    err = np.abs(learned - exact[1:-1]).max()
    assert err < 0.05, (err, learned, exact[1:-1])
    assert exact[1, 0] > 0.8 and exact[-2, 1] < 0.05  # the DP problem is not trivial


def test_safety_target_is_the_bellman_backup():
    failure = torch.tensor([1.0, 0.0, 0.0])
    q_next = torch.tensor([0.9, 0.5, 0.0], requires_grad=True)
    y = safety_target(failure, q_next, 0.5, terminated=failure)
    assert torch.allclose(y, torch.tensor([1.0, 0.25, 0.0]))
    assert not y.requires_grad


def test_safety_target_does_not_bootstrap_from_successful_terminal_states():
    # [fails, goal reached (terminal, no failure), ordinary step]
    failure = torch.tensor([1.0, 0.0, 0.0])
    terminated = torch.tensor([1.0, 1.0, 0.0])
    q_next = torch.tensor([0.9, 0.9, 0.9])
    y = safety_target(failure, q_next, 0.5, terminated=terminated)
    assert torch.allclose(y, torch.tensor([1.0, 0.0, 0.45]))


def test_unknown_safety_loss_is_rejected():
    with pytest.raises(ValueError, match="safety_loss"):
        safety_critic_loss(torch.zeros(2), torch.zeros(2), "huber")


def test_masked_policy_value_is_the_mean_over_safe_samples_else_the_safest():
    q_next = torch.tensor([[0.01, 0.05, 0.5], [0.02, 0.04, 0.06], [0.3, 0.2, 0.9]])
    value = masked_policy_value(q_next, eps_safe=0.1)
    assert torch.allclose(value, torch.tensor([0.03, 0.04, 0.2]))


def test_masked_policy_value_estimates_the_expectation_under_pi_safe():
    """Q(s', a) = a^2 with a ~ N(0, 1), safe set a^2 < 0.5: E[a^2 | a^2 < 0.5] (truncated normal)."""
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(2000, 50, generator=gen)
    estimate = masked_policy_value(a.pow(2), eps_safe=0.5).mean()
    b = np.sqrt(0.5)
    pdf, cdf = np.exp(-b * b / 2) / np.sqrt(2 * np.pi), 0.5 * (1 + math.erf(b / np.sqrt(2)))
    exact = 1 - 2 * b * pdf / (2 * cdf - 1)
    assert abs(float(estimate) - exact) < 0.005
    # The unconstrained policy's expectation (the 'pi' target) is E[a^2] = 1, far above it.
    assert exact < 0.2
