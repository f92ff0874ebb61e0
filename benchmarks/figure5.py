"""Figure 5, the risk dial: eps_safe decides whether SQRL crosses DrunkSpider's bridge or goes around.

Six subcommands.

``gamma``: why figure5.yaml's gamma_safe. Q_safe estimates E[gamma_safe^T] for the failure step T (the
discounted failure probability), so a crossing risk spread over the bridge's steps reads smaller at the
bridge entrance the smaller gamma_safe is. This rolls out two scripted controllers under figure 5's noise
(Gaussian, std 0.2) from the cell before the bridge: up the bridge centre (col 3.5) and around the lava (col
1.0, one cell from the map edge and the lava), and prints, per gamma_safe, Monte-Carlo estimates of that
quantity at the start of each route. eps_safe 0.05 must read the bridge as unsafe and the detour as safe, eps
0.2 both as safe.

    python benchmarks/figure5.py gamma [--episodes 20000] [--noise-levels 0:0.4:10]

With ``--noise-levels`` the estimates are averaged over those noise levels: figure5.yaml's pretraining
randomises the noise and Q_safe does not observe it, so a calibrated critic reads that average.

``critic CHECKPOINT...``: the mechanism behind the dial, in a pretrained checkpoint (fine-tuning keeps Q_safe
frozen): Q_safe at the start of each route for the action straight up it and for K samples of pi there,
with the share of samples the mask keeps at eps_safe 0.05 and 0.2.

    python benchmarks/figure5.py critic RUN_DIR/pretrain_critic_fit/seed_S ... [--rollouts 300]

``bridge CHECKPOINT...``: Q_safe up the bridge centre (rows 1.0-5.5, col 3.5) for steps straight up of
size 1, 0.5 and 0.25 and for K samples of pi: the mask vets each step on its own, so eps_safe keeps a policy
off the bridge only if some step onto it reads above eps_safe and a safe step away exists.

    python benchmarks/figure5.py bridge RUN_DIR/pretrain_critic_fit/seed_S ... [--csv FILE]

``walk CHECKPOINT...``: where pi's own samples go from given starts on ``long_detour`` (goal, failure,
timeout, and how many episodes enter the corridor): what Q_safe's readings there are the risk of.

    python benchmarks/figure5.py walk RUN_DIR/pretrain_critic_fit/seed_S [--starts 1.0,9.9 0,3] [--episodes 40]

``routes``: whether the bridge pays. Whole fine-tuning episodes of scripted controllers from the start, up
the bridge and around either pit: mean return, failure rate and length. The mask can only remove actions,
so eps_safe 0.2 can make SQRL cross only where crossing out-earns the detour.

    python benchmarks/figure5.py routes [--episodes 4000] [--noise 0.2] [--failure-penalty authors]

``plot RUN_DIR``: after ``python -m sqrl_rllib.tune figure5``, draws the map with the trajectories of each
fine-tuned SQRL trial's deterministic masked policy (one colour per eps_safe, one line per seed) and prints
the share of evaluation episodes that cross the bridge (rows 2-5 entered at col 3-4), per eps_safe.

    python benchmarks/figure5.py plot ~/sqrl_results/figure5 [--episodes 20] [--out docs/img/figure5.png]
"""

from __future__ import annotations

import argparse
import json
import pathlib

import numpy as np

from sqrl_rllib.envs.drunk_spider import GOAL, LAVA_ROWS, LAYOUTS, DrunkSpiderEnv, parse_noise_levels

