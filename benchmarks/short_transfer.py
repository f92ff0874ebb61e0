"""SQRL vs SAC after a SHORT pretraining, each method from its own pretraining (issue 20's end-to-end check).

Per seed: SAC pretrained (no safety critic) and SQRL pretrained (mask, safety critic, pretraining Lagrangian)
for ``--pretrain-steps`` with drunk_spider.yaml's keys (the authors' SAC settings, the pretraining noise
randomised over [0, 0.4]) at a reduced size (``--hidden``, ``--k``); SQRL's Q_safe fitted 500 steps at
failure fraction 0.2; then each fine-tuned ``--finetune-steps`` on the finetune task (noise 0.2). Prints one
line per run and stage: return (RLlib's mean of the last episodes), cumulative failures and episodes.

DrunkSpider's ``failure_penalty`` is ``below_timeout`` by default (``--failure-penalty authors`` for the
authors' shaping): under the authors' shaping failing early pays better than a timeout until the goal has been
found, so in a short run both methods learn to fail on purpose and the comparison measures that incentive.
``transfer()`` is also what ``tests/integration/test_transfer_learning.py`` runs.

Usage: python benchmarks/short_transfer.py --pretrain-steps 6000 --finetune-steps 2000 --seeds 0,1
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import tempfile
import time

import ray
from ray.rllib.core import DEFAULT_MODULE_ID

from sqrl_rllib.algorithms.sqrl import SQRLConfig
from sqrl_rllib.algorithms.sqrl.offline import fit_checkpoint_safety_critic
from sqrl_rllib.methods import METHODS

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from drunk_spider_transfer import PRETRAIN_LAGRANGIAN, parse_sets, sets_name  # noqa: E402

NOISE_LEVELS = [round(0.4 * i / 9, 6) for i in range(10)]


def config(
    method: str, stage: str, seed: int, hidden: tuple[int, ...], k: int, failure_penalty: str = "authors", **extra
) -> SQRLConfig:
    """``method``'s ``stage`` config with drunk_spider.yaml's keys at the given size (and DrunkSpider's
    ``failure_penalty``)."""
    env_config = {"task": "finetune", "failure_penalty": failure_penalty}
    if stage == "pretrain":
        env_config.update(task="pretrain", action_noise_levels=NOISE_LEVELS)
    keys = {"eps_safe": 0.1, "gamma_safe": 0.65, "num_action_samples": k, "hidden": hidden, "reward_scale": 10.0}
    if stage == "pretrain":
        keys.update(policy_mean_init_scale=0.01, **PRETRAIN_LAGRANGIAN)
    keys.update(METHODS[method].keys(stage))
    keys.update(extra)
    return (
        SQRLConfig()
        .environment("sqrl/DrunkSpider-v0", env_config=env_config)
        .env_runners(num_env_runners=0, rollout_fragment_length=32)
        .training(gamma=1.0, num_steps_sampled_before_learning_starts=256, train_batch_size_per_learner=256)
        .reporting(min_sample_timesteps_per_iteration=500)
        .sqrl(phase=stage, method=method, **keys)
        .debugging(seed=seed)
    )


def train(cfg: SQRLConfig, steps: int, save_to: str | None = None, label: str = "") -> list[dict]:
    """Train for ``steps`` env steps (saved to ``save_to`` if given); returns one row per training iteration:
    env steps, return (RLlib's smoothed mean), cumulative failures and episodes, the mask's rejection and
    fallback rates and nu. With ``label``, prints each row as it comes."""
    algo = cfg.build_algo()
    history = []
    try:
        while not history or history[-1]["steps"] < steps:
            result = algo.train()
            runners, sq = result["env_runners"], result["sqrl"]
            row = {
                "steps": int(runners["num_env_steps_sampled_lifetime"]),
                "return": round(float(runners.get("episode_return_mean", float("nan"))), 2),
                "failures": int(sq["cumulative_failures"]),
                "episodes": int(sq["cumulative_episodes"]),
                "rejected": round(float(runners.get("mask_rejection_rate", float("nan"))), 3),
                "fallback": round(float(runners.get("mask_fallback_rate", float("nan"))), 3),
                "nu": float(result.get("learners", {}).get(DEFAULT_MODULE_ID, {}).get("nu", float("nan"))),
            }
            history.append(row)
            if label:
                print(f"[{label}] " + " ".join(f"{k} {v:.3g}" for k, v in row.items()), flush=True)
        if save_to:
            algo.save_to_path(save_to)
        return history
    finally:
        algo.stop()


def transfer(
    method: str,
    seed: int,
    pretrain_steps: int,
    finetune_steps: int,
    root: str,
    hidden: tuple[int, ...] = (128, 128),
    k: int = 50,
    failure_penalty: str = "below_timeout",
    pretrain_set: dict | None = None,
    finetune_set: dict | None = None,
    progress: bool = False,
) -> tuple[list[dict], list[dict]]:
    """Pretrain ``method``'s pretraining method (``Method.pretrained_by``: itself, or SQRL for rs and
    sac_from_sqrl), reusing a finished pretraining kept in ``root``; fit Q_safe 500 steps at failure fraction
    0.2 where it has one; fine-tune (not with ``finetune_steps`` 0). Returns the pretraining and the
    fine-tuning histories. Methods with their own Algorithm (wcpg, cpo) are not supported here."""
    pretrain_set, finetune_set = pretrain_set or {}, finetune_set or {}
    owner = METHODS[method].pretrained_by
    if METHODS[method].config_class != METHODS["sqrl"].config_class:
        raise ValueError(f"short_transfer runs the methods built on SQRLConfig, not {method!r}")

    def make(name: str, stage: str, **extra) -> SQRLConfig:
        return config(name, stage, seed, hidden, k, failure_penalty, **extra)

    label = f"{method} seed={seed}"
    pretrain_label, finetune_label = (f"{label} pretrain", f"{label} finetune") if progress else ("", "")
    ckpt = pathlib.Path(root) / f"{owner}_{seed}_{pretrain_steps}{sets_name(pretrain_set)}"
    if (ckpt / "pretrain_history.json").exists():
        pre = json.loads((ckpt / "pretrain_history.json").read_text())
        print(f"[{label}] reusing the pretraining in {ckpt}", flush=True)
    else:
        pre = train(make(owner, "pretrain", **pretrain_set), pretrain_steps, str(ckpt), pretrain_label)
        (ckpt / "pretrain_history.json").write_text(json.dumps(pre))
    start = str(ckpt)
    if not finetune_steps:
        return pre, []
    if METHODS[owner].critic_fit:
        start = fit_checkpoint_safety_critic(make(owner, "pretrain", **pretrain_set), start, f"{ckpt}_fit", 500, 0.2)
    fine = train(
        make(method, "finetune", pretrained_checkpoint=start, **finetune_set),
        finetune_steps,
        label=finetune_label,
    )
    return pre, fine


def main() -> None:
    """Run each method on each seed and print its pretraining and fine-tuning summaries."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pretrain-steps", type=int, default=4000, help="pretraining env steps per method")
    parser.add_argument("--finetune-steps", type=int, default=2000, help="fine-tuning env steps per method")
    parser.add_argument("--seeds", default="0,1", help="comma-separated seeds")
    parser.add_argument("--hidden", default="128,128", help="hidden layer sizes of every network")
    parser.add_argument("--k", type=int, default=50, help="SQRL's K (action samples per step)")
    parser.add_argument(
        "--failure-penalty",
        default="below_timeout",
        choices=["authors", "below_timeout"],
        help="DrunkSpider's failure_penalty on both tasks (below_timeout: failing never pays better than a timeout)",
    )
    parser.add_argument("--methods", default="sac,sqrl", help="which methods to run: sac, sqrl or both")
    parser.add_argument("--progress", action="store_true", help="print a line per training iteration")
    parser.add_argument(
        "--checkpoint-dir", default=None, help="keep the pretraining checkpoints here and reuse finished ones"
    )
    parser.add_argument(
        "--pretrain-set", action="append", default=[], metavar="KEY=VALUE", help="a pretraining key override"
    )
    parser.add_argument(
        "--finetune-set", action="append", default=[], metavar="KEY=VALUE", help="a fine-tuning key override"
    )
    args = parser.parse_args()
    hidden = tuple(int(h) for h in args.hidden.split(","))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    root = args.checkpoint_dir or tempfile.mkdtemp(prefix="short_transfer_")
    for seed in (int(s) for s in args.seeds.split(",")):
        for method in args.methods.split(","):
            start = time.time()
            pre, fine = transfer(
                method,
                seed,
                args.pretrain_steps,
                args.finetune_steps,
                root,
                hidden,
                args.k,
                args.failure_penalty,
                parse_sets(args.pretrain_set, "--pretrain-set"),
                parse_sets(args.finetune_set, "--finetune-set"),
                args.progress,
            )
            for stage, history in (("pretrain", pre), ("finetune", fine)):
                last = history[-1]
                print(
                    f"seed {seed} {method}_{stage}: return {last['return']} failures {last['failures']}/"
                    f"{last['episodes']}"
                )
            print(f"seed {seed} {method}: {time.time() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
