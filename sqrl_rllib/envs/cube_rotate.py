"""CubeRotate: a MuJoCo ShadowHand rotating a block to Euler-angle goals; dropping it is a failure.

The SQRL authors built this task on PDDM's cube env (Nagabandi et al., mujoco-py), which does not run
on today's MuJoCo. This env keeps their task facts and runs on gymnasium-robotics 1.4.2's
``HandManipulateBlock`` model with mujoco 3.3.7:

Simulation
  A ``MujocoHandBlockEnv`` (the class behind ``HandManipulateBlock-v1``) is built inside this env
  (``self.hand``) with ``target_position="ignore"``, no initial rotation randomization and the
  default 0.005 m initial position noise; its ``reset`` (seeded from this env's generator) places the
  block on the palm and lets it settle for 10 steps. After that this env drives ``hand.model`` /
  ``hand.data`` itself: an action in [-1, 1]^20 is mapped to absolute joint-position targets
  (centre of each actuator's ctrlrange + action * half range, as gymnasium-robotics does) and the
  simulation advances 20 substeps of 2 ms (0.04 s per env step).

Goals (radians, Euler angles, MuJoCo's "xyz" convention, world frame, relative to the block's
  nominal start orientation, which is the identity)
  * pretrain: "left" (0, 0, -1.5), "right" (0, 0, 1.5), "up" (1.5, 0, 0), "down" (-1.5, 0, 0)
  * finetune: "more_left" (0, 0, -2.2), "more_right" (0, 0, 2.2), "more_up" (2.2, 0, 0),
    "more_down" (-2.2, 0, 0)
  Each episode samples two goals (independently, uniformly from the task's goals) and alternates
  between them every ``goal_period`` = 35 steps: steps 0-34 pursue the first, 35-69 the second,
  70-99 the first again. (PDDM's code has a ``same_goals`` switch, True there, that draws the same
  goal twice; ``same_goals=True`` reproduces it.)

Reward
  ``-angle(q_cube, q_goal)`` with ``angle = 2 * arccos(|<q_cube, q_goal>|)`` in [0, pi], the goal being
  the one active during the step; a drop adds ``-drop_penalty`` (1000 by default). PDDM used
  ``-7 * ||euler_cube - euler_goal||``; the quaternion angle has no Euler wrap-around.

Failure (drop)
  PDDM flags a drop when the block's height falls 0.1 m below its start (its slide-joint z, i.e.
  relative to the hand). Here the block spawns at world z = 0.2 (its body position in
  ``manipulate_block.xml``) and rests on the palm at z ~ 0.165 (palm body origin z = 0.14); while it
  is still on the hand it was never seen below z ~ 0.12 (wrist fully flexed), and a block on the floor
  sits at z = 0.025. The default ``drop_height=0.1`` (spawn height minus PDDM's 0.1 m) flags a drop
  when the block centre's world z < 0.1, i.e. the block has left the palm. A drop sets
  ``terminated=True`` and ``info["failure"]=True``.

Observation (float32, 205 values with the defaults), in order
  hand joint positions (24), hand joint velocities (24), block position (3), block quaternion
  (4, w >= 0), block linear and angular velocity (6), current goal quaternion (4, the goal for the next
  step), the last ``action_history`` = 7 actions (7 * 20, most recent first, zeros after reset).

Episodes last ``max_episode_steps`` = 100 steps and end ``truncated`` (never a failure).
Rendering (``render_mode="rgb_array"``) uses MuJoCo's offscreen renderer; with no display and no
``MUJOCO_GL`` set, the env sets ``MUJOCO_GL=egl`` (headless) when asked to render.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any, ClassVar

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium_robotics.envs.shadow_dexterous_hand.manipulate_block import MujocoHandBlockEnv
from gymnasium_robotics.utils import rotations

TASK_GOALS: dict[str, dict[str, tuple[float, float, float]]] = {
    "pretrain": {
        "left": (0.0, 0.0, -1.5),
        "right": (0.0, 0.0, 1.5),
        "up": (1.5, 0.0, 0.0),
        "down": (-1.5, 0.0, 0.0),
    },
    "finetune": {
        "more_left": (0.0, 0.0, -2.2),
        "more_right": (0.0, 0.0, 2.2),
        "more_up": (2.2, 0.0, 0.0),
        "more_down": (-2.2, 0.0, 0.0),
    },
}
N_ACTIONS = 20
N_HAND_JOINTS = 24
FLOOR_CUBE_Z = 0.025  # world z of the block centre when it lies on the floor (half its 0.05 m side)
MAX_DROP_HEIGHT = 0.15  # above this a block resting on the palm (z ~ 0.165) would read as dropped
DEFAULT_DROP_HEIGHT = 0.1


def euler_to_quat(euler: Sequence[float]) -> np.ndarray:
    """Unit quaternion (w, x, y, z) of Euler angles (radians, MuJoCo's "xyz" convention)."""
    quat = rotations.euler2quat(np.asarray(euler, dtype=np.float64))
    return quat / np.linalg.norm(quat)


def orientation_distance(quat_a: np.ndarray, quat_b: np.ndarray) -> float:
    """Angle (radians, in [0, pi]) of the rotation between two quaternions (w, x, y, z)."""
    qa = np.asarray(quat_a, dtype=np.float64)
    qb = np.asarray(quat_b, dtype=np.float64)
    dot = abs(float(np.dot(qa, qb))) / (np.linalg.norm(qa) * np.linalg.norm(qb))
    return 2.0 * math.acos(min(1.0, dot))


class CubeRotateEnv(gym.Env):
    """ShadowHand rotating a block toward alternating Euler goals; ``info["failure"]`` marks a drop.

    See the module docstring for the goals, reward, drop rule and observation layout.

    Args:
        task: ``"pretrain"`` (quarter-turn goals, 1.5 rad) or ``"finetune"`` (2.2 rad goals).
        goals: ``None`` to sample the episode's two goals from the task's goals at every reset, or
            a pair of goal names of this task (e.g. ``("left", "right")``) to use in every episode.
            ``reset(options={"goals": (a, b)})`` fixes them for one episode.
        same_goals: when sampling, draw one goal and use it for both halves (PDDM's default).
        drop_penalty: subtracted from the reward on a drop; must be >= 0 (1000 in the paper).
        drop_height: world z (m) of the block centre below which it has fallen off the hand; must
            lie in (0.025, 0.15).
        max_episode_steps: episode length (100 in the paper); reaching it truncates the episode.
        goal_period: steps between goal switches (35 in the authors' code).
        action_history: number of past actions in the observation (7 in the authors' code).
        render_mode: ``None`` or ``"rgb_array"``.
        width: width in pixels of rendered frames.
        height: height in pixels of rendered frames.
    """

    metadata: ClassVar[dict] = {"render_modes": ["rgb_array"], "render_fps": 25}

    def __init__(
        self,
        task: str = "pretrain",
        goals: Sequence[str] | None = None,
        same_goals: bool = False,
        drop_penalty: float = 1000.0,
        drop_height: float = DEFAULT_DROP_HEIGHT,
        max_episode_steps: int = 100,
        goal_period: int = 35,
        action_history: int = 7,
        render_mode: str | None = None,
        width: int = 480,
        height: int = 480,
    ):
        if task not in TASK_GOALS:
            raise ValueError(f"CubeRotate: unknown task={task!r}; valid values: {sorted(TASK_GOALS)}")
        self.task = task
        self.task_goals: dict[str, tuple[float, float, float]] = dict(TASK_GOALS[task])
        self.fixed_goals = None if goals is None else self._check_goals(goals, "goals")
        self.same_goals = bool(same_goals)
        if not _is_real(drop_penalty) or drop_penalty < 0:
            raise ValueError(f"CubeRotate: drop_penalty must be a finite number >= 0, got {drop_penalty!r}")
        if not _is_real(drop_height) or not FLOOR_CUBE_Z < drop_height < MAX_DROP_HEIGHT:
            raise ValueError(
                f"CubeRotate: drop_height must be a number in ({FLOOR_CUBE_Z}, {MAX_DROP_HEIGHT}) "
                f"(world z of the block centre, m), got {drop_height!r}"
            )
        for name, value, low in (
            ("max_episode_steps", max_episode_steps, 1),
            ("goal_period", goal_period, 1),
            ("action_history", action_history, 0),
            ("width", width, 1),
            ("height", height, 1),
        ):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
                raise ValueError(f"CubeRotate: {name} must be an integer >= {low}, got {value!r}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"CubeRotate: render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.drop_penalty = float(drop_penalty)
        self.drop_height = float(drop_height)
        self.max_episode_steps = int(max_episode_steps)
        self.goal_period = int(goal_period)
        self.action_history = int(action_history)
        self.render_mode = render_mode
        if render_mode == "rgb_array" and not os.environ.get("MUJOCO_GL") and not os.environ.get("DISPLAY"):
            # gymnasium's MuJoCo renderer reads MUJOCO_GL when it first renders; EGL works headless.
            os.environ["MUJOCO_GL"] = "egl"

        self.hand = MujocoHandBlockEnv(
            target_position="ignore",
            target_rotation="xyz",
            reward_type="dense",
            randomize_initial_rotation=False,
            randomize_initial_position=True,
            render_mode=render_mode,
            width=int(width),
            height=int(height),
        )
        self.model = self.hand.model
        self.data = self.hand.data
        self.n_substeps = self.hand.n_substeps
        hand_joints = [
            j
            for j in range(self.model.njnt)
            if mujoco.mj_id2name(self.model, mujoco.mjtObj.mjOBJ_JOINT, j).startswith("robot0:")
        ]
        assert len(hand_joints) == N_HAND_JOINTS, f"expected {N_HAND_JOINTS} hand joints"
        self._hand_qpos_idx = self.model.jnt_qposadr[hand_joints].copy()
        self._hand_qvel_idx = self.model.jnt_dofadr[hand_joints].copy()
        obj = self.model.joint("object:joint").id
        self._obj_qpos = int(self.model.jnt_qposadr[obj])
        self._obj_qvel = int(self.model.jnt_dofadr[obj])
        ctrlrange = self.model.actuator_ctrlrange
        self._ctrl_center = (ctrlrange[:, 1] + ctrlrange[:, 0]) / 2.0
        self._ctrl_half_range = (ctrlrange[:, 1] - ctrlrange[:, 0]) / 2.0
        self._goal_quats = {name: euler_to_quat(euler) for name, euler in self.task_goals.items()}

        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(N_ACTIONS,), dtype=np.float32)
        obs_dim = 2 * N_HAND_JOINTS + 3 + 4 + 6 + 4 + self.action_history * N_ACTIONS
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(obs_dim,), dtype=np.float32)

        self._t = 0
        self._actions = np.zeros((self.action_history, N_ACTIONS), dtype=np.float64)
        self.episode_goals: tuple[str, str] = tuple(self.fixed_goals or (next(iter(self.task_goals)),) * 2)

    # -- goals ---------------------------------------------------------------------------------
    def _check_goals(self, goals: Any, what: str) -> tuple[str, str]:
        if isinstance(goals, str) or not isinstance(goals, (list, tuple)) or len(goals) != 2:
            raise ValueError(
                f"CubeRotate: {what} must be a pair of goal names, got {goals!r}; "
                f"valid names for task={self.task!r}: {list(self.task_goals)}"
            )
        for name in goals:
            if name not in self.task_goals:
                raise ValueError(
                    f"CubeRotate: unknown goal {name!r} in {what}; "
                    f"valid names for task={self.task!r}: {list(self.task_goals)}"
                )
        return (goals[0], goals[1])

    def _goal_name_at(self, t: int) -> str:
        return self.episode_goals[(t // self.goal_period) % 2]

    @property
    def goal_name(self) -> str:
        """Name of the goal pursued on the next step."""
        return self._goal_name_at(self._t)

    @property
    def goal_euler(self) -> np.ndarray:
        """Euler angles (radians) of the goal pursued on the next step."""
        return np.array(self.task_goals[self.goal_name], dtype=np.float64)

    @property
    def goal_quat(self) -> np.ndarray:
        """Quaternion (w, x, y, z) of the goal pursued on the next step."""
        return self._goal_quats[self.goal_name].copy()

    # -- block state ---------------------------------------------------------------------------
    @property
    def cube_position(self) -> np.ndarray:
        """World position (m) of the block centre."""
        return self.data.qpos[self._obj_qpos : self._obj_qpos + 3].copy()

    @property
    def cube_height(self) -> float:
        """World z (m) of the block centre; below ``drop_height`` the block has been dropped."""
        return float(self.data.qpos[self._obj_qpos + 2])

    @property
    def cube_quat(self) -> np.ndarray:
        """Unit quaternion (w, x, y, z) of the block, sign chosen so that w >= 0."""
        quat = self.data.qpos[self._obj_qpos + 3 : self._obj_qpos + 7].astype(np.float64)
        quat = quat / np.linalg.norm(quat)
        return -quat if quat[0] < 0 else quat

    def set_cube_pose(self, position: Sequence[float] | None = None, quat: Sequence[float] | None = None):
        """Place the block at ``position`` (world, m) and/or ``quat`` (w, x, y, z), at rest.

        Meant for tests and diagnostics (e.g. putting the block below ``drop_height``).
        """
        adr = self._obj_qpos
        if position is not None:
            pos = np.asarray(position, dtype=np.float64)
            if pos.shape != (3,) or not np.all(np.isfinite(pos)):
                raise ValueError(f"CubeRotate: position must be 3 finite numbers, got {position!r}")
            self.data.qpos[adr : adr + 3] = pos
        if quat is not None:
            q = np.asarray(quat, dtype=np.float64)
            if q.shape != (4,) or not np.all(np.isfinite(q)) or np.linalg.norm(q) == 0:
                raise ValueError(f"CubeRotate: quat must be 4 finite numbers, not all zero, got {quat!r}")
            self.data.qpos[adr + 3 : adr + 7] = q / np.linalg.norm(q)
        self.data.qvel[self._obj_qvel : self._obj_qvel + 6] = 0.0
        mujoco.mj_forward(self.model, self.data)

    def drop_cube(self) -> None:
        """Move the block 5 cm below ``drop_height`` (off the hand); the next step reports a failure."""
        pos = self.cube_position
        pos[2] = self.drop_height - 0.05
        self.set_cube_pose(position=pos)

    # -- gym API -------------------------------------------------------------------------------
    def _obs(self) -> np.ndarray:
        qpos, qvel = self.data.qpos, self.data.qvel
        o, v = self._obj_qpos, self._obj_qvel
        return np.concatenate(
            [
                qpos[self._hand_qpos_idx],
                qvel[self._hand_qvel_idx],
                qpos[o : o + 3],
                self.cube_quat,
                qvel[v : v + 6],
                self._goal_quats[self.goal_name],
                self._actions.ravel(),
            ]
        ).astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Settle the block on the palm and pick the episode's goals; ``info["failure"]`` is False.

        Options: ``{"goals": (name_a, name_b)}`` fixes this episode's two goals.
        """
        super().reset(seed=seed)
        options = dict(options or {})
        unknown = sorted(set(options) - {"goals"})
        if unknown:
            raise ValueError(f"CubeRotate: unknown reset options {unknown}; valid keys: ['goals']")
        names = list(self.task_goals)
        if options.get("goals") is not None:
            self.episode_goals = self._check_goals(options["goals"], 'options["goals"]')
        elif self.fixed_goals is not None:
            self.episode_goals = self.fixed_goals
        else:
            first = names[int(self.np_random.integers(len(names)))]
            second = first if self.same_goals else names[int(self.np_random.integers(len(names)))]
            self.episode_goals = (first, second)
        self.hand.reset(seed=int(self.np_random.integers(2**31 - 1)))
        self._t = 0
        self._actions[:] = 0.0
        info = {
            "failure": False,
            "goal": self.goal_name,
            "orientation_distance": orientation_distance(self.cube_quat, self._goal_quats[self.goal_name]),
            "cube_height": self.cube_height,
        }
        return self._obs(), info

    def step(self, action):
        """Apply ``action`` (joint-position targets in [-1, 1]^20) for 0.04 s; see the module docstring."""
        action = np.asarray(action, dtype=np.float64)
        if action.shape != (N_ACTIONS,):
            raise ValueError(f"CubeRotate: action must have shape ({N_ACTIONS},), got {action.shape}")
        action = np.clip(action, -1.0, 1.0)
        self.data.ctrl[:] = self._ctrl_center + action * self._ctrl_half_range
        mujoco.mj_step(self.model, self.data, nstep=self.n_substeps)
        if self.action_history:
            self._actions[1:] = self._actions[:-1]
            self._actions[0] = action

        goal = self._goal_name_at(self._t)
        self._t += 1
        distance = orientation_distance(self.cube_quat, self._goal_quats[goal])
        height = self.cube_height
        failure = not height >= self.drop_height  # NaN (simulation blow-up) counts as a drop
        reward = -distance - (self.drop_penalty if failure else 0.0)
        terminated = failure
        truncated = (not terminated) and self._t >= self.max_episode_steps
        info = {
            "failure": bool(failure),
            "goal": goal,
            "orientation_distance": distance,
            "cube_height": height,
        }
        return self._obs(), float(reward), bool(terminated), bool(truncated), info

    def render(self):
        """RGB frame (H, W, 3); the translucent cube beside the hand shows the current goal orientation."""
        if self.render_mode is None:
            gym.logger.warn("CubeRotate.render() called without render_mode='rgb_array'")
            return None
        self.hand.goal = np.concatenate([self.cube_position, self._goal_quats[self.goal_name]])
        return self.hand.render()

    def close(self):
        """Release the renderer of the inner gymnasium-robotics env."""
        self.hand.close()


def _is_real(value: Any) -> bool:
    return (
        isinstance(value, (int, float, np.integer, np.floating))
        and not isinstance(value, bool)
        and (math.isfinite(float(value)))
    )