# Waypoints (row, col) of the two scripted routes, from the cell below the lava rows.
BRIDGE = [(1.5, 3.5), (6.5, 3.5), GOAL]
AROUND = [(1.5, 1.0), (6.5, 1.0), GOAL]
NOISE = 0.2
# Whole routes from the start (0, 3): up the bridge centre, and around the lava on either side as close
# to it as the noise allows (col 1.3: 0.7 from the left pit's edge; col 5.7 on the right).
FROM_START = {
    "bridge": [(1.5, 3.5), (6.0, 3.5), GOAL],
    "around left": [(1.5, 1.3), (6.5, 1.3), GOAL],
    "around right": [(1.5, 5.7), (6.5, 5.7), GOAL],
}
# The same per layout; on "long_detour" the only way around is the corridor at cols 9-11 (col 9.9: 0.9 from
# the lava, 1.1 from the map's edge).
ROUTES = {
    "authors": FROM_START,
    "long_detour": {"bridge": FROM_START["bridge"], "around right": [(1.5, 9.9), (6.5, 9.9), GOAL]},
}
# What a calibrated Q_safe reads at the bridge entrance, per route pi then takes (`gamma`). On "long_detour"
# the way around matters: along row 1.5 it passes 0.5 below the lava rows, along row 1.0 midway between them
# and the map's edge.
GAMMA_ROUTES = {
    "authors": {"bridge": BRIDGE, "around": AROUND},
    "long_detour": {
        "bridge": BRIDGE,
        "around (row 1.5)": [BRIDGE[0], (1.5, 9.9), (6.5, 9.9), GOAL],
        "around (row 1.0)": [BRIDGE[0], (1.0, 9.9), (6.5, 9.9), GOAL],
    },
}
# Where the critic is probed: the cell below the lava rows at the bridge and on the way around, per layout.
PROBES = {
    "authors": {"bridge": BRIDGE, "around": AROUND},
    "long_detour": {"bridge": BRIDGE, "around": ROUTES["long_detour"]["around right"]},
}


def follow(env: DrunkSpiderEnv, waypoints: list[tuple[float, float]]) -> tuple[int | None, float, int]:
    """Drive ``env`` through ``waypoints`` (full speed towards the next one) until the episode ends: the step
    of a failure (or None), the episode's return and its length."""
    target, total = 0, 0.0
    for t in range(env.max_episode_steps):
        pos = env.unwrapped._pos
        while target < len(waypoints) - 1 and np.linalg.norm(np.subtract(waypoints[target], pos)) < 0.3:
            target += 1
        _, reward, terminated, truncated, info = env.step(np.clip(np.subtract(waypoints[target], pos), -1.0, 1.0))
        total += reward
        if info["failure"]:
            return t, total, t + 1
        if terminated or truncated:
            return None, total, t + 1
    return None, total, env.max_episode_steps


def discounted_failure(
    waypoints, gammas, episodes: int, seed: int = 0, noise: float = NOISE, **env_config
) -> dict[float, float]:
    """Monte-Carlo E[gamma^T * 1(failure at step T)] from ``waypoints[0]``, per gamma in ``gammas``, under
    Gaussian action noise of std ``noise`` (``env_config``: other DrunkSpider keys, e.g. ``layout``)."""
    env = DrunkSpiderEnv(task="finetune", action_noise=noise, noise_type="gaussian", **env_config)
    env.reset(seed=seed)
    steps = []
    for _ in range(episodes):
        env.reset(options={"position": waypoints[0]})
        steps.append(follow(env, waypoints[1:])[0])
    fails = np.array([t for t in steps if t is not None], dtype=float)
    return {g: float((g**fails).sum() / episodes) for g in gammas} | {1.0: len(fails) / episodes}


def route_outcomes(waypoints, episodes: int, seed: int = 0, noise: float = NOISE, **env_config) -> dict[str, float]:
    """Whole fine-tuning episodes from the start along ``waypoints``: mean return, mean return of the
    episodes that did not fail, failure rate and mean length (Gaussian noise ``noise``; ``env_config``
    passes other DrunkSpider keys, e.g. ``failure_penalty``)."""
    env = DrunkSpiderEnv(task="finetune", action_noise=noise, noise_type="gaussian", **env_config)
    env.reset(seed=seed)
    outcomes = []
    for _ in range(episodes):
        env.reset()
        outcomes.append(follow(env, waypoints))
    failed = np.array([t is not None for t, _, _ in outcomes])
    returns = np.array([r for _, r, _ in outcomes])
    return {
        "return": float(returns.mean()),
        "return_if_no_failure": float(returns[~failed].mean()) if (~failed).any() else float("nan"),
        "failure_rate": float(failed.mean()),
        "steps": float(np.mean([n for _, _, n in outcomes])),
    }


