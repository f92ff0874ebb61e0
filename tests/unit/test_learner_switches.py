"""SQRL's torch Learner without Ray: which parameters each loss moves, and the safety Bellman target it uses.

The Learner is built from an ``SQRLConfig`` in this process (``config.build_learner``, ~1 s) and fed
hand-made batches through ``learner.update``, the call ``SQRL._learn`` makes, so the switches of the
config are checked on the code path training runs, one SGD step at a time.
"""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch

from sqrl_rllib.algorithms.sqrl import SQRLConfig
from sqrl_rllib.algorithms.sqrl.sqrl import _safety_batch, _train_batch
from sqrl_rllib.core.networks import SafetyCritic

OBS_SPACE = gym.spaces.Box(-1, 1, (3,), np.float32)
ACT_SPACE = gym.spaces.Box(-1, 1, (2,), np.float32)
N = 64


def build_learner(actor_lr: float = 3e-4, **sqrl_keys):
    """A built SQRLTorchLearner with tiny nets and seeded weights (every call starts from the same ones)."""
    config = (
        SQRLConfig()
        .environment(observation_space=OBS_SPACE, action_space=ACT_SPACE)
        .training(train_batch_size_per_learner=N, actor_lr=actor_lr)
        .sqrl(**({"hidden": (16, 16)} | sqrl_keys))
    )
    torch.manual_seed(0)
    learner = config.build_learner(env=None, spaces={"default_policy": (OBS_SPACE, ACT_SPACE)})
    learner.build()
    return learner


def module_of(learner):
    """The learner's SQRL RLModule (unwrapped)."""
    return learner.module["default_policy"].unwrapped()


def rows(seed: int = 0, failure: float = 0.0, terminated: float = 0.0) -> dict[str, np.ndarray]:
    """N random transitions in the columns of SQRL's buffers."""
    rng = np.random.default_rng(seed)
    return {
        "obs": rng.uniform(-1, 1, (N, 3)).astype(np.float32),
        "actions": rng.uniform(-1, 1, (N, 2)).astype(np.float32),
        "rewards": rng.normal(size=N).astype(np.float32),
        "next_obs": rng.uniform(-1, 1, (N, 3)).astype(np.float32),
        "terminated": np.full(N, terminated, np.float32),
        "failure": np.full(N, failure, np.float32),
    }


def sac_step(learner, seed: int = 0):
    """One SGD step on SAC rows; returns the learner's stats for the module."""
    torch.manual_seed(seed)  # the policy samples inside the loss
    return learner.update(batch=_train_batch(rows(seed)), timesteps={})["default_policy"]


def safety_step(learner, batch_rows):
    """One SGD step on safety-critic rows; returns the learner's stats for the module."""
    torch.manual_seed(0)
    return learner.update(batch=_safety_batch(batch_rows), timesteps={})["default_policy"]


def optimizer_steps(learner, name: str) -> int:
    """Adam steps of the learner's optimizer ``name``; 0 if it never stepped (no state yet)."""
    state = learner._named_optimizers[f"default_policy_{name}"].state
    return int(next(iter(state.values()))["step"]) if state else 0


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of ``module``'s state."""
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    """Same keys and bitwise-equal tensors."""
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def set_constant(critic: SafetyCritic, probability: float) -> None:
    """Make ``critic`` output ``probability`` for every (s, a): zero last layer, bias logit(p)."""
    with torch.no_grad():
        critic.net[-1].weight.zero_()
        critic.net[-1].bias.fill_(math.log(probability / (1 - probability)))


def risky_in_a0(module, bias: float = -2.0) -> None:
    """Q_safe(s, a) = sigmoid(10 a0 + bias): a single linear layer in place of the module's safety critic."""
    module.safety_critic = SafetyCritic(3, 2, hidden=())
    with torch.no_grad():
        module.safety_critic.net[0].weight.zero_()
        module.safety_critic.net[0].weight[0, 3] = 10.0
        module.safety_critic.net[0].bias.fill_(bias)


