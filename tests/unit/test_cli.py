"""Bad input to `python -m sqrl_rllib.tune` exits 2 with one clear paragraph, before Ray starts."""

import subprocess
import sys

import pytest
import ray
import yaml

from sqrl_rllib.experiments import CONFIG_DIR, TOP_KEYS, experiment_seeds, parse_seeds, prepare_experiment
from sqrl_rllib.tune import main, parse_args


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["spiderr"], "Unknown experiment 'spiderr'"),
        (["drunk_spider", "--set", "finetune.sqrl.eps_safee=0.1"], "unknown key 'eps_safee'"),
        (["drunk_spider", "--set", "finetune.sqrl.eps_safe=1.5"], "eps_safe"),
        (["drunk_spider", "--set", "pretrain.sqrl.phase=train"], "phase"),
        (["drunk_spider", "--set", "finetune.grid.eps_safe=[0.1,-2]"], "eps_safe"),
        (["drunk_spider", "--set", "pretrain.env_config.task=transfer"], "task"),
        (["drunk_spider", "--set", "pretrain.sqrl.num_action_samples=0"], "num_action_samples"),
        (["drunk_spider", "--set", "nonsense"], "KEY=VALUE"),
        (["drunk_spider", "--num-seeds", "0"], "--num-seeds"),
        (["drunk_spider", "--set", "pretrain.critic_fit.num_steps=0"], "critic_fit.num_steps"),
        (["drunk_spider", "--set", "pretrain.critic_fit.failure_fraction=1.0"], "critic_fit.failure_fraction"),
        (["drunk_spider", "--set", "pretrain.critic_fit.steps=10"], "unknown key 'steps'"),
        (["drunk_spider", "--set", "finetune.critic_fit.num_steps=10"], "finetune.critic_fit is not supported"),
        (["drunk_spider", "--set", "pretrain.sqrl.checkpoint_replay=false"], "checkpoint_replay"),
        # Seeds: the seeds key, the num_seeds shorthand, the --seeds / --num-seeds flags.
        (["drunk_spider", "--seeds=-1,2"], "--seeds -1,2 is invalid: -1 is not an integer in [0, "),
        (["drunk_spider", "--seeds", "1,1"], "--seeds 1,1 is invalid: 1 given more than once"),
        (["drunk_spider", "--seeds", "1,a"], "--seeds 1,a is invalid: 'a' is not an integer"),
        (["drunk_spider", "--seeds", "1.5"], "'1.5' is not an integer"),
        (["drunk_spider", "--seeds", "1,,2"], "--seeds 1,,2 is invalid: '' is not an integer"),
        (["drunk_spider", "--seeds", ""], "--seeds '' is invalid: give at least one seed"),
        (["drunk_spider", "--seeds", "3000000000"], "--seeds 3000000000 is invalid"),
        (["drunk_spider", "--seeds", "1,2", "--num-seeds", "2"], "--seeds 1,2 and --num-seeds 2 both given"),
        (["drunk_spider", "--set", "seeds=[1,1]"], "seeds=[1, 1] is invalid: 1 given more than once"),
        (["drunk_spider", "--set", "seeds=[]"], "seeds=[] is invalid: must be a non-empty list"),
        (["drunk_spider", "--set", "seeds=[-3]"], "seeds=[-3] is invalid: -3 is not an integer"),
        (["drunk_spider", "--set", "seeds=[0.5]"], "seeds=[0.5] is invalid: 0.5 is not an integer"),
        (["drunk_spider", "--set", "seeds=[true]"], "seeds=[True] is invalid"),
        (["drunk_spider", "--set", "seeds=3"], "seeds=3 is invalid: must be a non-empty list"),
        (["drunk_spider", "--set", "seeds=[1,2]", "--set", "num_seeds=2"], "both given"),
        (["drunk_spider", "--set", "num_seeds=0"], "num_seeds=0 is invalid"),
        (["drunk_spider", "--quick", "--set", "seeds=[2,2]"], "seeds=[2, 2] is invalid"),
        (["drunk_spider", "--set", "finetune.stop.num_env_steps_sampled_lifetime=-5"], "must be a number > 0"),
        (["drunk_spider", "--set", "pretrain.sqrl.restore_replay=true"], "set pretrained_checkpoint"),
        (["figure5", "--set", "pretrain.sqrl.pretrained_checkpoint=/no/such"], "not an Algorithm checkpoint"),
        (["drunk_spider", "--set", "pretrain.sqrl.pretrained_checkpoint=/x"], "run it with --methods sqrl"),
        (["drunk_spider", "--set", "finetune.sqrl.pretrained_checkpoint=/x"], "--pretrained-run RUN_DIR"),
        (
            [
                "drunk_spider",
                "--set",
                "finetune.sqrl.restore_replay=true",
                "--set",
                "pretrain.sqrl.checkpoint_replay=false",
                "--set",
                "pretrain.critic_fit=null",
            ],
            "restore_replay needs the pretraining data in the checkpoint",
        ),
        (
            ["drunk_spider", "--methods", "cpo", "--set", "finetune.sqrl.restore_replay=true"],
            "restore_replay=True is invalid",
        ),
        (["drunk_spider", "--set", "pretrain.stop.time_total_s=soon"], "time_total_s='soon' is invalid"),
    ],
)
def test_bad_input_exits_2_without_ray(argv, needle, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
    assert not ray.is_initialized()


def test_exponent_notation_reads_as_a_number():
    # YAML 1.1 reads 3e-5 as a string (it wants 3.0e-5); the learning rate was then refused as "not a number".
    experiment = prepare_experiment(
        "drunk_spider",
        ["training.actor_lr=3e-5", "pretrain.stop.num_env_steps_sampled_lifetime=1e5"],
        quick=False,
        num_seeds=None,
    )
    assert experiment["training"]["actor_lr"] == 3e-5
    steps = experiment["pretrain"]["stop"]["num_env_steps_sampled_lifetime"]
    assert steps == 100_000 and isinstance(steps, int)


def test_malformed_yaml_exits_2(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("env: [unclosed\n")
    assert main([str(bad)]) == 2
    assert "Malformed YAML" in capsys.readouterr().err


def test_unknown_key_lists_valid_choices(capsys):
    assert main(["drunk_spider", "--set", "pretrain.sqrl.eps=0.1"]) == 2
    err = capsys.readouterr().err
    assert "eps_safe" in err and "gamma_safe" in err


def test_cli_subprocess_reports_unknown_experiment():
    proc = subprocess.run(
        [sys.executable, "-m", "sqrl_rllib.tune", "nope"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2
    assert "Valid names: cube, drunk_spider, figure5, minitaur_friction, minitaur_velocity" in proc.stderr
    assert "Started a local Ray instance" not in proc.stderr + proc.stdout


def _spider_yaml(tmp_path, **top) -> str:
    """A copy of drunk_spider.yaml without its num_seeds and with the top-level keys ``top``."""
    data = yaml.safe_load((CONFIG_DIR / "drunk_spider.yaml").read_text())
    data.pop("num_seeds")
    data.update(top)
    path = tmp_path / "spider.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_file_with_both_seeds_and_num_seeds_exits_2(tmp_path, capsys):
    assert main([_spider_yaml(tmp_path, seeds=[1, 2], num_seeds=2)]) == 2
    err = capsys.readouterr().err
    assert "gives both seeds=[1, 2] and num_seeds=2" in err and "Traceback" not in err
    assert not ray.is_initialized()


def test_file_with_bad_seeds_exits_2(tmp_path, capsys):
    assert main([_spider_yaml(tmp_path, seeds=[4, -1])]) == 2
    assert "seeds=[4, -1] is invalid: -1 is not an integer" in capsys.readouterr().err
    assert not ray.is_initialized()


@pytest.mark.parametrize(
    "argv, seeds",
    [
        ([], [0, 1, 2]),  # drunk_spider.yaml: num_seeds: 3
        (["--quick"], [0]),  # --quick: quick.num_seeds (1), as fast as ever
        (["--quick", "--seeds", "1,2"], [1, 2]),
        (["--seeds", " 3, 7 ,11"], [3, 7, 11]),
        (["--num-seeds", "2"], [0, 1]),
        (["--quick", "--num-seeds", "2"], [0, 1]),
        (["--set", "seeds=[5,3]"], [5, 3]),  # replaces the file's num_seeds
        (["--quick", "--set", "seeds=[4]"], [4]),
        (["--set", "seeds=[5,3]", "--seeds", "8"], [8]),  # the flag wins over --set
        (["--quick", "--set", "quick.num_seeds=2"], [0, 1]),
    ],
)
def test_seeds_resolution(argv, seeds):
    args = parse_args(["drunk_spider", *argv])
    flag = None if args.seeds is None else parse_seeds(args.seeds)
    experiment = prepare_experiment(args.experiment, args.overrides, args.quick, args.num_seeds, seeds=flag)
    assert experiment_seeds(experiment) == seeds


@pytest.mark.parametrize(
    "argv, seeds",
    [([], [4, 9]), (["--quick"], [0]), (["--num-seeds", "2"], [0, 1]), (["--set", "num_seeds=1"], [0])],
)
def test_seeds_key_in_file(tmp_path, argv, seeds):
    args = parse_args([_spider_yaml(tmp_path, seeds=[4, 9]), *argv])
    experiment = prepare_experiment(args.experiment, args.overrides, args.quick, args.num_seeds)
    assert experiment_seeds(experiment) == seeds


def test_seed_keys_and_flags_are_documented(capsys):
    assert "seeds" in TOP_KEYS and "num_seeds" in TOP_KEYS
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    parser_help = capsys.readouterr().out
    assert "--seeds S1,S2,..." in parser_help and "--num-seeds N" in parser_help


def test_null_turns_a_yamls_critic_fit_off():
    experiment = prepare_experiment("figure5", ["pretrain.critic_fit=null"], False, None)
    assert experiment["pretrain"]["critic_fit"] is None
    assert prepare_experiment("figure5", [], False, None)["pretrain"]["critic_fit"]["num_steps"] == 4000


def test_continued_pretraining_checkpoint_is_made_absolute(tmp_path, monkeypatch):
    # A trial runs in its own working directory: a relative path that the CLI check found would name
    # nothing there (measured: "holds no RLModule state" from inside the trial).
    checkpoint = tmp_path / "run" / "checkpoint_000019"
    (checkpoint / "learner_group" / "learner" / "rl_module").mkdir(parents=True)
    (checkpoint / "rllib_checkpoint.json").write_text("{}")
    monkeypatch.chdir(tmp_path)
    experiment = prepare_experiment(
        "figure5", ["pretrain.sqrl.pretrained_checkpoint=run/checkpoint_000019"], False, None
    )
    assert experiment["pretrain"]["sqrl"]["pretrained_checkpoint"] == str(checkpoint.resolve())