def routes_table(
    episodes: int, noise: float = NOISE, layout: str = "authors", **env_config
) -> dict[str, dict[str, float]]:
    """Print and return :func:`route_outcomes` for the bridge and the detours of ``layout`` (ROUTES)."""
    print(
        f"scripted routes from the start, {episodes} episodes each, Gaussian noise {noise:g}, layout {layout} "
        f"{env_config or ''}"
    )
    print(f"{'route':<14} {'return':>7} {'if no failure':>14} {'failure rate':>13} {'steps':>6}")
    table = {}
    for name, waypoints in ROUTES[layout].items():
        row = table[name] = route_outcomes(waypoints, episodes, noise=noise, layout=layout, **env_config)
        print(
            f"{name:<14} {row['return']:>7.2f} {row['return_if_no_failure']:>14.2f} "
            f"{row['failure_rate']:>13.3f} {row['steps']:>6.1f}"
        )
    return table


def parse_levels(text: str) -> list[float] | None:
    """``--noise-levels``: ``LO:HI:N`` (N evenly spaced levels), a comma list, or ``""`` (none)."""
    try:
        return parse_noise_levels(text)
    except ValueError as err:
        raise SystemExit(f"--noise-levels: {err}") from err


def averaged_over_levels(waypoints, gammas, episodes: int, levels: list[float], **env_config) -> dict[float, float]:
    """:func:`discounted_failure` averaged over the noise ``levels`` (``episodes`` each): what a calibrated
    critic reads when pretraining randomises the noise over ``levels`` and the critic does not observe it."""
    runs = [
        discounted_failure(waypoints, gammas, episodes, seed=i, noise=lv, **env_config) for i, lv in enumerate(levels)
    ]
    return {g: float(np.mean([run[g] for run in runs])) for g in runs[0]}


def gamma_table(episodes: int, levels: list[float] | None = None, layout: str = "authors") -> dict[str, dict]:
    """Print and return the routes' discounted failure probabilities per gamma_safe (GAMMA_ROUTES of
    ``layout``, each from the bridge entrance), at figure 5's noise or averaged over ``levels``."""
    gammas = (0.65, 0.8, 0.9, 0.95, 0.99)
    routes = {
        name: averaged_over_levels(w, gammas, episodes, levels, layout=layout)
        if levels
        else discounted_failure(w, gammas, episodes, layout=layout)
        for name, w in GAMMA_ROUTES[layout].items()
    }
    where = f"averaged over noise levels {[round(x, 3) for x in levels]}" if levels else f"noise {NOISE}"
    width = max(8, *(len(name) for name in routes))
    header = " ".join(f"{name:>{width}}" for name in routes)
    print(f"{'gamma_safe':>10} {header}   (Monte Carlo, {episodes} episodes per route, {where}, layout {layout})")
    for g in (*gammas, 1.0):
        print(f"{g:>10} " + " ".join(f"{routes[name][g]:>{width}.4f}" for name in routes))
    return routes


def crosses(trajectory: list[tuple[float, float]]) -> bool:
    """The trajectory enters the lava rows through the bridge column (col in [3, 4))."""
    return any(int(r) in LAVA_ROWS and 3.0 <= c < 4.0 for r, c in trajectory)


