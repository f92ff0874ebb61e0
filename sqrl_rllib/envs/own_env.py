"""An experiment's own env: ``env:`` plus ``failure:`` from the YAML, built under the sqrl failure contract.

``env:`` is either
  * a gymnasium id (``Hopper-v5``, ``Pendulum-v1``, ``sqrl/DrunkSpider-v0``, or gymnasium's own
    ``my_pkg:MyEnv-v0``, which imports ``my_pkg`` first): the stage's ``env_config`` items are
    ``gymnasium.make`` keyword arguments; or
  * ``module:callable``, an env creator (a function or an Env class), called as ``callable(env_config)``
    with the stage's ``env_config`` dict, RLlib's env-creator convention.

``failure:`` (``sqrl_rllib.envs.failure_spec``) says which steps are failures; the env is wrapped by
``with_failure`` with that predicate, so it is output-checked (``CheckedEnv``) as well. Without
``failure:`` the env's own ``info["failure"]`` is used, as the sqrl ids have it.

``check_own_env`` validates the pair before Ray starts (exit 2 from the CLI); ``register_own_env`` makes
it known to Ray Tune under ``own_env_name`` so that every EnvRunner of a cluster can build it.
"""

from __future__ import annotations

import re
from typing import Any

import gymnasium as gym
import numpy as np

from sqrl_rllib.envs.failure_spec import (
    FORMS,
    FailureSpecError,
    InfoFailure,
    ObsFailure,
    failure_predicate,
    load_callable,
)

# Random steps (seeded, resetting at episode ends) that check_own_env takes to see the env's info keys.
PROBE_STEPS = 50
_CREATOR = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")  # the right side of an id has a "-vN"


class OwnEnvError(ValueError):
    """An ``env:`` / ``failure:`` pair (or a stage's ``env_config``) that cannot run; the message names the key."""


def is_creator_path(env: str) -> bool:
    """Whether ``env`` is ``module:callable`` (an env creator) rather than a gymnasium id."""
    return bool(_CREATOR.match(env))


def make_base_env(env: str, env_config: dict[str, Any] | None = None) -> gym.Env:
    """The env ``env`` names, before any failure wrapper: ``gymnasium.make(env, **env_config)`` for an id,
    ``callable(env_config)`` for ``module:callable``. Raises OwnEnvError for an unknown id, a creator that
    does not import or returns no ``gymnasium.Env``; env_config errors propagate as the env raises them."""
    import sqrl_rllib.envs  # noqa: F401  (registers the sqrl ids in this process)

    env_config = dict(env_config or {})
    if is_creator_path(env):
        try:
            creator = load_callable(env, "env")
        except FailureSpecError as err:
            raise OwnEnvError(str(err)) from None
        made = creator(env_config)
        if not isinstance(made, gym.Env):
            raise OwnEnvError(f"env={env!r} returned a {type(made).__name__}, not a gymnasium.Env.")
        return made
    try:
        return gym.make(env, **env_config)
    except gym.error.Error as err:
        if isinstance(err, gym.error.DependencyNotInstalled):
            raise OwnEnvError(f"env={env!r} cannot be built: {err}") from None
        sqrl_ids = sorted(k for k in gym.registry if k.startswith("sqrl/"))
        raise OwnEnvError(
            f"Unknown env {env!r}: not a gymnasium id ({err}). Registered sqrl envs: {', '.join(sqrl_ids)}; "
            "any gymnasium id (e.g. Hopper-v5) or an env creator 'module:callable' works with a failure: key."
        ) from None


class OwnEnvCreator:
    """RLlib env creator for ``env`` under ``failure`` (None: the env's own ``info["failure"]``).

    ``creator(env_config)`` returns ``with_failure(make_base_env(env, env_config), predicate)``, or
    ``CheckedEnv(make_base_env(...))`` without a failure spec. Picklable: it holds only the two specs.
    """

    def __init__(self, env: str, failure: Any = None):
        self.env, self.failure = env, failure

    def __call__(self, env_config: dict[str, Any] | None = None) -> gym.Env:
        from sqrl_rllib.envs.checked import CheckedEnv, pop_bad_output
        from sqrl_rllib.envs.failure import with_failure

        bad_output, kwargs = pop_bad_output(env_config)
        base = make_base_env(self.env, kwargs)
        if self.failure is None:
            return CheckedEnv(base, name=self.env, bad_output=bad_output)
        return with_failure(base, failure_predicate(self.failure), bad_output=bad_output)

    def __repr__(self) -> str:
        return f"OwnEnvCreator({self.env!r}, failure={self.failure!r})"


