"""``pretrain.offline_data`` and ``--record-transitions``: bad values exit 2 naming the key, before Ray starts."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import ray
import yaml

from sqrl_rllib.experiments import CONFIG_DIR, OFFLINE_DATA_DEFAULTS, offline_data_spec, prepare_experiment
from sqrl_rllib.offline_data import write_transitions
from sqrl_rllib.pipeline import offline_data_fits, offline_fit_dir, transitions_path
from sqrl_rllib.tune import main, parse_args


def dataset(path, n=64, obs_dim=2, act_dim=2):
    """A valid transition file with DrunkSpider's sizes (obs 2, action 2) unless told otherwise."""
    rng = np.random.default_rng(0)
    write_transitions(
        {
            "obs": rng.normal(size=(n, obs_dim)),
            "actions": rng.uniform(-1, 1, size=(n, act_dim)),
            "rewards": rng.normal(size=n),
            "next_obs": rng.normal(size=(n, obs_dim)),
            "terminated": np.zeros(n),
            "failure": rng.random(n) < 0.1,
        },
        path,
    )
    return str(path)


def exit_message(argv, capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and not ray.is_initialized()
    return err


def test_missing_file_exits_2_naming_the_key(tmp_path, capsys):
    err = exit_message(["drunk_spider", "--set", f"pretrain.offline_data={tmp_path}/none.parquet"], capsys)
    assert "pretrain.offline_data=" in err and "no such file or directory" in err


def test_bad_schema_exits_2_naming_the_key_and_the_column(tmp_path, capsys):
    path = dataset(tmp_path / "t.parquet")
    pq.write_table(pq.read_table(path).drop_columns(["failure"]), tmp_path / "bad.parquet")
    err = exit_message(["drunk_spider", "--set", f"pretrain.offline_data.path={tmp_path}/bad.parquet"], capsys)
    assert "pretrain.offline_data.path=" in err and "column 'failure' (bool) is missing" in err
    pq.write_table(pq.read_table(path).set_column(0, "obs", pa.array([[0.0, 0.0]] * 64)), tmp_path / "list.parquet")
    err = exit_message(["drunk_spider", "--set", f"pretrain.offline_data={tmp_path}/list.parquet"], capsys)
    assert "pretrain.offline_data=" in err and "column 'obs' has type list<" in err


def test_sizes_must_match_the_env(tmp_path, capsys):
    path = dataset(tmp_path / "t.parquet", obs_dim=3)
    err = exit_message(["drunk_spider", "--set", f"pretrain.offline_data={path}"], capsys)
    assert "pretrain.offline_data=" in err and "observations of size 3" in err and "has 2 and 2" in err


@pytest.mark.parametrize(
    "assignment, needle",
    [
        ("pretrain.offline_data.num_steps=0", "pretrain.offline_data.num_steps=0 is invalid"),
        ("pretrain.offline_data.failure_fraction=1.0", "pretrain.offline_data.failure_fraction=1.0 is invalid"),
        ("pretrain.offline_data.window_rows=-5", "pretrain.offline_data.window_rows=-5 is invalid"),
        ("pretrain.offline_data.include_sac=maybe", "pretrain.offline_data.include_sac='maybe' is invalid"),
        ("pretrain.offline_data.steps=10", "unknown key 'steps'"),
    ],
)
def test_bad_values_exit_2_naming_the_key(tmp_path, capsys, assignment, needle):
    path = dataset(tmp_path / "t.parquet")
    err = exit_message(["drunk_spider", "--set", f"pretrain.offline_data.path={path}", "--set", assignment], capsys)
    assert needle in err


def test_offline_data_in_finetune_or_without_path_exits_2(tmp_path, capsys):
    path = dataset(tmp_path / "t.parquet")
    err = exit_message(["drunk_spider", "--set", f"finetune.offline_data={path}"], capsys)
    assert "finetune.offline_data is not supported" in err
    err = exit_message(["drunk_spider", "--set", "pretrain.offline_data.num_steps=10"], capsys)
    assert "pretrain.offline_data.path=None is invalid" in err
    err = exit_message(["drunk_spider", "--set", "pretrain.offline_data=[1]"], capsys)
    assert "pretrain.offline_data=[1] is invalid" in err


def test_seed_placeholder_checks_every_seed(tmp_path, capsys):
    dataset(tmp_path / "seed_0.parquet")
    template = f"{tmp_path}/seed_{{seed}}.parquet"
    experiment = prepare_experiment("drunk_spider", [f"pretrain.offline_data={template}"], False, 1)
    assert offline_data_spec(experiment, 0) == {**OFFLINE_DATA_DEFAULTS, "path": f"{tmp_path}/seed_0.parquet"}
    err = exit_message(["drunk_spider", "--num-seeds", "2", "--set", f"pretrain.offline_data={template}"], capsys)
    assert "seed_1.parquet" in err and "no such file" in err


def test_quick_shrinks_the_offline_fit(tmp_path):
    experiment = yaml.safe_load((CONFIG_DIR / "drunk_spider.yaml").read_text())
    experiment["pretrain"]["offline_data"] = dataset(tmp_path / "t.parquet")  # in the file: --set comes after --quick
    (tmp_path / "x.yaml").write_text(yaml.safe_dump(experiment))
    quick_steps = experiment["quick"]["critic_fit_steps"]
    experiment = prepare_experiment(str(tmp_path / "x.yaml"), [], True, None)
    assert offline_data_spec(experiment)["num_steps"] == quick_steps
    assert offline_data_spec(experiment)["failure_fraction"] == OFFLINE_DATA_DEFAULTS["failure_fraction"]


def test_record_transitions_needs_sqrl_and_its_replay(tmp_path, capsys):
    assert parse_args(["drunk_spider", "--record-transitions"]).record_transitions
    assert not parse_args(["drunk_spider"]).record_transitions
    err = exit_message(["drunk_spider", "--record-transitions", "--methods", "sac"], capsys)
    assert "--record-transitions" in err and "sqrl" in err
    experiment = yaml.safe_load((CONFIG_DIR / "drunk_spider.yaml").read_text())
    del experiment["pretrain"]["critic_fit"]  # critic_fit refuses checkpoint_replay=false itself
    (tmp_path / "x.yaml").write_text(yaml.safe_dump(experiment))
    argv = [str(tmp_path / "x.yaml"), "--record-transitions", "--set", "pretrain.sqrl.checkpoint_replay=false"]
    err = exit_message(argv, capsys)
    assert "--record-transitions" in err and "checkpoint_replay" in err


def test_paths_and_no_fit_without_offline_data():
    assert transitions_path("/runs/x", 3) == "/runs/x/transitions/seed_3.parquet"
    assert offline_fit_dir("/runs/x", 3) == "/runs/x/pretrain_offline_fit/seed_3"
    checkpoints = {("sqrl", 0): "/runs/x/pretrain/a", ("sac", 0): "/runs/x/pretrain/b"}
    experiment = prepare_experiment("drunk_spider", [], False, None)
    assert offline_data_fits(experiment, checkpoints, "/runs/x") == checkpoints