def plot(run_dir: pathlib.Path, episodes: int, out: pathlib.Path) -> None:
    """Trajectories of each fine-tuned SQRL trial's deterministic masked policy, and the crossing shares."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd
    import torch
    from critic_calibration import load_module

    table = pd.read_csv(run_dir / "results.csv")
    rows = table[(table["stage"] == "finetune") & (table["method"] == "sqrl") & (table["kind"] == "trial")]
    if rows.empty:
        raise SystemExit(f"{run_dir / 'results.csv'} has no SQRL fine-tuning trials")
    # The fine-tuning env as the trials ran it (noise, layout), from the first trial's params.json.
    env_config = json.loads((pathlib.Path(rows["trial_dir"].iloc[0]) / "params.json").read_text())["env_config"]
    env = DrunkSpiderEnv(**env_config, render_mode="rgb_array")
    env.reset(seed=0)
    fig, ax = plt.subplots(figsize=(5 * env.layout.n_cols / 7, 6))
    ax.imshow(env.render(), origin="lower", extent=(0, env.layout.n_cols, 0, 8))
    palette = ("tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:pink")
    colours = {eps: palette[i % len(palette)] for i, eps in enumerate(sorted(rows["eps_safe"].unique()))}
    shares = {}
    for _, row in rows.iterrows():
        checkpoints = sorted(pathlib.Path(row["trial_dir"]).glob("checkpoint_*"))
        if not checkpoints:
            raise SystemExit(f"trial {row['trial_dir']} kept no checkpoint")
        module = load_module(str(checkpoints[-1]))
        crossed = 0
        for episode in range(episodes):
            obs, _ = env.reset(seed=1000 * int(row["seed"]) + episode)
            trajectory, done = [tuple(obs)], False
            while not done:
                obs_t = torch.as_tensor(obs[None], dtype=torch.float32)
                with torch.no_grad():
                    dist = module.policy.distribution_inputs(obs_t)
                    action, _, _ = module.masked_actions(obs_t, dist, 100, float(row["eps_safe"]), "finetune", False)
                obs, _, terminated, truncated, _ = env.step(action[0].numpy())
                trajectory.append(tuple(obs))
                done = terminated or truncated
            crossed += crosses(trajectory)
            if episode == 0:
                r, c = np.array(trajectory).T
                ax.plot(c, r, color=colours[row["eps_safe"]], alpha=0.8, label=f"eps {row['eps_safe']:g}")
        shares.setdefault(row["eps_safe"], []).append(crossed / episodes)
        print(f"eps_safe {row['eps_safe']:g} seed {row['seed']}: {crossed}/{episodes} episodes cross the bridge")
    handles, labels = ax.get_legend_handles_labels()
    by_label = dict(zip(labels, handles, strict=True))  # one legend entry per eps_safe
    ax.legend(by_label.values(), by_label.keys())
    ax.set_xlabel("col")
    ax.set_ylabel("row")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120, bbox_inches="tight")
    for eps, values in sorted(shares.items()):
        print(f"RESULT eps_safe={eps:g} crossing_share={np.mean(values):.2f} seeds={len(values)}")
    print(f"wrote {out}")


def pi_readings(module, obs, k: int):
    """Q_safe of K samples of pi at ``obs`` (one state): their mean and the shares the fine-tuning mask keeps at
    figure 5's two eps_safe, and the samples themselves."""
    samples, _ = module.sample_candidates(module.policy.distribution_inputs(obs), k)
    q = module.q_safe(obs, samples)[0]
    reading = {
        "pi_mean": float(q.mean()),
        "pi_below_0.05": float((q < 0.05).float().mean()),
        "pi_below_0.2": float((q < 0.2).float().mean()),
    }
    return reading, samples


def write_rows(rows: list[dict], csv_path: pathlib.Path | None) -> None:
    """Write ``rows`` to ``csv_path`` (a no-op for None), saying where."""
    if csv_path is None:
        return
    import pandas as pd

    csv_path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(csv_path, index=False)
    print(f"wrote {csv_path}")


def critic_at_routes(module, k: int = 100, seed: int = 0, layout: str = "authors") -> dict[str, dict[str, float]]:
    """What the SQRL RLModule ``module``'s Q_safe reads at the start of each route of ``layout`` (PROBES):
    for the action straight up the route (``up``) and for K samples of pi there (mean, and
    the share of samples below 0.05 and below 0.2, i.e. what the fine-tuning mask keeps at figure 5's two
    eps_safe), and pi's deterministic action there (``pi_heading``, (d_row, d_col))."""
    import torch

    torch.manual_seed(seed)
    out = {}
    for name, route in PROBES[layout].items():
        obs = torch.tensor([route[0]], dtype=torch.float32)
        with torch.no_grad():
            up = module.q_safe(obs, torch.tensor([[[1.0, 0.0]]]))[0, 0]
            heading = torch.tanh(module.policy.distribution_inputs(obs).chunk(2, dim=-1)[0])[0]
            reading, _ = pi_readings(module, obs, k)
        out[name] = {"pi_heading": tuple(round(float(x), 2) for x in heading), "up": float(up), **reading}
    return out


