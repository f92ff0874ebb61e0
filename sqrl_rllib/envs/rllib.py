"""Make the sqrl env ids known to RLlib/Tune on every worker of a cluster.

Tune's registry lives in the cluster (GCS), so registering here in the driver or in the Algorithm
lets remote EnvRunners create the envs without importing anything first.
"""

from __future__ import annotations

import gymnasium as gym


def make_env(env_id: str):
    """An RLlib env creator for ``env_id``: ``env_config`` items become ``gymnasium.make`` kwargs.

    The env is output-checked (``CheckedEnv``): bad observations, rewards or failure flags raise at the step,
    or, with the env_config key ``bad_output: drop_episode``, end their episode there.
    """

    def creator(env_config) -> gym.Env:
        import sqrl_rllib.envs  # noqa: F401  (registers the ids in this worker process)
        from sqrl_rllib.envs.checked import CheckedEnv, pop_bad_output

        bad_output, kwargs = pop_bad_output(env_config)
        return CheckedEnv(gym.make(env_id, **kwargs), bad_output=bad_output)

    return creator


def register_rllib_envs() -> None:
    """Register every ``sqrl/...`` id with Ray Tune's env registry."""
    from ray.tune.registry import register_env

    from sqrl_rllib.envs import ENV_IDS

    for env_id in ENV_IDS:
        register_env(env_id, make_env(env_id))
