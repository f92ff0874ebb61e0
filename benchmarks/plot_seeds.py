"""Pretraining diagnosis plots from ``benchmarks/seeds.py`` traces: fallback rate, Q_safe, return, failures.

Usage: python benchmarks/plot_seeds.py TRACE.csv [TRACE.csv ...] --out docs/img/pretraining_seeds.png
Each trace is one line per panel, labelled by its file name (``pretrain_seed{S}[_{label}]_trace``).
Panels over pretraining env steps: return (mean of recent episodes), failed share of the episodes
finished in each iteration, the mask's fallback rate, and Q_safe on the safe / failing rows of the
last minibatch.
"""

from __future__ import annotations

import argparse
import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402


def label_of(path: pathlib.Path) -> str:
    """``pretrain_seed10_plag_trace.csv`` -> ``seed10 plag``."""
    return path.stem.removeprefix("pretrain_").removesuffix("_trace").replace("_", " ")


def main() -> None:
    """Draw the four panels for every trace given."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("traces", nargs="+", type=pathlib.Path, help="trace CSVs written by benchmarks/seeds.py")
    parser.add_argument("--out", type=pathlib.Path, required=True, help="PNG to write")
    args = parser.parse_args()
    fig, axes = plt.subplots(1, 4, figsize=(18, 3.8))
    for path in args.traces:
        trace = pd.read_csv(path)
        steps = trace["steps"]
        episodes = trace["cumulative_episodes"].diff().fillna(trace["cumulative_episodes"])
        failures = trace["cumulative_failures"].diff().fillna(trace["cumulative_failures"])
        name = label_of(path)
        axes[0].plot(steps, trace["return"], label=name)
        axes[1].plot(steps, failures / episodes.clip(lower=1), label=name)
        axes[2].plot(steps, trace["fallback_rate"], label=name)
        (line,) = axes[3].plot(steps, trace["q_safe_safe_mean"], label=f"{name} safe rows")
        axes[3].plot(steps, trace["q_safe_failing_mean"], ls=":", color=line.get_color(), label=f"{name} failing")
    titles = ("return (recent episodes)", "failed share of episodes", "mask fallback rate", "Q_safe (last minibatch)")
    for ax, title in zip(axes, titles, strict=True):
        ax.set_title(title)
        ax.set_xlabel("pretraining env steps")
    axes[3].axhline(0.1, color="grey", lw=0.8, ls="--")
    axes[0].legend(fontsize=7)
    axes[3].legend(fontsize=6)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=90)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