def up_then_pi(
    module, route, gamma_safe: float, episodes: int, levels: list[float], seed: int = 0, layout: str = "authors"
) -> float:
    """Monte Carlo of what Q_safe(route start, up) estimates: the action straight up, then pi's own samples
    (unmasked, as in the safety target), E[gamma_safe^T * failure] averaged over the noise ``levels``."""
    import torch
    from critic_calibration import choose_actions

    generator = torch.Generator().manual_seed(seed)
    values = []
    for i, level in enumerate(levels):
        envs = [
            DrunkSpiderEnv(task="finetune", action_noise=level, noise_type="gaussian", layout=layout)
            for _ in range(episodes)
        ]
        obs = np.stack(
            [env.reset(seed=seed + 1000 * i + j, options={"position": route[0]})[0] for j, env in enumerate(envs)]
        )
        alive = np.ones(episodes, bool)
        discounted = np.zeros(episodes)
        actions = np.tile(np.float32([1.0, 0.0]), (episodes, 1))
        for t in range(envs[0].max_episode_steps):
            for j in np.flatnonzero(alive):
                obs[j], _, terminated, truncated, info = envs[j].step(actions[j])
                if info["failure"]:
                    discounted[j] = gamma_safe**t
                alive[j] = not (terminated or truncated)
            if not alive.any():
                break
            actions = choose_actions(module, obs, 1, 1.0, False, generator)
        values.append(discounted.mean())
    return float(np.mean(values))


def critic_rows(
    name: str,
    module,
    k: int,
    rollouts: int = 0,
    gamma_safe: float = 0.65,
    levels: str = "0:0.4:10",
    layout: str = "authors",
) -> list[dict]:
    """One row per route of ``layout``: :func:`critic_at_routes` of ``module`` (labelled ``name``) and, with
    ``rollouts``, the Monte Carlo of what Q_safe(start, up) should read (``up_then_pi``; NaN without)."""
    rows = []
    for route, reading in critic_at_routes(module, k, layout=layout).items():
        heading = reading.pop("pi_heading")
        truth = (
            up_then_pi(module, PROBES[layout][route], gamma_safe, rollouts, parse_levels(levels), layout=layout)
            if rollouts
            else float("nan")
        )
        rows.append(
            {
                "checkpoint": name,
                "route": route,
                **reading,
                "pi_heading_row": heading[0],
                "pi_heading_col": heading[1],
                "monte_carlo_up_then_pi": truth,
            }
        )
    return rows


def critic_table(
    checkpoints: list[str],
    k: int,
    rollouts: int = 0,
    gamma_safe: float = 0.65,
    levels: str = "0:0.4:10",
    layout: str = "authors",
    csv_path: pathlib.Path | None = None,
) -> list[dict]:
    """Print :func:`critic_rows` per checkpoint (with ``rollouts``: beside the Monte Carlo of 'up, then pi'
    under the pretraining's noise ``levels``, LO:HI:N or a list); with ``csv_path`` also write them there."""
    print("Q_safe at the start of each route ('up': the action straight up it; pi: K samples of the policy)")
    print(
        f"{'checkpoint':<48} {'route':<7} {'up':>6} {'pi mean':>8} {'pi<0.05':>8} {'pi<0.2':>7}  pi heading  MC up,pi"
    )
    from critic_calibration import load_module

    rows = []
    for checkpoint in checkpoints:
        for row in critic_rows(checkpoint, load_module(checkpoint), k, rollouts, gamma_safe, levels, layout):
            print(
                f"{checkpoint[-48:]:<48} {row['route']:<7} {row['up']:>6.3f} {row['pi_mean']:>8.3f} "
                f"{row['pi_below_0.05']:>8.2f} {row['pi_below_0.2']:>7.2f}  "
                f"({row['pi_heading_row']}, {row['pi_heading_col']})  {row['monte_carlo_up_then_pi']:.3f}"
            )
            rows.append(row)
    print(
        "Q_safe reads the risk of following pi after the action, so a pi that turns back on the bridge reads "
        "higher than a crossing; `figure5.py gamma` gives a scripted centred crossing's reading per gamma_safe"
    )
    write_rows(rows, csv_path)
    return rows


BRIDGE_ROWS = (1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 5.5)
STEP_SIZES = (1.0, 0.5, 0.25)