def own_env_name(env: str, failure: Any = None) -> str:
    """The name the pipeline gives RLlib for ``env`` under ``failure``.

    A sqrl id without ``failure:`` keeps its id (registered by ``register_rllib_envs``); anything else is
    ``ENV|TAG`` with a short tag of the spec (``Hopper-v5|terminated``, ``Pendulum-v1|obs2>6.0``,
    ``X|info.cost``, ``X|python.my_pkg.safety:fell``, ``X|own`` without a spec), so that two specs of one env
    never share a Tune registry entry, and trial names stay readable.
    """
    from sqrl_rllib.envs import ENV_IDS

    if failure is None:
        return env if env in ENV_IDS else f"{env}|own"
    if not isinstance(failure, dict):
        return f"{env}|{failure}"
    source = next((key for key in ("info", "obs", "python") if key in failure), "")
    tag = f"{source}{'.' if source != 'obs' else ''}{failure.get(source, '')}"
    if "above" in failure:
        tag += f">{float(failure['above'])}"
    if "below" in failure:
        tag += f"<{float(failure['below'])}"
    return f"{env}|{tag}"


def register_own_env(env: str, failure: Any = None) -> str:
    """Register ``OwnEnvCreator(env, failure)`` with Ray Tune under ``own_env_name``; returns that name.

    Call it in the driver (after or before ``ray.init``): Tune keeps the creator in the cluster, so remote
    EnvRunners build the env without importing anything first (a ``module:callable`` or python predicate
    must still be importable there).
    """
    from ray.tune.registry import register_env

    name = own_env_name(env, failure)
    if name != env:  # the sqrl ids are registered by register_rllib_envs
        register_env(name, OwnEnvCreator(env, failure))
    return name


def check_own_env(env: str, failure: Any, env_config: dict[str, Any], stage: str) -> None:
    """Build ``env`` with ``stage``'s ``env_config`` and check ``failure`` against it; raises OwnEnvError.

    Checked: the env builds (a known id, an importable creator, valid ``env_config``); ``failure:`` parses;
    an ``obs`` index lies inside the (Box) observation space; and, over the reset and ``PROBE_STEPS``
    seeded random steps, the ``info`` key appears at least once, a python predicate runs, and an env
    without ``failure:`` carries ``info["failure"]`` on every one of them.
    """
    from sqrl_rllib.envs import ENV_IDS
    from sqrl_rllib.envs.checked import pop_bad_output

    try:
        predicate = None if failure is None else failure_predicate(failure)
    except FailureSpecError as err:
        raise OwnEnvError(str(err)) from None
    try:
        _, kwargs = pop_bad_output(env_config)
    except ValueError as err:
        raise OwnEnvError(f"{stage}.{err}") from None
    try:
        base = make_base_env(env, kwargs)
    except OwnEnvError:
        raise
    except (TypeError, ValueError) as err:
        raise OwnEnvError(f"{stage}.env_config={env_config!r} is invalid for {env}: {err}") from None
    try:
        if isinstance(predicate, ObsFailure):
            _check_obs_index(base.observation_space, failure["obs"], env)
        if failure is None and env in ENV_IDS:
            return  # the sqrl envs' failure signal is tested with them
        _probe(base, predicate, failure, env, stage)
    finally:
        base.close()


def _check_obs_index(space: gym.Space, index: int, env: str) -> None:
    if not isinstance(space, gym.spaces.Box):
        raise OwnEnvError(f"failure.obs={index} needs a Box observation space; {env} has {space}.")
    size = int(np.prod(space.shape))
    if index >= size:
        raise OwnEnvError(
            f"failure.obs={index} is out of range: {env}'s observation space {space} has {size} entries "
            f"(flat indices 0..{size - 1})."
        )


def _probe(base: gym.Env, predicate, failure: Any, env: str, stage: str) -> None:
    base.action_space.seed(0)
    obs, info = base.reset(seed=0)
    infos = [info]
    for step in range(1, PROBE_STEPS + 1):
        obs, reward, terminated, truncated, info = base.step(base.action_space.sample())
        infos.append(info)
        if predicate is not None:
            try:
                predicate(obs, reward, terminated, info)
            except Exception as err:
                key = "failure.python" if "python" in (failure if isinstance(failure, dict) else {}) else "failure"
                raise OwnEnvError(
                    f"{key}={failure!r} raised on {env}'s step {step} ({type(err).__name__}: {err}); "
                    "a predicate is called as predicate(obs, reward, terminated, info) -> bool."
                ) from None
        if terminated or truncated:
            obs, info = base.reset()
            infos.append(info)
    where = f"its reset and {PROBE_STEPS} random steps ({stage}.env_config)"
    if isinstance(predicate, InfoFailure) and not any(predicate.key in i for i in infos):
        seen = sorted({k for i in infos for k in i})
        raise OwnEnvError(
            f"failure.info={predicate.key!r}: {env}'s info never has {predicate.key!r} in {where}; "
            f"info keys seen: {', '.join(map(repr, seen)) or 'none'}."
        )
    if failure is None and not all("failure" in i for i in infos):
        raise OwnEnvError(
            f"env={env!r} has no info['failure'] in {where}: give a failure: key ({FORMS}), "
            "e.g. failure: terminated when every termination is a failure."
        )
