"""The mask's executed actions follow pi_safe (pi restricted to the safe set), through the module's path.

A 1-D tanh-Gaussian policy and a step Q_safe = 1[a > 0.3]: fine-tuning must execute draws from pi
truncated to a <= 0.3 (paper eq. 3), not from pi^2 truncated (what weighting the K samples by pi again
gives: measured std 0.71 of the policy's instead of 1.0); the warm-up must execute pi itself.
"""

import gymnasium as gym
import numpy as np
import pytest
import torch
from ray.rllib.connectors.module_to_env import GetActions
from ray.rllib.core.columns import Columns
from ray.rllib.env.single_agent_episode import SingleAgentEpisode
from scipy.stats import ks_2samp

from sqrl_rllib.algorithms.sqrl.torch.sqrl_torch_rl_module import MASK_OBS, SQRLTorchRLModule
from sqrl_rllib.connectors.safety_mask import SafetyMask
from sqrl_rllib.core.networks import SafetyCritic, sample_squashed

N, K, EPS, BOUND = 20_000, 16, 0.5, 0.3
LOG_STD = float(np.log(0.5))


def step_critic_module(bound: float | None = BOUND) -> SQRLTorchRLModule:
    """Inference module whose Q_safe is (numerically) 1[a > bound]; ``bound=None``: Q_safe = 0 everywhere."""
    module = SQRLTorchRLModule(
        observation_space=gym.spaces.Box(-1, 1, (1,), np.float32),
        action_space=gym.spaces.Box(-1, 1, (1,), np.float32),
        inference_only=True,
        model_config={"hidden": (4,)},
    )
    module.safety_critic = SafetyCritic(1, 1, hidden=())
    with torch.no_grad():
        layer = module.safety_critic.net[0]
        layer.weight.zero_()
        if bound is None:
            layer.bias.fill_(-50.0)
        else:
            layer.weight[0, 1] = 1e4  # logits 1e4 * (a - bound)
            layer.bias.fill_(-1e4 * bound)
    return module


def dist_inputs(n: int = N) -> torch.Tensor:
    return torch.tensor([[0.0, LOG_STD]]).repeat(n, 1)


def policy_draws(n: int = N) -> np.ndarray:
    """Direct draws from pi (the reference)."""
    return sample_squashed(dist_inputs(n))[0][:, 0].numpy()


def executed(module, phase: str) -> np.ndarray:
    """Actions that the mask connector followed by RLlib's GetActions puts in the batch."""
    batch = {Columns.ACTION_DIST_INPUTS: dist_inputs(), MASK_OBS: torch.zeros(N, 1)}
    mask = SafetyMask(eps_safe=EPS, num_action_samples=K, phase=phase)
    batch = mask(rl_module=module, batch=batch, episodes=[], explore=True)
    batch = GetActions()(rl_module=module, batch=batch, episodes=[SingleAgentEpisode()], explore=True)
    return batch[Columns.ACTIONS][:, 0].numpy()


def test_finetune_executes_pi_truncated_to_the_safe_set():
    torch.manual_seed(0)
    actions = executed(step_critic_module(), "finetune")
    reference = policy_draws(4 * N)
    reference = reference[reference <= BOUND][:N]  # rejection sampling from pi restricted to a <= 0.3
    assert actions.max() <= BOUND
    # Two-sample KS: the pi^2 rule gives a statistic of ~0.08 here, far above the 1e-3 critical value ~0.02.
    result = ks_2samp(actions, reference)
    assert result.pvalue > 1e-3, result


def test_finetune_with_everything_safe_keeps_the_policy_spread():
    torch.manual_seed(1)
    actions = executed(step_critic_module(bound=None), "finetune")
    policy_std = policy_draws().std()
    # The pi^2 rule shrinks this to ~0.73 of the policy's std.
    assert abs(actions.std() / policy_std - 1) < 0.02


