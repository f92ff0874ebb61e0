"""DrunkSpider transfer: pretrain SQRL, then fine-tune with (i) SQRL and (ii) SAC (same pretrained policy, no mask).

Per seed: one pretraining run (spec defaults, 5e4 steps; the action noise domain-randomised over 10 levels
in [0, 0.4] as in the authors' ``PointMassAcNoiseEnv``, so that the fine-tuning noise 0.2 lies inside the
pretraining data; ``--pretrain-noise-levels ''`` keeps the pretrain task's fixed 0.1), then fine-tuning runs
on the finetune task starting from that checkpoint: SQRL (mask + Lagrangian) and SAC fine-tuning
(``mask_enabled=False``, ``lagrangian=False``). Reports fine-tuning failures, failure rate and final return
per run and the mean per method, and a last line ``RESULT sqrl_failure_rate=.. sac_failure_rate=.. ...``.

Usage: python benchmarks/drunk_spider_transfer.py [--pretrain-steps N] [--finetune-steps N] [--seeds N]
       [--first-seed S] [--pretrained CKPT] [--csv PATH] [--methods SQRL,SAC] [--checkpoint-dir DIR]
       [--checkpoint-every N] [--resume] [--pretrain-noise-levels LO:HI:N] [--finetune-eps-safe EPS]
       [--critic-fit-steps N] [--critic-failure-fraction F] [--authors-sac] [--set KEY=VALUE ...]
       [--pretrain-set KEY=VALUE ...]

With ``--checkpoint-dir`` the pretraining checkpoints (``pretrain_S``) and the fine-tuned ones (``SQRL_S``,
``SAC_S``) are kept there, e.g. for ``benchmarks/critic_calibration.py``; every run is also saved every
``--checkpoint-every`` env steps, and ``--resume`` reuses the finished runs there and continues the others
(a finished run marks itself with ``complete.json``; asking for more steps continues it too).

Seeds can run as separate processes (``--first-seed S --seeds 1 --csv rows_S.csv``) and be merged after.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import tempfile

import pandas as pd
import ray
import yaml
from ray.rllib.core import DEFAULT_MODULE_ID

from sqrl_rllib.algorithms.sqrl import SQRLConfig
from sqrl_rllib.algorithms.sqrl.keys import SQRL_KEYS, check_sqrl_keys, sqrl_defaults
from sqrl_rllib.algorithms.sqrl.offline import fit_checkpoint_safety_critic
from sqrl_rllib.envs.drunk_spider import DrunkSpiderEnv, parse_noise_levels
from sqrl_rllib.envs.rllib import register_rllib_envs

# Fine-tuning methods: SQRL (mask + Lagrangian, Q_safe frozen), SQRL-online (Q_safe keeps training on the
# fine-tuning data, the paper's "online" ablation of figure 10b) and SAC fine-tuning of the same
# pretrained policy.
METHODS = {
    "SQRL": {},
    "SQRL-online": {"finetune_safety_critic": True},
    "SAC": {"mask_enabled": False, "lagrangian": False},
}

# The spec's eps_safe (appendix B, SQRLConfig's default); pretraining always uses it, fine-tuning may pick another.
EPS_SAFE = sqrl_defaults()["eps_safe"]


def critic_fit_name(steps: int, failure_fraction: float) -> str:
    """Suffix naming a safety-critic fit of ``steps`` SGD steps with ``failure_fraction`` failing rows."""
    return f"fit{steps}f{failure_fraction:g}"


def run_name(method: str, eps_safe: float, critic_fit: str = "", finetune_set: str = "") -> str:
    """Label and checkpoint-directory stem of a fine-tuning run: the method, plus its eps_safe if not the
    default, the safety-critic fit (``critic_fit_name``) it starts from, if any, and its ``--finetune-set``
    overrides (``sets_name``), if any.

    SAC fine-tuning uses neither the mask nor Q_safe, so its name ignores eps_safe and the fit, and one SAC
    run serves all of them.
    """
    suffix = f"-{finetune_set}" if finetune_set else ""
    if METHODS[method].get("mask_enabled", True) is False:
        return method + suffix
    name = method if eps_safe == EPS_SAFE else f"{method}-eps{eps_safe:g}"
    return (f"{name}-{critic_fit}" if critic_fit else name) + suffix


def sets_name(overrides: dict) -> str:
    """``{"mask_resample_rounds": 4}`` -> ``"mask_resample_rounds4"``: the run-name part of ``--finetune-set``."""
    return "-".join(f"{key}{value}" for key, value in sorted(overrides.items()))


def noise_levels(text: str) -> list[float] | None:
    """Parse ``--pretrain-noise-levels``: ``LO:HI:N`` (N evenly spaced levels), a comma list, or ``""`` (none)."""
    try:
        return parse_noise_levels(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


# The SQRL authors' SAC settings for DrunkSpider (their sqrl_point_mass.gin over sac_safe_online.gin):
# undiscounted 30-step episodes, rewards x10 in the critic target, the policy mean's output layer initialised
# x0.01. Alone they rescued the tuning seeds 3 and 10 but not the held-out seeds (session 11); with the
# pretraining Lagrangian (--pretrain-set pretrain_lagrangian=true) they learn on all ten held-out seeds and are
# the Tune pipeline's DrunkSpider defaults (tune_configs/drunk_spider.yaml), with the pretraining's
# failure_penalty: below_timeout (--pretrain-env-set failure_penalty=below_timeout here; departure 6). This
# script keeps the recorded rows' RLlib SAC settings unless --authors-sac is given.
AUTHORS_SAC = {"gamma": 1.0, "reward_scale": 10.0, "policy_mean_init_scale": 0.01}
# drunk_spider.yaml's pretraining Lagrangian (docs/sqrl_vs_paper.md, departure 5).
PRETRAIN_LAGRANGIAN = {"pretrain_lagrangian": True, "nu_lr": 0.003}
# The authors' pretraining noise randomisation (PointMassAcNoiseEnv: 10 levels in [0, 0.4]), as LO:HI:N.
NOISE_LEVELS = "0:0.4:10"


def parse_sets(pairs: list[str], flag: str = "--set") -> dict:
    """``KEY=VALUE`` pairs (VALUE parsed as YAML) into a dict of SQRL / SAC training keys."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"{flag} expects KEY=VALUE, got {pair!r}")
        out[key] = yaml.safe_load(value)
    return out