def policy_mean_a0(module, obs: np.ndarray) -> float:
    """Mean over ``obs`` of the first coordinate of the policy's deterministic action."""
    with torch.no_grad():
        return float(module.policy.mean_action(torch.as_tensor(obs))[:, 0].mean())


def test_sac_step_updates_alpha_toward_the_target_entropy():
    learner = build_learner()
    module = module_of(learner)
    sac_step(learner)
    # A fresh policy (std ~1 in 2-D) has entropy far above SAC's target -2, so alpha must fall: measured
    # log alpha -3.0e-4 (one Adam step of lr 3e-4); an alpha that is not updated stays at exactly log 1 = 0
    # and its optimizer never steps, a flipped alpha loss rises to +3e-4.
    assert module.log_alpha.item() < -1e-4
    assert optimizer_steps(learner, "alpha") == 1
    for _ in range(4):
        sac_step(learner)
    assert optimizer_steps(learner, "alpha") == optimizer_steps(learner, "policy") == 5


def test_fine_tuning_lagrangian_moves_the_policy_and_nu_but_never_q_safe():
    learner = build_learner(phase="finetune", eps_safe=0.01)
    module = module_of(learner)
    q_safe_before = snapshot(module.safety_critic)
    target_before = snapshot(module.target_safety_critic)
    for seed in range(3):
        stats = sac_step(learner, seed)
    # Frozen means the same weights and a safety optimizer that never stepped (a Lagrangian term that
    # leaks gradients into Q_safe would step it).
    assert equal(q_safe_before, snapshot(module.safety_critic))
    assert equal(target_before, snapshot(module.target_safety_critic))
    assert optimizer_steps(learner, "safety") == 0
    # An untrained Q_safe (~0.5) violates eps_safe 0.01: dual ascent raises nu from 1.
    assert optimizer_steps(learner, "nu") == 3
    assert module.log_nu.item() > 0 and stats["nu"].peek() > 1.0


def test_lagrangian_false_leaves_nu_and_takes_the_same_actor_step_whatever_q_safe_says():
    def policy_after_step(lagrangian: bool, bias: float):
        learner = build_learner(phase="finetune", lagrangian=lagrangian, nu_init=50.0)
        module = module_of(learner)
        risky_in_a0(module, bias)
        nu_before = module.log_nu.item()
        sac_step(learner)
        return snapshot(module.policy), module.log_nu.item() - nu_before, optimizer_steps(learner, "nu")

    off_a, dnu_a, steps_a = policy_after_step(False, -2.0)
    off_b, dnu_b, steps_b = policy_after_step(False, 1.0)
    assert dnu_a == dnu_b == 0.0 and steps_a == steps_b == 0
    assert equal(off_a, off_b)  # without the term, Q_safe cannot reach the actor
    on_a, _, steps_on = policy_after_step(True, -2.0)
    assert steps_on == 1
    assert not equal(on_a, off_a)  # with it (nu 50), the same step moves the policy differently


def test_lagrangian_pushes_the_policy_off_actions_q_safe_calls_risky():
    obs = rows(0)["obs"]

    def mean_a0_after(lagrangian: bool) -> float:
        learner = build_learner(3e-3, phase="finetune", lagrangian=lagrangian, nu_init=20.0, eps_safe=0.05)
        module = module_of(learner)
        risky_in_a0(module)
        for seed in range(20):
            sac_step(learner, seed)
        return policy_mean_a0(module, obs)

    # Same data, same seeds: only the term nu * Q_safe(s, pi(s)) differs, and it lowers a0 (Q_safe rises
    # with a0). Measured: mean a0 -0.166 with the term vs +0.057 without (from +0.166 at the start); a
    # flipped sign raises a0 above the no-term run instead, a dropped term scores a difference of 0.
    with_term, without = mean_a0_after(True), mean_a0_after(False)
    assert with_term < without - 0.1, (with_term, without)