def test_finetune_ignores_how_safe_a_safe_sample_is():
    """A graded Q_safe (rising with a, crossing eps at the bound): the pick among the safe samples is still
    uniform, so the executed actions follow pi truncated to a <= 0.3, not a bias toward the safest ones."""
    module = step_critic_module()
    with torch.no_grad():  # logits 5 (a - bound) + logit(eps): Q_safe < eps exactly where a < bound
        module.safety_critic.net[0].weight[0, 1] = 5.0
        module.safety_critic.net[0].bias.fill_(-5.0 * BOUND + float(np.log(EPS / (1 - EPS))))
    torch.manual_seed(5)
    actions = executed(module, "finetune")
    reference = policy_draws(4 * N)
    reference = reference[reference <= BOUND][:N]
    # Measured: KS statistic 0.011, p-value 0.15 (mean -0.196 vs the reference's -0.191); a rule that ranks
    # the safe samples by Q_safe (the safest, or the riskiest as pretraining does) moves the whole sample.
    result = ks_2samp(actions, reference)
    assert result.pvalue > 1e-3, result


@pytest.mark.parametrize("phase", ["pretrain", "finetune"])
def test_mask_switched_on_never_executes_an_unsafe_action_when_a_safe_one_exists(phase):
    module = step_critic_module()
    module.mask_active.fill_(True)
    torch.manual_seed(2)
    actions = executed(module, phase)
    # pi puts ~27% of its mass above the bound: an inactive or pass-through mask fails this at once.
    assert actions.max() <= BOUND


def test_pretraining_warm_up_executes_the_unmasked_policy():
    module = step_critic_module()
    assert not bool(module.mask_active)  # a fresh module starts in the warm-up
    torch.manual_seed(3)
    actions = executed(module, "pretrain")
    # pi puts ~27% of its mass above the bound the mask would enforce.
    assert (actions > BOUND).mean() > 0.2
    assert ks_2samp(actions, policy_draws()).pvalue > 1e-3


def test_deterministic_choice_scores_the_mean_with_its_own_log_prob():
    module = step_critic_module()
    inputs = torch.tensor([[0.2, LOG_STD], [0.9, LOG_STD]])  # tanh(0.2) = 0.197 is safe, tanh(0.9) = 0.716 is not
    torch.manual_seed(4)
    actions, logp, choice = module.masked_actions(torch.zeros(2, 1), inputs, 64, EPS, "finetune", explore=False)
    assert actions[0, 0] == pytest.approx(np.tanh(0.2), abs=1e-6)
    # log N(u=mean; mean, std) - log(1 - tanh(mean)^2)
    expected = -LOG_STD - 0.5 * np.log(2 * np.pi) - np.log(1 - np.tanh(0.2) ** 2)
    assert logp[0].item() == pytest.approx(expected, abs=1e-4)
    assert choice.index[0] == 0 and not choice.fallback[0]
    assert actions[1, 0] <= BOUND and choice.fallback[1]


def test_resampling_finds_safe_actions_outside_a_narrow_policy_and_leaves_safe_states_alone():
    module = step_critic_module()
    # State 0: pi = tanh(N(1.2, 0.1^2)), nothing below the bound within K samples (P ~ 1e-20 per sample);
    # four rounds widen the std to 0.1 * 1.5^4 = 0.51.
    # State 1: pi centred at 0, safe samples at once: its candidates must stay draws from pi.
    inputs = torch.tensor([[1.2, float(np.log(0.1))], [0.0, LOG_STD]]).repeat(2000, 1)
    obs = torch.zeros(len(inputs), 1)
    torch.manual_seed(5)
    plain = module.masked_actions(obs, inputs, K, EPS, "finetune")
    resampled = module.masked_actions(obs, inputs, K, EPS, "finetune", resample_rounds=4)
    narrow, centred = slice(0, None, 2), slice(1, None, 2)
    assert plain[2].fallback[narrow].all() and (plain[0][narrow, 0] > BOUND).all()
    # Rounds 3 and 4 (std 0.34, 0.51) put 0.5% and 4% of their mass below the bound: ~52% of the narrow
    # states find a safe sample in 4 x 16 draws (2000 states: +-1.1%); the rest take the safest seen.
    found = ~resampled[2].fallback[narrow]
    assert found.float().mean() > 0.4
    assert (resampled[0][narrow][found, 0] <= BOUND).all()
    assert not resampled[2].fallback[centred].any()
    reference = policy_draws(4 * N)
    reference = reference[reference <= BOUND][:N]
    assert ks_2samp(resampled[0][centred, 0].numpy(), reference).pvalue > 1e-3