def with_overrides(cfg: SQRLConfig, overrides: dict) -> SQRLConfig:
    """``cfg`` with ``overrides`` applied and validated: SQRL keys via ``.sqrl()``, the rest (e.g. gamma,
    initial_alpha) via ``.training()``; a bad key or value raises TypeError / ValueError naming it."""
    cfg = cfg.sqrl(**{k: v for k, v in overrides.items() if k in SQRL_KEYS})
    cfg = cfg.training(**{k: v for k, v in overrides.items() if k not in SQRL_KEYS})
    cfg.validate()
    return cfg


def config(
    phase: str, task: str, seed: int, env_extra: dict | None = None, eps_safe: float = EPS_SAFE, **sqrl
) -> SQRLConfig:
    """SQRL on DrunkSpider with the paper's DrunkSpider settings (gamma_safe 0.65, eps_safe 0.1 by default)."""
    return (
        SQRLConfig()
        .environment("sqrl/DrunkSpider-v0", env_config={"task": task, **(env_extra or {})})
        .env_runners(num_env_runners=0, rollout_fragment_length=32)
        .reporting(min_sample_timesteps_per_iteration=1000, metrics_num_episodes_for_smoothing=50)
        .sqrl(phase=phase, gamma_safe=0.65, eps_safe=eps_safe, **sqrl)
        .debugging(seed=seed)
    )


