"""The safety shield for any RLlib algorithm: a frozen SQRL Q_safe vetoes another policy's actions.

One call attaches it to a stock config (single-agent, Box actions; RLlib's PPO and SAC on the new API
stack are tested)::

    from sqrl_rllib.shield import add_safety_shield

    config = add_safety_shield(PPOConfig().environment(...), "/path/to/sqrl_checkpoint", eps_safe=0.1)

At every env step K actions are drawn from the policy's own action distribution, scored by the
checkpoint's Q_safe in one forward pass, and one safe action is executed (a uniform pick among the
safe ones: a draw from pi restricted to the safe set; the safest when none is safe). The connector
(:class:`sqrl_rllib.connectors.safety_shield.SafetyShield`) is built on each EnvRunner from the
checkpoint path, so the path must be readable there (a shared filesystem on a multi-node cluster).
Q_safe stays frozen: no gradient, eval mode, never sent to the Learners. ``docs/shield.md`` has the
details (what PPO's off-policyness costs, which metrics are logged).
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from sqrl_rllib.connectors.safety_shield import SafetyShield
from sqrl_rllib.export import ExportError, action_transform_from_config, load_sqrl_module, resolve_checkpoint


class FrozenQSafe:
    """The safety critic of an SQRL checkpoint, frozen, scoring env-unit actions.

    ``q_safe(obs [B, obs_dim], env_actions [B, K, act_dim]) -> [B, K]``: the env-unit actions are mapped
    back to the units SQRL's policy acted in (the inverse of SQRL's own action mapping, ``action_transform``)
    and scored by the module's ``q_safe`` (one forward pass). Build it with :func:`load_q_safe`.

    Attributes:
        module: the SQRL RLModule (eval mode, no parameter requires grad).
        obs_dim, act_dim: the flat observation and action sizes Q_safe takes.
        action_transform: how SQRL's [-1, 1] actions reached its env (``"unsquash"``, ``"clip"``, ``"none"``).
        source: the checkpoint it came from.
    """

    def __init__(self, module, action_transform: str = "unsquash", source: str = ""):
        module.eval()
        module.requires_grad_(False)
        self.module = module
        self.obs_dim = int(np.prod(module.observation_space.shape))
        self.act_dim = int(np.prod(module.action_space.shape))
        self.action_transform = action_transform
        self.source = source
        space = module.action_space
        bounded = bool(np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high)))
        self._low = torch.tensor(space.low, dtype=torch.float32).ravel() if bounded else None
        self._high = torch.tensor(space.high, dtype=torch.float32).ravel() if bounded else None

    @torch.no_grad()
    def __call__(self, obs: torch.Tensor, env_actions: torch.Tensor) -> torch.Tensor:
        """Q_safe [B, K] (failure probability) of env-unit actions [B, K, act_dim] at obs [B, obs_dim]."""
        actions = env_actions
        if self.action_transform == "unsquash" and self._low is not None:
            actions = 2.0 * (env_actions - self._low) / (self._high - self._low) - 1.0
        return self.module.q_safe(obs.float(), actions.float())


def load_q_safe(checkpoint: str | pathlib.Path) -> FrozenQSafe:
    """Load the frozen Q_safe of an SQRL checkpoint (Algorithm or RLModule checkpoint, as for export).

    Raises:
        ValueError: naming ``checkpoint`` when it is not an SQRL checkpoint or its SQRL config trained no
            safety critic (``safety_critic=False``, the plain-SAC method).
    """
    try:
        module_dir, config = resolve_checkpoint(checkpoint)
    except ExportError as err:
        raise ValueError(f"checkpoint={str(checkpoint)!r} is not an SQRL checkpoint: {err}") from None
    if config is not None and not config.get("safety_critic", True):
        raise ValueError(
            f"checkpoint={str(checkpoint)!r} has no Q_safe: its SQRL config has safety_critic=False "
            "(plain SAC), so there is no trained safety critic to shield with"
        )
    try:
        module = load_sqrl_module(module_dir)
    except ExportError as err:
        raise ValueError(f"checkpoint={str(checkpoint)!r} holds no SQRL Q_safe: {err}") from None
    return FrozenQSafe(module, action_transform_from_config(config), source=str(checkpoint))


def check_spaces(q_safe: FrozenQSafe, observation_space: gym.Space, action_space: gym.Space) -> None:
    """Raise ``ValueError`` unless the env's spaces are flat Boxes of the sizes Q_safe takes."""
    if not isinstance(action_space, gym.spaces.Box):
        raise ValueError(
            f"config: the env's action space is {action_space}; the safety shield needs continuous (Box) "
            "actions, since Q_safe scores continuous actions"
        )
    if not isinstance(observation_space, gym.spaces.Box):
        raise ValueError(f"config: the env's observation space is {observation_space}; the shield needs a Box")
    obs_dim, act_dim = int(np.prod(observation_space.shape)), int(np.prod(action_space.shape))
    if (obs_dim, act_dim) != (q_safe.obs_dim, q_safe.act_dim):
        raise ValueError(
            f"checkpoint={q_safe.source!r} does not fit the config's env: its Q_safe takes obs_dim="
            f"{q_safe.obs_dim} and act_dim={q_safe.act_dim}, the env has obs_dim={obs_dim} and act_dim={act_dim}"
        )