def along_bridge(module, k: int = 100, seed: int = 0, col: float = 3.5) -> list[dict[str, float]]:
    """Q_safe of ``module`` up the bridge centre, one row per position in BRIDGE_ROWS: for a step straight up
    of each size in STEP_SIZES, and for K samples of pi (mean, share below 0.05 and 0.2, mean step). The
    fine-tuning mask vets each step on its own: where no sample reads below eps_safe it takes the safest."""
    import torch

    torch.manual_seed(seed)
    rows = []
    for row in BRIDGE_ROWS:
        obs = torch.tensor([[row, col]], dtype=torch.float32)
        with torch.no_grad():
            ups = {f"up_{size}": float(module.q_safe(obs, torch.tensor([[[size, 0.0]]]))[0, 0]) for size in STEP_SIZES}
            reading, samples = pi_readings(module, obs, k)
        rows.append(
            {
                "row": row,
                **ups,
                **reading,
                "pi_step_row": float(samples[0, :, 0].mean()),
                "pi_step_col": float(samples[0, :, 1].mean()),
            }
        )
    return rows


def bridge_table(checkpoints: list[str], k: int, csv_path: pathlib.Path | None = None) -> list[dict]:
    """Print :func:`along_bridge` per checkpoint; with ``csv_path`` also write the rows there."""
    from critic_calibration import load_module

    rows = []
    for checkpoint in checkpoints:
        print(checkpoint)
        print(f"{'row':>5} " + " ".join(f"up {s:<4}" for s in STEP_SIZES) + "  pi mean  pi<0.05  pi<0.2  pi step")
        for reading in along_bridge(load_module(checkpoint), k):
            print(
                f"{reading['row']:>5} " + " ".join(f"{reading[f'up_{s}']:>7.3f}" for s in STEP_SIZES) + f"  "
                f"{reading['pi_mean']:>7.3f}  {reading['pi_below_0.05']:>7.2f}  {reading['pi_below_0.2']:>6.2f}  "
                f"({reading['pi_step_row']:+.2f}, {reading['pi_step_col']:+.2f})"
            )
            rows.append({"checkpoint": checkpoint, **reading})
    write_rows(rows, csv_path)
    return rows


def walk_from(module, start: tuple[float, float], episodes: int, layout: str = "long_detour", seed: int = 0) -> dict:
    """Episodes of pi's own samples (unmasked, as Q_safe's target follows it) from ``start`` under figure 5's
    noise: how many reach the goal, fail or time out, and how many enter the way around right of the lava
    (``long_detour``: the corridor, col >= 9) in the lava rows. Q_safe at a state reads the risk of the route
    pi takes from there."""
    import torch
    from critic_calibration import choose_actions

    torch.manual_seed(seed)  # pi's unmasked samples draw from torch's global generator
    generator = torch.Generator().manual_seed(seed)
    right_of_lava = max(LAYOUTS[layout].lava_cols) + 1
    counts = {"goal": 0, "failure": 0, "timeout": 0, "corridor": 0}
    for episode in range(episodes):
        env = DrunkSpiderEnv(task="finetune", action_noise=NOISE, noise_type="gaussian", layout=layout)
        obs, _ = env.reset(seed=seed + episode, options={"position": start})
        corridor, outcome = False, "timeout"
        for _ in range(env.max_episode_steps):
            action = choose_actions(module, obs[None], 1, 1.0, False, generator)[0]
            obs, _, terminated, truncated, info = env.step(action)
            corridor |= bool(obs[1] >= right_of_lava and obs[0] >= min(LAVA_ROWS))
            if info["failure"] or terminated or truncated:
                outcome = "failure" if info["failure"] else "goal" if terminated else "timeout"
                break
        counts[outcome] += 1
        counts["corridor"] += corridor
    return counts


