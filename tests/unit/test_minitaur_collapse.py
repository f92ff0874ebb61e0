"""benchmarks/minitaur_collapse.py: the probes' falls per window and their totals, from committed CSVs."""

import pathlib
import sys

import pandas as pd

sys.path.insert(0, str(pathlib.Path(__file__).parents[2] / "benchmarks"))
import methods  # noqa: E402
import minitaur_collapse  # noqa: E402


def _curve(method: str, failures: list[int], episodes: list[int]) -> pd.DataFrame:
    steps = [5000, 10000, 15000, 20000, 25000, 25088]  # the last report falls past the probes' 25k steps
    return pd.DataFrame(
        {
            "stage": "finetune",
            "method": method,
            "eps_safe": 0.1 if method == "sqrl" else None,
            "gamma_safe": 0.7 if method == "sqrl" else None,
            "seed": 1,
            "env_steps": steps,
            "episode_return": 100.0,
            "cumulative_failures": failures,
            "cumulative_episodes": episodes,
        }
    )


def test_table_and_totals_count_falls_per_arm_before_and_after_the_first_update(tmp_path, monkeypatch):
    monkeypatch.setattr(methods, "RESULTS", tmp_path / "methods")
    monkeypatch.setattr(minitaur_collapse, "RESULTS", tmp_path / "collapse")
    (tmp_path / "methods").mkdir()
    (tmp_path / "collapse").mkdir()
    baseline = pd.concat(
        [_curve("sqrl", [0, 5, 20, 22, 25, 30], [5, 10, 25, 30, 35, 40]), _curve("sac", [1] * 6, [2] * 6)]
    )
    baseline.to_csv(tmp_path / "methods" / "minitaur_velocity_curves_seed_1.csv", index=False)
    probe = _curve("sqrl", [1, 2, 3, 3, 4, 9], [5, 10, 15, 20, 25, 30]).assign(probe="replay")
    probe.to_csv(tmp_path / "collapse" / "minitaur_velocity_replay_seed_1.csv", index=False)
    probe.to_csv(tmp_path / "collapse" / "minitaur_friction_replay_seed_1.csv", index=False)  # not velocity's

    windows = minitaur_collapse.table(1)
    assert windows["start"].max() < minitaur_collapse.STEPS  # the report at 25088 is left out
    out = minitaur_collapse.totals(windows).set_index(["arm", "method"])
    assert out.loc[("baseline", "sqrl"), "falls"] == "25/35"
    assert out.loc[("baseline", "sqrl"), "falls_from_10000"] == "20/25"  # windows 10k, 15k, 20k: 15 + 2 + 3
    assert out.loc[("baseline", "sac"), "falls"] == "1/2"
    assert out.loc[("replay", "sqrl"), "falls"] == "4/25" and out.loc[("replay", "sqrl"), "rate"] == 0.16
