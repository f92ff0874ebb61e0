"""The plain PyTorch SAC loop (sqrl_rllib.core.lean_sac) against SAC written out by hand (issue 20).

It had no unit test: benchmarks/throughput.py only times it. One update is checked gradient by gradient
against the textbook losses (critic, actor with frozen critics and a detached temperature, temperature
loss), then the Adam step and the polyak average; the loop is checked on a scripted env for what it stores,
how often it updates and the rate it reports.
"""

import copy
import math
import types

import gymnasium as gym
import numpy as np
import pytest
import torch

from sqrl_rllib.core import lean_sac
from sqrl_rllib.core.lean_sac import LeanSAC, run_lean_sac
from sqrl_rllib.core.networks import sample_squashed
from sqrl_rllib.core.replay import ColumnarReplay


def columns(n: int, obs_dim: int, act_dim: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "obs": rng.normal(size=(n, obs_dim)).astype(np.float32),
        "actions": rng.uniform(-0.9, 0.9, (n, act_dim)).astype(np.float32),
        "rewards": rng.normal(size=n).astype(np.float32),
        "next_obs": rng.normal(size=(n, obs_dim)).astype(np.float32),
        "terminated": np.array([0, 1] * (n // 2), np.float32),
        "failure": np.zeros(n, np.float32),
    }


def test_init_builds_twin_critics_a_frozen_target_copy_and_one_optimizer():
    agent = LeanSAC(3, 2, hidden=(8, 6), lr=1e-3)
    assert agent.device == torch.device("cpu")
    assert agent.qf.n == 2
    assert [layer.weight.shape[-1] for layer in agent.qf.layers] == [8, 6, 1]
    assert agent.policy.net[0].out_features == 8 and agent.policy.act_dim == 2
    target, online = list(agent.target_qf.parameters()), list(agent.qf.parameters())
    assert all(torch.equal(t, o) and t is not o for t, o in zip(target, online, strict=True))
    assert not any(t.requires_grad for t in target) and all(o.requires_grad for o in online)
    assert agent.log_alpha.shape == () and agent.log_alpha.item() == 0.0 and agent.log_alpha.requires_grad
    assert agent.target_entropy == -2.0
    assert agent.gamma == 0.99 and agent.tau == 5e-3
    (group,) = agent.opt.param_groups
    assert group["lr"] == 1e-3
    expected = [*agent.policy.parameters(), *agent.qf.parameters(), agent.log_alpha]
    assert [id(p) for p in group["params"]] == [id(p) for p in expected]


def test_defaults_are_the_papers_256_256_nets_and_lr_3e_4():
    agent = LeanSAC(3, 1)
    assert agent.policy.net[0].out_features == 256 and agent.policy.net[2].out_features == 256
    assert [layer.weight.shape[-1] for layer in agent.qf.layers] == [256, 256, 1]
    assert agent.opt.param_groups[0]["lr"] == 3e-4


def test_act_draws_one_squashed_gaussian_action():
    torch.manual_seed(0)
    agent = LeanSAC(3, 2, hidden=(8,))
    obs = np.array([0.1, -0.2, 0.3], np.float32)
    torch.manual_seed(7)
    action = agent.act(obs)
    torch.manual_seed(7)
    expected = sample_squashed(agent.policy.distribution_inputs(torch.as_tensor(obs)[None]))[0][0]
    assert isinstance(action, np.ndarray) and action.shape == (2,)
    np.testing.assert_allclose(action, expected.detach().numpy())


def reference_update(agent: LeanSAC, batch: dict[str, np.ndarray], seed: int):
    """SAC's losses and gradients by hand on a copy of ``agent`` (same random draws as ``update``)."""
    ref = copy.deepcopy(agent)
    t = {k: torch.as_tensor(v) for k, v in batch.items()}
    n, act_dim = len(batch["rewards"]), batch["actions"].shape[1]
    torch.manual_seed(seed)
    eps = torch.randn(2 * n, act_dim)
    mean, log_std = ref.policy.distribution_inputs(torch.cat([t["obs"], t["next_obs"]])).chunk(2, -1)
    u = mean + log_std.exp() * eps
    a = torch.tanh(u)
    logp = (torch.distributions.Normal(mean, log_std.exp()).log_prob(u) - torch.log1p(-a.pow(2) + 1e-12)).sum(-1)
    a_pi, logp_pi, a_next, logp_next = a[:n], logp[:n], a[n:], logp[n:]
    alpha = ref.log_alpha.detach().exp()
    with torch.no_grad():
        soft_next = ref.target_qf(t["next_obs"], a_next).min(0).values - alpha * logp_next
        target = t["rewards"] + 0.99 * (1 - t["terminated"]) * soft_next
    critic = 0.5 * ((ref.qf(t["obs"], t["actions"]) - target) ** 2).mean(1).sum()
    actor = (alpha * logp_pi - ref.qf(t["obs"], a_pi).min(0).values).mean()
    temperature = -(ref.log_alpha * (logp_pi.detach() + ref.target_entropy)).mean()
    qf_grads = torch.autograd.grad(critic, list(ref.qf.parameters()))
    policy_grads = torch.autograd.grad(actor, list(ref.policy.parameters()))
    alpha_grad = -(logp_pi.detach() + ref.target_entropy).mean()
    total = (critic + actor + temperature).item()
    return total, qf_grads, policy_grads, alpha_grad


def test_update_is_sac_gradient_by_gradient_then_adam_then_polyak():
    torch.manual_seed(1)
    agent = LeanSAC(3, 2, hidden=(16, 16), lr=1e-3)
    with torch.no_grad():
        agent.log_alpha.fill_(0.3)  # alpha != 1, so every place alpha enters is visible
        for p in agent.target_qf.parameters():
            p.add_(0.05 * torch.randn_like(p))  # target != online, so the target is visible
    batch = columns(32, 3, 2, seed=0)
    total, qf_grads, policy_grads, alpha_grad = reference_update(agent, batch, seed=11)
    qf_before = [p.detach().clone() for p in agent.qf.parameters()]
    target_before = [p.detach().clone() for p in agent.target_qf.parameters()]
    alpha_before = agent.log_alpha.item()

    torch.manual_seed(11)
    loss = agent.update(batch)

    assert loss == pytest.approx(total, rel=1e-4, abs=1e-4)
    # Critic gradients from the TD loss alone (the actor's term does not reach the critics) ...
    for p, g in zip(agent.qf.parameters(), qf_grads, strict=True):
        torch.testing.assert_close(p.grad, g, rtol=1e-4, atol=1e-5)
    # ... the policy's from the actor loss alone, alpha's from the temperature loss alone.
    for p, g in zip(agent.policy.parameters(), policy_grads, strict=True):
        torch.testing.assert_close(p.grad, g, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(agent.log_alpha.grad, alpha_grad, rtol=1e-4, atol=1e-5)
    # First Adam step: theta - lr * g / (|g| + eps).
    for p, before, g in zip(agent.qf.parameters(), qf_before, qf_grads, strict=True):
        torch.testing.assert_close(p.detach(), before - 1e-3 * g / (g.abs() + 1e-7), rtol=1e-4, atol=1e-6)
    assert agent.log_alpha.item() == pytest.approx(alpha_before - 1e-3 * math.copysign(1.0, float(alpha_grad)))
    # Polyak: target <- target + tau (online - target), with the online critics after the step.
    for t, before, q in zip(agent.target_qf.parameters(), target_before, agent.qf.parameters(), strict=True):
        torch.testing.assert_close(t, before + 5e-3 * (q.detach() - before), rtol=1e-5, atol=1e-7)
        assert not t.requires_grad


def test_critics_keep_learning_on_later_updates():
    torch.manual_seed(2)
    agent = LeanSAC(3, 2, hidden=(8,))
    agent.update(columns(8, 3, 2, seed=1))
    assert all(p.requires_grad for p in agent.qf.parameters())
    before = [p.detach().clone() for p in agent.qf.parameters()]
    agent.update(columns(8, 3, 2, seed=2))
    assert all(p.grad is not None for p in agent.qf.parameters())
    assert all(not torch.equal(p, b) for p, b in zip(agent.qf.parameters(), before, strict=True))


class ScriptedEnv(gym.Env):
    """obs = (episode, t); odd episodes terminate at t = 3 (the first with info failure), even ones truncate at 4."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float64)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def __init__(self):
        self.reset_seeds, self.actions, self.episode, self.t = [], [], 0, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.reset_seeds.append(seed)
        self.episode, self.t = self.episode + 1, 0
        return np.array([self.episode, 0.0]), {}

    def step(self, action):
        self.actions.append(np.array(action, copy=True))
        self.t += 1
        terminated = self.episode % 2 == 1 and self.t == 3
        truncated = self.episode % 2 == 0 and self.t == 4
        info = {"failure": True} if terminated and self.episode == 1 else {}
        return np.array([self.episode, float(self.t)]), float(10 * self.episode + self.t), terminated, truncated, info


@pytest.fixture
def recorded(monkeypatch):
    """Record the agents, buffers and update batches run_lean_sac makes, and tick a fake clock by 2.5 s."""
    log = types.SimpleNamespace(agents=[], buffers=[], batches=[])

    class RecordingSAC(LeanSAC):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            log.agents.append((args, kwargs, self))

        def update(self, batch):
            log.batches.append({k: v.copy() for k, v in batch.items()})
            return super().update(batch)

    class RecordingReplay(ColumnarReplay):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            log.buffers.append(self)

    ticks = iter(np.arange(100.0, 200.0, 2.5))
    monkeypatch.setattr(lean_sac, "LeanSAC", RecordingSAC)
    monkeypatch.setattr(lean_sac, "ColumnarReplay", RecordingReplay)
    monkeypatch.setattr(lean_sac, "time", types.SimpleNamespace(perf_counter=lambda: float(next(ticks))))
    return log


def test_loop_stores_every_transition_and_updates_once_per_step_after_learning_starts(recorded):
    env = ScriptedEnv()
    rate = run_lean_sac(env, steps=12, batch_size=5, learning_starts=4, seed=3, hidden=(8, 8))
    assert rate == pytest.approx((12 - 4) / 2.5)  # updated steps over the (fake) time since learning_starts
    ((args, kwargs, agent),) = recorded.agents
    assert args[:2] == (2, 1) and tuple(args[2] if len(args) > 2 else kwargs["hidden"]) == (8, 8)
    assert isinstance(agent, LeanSAC)
    (buffer,) = recorded.buffers
    assert buffer.capacity == 12 and len(buffer) == 12 and buffer.obs_dim == 2 and buffer.act_dim == 1
    assert len(recorded.batches) == 12 - 4 and all(len(b["rewards"]) == 5 for b in recorded.batches)
    assert env.reset_seeds[0] == 3 and all(s is None for s in env.reset_seeds[1:])

    rows = buffer.all()
    # Episodes: 1 terminates (failure) at t=3, 2 truncates at t=4, 3 terminates at t=3, then 2 steps of 4.
    episode = [1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 4, 4]
    t = [1, 2, 3, 1, 2, 3, 4, 1, 2, 3, 1, 2]
    np.testing.assert_array_equal(rows["next_obs"], np.array([episode, t], np.float32).T)
    np.testing.assert_array_equal(rows["obs"], np.array([episode, np.subtract(t, 1)], np.float32).T)
    np.testing.assert_array_equal(rows["rewards"], 10 * np.array(episode) + np.array(t))
    np.testing.assert_array_equal(rows["terminated"], [0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0])
    np.testing.assert_array_equal(rows["failure"], [0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(rows["actions"], np.array(env.actions, np.float32).reshape(12, 1))
    assert np.all(np.abs(rows["actions"]) <= 1.0)


def test_loop_is_seeded(recorded):
    def actions_and_batches(seed):
        env = ScriptedEnv()
        recorded.batches.clear()
        run_lean_sac(env, steps=8, batch_size=4, learning_starts=5, seed=seed, hidden=(4,))
        return np.array(env.actions), [b["obs"] for b in recorded.batches]

    (a1, b1), (a2, b2), (a3, _) = actions_and_batches(1), actions_and_batches(1), actions_and_batches(2)
    np.testing.assert_array_equal(a1, a2)
    assert all(np.array_equal(x, y) for x, y in zip(b1, b2, strict=True))
    assert not np.array_equal(a1, a3)


def test_loop_defaults_batch_256_learning_starts_256_seed_0(recorded):
    env = ScriptedEnv()
    rate = run_lean_sac(env, steps=258)
    assert rate == pytest.approx(2 / 2.5)
    ((args, kwargs, _),) = recorded.agents
    assert tuple(args[2] if len(args) > 2 else kwargs["hidden"]) == (256, 256)
    assert len(recorded.batches) == 2 and all(len(b["rewards"]) == 256 for b in recorded.batches)
    assert env.reset_seeds[0] == 0


def test_agent_lives_on_the_requested_device():
    agent = LeanSAC(3, 2, hidden=(4,), device="meta")  # shapes and devices only
    tensors = [*agent.policy.parameters(), *agent.qf.parameters(), *agent.target_qf.parameters(), agent.log_alpha]
    assert all(t.device.type == "meta" for t in tensors)


def test_one_step_run_keeps_a_one_row_buffer(recorded):
    rate = run_lean_sac(ScriptedEnv(), steps=1, batch_size=1, learning_starts=0, hidden=(4,))
    assert rate == pytest.approx(1 / 2.5)
    (buffer,) = recorded.buffers
    assert buffer.capacity == 1 and len(buffer) == 1 and len(recorded.batches) == 1