class ShieldConnector:
    """The ``module_to_env_connector`` callable :func:`add_safety_shield` installs (picklable, so it travels
    with the config to every EnvRunner, where it loads Q_safe from the checkpoint path).

    Returns the shield first, then the pieces of any ``module_to_env_connector`` the config had before, so
    those see the shielded actions.
    """

    def __init__(
        self,
        checkpoint: str,
        eps_safe: float,
        num_action_samples: int,
        action_transform: str,
        previous: Callable | None = None,
    ):
        self.checkpoint = checkpoint
        self.eps_safe = eps_safe
        self.num_action_samples = num_action_samples
        self.action_transform = action_transform
        self.previous = previous

    def __call__(self, env=None, spaces=None) -> list:
        """Build the shield for one EnvRunner (and the previously configured pieces after it)."""
        pieces = []
        obs_space, act_space = _single_spaces(env, spaces)
        # A local EnvRunner without an env (remote runners sample) gets no spaces and never acts: no shield.
        if act_space is not None:
            q_safe = load_q_safe(self.checkpoint)
            check_spaces(q_safe, obs_space, act_space)
            pieces.append(
                SafetyShield(
                    q_safe=q_safe,
                    eps_safe=self.eps_safe,
                    num_action_samples=self.num_action_samples,
                    action_transform=self.action_transform,
                    action_low=act_space.low,
                    action_high=act_space.high,
                )
            )
        if self.previous is not None:
            more = self.previous(env, spaces)
            pieces += list(more) if isinstance(more, (list, tuple)) else [more]
        return pieces


def log_failure(*, episode, metrics_logger=None, **kwargs) -> None:
    """``on_episode_end`` callback: count episodes ending with ``info["failure"]`` (SQRL's failure signal).

    Logs ``failures`` (per training iteration) and ``cumulative_failures`` (lifetime) in the EnvRunner
    metrics, i.e. ``result["env_runners"]["failures"]``; episodes without the key are not counted.
    """
    info = episode.get_infos(-1)
    if metrics_logger is None or not isinstance(info, dict) or "failure" not in info:
        return
    failed = int(bool(info["failure"]))
    metrics_logger.log_value("failures", failed, reduce="sum")
    metrics_logger.log_value("cumulative_failures", failed, reduce="lifetime_sum")


