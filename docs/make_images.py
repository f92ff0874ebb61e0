"""Make the pictures of docs/environments.md: ``docs/img/{drunk_spider,minitaur,cube_rotate}.png``.

Usage::

    MUJOCO_GL=egl python docs/make_images.py [--out docs/img]

Every env renders with ``render_mode="rgb_array"`` (no display needed): DrunkSpider draws with NumPy,
Minitaur with pybullet's TinyRenderer (CPU), CubeRotate with MuJoCo's offscreen renderer (EGL; the
script sets ``MUJOCO_GL=egl`` when it is unset). Figures are saved with matplotlib's Agg backend.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import gymnasium as gym  # noqa: E402
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import sqrl_rllib.envs  # noqa: E402, F401  (registers the sqrl ids)
from sqrl_rllib.envs.drunk_spider import is_outside  # noqa: E402

BRIDGE_COL = 3.5  # centre of the bridge column (col 3)


def bridge_controller(obs: np.ndarray) -> np.ndarray:
    """Go sideways to column 3.5 (the bridge centre) first, then straight down towards row 7.

    While going down it keeps steering back to column 3.5, so that action noise does not accumulate.
    """
    row, col = float(obs[0]), float(obs[1])
    if row < 1.0 and abs(col - BRIDGE_COL) > 0.05:
        return np.array([0.0, np.clip(BRIDGE_COL - col, -1.0, 1.0)], dtype=np.float32)
    return np.array([np.clip(7.0 - row, -1.0, 1.0), np.clip(BRIDGE_COL - col, -1.0, 1.0)], dtype=np.float32)


def spider_rollout(policy, seed: int, **env_kwargs) -> tuple[np.ndarray, str]:
    """Run one DrunkSpider episode with ``policy(obs, env)``; return the final render and a caption."""
    env = gym.make("sqrl/DrunkSpider-v0", render_mode="rgb_array", **env_kwargs)
    obs, _ = env.reset(seed=seed)
    env.action_space.seed(seed)
    total, steps, outcome = 0.0, 0, "timeout"
    while True:
        obs, reward, terminated, truncated, info = env.step(policy(obs, env))
        total += reward
        steps += 1
        if terminated or truncated:
            outcome = "success" if info["success"] else "timeout"
            if info["failure"]:  # obs is clipped to the map; the env's own position is not
                outcome = "failure (left the map)" if is_outside(*env.unwrapped._pos) else "failure (lava)"
            break
    frame = env.render()
    env.close()
    return frame, f"{outcome} after {steps} steps, return {total:.1f}"


def make_drunk_spider(path: Path) -> None:
    """Three DrunkSpider trajectories: noise-free bridge controller, same with Gaussian noise, random actions."""
    panels = [
        (
            "bridge controller, no noise",
            spider_rollout(lambda o, e: bridge_controller(o), seed=0, action_noise=0.0),
        ),
        (
            "bridge controller, finetune,\nnoise_type='gaussian' (sigma 0.2)",
            spider_rollout(lambda o, e: bridge_controller(o), seed=3, task="finetune", noise_type="gaussian"),
        ),
        (
            "random actions, pretrain noise",
            spider_rollout(lambda o, e: e.action_space.sample(), seed=1),
        ),
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 5.2))
    for ax, (title, (frame, caption)) in zip(axes, panels, strict=True):
        cell = frame.shape[0] // 8
        ax.imshow(frame)
        ax.set_title(f"{title}\n{caption}", fontsize=9)
        ax.set_xticks(np.arange(0, 8) * cell, [str(c) for c in range(8)])
        ax.set_yticks(np.arange(0, 9) * cell, [str(r) for r in range(9)])
        ax.set_xlabel("col")
        ax.set_ylabel("row")
    fig.suptitle("sqrl/DrunkSpider-v0: lava (red), bridge (tan), goal disc (green), trajectory (blue)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def frames_after(env_id: str, step_counts: list[int], seed: int = 0, **env_kwargs) -> list[tuple[int, np.ndarray]]:
    """Render ``env_id`` after reset and after each number of random-action steps in ``step_counts``."""
    env = gym.make(env_id, render_mode="rgb_array", **env_kwargs)
    env.reset(seed=seed)
    env.action_space.seed(seed)
    frames, t = [], 0
    for target in sorted(step_counts):
        while t < target:
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            t += 1
            if terminated or truncated:
                break
        frames.append((t, env.render()))
    env.close()
    return frames


def save_panels(frames: list[tuple[int, np.ndarray]], title: str, path: Path, label: str = "step") -> None:
    """Save frames side by side with a caption each."""
    fig, axes = plt.subplots(1, len(frames), figsize=(4.2 * len(frames), 3.6))
    axes = np.atleast_1d(axes)
    for ax, (t, frame) in zip(axes, frames, strict=True):
        ax.imshow(frame)
        ax.set_title("after reset" if t == 0 else f"after {t} random-action {label}s", fontsize=9)
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def main() -> None:
    """Make the three pictures in ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "img")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    make_drunk_spider(args.out / "drunk_spider.png")
    save_panels(
        frames_after("sqrl/MinitaurVelocity-v0", [0, 25]),
        "sqrl/MinitaurVelocity-v0 (pybullet TinyRenderer, 320 x 240, camera follows the base)",
        args.out / "minitaur.png",
    )
    save_panels(
        frames_after("sqrl/CubeRotate-v0", [0, 10], width=360, height=360, goals=("right", "right")),
        f"sqrl/CubeRotate-v0 (MuJoCo offscreen, MUJOCO_GL={os.environ['MUJOCO_GL']}); "
        "block beside the hand = goal 'right' (0, 0, 1.5)",
        args.out / "cube_rotate.png",
    )
    for name in ("drunk_spider.png", "minitaur.png", "cube_rotate.png"):
        print(args.out / name)


if __name__ == "__main__":
    main()