def main() -> None:
    """``gamma``, ``critic``, ``bridge``, ``walk``, ``routes`` or ``plot``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("gamma", help="discounted failure probability of the two routes per gamma_safe")
    g.add_argument("--episodes", type=int, default=20000, help="Monte-Carlo episodes per route (and noise level)")
    noise_levels = "LO:HI:N or a comma list of Gaussian noise levels"
    g.add_argument(
        "--noise-levels",
        default="",
        help=f"{noise_levels}: average over them (figure5.yaml's pretraining: 0:0.4:10) instead of figure 5's 0.2",
    )
    g.add_argument("--layout", default="authors", choices=sorted(GAMMA_ROUTES), help="DrunkSpider layout (the map)")
    c = sub.add_parser("critic", help="what pretrained checkpoints' Q_safe reads at the start of each route")
    c.add_argument("checkpoints", nargs="+", help="Algorithm checkpoints (e.g. a figure5 run's critic-fitted ones)")
    c.add_argument("--num-action-samples", type=int, default=100, help="K samples of pi per state")
    c.add_argument(
        "--rollouts",
        type=int,
        default=0,
        help="also estimate, by this many rollouts per noise level, what Q_safe(start, up) should read: the "
        "discounted failure of 'up, then pi' averaged over --noise-levels",
    )
    c.add_argument("--gamma-safe", type=float, default=0.65, help="the checkpoint's gamma_safe, for --rollouts")
    c.add_argument("--noise-levels", default="0:0.4:10", help=f"{noise_levels}: the checkpoint's pretraining noise")
    c.add_argument("--layout", default="authors", choices=sorted(PROBES), help="the checkpoint's DrunkSpider layout")
    c.add_argument("--csv", type=pathlib.Path, default=None, help="also write the readings to this CSV")
    b = sub.add_parser("bridge", help="Q_safe up the bridge centre: what the fine-tuning mask keeps at each step")
    b.add_argument("checkpoints", nargs="+", help="Algorithm checkpoints (e.g. a figure5 run's critic-fitted ones)")
    b.add_argument("--num-action-samples", type=int, default=100, help="K samples of pi per position")
    b.add_argument("--csv", type=pathlib.Path, default=None, help="also write the readings to this CSV")
    w = sub.add_parser(
        "walk", help="where pi's own samples go from given starts on long_detour (goal, failure, corridor)"
    )
    w.add_argument("checkpoints", nargs="+", help="Algorithm checkpoints")
    w.add_argument("--starts", nargs="+", default=["1.0,9.9", "0,3"], help="ROW,COL start positions")
    w.add_argument("--episodes", type=int, default=40, help="episodes per start")
    r = sub.add_parser("routes", help="return and failure rate of the bridge and the detours, scripted")
    r.add_argument("--episodes", type=int, default=4000, help="Monte-Carlo episodes per route")
    r.add_argument("--noise", type=float, default=NOISE, help="Gaussian action noise std (figure 5: 0.2)")
    r.add_argument("--failure-penalty", default="authors", help="DrunkSpider failure_penalty (authors | below_timeout)")
    r.add_argument("--layout", default="authors", choices=sorted(ROUTES), help="DrunkSpider layout (the map)")
    p = sub.add_parser("plot", help="trajectories and crossing shares of a figure5 run")
    p.add_argument("run_dir", type=pathlib.Path, help="the pipeline's run directory (holds results.csv)")
    p.add_argument("--episodes", type=int, default=20, help="evaluation episodes per trial")
    p.add_argument("--out", type=pathlib.Path, default=pathlib.Path("docs/img/figure5.png"), help="the figure")
    args = parser.parse_args()
    if args.command == "gamma":
        gamma_table(args.episodes, parse_levels(args.noise_levels), args.layout)
    elif args.command == "routes":
        routes_table(args.episodes, args.noise, args.layout, failure_penalty=args.failure_penalty)
    elif args.command == "critic":
        critic_table(
            args.checkpoints,
            args.num_action_samples,
            args.rollouts,
            args.gamma_safe,
            args.noise_levels,
            args.layout,
            args.csv,
        )
    elif args.command == "walk":
        from critic_calibration import load_module

        for checkpoint in args.checkpoints:
            module = load_module(checkpoint)
            for start in args.starts:
                row, col = (float(x) for x in start.split(","))
                print(f"{checkpoint}  from ({row}, {col}): {walk_from(module, (row, col), args.episodes)}")
    elif args.command == "bridge":
        bridge_table(args.checkpoints, args.num_action_samples, args.csv)
    else:
        plot(args.run_dir, args.episodes, args.out)


if __name__ == "__main__":
    main()
