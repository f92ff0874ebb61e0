"""Safety environments with a failure signal; importing this module registers their ids.

Ids (each takes ``task="pretrain" | "finetune"``):
  * ``sqrl/DrunkSpider-v0``      2-D navigation over a lava bridge (pure NumPy)
  * ``sqrl/MinitaurVelocity-v0`` pybullet quadruped, goal velocity 0.3 -> 0.4 m/s
  * ``sqrl/MinitaurFriction-v0`` pybullet quadruped, foot friction 1.0 -> 1.25
  * ``sqrl/CubeRotate-v0``       MuJoCo ShadowHand rotating a block; dropping it is a failure
"""

from __future__ import annotations

import gymnasium as gym

from sqrl_rllib.envs.checked import CheckedEnv, EnvOutputError
from sqrl_rllib.envs.failure import WithFailure, terminated_is_failure, with_failure

ENV_IDS = {
    "sqrl/DrunkSpider-v0": "sqrl_rllib.envs.drunk_spider:DrunkSpiderEnv",
    "sqrl/MinitaurVelocity-v0": "sqrl_rllib.envs.minitaur:MinitaurVelocityEnv",
    "sqrl/MinitaurFriction-v0": "sqrl_rllib.envs.minitaur:MinitaurFrictionEnv",
    "sqrl/CubeRotate-v0": "sqrl_rllib.envs.cube_rotate:CubeRotateEnv",
}


def register_envs() -> None:
    """Register every sqrl env id with gymnasium (idempotent)."""
    for env_id, entry_point in ENV_IDS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=entry_point)


register_envs()

__all__ = [
    "ENV_IDS",
    "CheckedEnv",
    "EnvOutputError",
    "WithFailure",
    "register_envs",
    "terminated_is_failure",
    "with_failure",
]