def train(algo, steps: int, label: str, save=None, every: int = 0) -> dict:
    """Train until ``steps`` env steps, printing progress and calling ``save()`` every ``every`` steps.

    Returns the last result.
    """
    next_save = every
    while True:
        result = algo.train()
        done = result["env_runners"]["num_env_steps_sampled_lifetime"]
        sq = result["sqrl"]
        runners = result["env_runners"]
        learner = result.get("learners", {}).get(DEFAULT_MODULE_ID, {})
        print(
            f"[{label}] steps={done:.0f} return={runners.get('episode_return_mean', float('nan')):.2f} "
            f"failures={sq['cumulative_failures']:.0f}/{sq['cumulative_episodes']:.0f} "
            f"rejected={runners.get('mask_rejection_rate', float('nan')):.2f} "
            f"fallback={runners.get('mask_fallback_rate', float('nan')):.2f} nu={learner.get('nu', float('nan')):.3g}",
            flush=True,
        )
        if done >= steps:
            return result
        if save is not None and every and done >= next_save:
            save()
            next_save = (done // every + 1) * every


def run(cfg: SQRLConfig, steps: int, label: str, directory: pathlib.Path | None, resume: bool, every: int) -> dict:
    """Train the algorithm of ``cfg`` to ``steps`` env steps and return its row; keep it in ``directory`` if given.

    With ``resume`` a finished run (``complete.json`` with at least ``steps``) is reused, and a saved
    partial one is restored and continued, so a killed benchmark loses at most ``every`` steps per run.
    """
    marker = directory / "complete.json" if directory else None
    if resume and marker is not None and marker.exists():
        row = json.loads(marker.read_text())
        if row["steps"] >= steps:
            print(f"[{label}] reusing the finished run in {directory} ({row['steps']} steps)", flush=True)
            return row
    algo = cfg.build_algo()
    if resume and directory is not None and (directory / "rllib_checkpoint.json").exists():
        algo.restore_from_path(str(directory))
        print(f"[{label}] resumed from {directory}", flush=True)
    save = (lambda: algo.save_to_path(str(directory))) if directory is not None else None
    result = train(algo, steps, label, save=save, every=every)
    sq = result["sqrl"]
    row = {
        "steps": int(result["env_runners"]["num_env_steps_sampled_lifetime"]),
        "failures": int(sq["cumulative_failures"]),
        "episodes": int(sq["cumulative_episodes"]),
        "failure_rate": sq["cumulative_failures"] / max(sq["cumulative_episodes"], 1),
        "final_return": result["env_runners"].get("episode_return_mean", float("nan")),
    }
    if directory is not None:
        algo.save_to_path(str(directory))
        marker.write_text(json.dumps(row))
    algo.stop()
    return row


def main() -> None:
    """Run every seed and method and print the table and RESULT line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pretrain-steps", type=int, default=50_000, help="pretraining env steps (paper: 5e4)")
    parser.add_argument("--finetune-steps", type=int, default=50_000, help="fine-tuning env steps per run")
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds")
    parser.add_argument("--first-seed", type=int, default=0, help="seeds are first-seed .. first-seed+seeds-1")
    parser.add_argument(
        "--pretrained", default=None, help="reuse this pretraining checkpoint instead of pretraining (one seed only)"
    )
    parser.add_argument(
        "--pretrain-noise-levels",
        type=noise_levels,
        default=NOISE_LEVELS,
        help="pretraining action-noise domain randomisation, LO:HI:N levels or a comma list, one drawn per "
        "episode (default 0:0.4:10, the authors' PointMassAcNoiseEnv); '' keeps the pretrain task's fixed 0.1",
    )
    parser.add_argument("--csv", default=None, help="also write the per-run rows to this CSV file")
    parser.add_argument(
        "--checkpoint-dir",
        default=None,
        help="keep pretraining (pretrain_S) and fine-tuned (METHOD_S) checkpoints here (default: a temporary dir)",
    )
    parser.add_argument(
        "--checkpoint-every",
        type=int,
        default=5000,
        help="with --checkpoint-dir: also save each run every this many env steps (0: only at the end)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="with --checkpoint-dir: reuse finished runs found there and continue saved partial ones",
    )
    parser.add_argument(
        "--finetune-eps-safe",
        type=float,
        default=EPS_SAFE,
        help="eps_safe of the masked fine-tuning runs (default 0.1, the spec's; pretraining keeps 0.1); "
        "runs with another value are labelled and saved as METHOD-epsX",
    )
    parser.add_argument(
        "--critic-fit-steps",
        type=int,
        default=0,
        help="after pretraining, train Q_safe alone this many more SGD steps on all of D_offline "
        "(fit_checkpoint_safety_critic; 0: no fit); the masked runs start from the fitted checkpoint "
        "(pretrain_S_fitNfF, runs named METHOD-fitNfF), SAC from the original one (it never reads Q_safe)",
    )
    parser.add_argument(
        "--critic-failure-fraction",
        type=float,
        default=0.2,
        help="with --critic-fit-steps: share of each fitting minibatch drawn from D_offline's failures, in [0, 1)",
    )
    parser.add_argument(
        "--methods", default="SQRL,SAC", help="comma-separated fine-tuning methods to run (SQRL, SAC; empty: none)"
    )
    parser.add_argument(
        "--authors-sac",
        action="store_true",
        help="the SQRL authors' SAC settings (gamma 1, reward_scale 10, policy_mean_init_scale 0.01) in both "
        "stages; --set and --pretrain-set win over them",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an SQRL key or a SAC training key (e.g. gamma) for pretraining and fine-tuning (repeatable)",
    )
    parser.add_argument(
        "--pretrain-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="like --set, for pretraining (and the critic fit) only, e.g. pretrain_lagrangian=true (repeatable)",
    )
    parser.add_argument(
        "--finetune-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="like --set, for the fine-tuning runs only, e.g. mask_resample_rounds=4; the runs are labelled, "
        "saved and listed (column finetune_set) with these overrides (repeatable)",
    )
    parser.add_argument(
        "--pretrain-env-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a DrunkSpider env_config key for pretraining (and the critic fit) only, e.g. "
        "failure_penalty=below_timeout; fine-tuning keeps the finetune task's env (repeatable)",
    )
    args = parser.parse_args()
    try:
        pretrain_env = parse_sets(args.pretrain_env_set, "--pretrain-env-set")
        DrunkSpiderEnv(task="pretrain", **pretrain_env)
        both = (AUTHORS_SAC if args.authors_sac else {}) | parse_sets(args.set)
        pre_overrides = both | parse_sets(args.pretrain_set, "--pretrain-set")
        finetune_sets = parse_sets(args.finetune_set, "--finetune-set")
        fine_overrides = both | finetune_sets
        with_overrides(config("pretrain", "pretrain", 0), pre_overrides)
        with_overrides(config("finetune", "finetune", 0), fine_overrides)
    except (argparse.ArgumentTypeError, TypeError, ValueError) as err:
        parser.error(f"--set / --pretrain-set / --finetune-set / --pretrain-env-set: {err}")
    if args.pretrained and args.seeds != 1:
        parser.error("--pretrained needs --seeds 1")
    if args.resume and not args.checkpoint_dir:
        parser.error("--resume needs --checkpoint-dir")
    if args.checkpoint_every < 0:
        parser.error("--checkpoint-every must be >= 0")
    try:
        check_sqrl_keys({"eps_safe": args.finetune_eps_safe})
    except ValueError as err:
        parser.error(f"--finetune-eps-safe: {err}")
    if args.critic_fit_steps < 0:
        parser.error("--critic-fit-steps must be >= 0")
    if not 0.0 <= args.critic_failure_fraction < 1.0:
        parser.error("--critic-failure-fraction must lie in [0, 1)")
    critic_fit = critic_fit_name(args.critic_fit_steps, args.critic_failure_fraction) if args.critic_fit_steps else ""
    methods = [m for m in args.methods.split(",") if m]
    unknown = set(methods) - set(METHODS)
    if unknown:
        parser.error(f"--methods: unknown {sorted(unknown)}; choose from {sorted(METHODS)}")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    register_rllib_envs()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint_dir = pathlib.Path(args.checkpoint_dir or tmp)
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            levels = args.pretrain_noise_levels
            env_extra = ({"action_noise_levels": levels} if levels else {}) | pretrain_env
            if args.pretrained:
                checkpoint = args.pretrained
            else:
                keep = checkpoint_dir / f"pretrain_{seed}"
                run(
                    with_overrides(config("pretrain", "pretrain", seed, env_extra=env_extra), pre_overrides),
                    args.pretrain_steps,
                    f"pretrain seed={seed}",
                    keep,
                    args.resume,
                    args.checkpoint_every,
                )
                checkpoint = str(keep)
            masked_checkpoint = checkpoint
            if critic_fit and any(METHODS[m].get("mask_enabled", True) for m in methods):
                masked_checkpoint = fit_checkpoint_safety_critic(
                    with_overrides(config("pretrain", "pretrain", seed, env_extra=env_extra), pre_overrides),
                    checkpoint,
                    checkpoint_dir / f"pretrain_{seed}_{critic_fit}",
                    args.critic_fit_steps,
                    args.critic_failure_fraction,
                )
            for method in methods:
                name = run_name(method, args.finetune_eps_safe, critic_fit, sets_name(finetune_sets))
                masked = METHODS[method].get("mask_enabled", True)
                cfg = config(
                    "finetune",
                    "finetune",
                    seed,
                    eps_safe=args.finetune_eps_safe,
                    pretrained_checkpoint=masked_checkpoint if masked else checkpoint,
                    **METHODS[method],
                )
                cfg = with_overrides(cfg, fine_overrides)
                row = run(
                    cfg,
                    args.finetune_steps,
                    f"{name} seed={seed}",
                    checkpoint_dir / f"{name}_{seed}" if args.checkpoint_dir else None,
                    args.resume,
                    args.checkpoint_every,
                )
                fit = critic_fit if masked else ""
                rows.append(
                    {
                        "method": method,
                        "eps_safe": args.finetune_eps_safe,
                        "critic_fit": fit,
                        "finetune_set": sets_name(finetune_sets),
                        "seed": seed,
                        **row,
                    }
                )
    if not rows:
        return
    table = pd.DataFrame(rows)
    print(table.to_string(index=False))
    if args.csv:
        table.to_csv(args.csv, index=False)
    mean = table.groupby("method")[["failure_rate", "final_return"]].mean()
    print(mean.to_string())
    if set(mean.index) != {"SQRL", "SAC"}:
        return
    print(
        f"RESULT sqrl_failure_rate={mean.loc['SQRL', 'failure_rate']:.4f} "
        f"sac_failure_rate={mean.loc['SAC', 'failure_rate']:.4f} "
        f"sqrl_return={mean.loc['SQRL', 'final_return']:.2f} sac_return={mean.loc['SAC', 'final_return']:.2f}"
    )


if __name__ == "__main__":
    main()
