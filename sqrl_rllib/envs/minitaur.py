"""Minitaur quadruped (pybullet) running at a goal velocity; falling over is a failure.

Our own gymnasium env, rebuilt from the facts of pybullet's ``MinitaurExtendedEnv`` (which the SQRL
authors extended as ``MinitaurGoalVelocityEnv``), without importing ``pybullet_envs``:

  * Robot: ``pybullet_data/quadruped/minitaur_rainbow_dash.urdf`` (pybullet's "rainbow_dash_v0"
    version), self-collision on (excluding parents), a point-to-point constraint closing each leg's
    four-bar loop at the knees, ground ``plane.urdf``, gravity -10.
  * Timing: control step 0.02 s = 6 simulation steps of 1/300 s (the authors' ``control_time_step``
    0.02 with pybullet's default ``action_repeat`` 6); 50 solver iterations; cone friction off.
  * Actions: 8 values in [-1, 1], the leg model (swing of legs 0-3, then extension of legs 0-3),
    leg order front-left, back-left, front-right, back-right. They are scaled by 0.5 and added to
    the standing pose (swing 0, extension 2.0 rad); leg i's two motor targets are
    ``extension -/+ (-1)**(i // 2) * swing``.
  * Motor model (pybullet's "accurate motor model"): a PD law in PWM units,
    ``pwm = clip(-kp (q - q_target) - kd qdot, -1, 1)`` with kp 1.0, kd 0.015, driving a DC motor
    (16 V, 0.186 ohm, torque constant 0.0954, back-EMF, net voltage clipped to +-50 V) whose
    current-to-torque curve saturates at 3.5 N m; a motor that exerts more than 2.45 N m for
    over 1 s shuts down for the rest of the episode (overheat protection).
  * Reset: the robot is dropped at height 0.2 m, holds motor angles pi/2 for 100 simulation steps,
    then the standing pose for 0.5 s. That settled state is simulated once and snapshotted, so a
    reset is a cheap ``restoreState`` (``deterministicOverlappingPairs`` makes it exactly
    reproducible). There is no random initial-state noise, as in pybullet.
  * Observation (float32, 174 values, clipped to generous finite bounds), "state" meaning the 21 values
    ``[roll, pitch, roll rate, pitch rate, 8 motor angles, 8 motor velocities, forward velocity]``:
    the current state (21), the current leg model of the motor angles (8: swings, extensions),
    the 5 previous states (5 x 21, newest first; the reset state repeated at the start), and the
    5 previous actions in [-1, 1] (5 x 8, newest first; zeros at the start).
  * Reward (authors' code; the paper's appendix C has a sign typo): v = forward velocity (base x
    displacement over the control step) clipped to +-0.8,
    ``r = v_goal - |v_goal - v| - 0.01 * mean(|a_t - 2 a_{t-1} + a_{t-2}|)`` where ``a`` is the
    applied leg-model offset (0.5 x the action, as in the authors' code) and actions before the
    first step count as the first action (their index clamping).
  * Failure (terminal): the base's up vector has world-z component < 0.85, or the base is below
    0.13 m, or a front leg's swing angle exceeds 0.8 rad. Reaching ``max_episode_steps`` (500)
    is ``truncated``, never a failure.
  * ``randomize_physics`` (appendix E, ranges of pybullet's ``MinitaurEnvRandomizer``): at every
    reset, after restoring the standing state (pybullet also randomizes after its reset motion),
    the base mass is scaled by one factor in U(0.8, 1.2), every leg and motor link mass by its own
    factor in U(0.8, 1.2), and the foot friction is ``foot_friction * U(0.8, 1.5)``, all drawn
    from ``self.np_random`` (so ``reset(seed=...)`` reproduces them).

Not reproduced from pybullet's env: observation/PD latency (the authors' runs inherited 0.02 s and
0.003 s from ``MinitaurReactiveEnv``), sensor noise, wrapping motor angles to [-pi, pi].

Speed (one env, one core of an AMD EPYC, pybullet 3.2.7): 700-770 env steps/s with random
actions (~4500 simulation steps/s; ``stepSimulation`` is ~80% of the time), a reset ~0.04 ms
(~0.14 ms with ``randomize_physics``), construction ~0.1 s.

Each env owns a pybullet DIRECT client (``physicsClientId`` everywhere), so many envs can live in
one process; ``close()`` disconnects it.
"""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pybullet
import pybullet_data

