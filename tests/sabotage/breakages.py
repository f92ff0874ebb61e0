"""The named breakages: each one a text replacement in one package file, and the tests that must catch it.

A breakage is applied in a scratch copy of the repository only (``run.py``); ``old`` must occur exactly
once in its file, so a refactor that moves the code makes the breakage fail loudly instead of silently
testing nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

UNIT = "tests/unit"
SWITCHES = "tests/integration/test_sqrl_switches.py"
PRETRAIN_FINETUNE = (
    "tests/integration/test_sqrl_algorithm.py::test_pretrain_then_finetune_starts_from_pretrained_weights"
)


@dataclass(frozen=True)
class Breakage:
    """A deliberate bug: replace ``old`` by ``new`` in ``path`` (relative to the repository root)."""

    name: str
    why: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]  # pytest node ids / files: the subset that must fail


PI_WEIGHTED_PICK = """    if explore and mode == "finetune":  # sabotage: the safe samples weighted by pi again (pi^2)
        from sqrl_rllib.core.mask import _choice

        safe = q_safe < eps_safe
        gumbel = -torch.log(-torch.log(torch.rand_like(logp).clamp(1e-12, 1.0)))
        score = torch.where(safe, logp + gumbel, torch.full_like(logp, -float("inf")))
        index = torch.where(safe.any(1), score.argmax(1), q_safe.argmin(1))
        choice = _choice(q_safe, safe, index, ~safe.any(1))
    elif explore:
        choice = select_action_index(q_safe, eps_safe, mode, generator)
    else:
        choice = select_deterministic(q_safe, eps_safe)
"""

BREAKAGES: list[Breakage] = [
    # --- the list ---------------------------------------------------------------------
    Breakage(
        "mask_fallback_riskiest",
        "without a safe sample the mask takes the riskiest one",
        "sqrl_rllib/core/mask.py",
        "index = torch.where(any_safe, chosen, q_safe.argmin(dim=1))",
        "index = torch.where(any_safe, chosen, q_safe.argmax(dim=1))",
        (f"{UNIT}/test_mask.py", f"{UNIT}/test_safety_mask_connector.py"),
    ),
    Breakage(
        "lagrangian_sign_flipped",
        "the actor's Lagrangian term rewards Q_safe instead of penalising it",
        "sqrl_rllib/core/losses.py",
        "return nu.detach() * (q_safe_pi - eps_safe).mean()",
        "return -nu.detach() * (q_safe_pi - eps_safe).mean()",
        (f"{UNIT}/test_lagrangian.py", f"{UNIT}/test_learner_switches.py"),
    ),
    Breakage(
        "gamma_safe_ignored_in_target",
        "the safety Bellman target is undiscounted",
        "sqrl_rllib/core/losses.py",
        "(1.0 - done) * gamma_safe * q_safe_next",
        "(1.0 - done) * q_safe_next",
        (f"{UNIT}/test_safety_critic.py",),
    ),
    Breakage(
        "gamma_safe_ignored_by_learner",
        "the learner passes gamma 1 instead of the config's gamma_safe",
        "sqrl_rllib/algorithms/sqrl/torch/sqrl_torch_learner.py",
        "losses.safety_target(failure, q_next, config.gamma_safe,",
        "losses.safety_target(failure, q_next, 1.0,",
        (f"{UNIT}/test_learner_switches.py",),
    ),
    Breakage(
        "failure_labels_shifted",
        "each failure label is read from the observation before the one it belongs to",
        "sqrl_rllib/algorithms/sqrl/episodes.py",
        "for info in infos[1:]",
        "for info in infos[:-1]",
        (f"{UNIT}/test_episode_columns.py",),
    ),
    Breakage(
        "q_safe_not_frozen_by_lagrangian",
        "the Lagrangian term's gradient reaches Q_safe",
        "sqrl_rllib/algorithms/sqrl/torch/sqrl_torch_learner.py",
        "with frozen(module.safety_critic):",
        "with torch.enable_grad():",
        (f"{UNIT}/test_learner_switches.py",),
    ),
    Breakage(
        "q_safe_trained_in_finetuning",
        "fine-tuning keeps training Q_safe although finetune_safety_critic is off",
        "sqrl_rllib/algorithms/sqrl/sqrl.py",
        'trains_safety = cfg.safety_critic and (cfg.phase == "pretrain" or cfg.finetune_safety_critic)',
        "trains_safety = cfg.safety_critic",
        (PRETRAIN_FINETUNE,),
    ),
    Breakage(
        "mask_off_in_finetuning_connector",
        "the mask connector passes through in fine-tuning unless the pretraining switch is on",
        "sqrl_rllib/connectors/safety_mask.py",
        'if self.phase == "pretrain" and not bool(module.mask_active):',
        "if not bool(module.mask_active):",
        (f"{UNIT}/test_safety_mask_connector.py",),
    ),
    Breakage(
        "mask_off_in_finetuning_config",
        "the config builds a disabled mask for fine-tuning",
        "sqrl_rllib/algorithms/sqrl/sqrl.py",
        "enabled=self.mask_enabled,",
        'enabled=self.mask_enabled and self.phase == "pretrain",',
        (f"{UNIT}/test_safety_mask_connector.py",),
    ),
    Breakage(
        "alpha_not_updated",
        "SAC's temperature loss is dropped from the sum",
        "sqrl_rllib/algorithms/sqrl/torch/sqrl_torch_learner.py",
        "total = critic_loss + actor_loss + alpha_loss",
        "total = critic_loss + actor_loss",
        (f"{UNIT}/test_learner_switches.py",),
    ),
    # --- more ---------------------------------------------------------------------------------
    Breakage(
        "target_networks_not_updated",
        "polyak averaging with tau 0: the targets never move",
        "sqrl_rllib/algorithms/sqrl/torch/sqrl_torch_learner.py",
        "_polyak(pairs, config.tau)",
        "_polyak(pairs, 0.0)",
        (f"{UNIT}/test_learner_switches.py",),
    ),
    Breakage(
        "finetune_mask_pi_squared",
        "fine-tuning's mask weights the safe samples by pi again (samples pi^2, not pi_safe)",
        "sqrl_rllib/core/mask.py",
        """    choice = (
        select_action_index(q_safe, eps_safe, mode, generator) if explore else select_deterministic(q_safe, eps_safe)
    )