def add_safety_shield(
    config,
    checkpoint: str | pathlib.Path,
    eps_safe: float,
    num_action_samples: int = 100,
    *,
    log_failures: bool = True,
):
    """Shield a (stock) RLlib algorithm config with the frozen Q_safe of an SQRL checkpoint.

    Call it after the config's ``environment(...)`` and action settings (``normalize_actions``,
    ``clip_actions``): the shield maps candidates to env units as those say, at the time of this call.

    Args:
        config: a single-agent ``AlgorithmConfig`` (new API stack) with a Box action space, e.g.
            ``PPOConfig`` or ``SACConfig``; modified in place and returned.
        checkpoint: an SQRL Algorithm checkpoint (``algo.save_to_path(...)``, a Tune trial's checkpoint,
            the pipeline's ``pretrain_critic_fit/seed_S/``) or an SQRL RLModule checkpoint; every EnvRunner
            loads it from this path.
        eps_safe: threshold in (0, 1]; candidates with Q_safe >= eps_safe are vetoed.
        num_action_samples: K >= 1, candidates drawn from the policy per env step.
        log_failures: also count failed episodes (``info["failure"]``) as ``failures`` and
            ``cumulative_failures`` in ``result["env_runners"]`` (an ``on_episode_end`` callback).
    Returns:
        ``config``, whose EnvRunners then execute shielded actions and log ``mask_rejection_rate``,
        ``mask_fallback_rate`` and ``mask_chosen_q_safe`` (as SQRL's mask does).
    Raises:
        ValueError: naming the argument, for a checkpoint that is not SQRL's or has no Q_safe, eps_safe
            outside (0, 1], K < 1, a discrete action space, a multi-agent config, a config already
            shielded, or an env whose observation / action sizes differ from Q_safe's.
    """
    if isinstance(eps_safe, bool) or not isinstance(eps_safe, (int, float)) or not 0.0 < eps_safe <= 1.0:
        raise ValueError(f"eps_safe={eps_safe!r} must be a number in (0, 1] (Q_safe is a failure probability)")
    if isinstance(num_action_samples, bool) or not isinstance(num_action_samples, int) or num_action_samples < 1:
        raise ValueError(f"num_action_samples={num_action_samples!r} must be an integer >= 1")
    if config.is_multi_agent:
        raise ValueError("config is multi-agent; the safety shield supports single-agent configs only")
    previous = config._module_to_env_connector
    if isinstance(previous, ShieldConnector):
        raise ValueError("config already has a safety shield (add_safety_shield was called on it before)")
    # Absolute: EnvRunners may start in another working directory.
    path = str(pathlib.Path(checkpoint).expanduser().resolve())
    q_safe = load_q_safe(path)
    spaces = _config_spaces(config)
    if spaces is not None:
        check_spaces(q_safe, *spaces)
    transform = action_transform_from_config(
        {"normalize_actions": config.normalize_actions, "clip_actions": config.clip_actions}
    )
    config.env_runners(
        module_to_env_connector=ShieldConnector(path, float(eps_safe), num_action_samples, transform, previous)
    )
    if log_failures:
        callbacks = config.callbacks_on_episode_end
        if not isinstance(callbacks, (list, tuple)):
            callbacks = [] if callbacks is None else [callbacks]
        config.callbacks(on_episode_end=[*callbacks, log_failure])
    return config


def _single_spaces(env, spaces) -> tuple[gym.Space | None, gym.Space | None]:
    """One sub-env's (observation, action) spaces from what RLlib passes a connector builder."""
    if env is not None:
        return (
            getattr(env, "single_observation_space", env.observation_space),
            getattr(env, "single_action_space", env.action_space),
        )
    if spaces and "__env_single__" in spaces:
        return spaces["__env_single__"]
    return None, None


def _config_spaces(config) -> tuple[gym.Space, gym.Space] | None:
    """The env's spaces where they are cheap to know in the driver (given, or a gymnasium id); else None.

    Other envs (Tune-registered names, classes) are checked on the EnvRunners, when the shield is built.
    """
    if config.observation_space is not None and config.action_space is not None:
        return config.observation_space, config.action_space
    env_id: Any = config.env
    if isinstance(env_id, str) and env_id in gym.registry:
        env = gym.make(env_id, **dict(config.env_config or {}))
        try:
            return env.observation_space, env.action_space
        finally:
            env.close()
    return None