URDF_PATH = "quadruped/minitaur_rainbow_dash.urdf"
NUM_LEGS = 4
NUM_MOTORS = 8
HISTORY_LENGTH = 5
STATE_DIM = 4 + NUM_MOTORS + NUM_MOTORS + 1
OBS_DIM = STATE_DIM + NUM_MOTORS + HISTORY_LENGTH * (STATE_DIM + NUM_MOTORS)

# Timing: the authors' control_time_step 0.02 s with pybullet's action_repeat 6.
CONTROL_TIME_STEP = 0.02
ACTION_REPEAT = 6
SIM_TIME_STEP = CONTROL_TIME_STEP / ACTION_REPEAT
SOLVER_ITERATIONS = 300 // ACTION_REPEAT

# Leg model: action * ACTION_SCALE + standing pose (swing 0, extension 2.0 rad).
ACTION_SCALE = 0.5
INIT_SWING = 0.0
INIT_EXTENSION = 2.0
_INIT_LEG_POSE = np.array([INIT_SWING] * NUM_LEGS + [INIT_EXTENSION] * NUM_LEGS)
_LEG_SIGN = np.array([(-1.0) ** (i // 2) for i in range(NUM_LEGS)])

# Reward and failure (authors' MinitaurGoalVelocityEnv).
VELOCITY_LIMIT = 0.8
ACCELERATION_PENALTY = 0.01
MIN_UP_Z = 0.85
MIN_BASE_HEIGHT = 0.13
MAX_FRONT_SWING = 0.8

# Accurate motor model (pybullet minitaur motor.py constants).
MOTOR_KP = 1.0
MOTOR_KD = 0.015
MOTOR_VOLTAGE = 16.0
MOTOR_RESISTANCE = 0.186
MOTOR_TORQUE_CONSTANT = 0.0954
MOTOR_VISCOUS_DAMPING = 0.0
VOLTAGE_CLIPPING = 50.0
_CURRENT_TABLE = np.array([0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0])
_TORQUE_TABLE = np.array([0.0, 1.0, 1.9, 2.45, 3.0, 3.25, 3.5])
OVERHEAT_SHUTDOWN_TORQUE = 2.45
OVERHEAT_SHUTDOWN_TIME = 1.0

# Robot layout (pybullet minitaur.py / minitaur_rainbow_dash.py).
LEG_NAMES = ("front_left", "back_left", "front_right", "back_right")
MOTOR_NAMES = tuple(f"motor_{leg}{side}_joint" for leg in LEG_NAMES for side in ("L", "R"))
_MOTOR_DIRECTION = np.array([-1.0, -1.0, -1.0, -1.0, 1.0, 1.0, 1.0, 1.0])
INIT_POSITION = (0.0, 0.0, 0.2)
INIT_KNEE_ANGLE = -2.1834
_KNEE_POINT_LONG = (0.0, 0.0045, 0.088)
_KNEE_POINT_SHORT = (0.0, 0.0045, 0.100)
RESET_HOLD_STEPS = 100
RESET_STAND_TIME = 0.5
_OVERHEAT_STEPS = OVERHEAT_SHUTDOWN_TIME / SIM_TIME_STEP

# Physics randomization (pybullet MinitaurEnvRandomizer ranges; friction relative to the task's).
BASE_MASS_RANGE = (0.8, 1.2)
LEG_MASS_RANGE = (0.8, 1.2)
FOOT_FRICTION_RANGE = (0.8, 1.5)

RENDER_WIDTH, RENDER_HEIGHT = 320, 240

# Observation bounds (observations are clipped to them; only reached in violent crashes).
MOTOR_SPEED_LIMIT = MOTOR_VOLTAGE / (MOTOR_TORQUE_CONSTANT + MOTOR_VISCOUS_DAMPING)
MAX_OBSERVED_FORWARD_VELOCITY = 10.0
_STATE_HIGH = np.concatenate(
    [
        [math.pi, math.pi, 2 * math.pi / SIM_TIME_STEP, 2 * math.pi / SIM_TIME_STEP],
        np.full(NUM_MOTORS, 2 * math.pi),
        np.full(NUM_MOTORS, MOTOR_SPEED_LIMIT),
        [MAX_OBSERVED_FORWARD_VELOCITY],
    ]
)
_OBS_HIGH = np.concatenate(
    [
        _STATE_HIGH,
        np.full(NUM_MOTORS, 2 * math.pi),
        np.tile(_STATE_HIGH, HISTORY_LENGTH),
        np.ones(HISTORY_LENGTH * NUM_MOTORS),
    ]
).astype(np.float32)

VELOCITY_TASKS = {
    "pretrain": {"goal_velocity": 0.3, "foot_friction": 1.0},
    "finetune": {"goal_velocity": 0.4, "foot_friction": 1.0},
}
FRICTION_TASKS = {
    "pretrain": {"goal_velocity": 0.3, "foot_friction": 1.0},
    "finetune": {"goal_velocity": 0.3, "foot_friction": 1.25},
}


def leg_model_to_motor_angles(leg_pose: np.ndarray) -> np.ndarray:
    """Map a leg pose ``[swing x4, extension x4]`` (rad) to the 8 motor angles (rad).

    Leg i drives motors 2i and 2i+1: ``extension -/+ (-1)**(i // 2) * swing``.
    """
    swing = _LEG_SIGN * leg_pose[:NUM_LEGS]
    extension = leg_pose[NUM_LEGS:]
    motors = np.empty(NUM_MOTORS)
    motors[0::2] = extension - swing
    motors[1::2] = extension + swing
    return motors


def motor_angles_to_leg_model(motor_angles: np.ndarray) -> np.ndarray:
    """Inverse of :func:`leg_model_to_motor_angles`: 8 motor angles -> ``[swing x4, extension x4]``."""
    first, second = motor_angles[0::2], motor_angles[1::2]
    return np.concatenate([_LEG_SIGN * 0.5 * (second - first), 0.5 * (first + second)])


def motor_torques(
    target: np.ndarray,
    angle: np.ndarray,
    velocity: np.ndarray,
    kp: float = MOTOR_KP,
    kd: float = MOTOR_KD,
    voltage: float = MOTOR_VOLTAGE,
    viscous_damping: float = MOTOR_VISCOUS_DAMPING,
) -> np.ndarray:
    """Torques (N m, motor frame) of the minitaur's DC motors tracking ``target`` angles.

    A PD law gives a PWM duty cycle in [-1, 1]; back-EMF reduces the net voltage; the current
    maps to torque through the measured, saturating current-torque curve (at most 3.5 N m).
    """
    # np.minimum/np.maximum instead of np.clip: this runs every simulation step (hot path).
    pwm = np.maximum(np.minimum(-kp * (angle - target) - kd * velocity, 1.0), -1.0)
    net_voltage = pwm * voltage - (MOTOR_TORQUE_CONSTANT + viscous_damping) * velocity
    net_voltage = np.maximum(np.minimum(net_voltage, VOLTAGE_CLIPPING), -VOLTAGE_CLIPPING)
    current = net_voltage / MOTOR_RESISTANCE
    return np.sign(current) * np.interp(np.abs(current), _CURRENT_TABLE, _TORQUE_TABLE)


def _as_float(env_name: str, param: str, default: float, value) -> float:
    """``value`` (or ``default`` when None) as a float; ValueError naming ``param`` otherwise."""
    if value is None:
        return float(default)
    if isinstance(value, bool):
        raise ValueError(f"{env_name}: {param} must be a number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{env_name}: {param} must be a number, got {value!r}") from None


class MinitaurEnv(gym.Env):
    """Minitaur tracking a goal forward velocity; ``info["failure"]`` marks a fall.

    Subclasses set ``TASKS``, the per-task defaults of ``goal_velocity`` and ``foot_friction``.
    See the module docstring for the dynamics, observation, reward and failure definitions.

    Args:
        task: ``"pretrain"`` or ``"finetune"``; picks the defaults from ``TASKS``.
        goal_velocity: target forward velocity in m/s, in [0, 0.8]; overrides the task default.
        foot_friction: lateral friction coefficient of the feet, > 0; overrides the task default.
        randomize_physics: randomize foot friction and base/leg masses at every reset.
        max_episode_steps: episode length in control steps (500 in the paper).
        render_mode: ``None`` or ``"rgb_array"`` (TinyRenderer, works headless).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": int(round(1.0 / CONTROL_TIME_STEP))}
    TASKS: dict[str, dict[str, float]] = VELOCITY_TASKS
    _NAME = "Minitaur"

    def __init__(
        self,
        task: str = "pretrain",
        goal_velocity: float | None = None,
        foot_friction: float | None = None,
        randomize_physics: bool = False,
        max_episode_steps: int = 500,
        render_mode: str | None = None,
    ):
        name = self._NAME
        if task not in self.TASKS:
            raise ValueError(f"{name}: unknown task={task!r}; valid values: {sorted(self.TASKS)}")
        defaults = self.TASKS[task]
        goal_velocity = _as_float(name, "goal_velocity", defaults["goal_velocity"], goal_velocity)
        foot_friction = _as_float(name, "foot_friction", defaults["foot_friction"], foot_friction)
        if not 0.0 <= goal_velocity <= VELOCITY_LIMIT:
            raise ValueError(f"{name}: goal_velocity must be in [0, {VELOCITY_LIMIT}] m/s, got {goal_velocity}")
        if not (math.isfinite(foot_friction) and foot_friction > 0.0):
            raise ValueError(f"{name}: foot_friction must be a finite number > 0, got {foot_friction}")
        if not isinstance(randomize_physics, (bool, np.bool_)):
            raise ValueError(f"{name}: randomize_physics must be a bool, got {type(randomize_physics).__name__}")
        if not isinstance(max_episode_steps, (int, np.integer)) or isinstance(max_episode_steps, bool):
            raise ValueError(f"{name}: max_episode_steps must be an integer >= 1, got {max_episode_steps!r}")
        if max_episode_steps < 1:
            raise ValueError(f"{name}: max_episode_steps must be an integer >= 1, got {max_episode_steps}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"{name}: render_mode must be None or 'rgb_array', got {render_mode!r}")

        self.task = task
        self._goal_velocity = goal_velocity
        self._nominal_foot_friction = foot_friction
        self.randomize_physics = bool(randomize_physics)
        self.max_episode_steps = int(max_episode_steps)
        self.render_mode = render_mode
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(NUM_MOTORS,), dtype=np.float32)
        self.observation_space = gym.spaces.Box(-_OBS_HIGH, _OBS_HIGH, dtype=np.float32)

        self._client = -1
        self._client = pybullet.connect(pybullet.DIRECT)
        self._build_world()

        self._t = 0
        self._state = np.zeros(STATE_DIM)
        self._state_history = np.zeros((HISTORY_LENGTH, STATE_DIM))
        self._action_history = np.zeros((HISTORY_LENGTH, NUM_MOTORS))
        self._applied = np.zeros((3, NUM_MOTORS))  # scaled actions a_t, a_{t-1}, a_{t-2}
        self._overheat_steps = np.zeros(NUM_MOTORS)
        self._motor_enabled = np.ones(NUM_MOTORS)
        self._base_x = 0.0

    # ----------------------------------------------------------------------------------- setup
    def _build_world(self) -> None:
        """Load plane and robot, close the knee loops, settle once and snapshot the states."""
        cid = self._client
        pybullet.setTimeStep(SIM_TIME_STEP, physicsClientId=cid)
        pybullet.setPhysicsEngineParameter(
            numSolverIterations=SOLVER_ITERATIONS,
            enableConeFriction=0,
            deterministicOverlappingPairs=1,  # else restoreState resets are not reproducible
            physicsClientId=cid,
        )
        pybullet.setGravity(0, 0, -10, physicsClientId=cid)
        data = pybullet_data.getDataPath()
        self._ground = pybullet.loadURDF(f"{data}/plane.urdf", physicsClientId=cid)
        self._robot = robot = pybullet.loadURDF(
            f"{data}/{URDF_PATH}",
            INIT_POSITION,
            flags=pybullet.URDF_USE_SELF_COLLISION_EXCLUDE_PARENT,
            physicsClientId=cid,
        )
        joint_ids = {}
        self._base_links, self._leg_links, self._foot_links, motor_links = [-1], [], [], []
        for j in range(pybullet.getNumJoints(robot, physicsClientId=cid)):
            jname = pybullet.getJointInfo(robot, j, physicsClientId=cid)[1].decode()
            joint_ids[jname] = j
            if jname.startswith("chassis"):
                self._base_links.append(j)
            elif jname.startswith("motor"):
                motor_links.append(j)
            elif jname.startswith("knee"):
                self._foot_links.append(j)
                self._leg_links.append(j)
            else:
                self._leg_links.append(j)
        self._leg_links += motor_links
        self._motor_ids = [joint_ids[m] for m in MOTOR_NAMES]
        self._knee_ids = [joint_ids[m.replace("motor_", "knee_")] for m in MOTOR_NAMES]
        self._nominal_masses = {
            link: pybullet.getDynamicsInfo(robot, link, physicsClientId=cid)[0]
            for link in self._base_links + self._leg_links
        }
        # pybullet's remove_default_joint_damping ends up zeroing the robot's body damping.
        pybullet.changeDynamics(robot, -1, linearDamping=0, angularDamping=0, physicsClientId=cid)
        self._reset_leg_joints()
        for leg in range(NUM_LEGS):
            left, right = self._knee_ids[2 * leg], self._knee_ids[2 * leg + 1]
            right_point, left_point = (
                (_KNEE_POINT_SHORT, _KNEE_POINT_LONG) if leg < 2 else (_KNEE_POINT_LONG, _KNEE_POINT_SHORT)
            )
            pybullet.createConstraint(
                robot, right, robot, left, pybullet.JOINT_POINT2POINT, [0, 0, 0],
                right_point, left_point, physicsClientId=cid,
            )  # fmt: skip
        # Free the joints from pybullet's default velocity motors: torques come from our motor model.
        free = self._motor_ids + self._knee_ids
        pybullet.setJointMotorControlArray(
            robot, free, pybullet.VELOCITY_CONTROL, targetVelocities=[0.0] * len(free),
            forces=[0.0] * len(free), physicsClientId=cid,
        )  # fmt: skip
        self._set_foot_friction(self._nominal_foot_friction)
        self._settle()
        self._standing_state = pybullet.saveState(physicsClientId=cid)

    def _reset_leg_joints(self) -> None:
        cid, robot = self._client, self._robot
        for i in range(NUM_MOTORS):
            direction = _MOTOR_DIRECTION[i]
            pybullet.resetJointState(robot, self._motor_ids[i], direction * math.pi / 2, 0.0, physicsClientId=cid)
            pybullet.resetJointState(robot, self._knee_ids[i], direction * INIT_KNEE_ANGLE, 0.0, physicsClientId=cid)

    def _settle(self) -> None:
        """Reset motion as in pybullet: hold pi/2 for 100 sim steps, then the standing pose for 0.5 s."""
        self._overheat_steps = np.zeros(NUM_MOTORS)
        self._motor_enabled = np.ones(NUM_MOTORS)
        hold = np.full(NUM_MOTORS, math.pi / 2)
        stand = leg_model_to_motor_angles(_INIT_LEG_POSE)
        for _ in range(RESET_HOLD_STEPS):
            self._sim_step(hold)
        for _ in range(int(RESET_STAND_TIME / SIM_TIME_STEP)):
            self._sim_step(stand)

    def _set_foot_friction(self, friction: float) -> None:
        for link in self._foot_links:
            pybullet.changeDynamics(self._robot, link, lateralFriction=friction, physicsClientId=self._client)

    def _randomize(self) -> None:
        """Appendix E: random base and leg masses and foot friction (pybullet randomizer ranges)."""
        cid, rng = self._client, self.np_random
        base_scale = rng.uniform(*BASE_MASS_RANGE)
        for link in self._base_links:
            mass = self._nominal_masses[link] * base_scale
            pybullet.changeDynamics(self._robot, link, mass=mass, physicsClientId=cid)
        for link in self._leg_links:
            mass = self._nominal_masses[link] * rng.uniform(*LEG_MASS_RANGE)
            pybullet.changeDynamics(self._robot, link, mass=mass, physicsClientId=cid)
        self._set_foot_friction(self._nominal_foot_friction * rng.uniform(*FOOT_FRICTION_RANGE))

    # ------------------------------------------------------------------------------ simulation
    def _motor_states(self) -> tuple[np.ndarray, np.ndarray]:
        states = pybullet.getJointStates(self._robot, self._motor_ids, physicsClientId=self._client)
        both = np.array([s[:2] for s in states]).T * _MOTOR_DIRECTION
        return both[0], both[1]

    def _sim_step(self, target: np.ndarray) -> None:
        """One simulation step: motor model torques towards ``target`` motor angles, then step."""
        angles, velocities = self._motor_states()
        torques = motor_torques(target, angles, velocities)
        hot = np.abs(torques) > OVERHEAT_SHUTDOWN_TORQUE
        self._overheat_steps = (self._overheat_steps + 1.0) * hot
        self._motor_enabled *= self._overheat_steps <= _OVERHEAT_STEPS
        pybullet.setJointMotorControlArray(
            self._robot,
            self._motor_ids,
            pybullet.TORQUE_CONTROL,
            forces=(torques * self._motor_enabled * _MOTOR_DIRECTION).tolist(),
            physicsClientId=self._client,
        )
        pybullet.stepSimulation(physicsClientId=self._client)

    def _read_state(self, forward_velocity: float) -> tuple[np.ndarray, tuple, tuple]:
        cid = self._client
        position, orientation = pybullet.getBasePositionAndOrientation(self._robot, physicsClientId=cid)
        _, angular_velocity = pybullet.getBaseVelocity(self._robot, physicsClientId=cid)
        roll, pitch, _ = pybullet.getEulerFromQuaternion(orientation)
        angles, velocities = self._motor_states()
        state = np.empty(STATE_DIM)
        state[:4] = (roll, pitch, angular_velocity[0], angular_velocity[1])
        state[4 : 4 + NUM_MOTORS] = angles
        state[4 + NUM_MOTORS : 4 + 2 * NUM_MOTORS] = velocities
        state[-1] = forward_velocity
        return state, position, orientation

    def _obs(self) -> np.ndarray:
        leg = motor_angles_to_leg_model(self._state[4 : 4 + NUM_MOTORS])
        parts = (self._state, leg, self._state_history.ravel(), self._action_history.ravel())
        obs = np.concatenate(parts).astype(np.float32)
        return np.maximum(np.minimum(obs, _OBS_HIGH, out=obs), -_OBS_HIGH, out=obs)

    # ------------------------------------------------------------------------------ gym API
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Put the robot back in its settled standing pose; returns (obs, info), ``failure=False``."""
        super().reset(seed=seed)
        pybullet.restoreState(self._standing_state, physicsClientId=self._client)
        if self.randomize_physics:
            # As pybullet's MinitaurEnvRandomizer: applied after the reset motion, no re-settling.
            self._randomize()
        self._t = 0
        self._overheat_steps = np.zeros(NUM_MOTORS)
        self._motor_enabled = np.ones(NUM_MOTORS)
        self._applied = np.zeros((3, NUM_MOTORS))
        self._state, position, _ = self._read_state(0.0)
        self._base_x = position[0]
        self._state_history = np.tile(self._state, (HISTORY_LENGTH, 1))
        self._action_history = np.zeros((HISTORY_LENGTH, NUM_MOTORS))
        info = {"failure": False, "forward_velocity": 0.0, "goal_velocity": self._goal_velocity}
        return self._obs(), info

    def step(self, action):
        """Apply one leg-model action for 0.02 s; see the module docstring for reward and failure."""
        action = np.clip(np.asarray(action, dtype=np.float64).reshape(NUM_MOTORS), -1.0, 1.0)
        applied = ACTION_SCALE * action
        target = leg_model_to_motor_angles(_INIT_LEG_POSE + applied)
        for _ in range(ACTION_REPEAT):
            self._sim_step(target)

        if self._t == 0:
            # The authors clamp history indices at 0: before the first step, every action was a_0.
            self._applied[:] = applied
        else:
            self._applied[1:] = self._applied[:-1]
            self._applied[0] = applied
        self._t += 1

        previous_x = self._base_x
        state, position, orientation = self._read_state(0.0)
        self._base_x = position[0]
        forward_velocity = (self._base_x - previous_x) / CONTROL_TIME_STEP
        state[-1] = forward_velocity
        self._state_history[1:] = self._state_history[:-1]
        self._state_history[0] = self._state
        self._action_history[1:] = self._action_history[:-1]
        self._action_history[0] = action
        self._state = state

        v = min(max(forward_velocity, -VELOCITY_LIMIT), VELOCITY_LIMIT)
        acceleration = self._applied[0] - 2.0 * self._applied[1] + self._applied[2]
        goal = self._goal_velocity
        reward = goal - abs(goal - v) - ACCELERATION_PENALTY * float(np.mean(np.abs(acceleration)))

        failure = self._fallen(position, orientation, state[4 : 4 + NUM_MOTORS])
        truncated = (not failure) and self._t >= self.max_episode_steps
        info = {"failure": failure, "forward_velocity": forward_velocity, "goal_velocity": goal}
        return self._obs(), float(reward), failure, truncated, info

    @staticmethod
    def _fallen(position, orientation, motor_angles: np.ndarray) -> bool:
        x, y, _, _ = orientation
        up_z = 1.0 - 2.0 * (x * x + y * y)  # world-z component of the base's up axis
        if up_z < MIN_UP_Z or position[2] < MIN_BASE_HEIGHT:
            return True
        swing = motor_angles_to_leg_model(motor_angles)
        return bool(swing[0] > MAX_FRONT_SWING or swing[2] > MAX_FRONT_SWING)

    def render(self):
        """RGB image (240, 320, 3) uint8 of the robot from a camera that follows the base."""
        if self.render_mode is None:
            gym.logger.warn(f"{self._NAME}.render() called without render_mode='rgb_array'")
            return None
        cid = self._client
        base, _ = pybullet.getBasePositionAndOrientation(self._robot, physicsClientId=cid)
        view = pybullet.computeViewMatrixFromYawPitchRoll(
            cameraTargetPosition=base, distance=1.0, yaw=30, pitch=-30, roll=0, upAxisIndex=2,
            physicsClientId=cid,
        )  # fmt: skip
        projection = pybullet.computeProjectionMatrixFOV(
            fov=60, aspect=RENDER_WIDTH / RENDER_HEIGHT, nearVal=0.1, farVal=100.0, physicsClientId=cid
        )
        _, _, pixels, _, _ = pybullet.getCameraImage(
            RENDER_WIDTH, RENDER_HEIGHT, viewMatrix=view, projectionMatrix=projection,
            renderer=pybullet.ER_TINY_RENDERER, physicsClientId=cid,
        )  # fmt: skip
        return np.asarray(pixels, dtype=np.uint8).reshape(RENDER_HEIGHT, RENDER_WIDTH, 4)[:, :, :3].copy()

    def close(self):
        """Disconnect this env's pybullet client (idempotent)."""
        if getattr(self, "_client", -1) >= 0:
            try:
                pybullet.disconnect(physicsClientId=self._client)
            except pybullet.error:
                pass
            self._client = -1

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown: the pybullet module may already be gone
            pass

    # ----------------------------------------------------------------------------- read-back
    @property
    def goal_velocity(self) -> float:
        """Goal forward velocity v_goal in m/s."""
        return self._goal_velocity

    @property
    def foot_friction(self) -> float:
        """Lateral friction of the feet, read back from the simulator (mean over the 8 foot links)."""
        return float(np.mean(self.foot_frictions()))

    def foot_frictions(self) -> np.ndarray:
        """Lateral friction of each foot link (lower leg), read back with ``getDynamicsInfo``."""
        return np.array(
            [pybullet.getDynamicsInfo(self._robot, link, physicsClientId=self._client)[1] for link in self._foot_links]
        )

    @property
    def base_mass(self) -> float:
        """Total mass of the base (chassis) links in kg, read back from the simulator."""
        return float(
            sum(
                pybullet.getDynamicsInfo(self._robot, link, physicsClientId=self._client)[0]
                for link in self._base_links
            )
        )

    @property
    def base_position(self) -> np.ndarray:
        """Base (x, y, z) position in metres."""
        position, _ = pybullet.getBasePositionAndOrientation(self._robot, physicsClientId=self._client)
        return np.array(position)

    @property
    def physics_client(self) -> int:
        """The pybullet client id this env owns (-1 once closed)."""
        return self._client


class MinitaurVelocityEnv(MinitaurEnv):
    """MinitaurVelocity: goal velocity 0.3 m/s (pretrain) -> 0.4 m/s (finetune), foot friction 1.0."""

    TASKS = VELOCITY_TASKS
    _NAME = "MinitaurVelocity"


class MinitaurFrictionEnv(MinitaurEnv):
    """MinitaurFriction: foot friction 1.0 (pretrain) -> 1.25 (finetune), goal velocity 0.3 m/s."""

    TASKS = FRICTION_TASKS
    _NAME = "MinitaurFriction"