""",
        PI_WEIGHTED_PICK,
        (f"{UNIT}/test_mask_sampling.py",),
    ),
    Breakage(
        "finetune_mask_safest_safe",
        "fine-tuning's mask takes the safest safe sample instead of a uniform one",
        "sqrl_rllib/core/mask.py",
        "score = torch.rand(q_safe.shape, generator=generator, device=q_safe.device, dtype=q_safe.dtype)",
        "score = -q_safe",
        (f"{UNIT}/test_mask_sampling.py",),
    ),
    Breakage(
        "deterministic_fallback_riskiest",
        "deterministic evaluation with an unsafe mean takes the riskiest sample",
        "sqrl_rllib/core/mask.py",
        "index = torch.where(mean_safe, torch.zeros_like(mean_safe, dtype=torch.long), q_safe.argmin(dim=1))",
        "index = torch.where(mean_safe, torch.zeros_like(mean_safe, dtype=torch.long), q_safe.argmax(dim=1))",
        (f"{UNIT}/test_mask.py", f"{UNIT}/test_safety_mask_connector.py"),
    ),
    Breakage(
        "mask_fallback_metric_wrong",
        "the mask logs its rejection rate as the fallback rate",
        "sqrl_rllib/connectors/safety_mask.py",
        "[choice.rejected_fraction.mean(), choice.fallback.float().mean(), choice.q_safe.mean()]",
        "[choice.rejected_fraction.mean(), choice.rejected_fraction.mean(), choice.q_safe.mean()]",
        (f"{UNIT}/test_safety_mask_connector.py",),
    ),
    Breakage(
        "warmup_never_ends",
        "pretraining's unmasked warm-up never switches the mask on",
        "sqrl_rllib/algorithms/sqrl/sqrl.py",
        'due = self._counters["safety_steps"] > 0 if warmup is None else',
        "due = False if warmup is None else",
        (PRETRAIN_FINETUNE,),
    ),
    Breakage(
        "eps_safe_not_passed_to_mask",
        "the EnvRunners' mask uses the default eps_safe, not the config's",
        "sqrl_rllib/algorithms/sqrl/sqrl.py",
        "eps_safe=self.eps_safe,",
        "eps_safe=0.1,",
        (f"{UNIT}/test_safety_mask_connector.py", f"{SWITCHES}::test_env_runners_mask_with_the_configs_keys"),
    ),
    Breakage(
        "num_action_samples_not_passed_to_mask",
        "the EnvRunners' mask draws the default K=100",
        "sqrl_rllib/algorithms/sqrl/sqrl.py",
        "num_action_samples=self.num_action_samples,",
        "num_action_samples=100,",
        (f"{UNIT}/test_safety_mask_connector.py",),
    ),
    Breakage(
        "mask_enabled_ignored",
        "mask_enabled=False still masks",
        "sqrl_rllib/algorithms/sqrl/sqrl.py",
        "enabled=self.mask_enabled,",
        "enabled=True,",
        (f"{UNIT}/test_safety_mask_connector.py", f"{SWITCHES}::test_unmasked_fine_tuning_without_lagrangian"),
    ),
    Breakage(
        "lagrangian_switch_ignored",
        "lagrangian=False still adds the Lagrangian term",
        "sqrl_rllib/algorithms/sqrl/torch/sqrl_torch_learner.py",
        "lagrangian = config.lagrangian and (",
        "lagrangian = True and (",
        (f"{UNIT}/test_learner_switches.py",),
    ),
    Breakage(
        "safety_target_network_ignored",
        "safety_target_network=False still bootstraps from the target network",
        "sqrl_rllib/algorithms/sqrl/torch/sqrl_torch_learner.py",
        "critic = module.target_safety_critic if config.safety_target_network else module.safety_critic",
        "critic = module.target_safety_critic",
        (f"{UNIT}/test_learner_switches.py",),
    ),
    Breakage(
        "goal_terminal_bootstraps",
        "the safety target bootstraps from terminal states that did not fail",
        "sqrl_rllib/core/losses.py",
        "done = torch.maximum(failure, terminated.to(q_safe_next.dtype))",
        "done = failure",
        (f"{UNIT}/test_safety_critic.py", f"{UNIT}/test_learner_switches.py"),
    ),
    Breakage(
        "tanh_correction_dropped",
        "the policy's log-probability omits the tanh change of variables",
        "sqrl_rllib/core/networks.py",
        "log_prob = log_prob - (2.0 * (math.log(2.0) - u - nn.functional.softplus(-2.0 * u))).sum(-1)",
        "log_prob = log_prob",
        (f"{UNIT}/test_squashed_gaussian.py",),
    ),
    Breakage(
        "failure_does_not_terminate",
        "the failure wrapper labels a failure but lets the episode go on",
        "sqrl_rllib/envs/failure.py",
        "terminated, truncated = True, False",
        "pass",
        (f"{UNIT}/test_failure_wrapper.py",),
    ),
    Breakage(
        "updates_per_env_step_ignored",
        "one SGD step per env step whatever updates_per_env_step says",
        "sqrl_rllib/algorithms/sqrl/sqrl.py",
        "sac_steps = max(1, round(new_steps * cfg.updates_per_env_step))",
        "sac_steps = max(1, new_steps)",
        (f"{SWITCHES}::test_updates_per_env_step_and_checkpoint_replay",),
    ),
    Breakage(
        "checkpoint_replay_ignored",
        "checkpoint_replay=False still stores the buffers",
        "sqrl_rllib/algorithms/sqrl/sqrl.py",
        "if self.config.checkpoint_replay",
        "if True",
        (f"{SWITCHES}::test_updates_per_env_step_and_checkpoint_replay",),
    ),
    Breakage(
        "finetune_safety_critic_ignored",
        "finetune_safety_critic=True leaves Q_safe frozen",
        "sqrl_rllib/algorithms/sqrl/sqrl.py",
        'trains_safety = cfg.safety_critic and (cfg.phase == "pretrain" or cfg.finetune_safety_critic)',
        'trains_safety = cfg.safety_critic and cfg.phase == "pretrain"',
        (f"{SWITCHES}::test_env_runners_mask_with_the_configs_keys",),
    ),
]