@pytest.mark.parametrize("target_network", [True, False])
@pytest.mark.parametrize("gamma_safe", [0.5, 0.9])
def test_safety_loss_is_bce_against_the_bellman_target_of_the_configured_critic(target_network, gamma_safe):
    learner = build_learner(gamma_safe=gamma_safe, safety_target_network=target_network)
    module = module_of(learner)
    live, target = 0.3, 0.8
    set_constant(module.safety_critic, live)
    set_constant(module.target_safety_critic, target)
    bootstrap = target if target_network else live
    # A third of the rows fail (y = 1), a third end at the goal (y = 0), a third continue (y = gamma * Qbar).
    batch = rows(0)
    batch["failure"][: N // 3] = 1.0
    batch["terminated"][: 2 * N // 3] = 1.0
    y = np.full(N, gamma_safe * bootstrap)
    y[: N // 3], y[N // 3 : 2 * N // 3] = 1.0, 0.0
    expected = float(np.mean(-(y * math.log(live) + (1 - y) * math.log(1 - live))))
    stats = safety_step(learner, batch)
    # The loss is logged before the step. Ignoring gamma_safe (gamma 1), the target network switch, or the
    # goal's terminal flag each shifts it by >= 0.03 here.
    assert stats["safety_loss"].peek() == pytest.approx(expected, abs=1e-5)


def test_safety_rows_train_q_safe_alone_and_its_target_follows():
    learner = build_learner()
    module = module_of(learner)
    before = snapshot(module)
    safety_step(learner, rows(1, failure=1.0, terminated=1.0))
    after = snapshot(module)
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert moved and all(k.startswith(("safety_critic.", "target_safety_critic.")) for k in moved), moved
    assert any(k.startswith("target_safety_critic.") for k in moved)
    assert optimizer_steps(learner, "safety") == 1
    assert optimizer_steps(learner, "policy") == optimizer_steps(learner, "qf") == 0


def rs_step(learner, env_steps: int, seed: int = 0):
    """One RS SGD step at ``env_steps`` env steps into the stage; returns the module's stats."""
    torch.manual_seed(seed)
    timesteps = {"num_env_steps_sampled_lifetime": env_steps}
    return learner.update(batch=_train_batch(rows(seed)), timesteps=timesteps)["default_policy"]


def test_rs_lambda_schedule_replaces_dual_ascent_and_sets_the_reward_penalty():
    rs = {"phase": "finetune", "mask_enabled": False, "lagrangian": False, "risk_penalty": True, "eps_safe": 0.01}
    scheduled = build_learner(**rs, lambda_schedule=[0.0, 10.0, 1000])
    module = module_of(scheduled)
    log_nu = module.log_nu.item()
    # lambda follows the schedule in the env steps the Algorithm passes: 0 -> 10 over 1000 steps, then held.
    for env_steps, expected in ((0, 0.0), (250, 2.5), (1000, 10.0), (5000, 10.0)):
        assert rs_step(scheduled, env_steps)["nu"].peek() == pytest.approx(expected), env_steps
    # ... and the learned multiplier is left alone: no dual ascent (an untrained Q_safe ~0.5 against eps
    # 0.01 would raise it), its optimizer never steps.
    assert module.log_nu.item() == log_nu and optimizer_steps(scheduled, "nu") == 0
    # Without the schedule, the same RS steps raise lambda by dual ascent.
    ascent = build_learner(**rs)
    for seed in range(3):
        stats = rs_step(ascent, 0, seed)
    assert optimizer_steps(ascent, "nu") == 3 and stats["nu"].peek() > 1.0


def test_rs_lambda_schedule_sets_the_penalty_in_the_critic_target():
    """A scheduled lambda of 0 leaves SAC's critic step as it is; a large one changes it (r - lambda Q_safe)."""
    rs = {"phase": "finetune", "mask_enabled": False, "lagrangian": False, "risk_penalty": True}

    def critic_after_step(schedule):
        learner = build_learner(**rs, lambda_schedule=schedule)
        rs_step(learner, 0)
        return snapshot(module_of(learner).qf)

    plain = build_learner(phase="finetune", mask_enabled=False, lagrangian=False)
    sac_step(plain)
    assert equal(critic_after_step([0.0, 0.0, 0]), snapshot(module_of(plain).qf))
    assert not equal(critic_after_step([50.0, 50.0, 0]), snapshot(module_of(plain).qf))
