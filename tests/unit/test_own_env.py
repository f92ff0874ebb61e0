"""Own env from the experiment YAML (issue 18): ``env:`` any gymnasium id or ``module:callable``, ``failure:``
parsed into a predicate, every bad spec an exit 2 naming the key before Ray starts."""

from __future__ import annotations

import pickle

import gymnasium as gym
import numpy as np
import pytest
import ray
import yaml

from sqrl_rllib.envs.failure_spec import (
    FailureSpecError,
    ImportedPredicate,
    InfoFailure,
    ObsFailure,
    failure_predicate,
)
from sqrl_rllib.envs.own_env import PROBE_STEPS, OwnEnvCreator, is_creator_path, own_env_name
from sqrl_rllib.experiments import CONFIG_DIR, available_experiments, prepare_experiment
from sqrl_rllib.pipeline import build_config
from sqrl_rllib.tune import main

HERE = "tests.unit.test_own_env"


# Importable by path from the experiments below (a creator, predicates, a non-callable).
def make_pendulum(env_config: dict) -> gym.Env:
    """An env creator: Pendulum-v1 under env_config's gravity."""
    return gym.make("Pendulum-v1", g=float(env_config.get("g", 10.0)))


def make_not_an_env(env_config: dict):
    return {"not": "an env"}


def spins_fast(obs, reward, terminated, info) -> bool:
    return abs(float(obs[2])) > 7.0


def needs_five_arguments(obs, reward, terminated, truncated, info) -> bool:
    return False


NOT_CALLABLE = 3.0


def _pendulum(tmp_path, **top) -> str:
    """The shipped pendulum example with top-level keys replaced by ``top`` (None deletes the key)."""
    data = yaml.safe_load((CONFIG_DIR / "examples" / "pendulum.yaml").read_text())
    for key, value in top.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    path = tmp_path / "task.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def _step(predicate, obs=(0.0, 0.0, 0.0), reward=0.0, terminated=False, info=None) -> bool:
    return predicate(np.asarray(obs, np.float32), reward, terminated, info or {})


# --- parsing ---------------------------------------------------------------------------------------------


def test_terminated_form_fails_on_termination_only():
    predicate = failure_predicate("terminated")
    assert _step(predicate, terminated=True) is True
    assert _step(predicate, terminated=False) is False


def test_info_forms_truthy_and_thresholds():
    truthy = failure_predicate({"info": "cost"})
    assert isinstance(truthy, InfoFailure)
    assert _step(truthy, info={"cost": 1.0}) is True
    assert _step(truthy, info={"cost": 0.0}) is False
    assert _step(truthy, info={}) is False  # a step without the key is no failure
    above = failure_predicate({"info": "cost", "above": 0.5})
    assert _step(above, info={"cost": 0.6}) is True
    assert _step(above, info={"cost": 0.5}) is False  # strictly above
    below = failure_predicate({"info": "height", "below": 0.7})
    assert _step(below, info={"height": 0.6}) is True and _step(below, info={"height": 0.8}) is False


def test_obs_forms_index_the_flattened_observation():
    below = failure_predicate({"obs": 0, "below": -0.9})
    assert isinstance(below, ObsFailure)
    assert _step(below, obs=(-0.95, 0.0, 0.0)) is True
    assert _step(below, obs=(-0.85, 0.0, 0.0)) is False
    above = failure_predicate({"obs": 3, "above": 6})
    # Index 3 of a (2, 2) observation is its [1, 1] entry.
    assert above(np.array([[0.0, 9.0], [0.0, 6.5]]), 0.0, False, {}) is True
    assert above(np.array([[9.0, 9.0], [9.0, 5.0]]), 0.0, False, {}) is False


def test_python_form_imports_the_predicate_and_travels_by_name():
    predicate = failure_predicate({"python": f"{HERE}:spins_fast"})
    assert isinstance(predicate, ImportedPredicate)
    assert _step(predicate, obs=(0.0, 0.0, 7.5)) is True
    assert _step(predicate, obs=(0.0, 0.0, -7.5)) is True
    assert _step(predicate, obs=(0.0, 0.0, 6.5)) is False
    copy = pickle.loads(pickle.dumps(predicate))
    assert copy._function is None and _step(copy, obs=(0.0, 0.0, 8.0)) is True


@pytest.mark.parametrize(
    "spec, needle",
    [
        ({"obs": 0, "blow": 1.0}, "Unknown key 'blow' in failure"),
        ("terminatd", "failure='terminatd' is invalid"),
        (["terminated"], "is invalid: give one of"),
        ({"info": "cost", "obs": 0, "above": 1.0}, "exactly one of info, obs, python (got info, obs)"),
        ({"above": 1.0}, "exactly one of info, obs, python (got none of them)"),
        ({"obs": 0, "above": 1.0, "below": 0.0}, "give above or below, not both"),
        ({"obs": 0}, "failure.obs needs below: X or above: X"),
        ({"obs": -1, "above": 1.0}, "failure.obs=-1 is invalid"),
        ({"obs": True, "above": 1.0}, "failure.obs=True is invalid"),
        ({"obs": 0, "above": "high"}, "failure.above='high' is invalid: must be a finite number"),
        ({"obs": 0, "below": float("nan")}, "failure.below=nan is invalid"),
        ({"info": ""}, "failure.info='' is invalid"),
        ({"python": f"{HERE}:spins_fast", "above": 1.0}, "failure.python takes no above"),
        ({"python": "spins_fast"}, "failure.python='spins_fast' is invalid: expected an import path"),
        ({"python": "no_such_module_sqrl:fell"}, "module 'no_such_module_sqrl' cannot be imported"),
        ({"python": f"{HERE}:no_such_function"}, "has no attribute 'no_such_function'"),
        ({"python": f"{HERE}:NOT_CALLABLE"}, "'NOT_CALLABLE' is a float, not callable"),
    ],
)
def test_bad_spec_raises_naming_the_key(spec, needle):
    with pytest.raises(FailureSpecError) as err:
        failure_predicate(spec)
    assert needle in str(err.value)


def test_creator_paths_and_gymnasium_ids_are_told_apart():
    assert is_creator_path("my_task:make_env") and is_creator_path("pkg.mod:Factory.build")
    assert not is_creator_path("Hopper-v5") and not is_creator_path("sqrl/DrunkSpider-v0")
    assert not is_creator_path("my_pkg:MyEnv-v0")  # gymnasium's "import my_pkg, then make MyEnv-v0"


def test_registry_names_keep_sqrl_ids_and_tag_every_spec_apart():
    assert own_env_name("sqrl/DrunkSpider-v0") == "sqrl/DrunkSpider-v0"
    assert own_env_name("Hopper-v5", "terminated") == "Hopper-v5|terminated"
    assert own_env_name("Pendulum-v1", {"obs": 2, "above": 6}) == "Pendulum-v1|obs2>6.0"
    names = {
        own_env_name("X", spec)
        for spec in (None, "terminated", {"obs": 0, "above": 1}, {"obs": 0, "below": 1}, {"obs": 1, "above": 1})
        + ({"info": "cost"}, {"info": "cost", "above": 0.5}, {"python": "m:f"})
    }
    assert len(names) == 8


# --- the env the pipeline builds ---------------------------------------------------------------------------


def test_creator_wraps_the_env_with_the_failure_and_the_output_check():
    env = OwnEnvCreator("Pendulum-v1", {"obs": 2, "above": 6.0})({"g": 11.0})
    assert env.unwrapped.g == 11.0
    _, info = env.reset(seed=0)
    assert info["failure"] is False
    env.unwrapped.state = np.array([np.pi, 6.5])  # hanging down, turning counter-clockwise at 6.5 rad/s
    _, _, terminated, truncated, info = env.step(np.zeros(1, np.float32))
    assert info["failure"] is True and terminated is True and truncated is False
    env.reset(seed=0)
    env.unwrapped.state = np.array([np.pi, -6.5])  # the same speed clockwise: inside the one-way limit
    _, _, terminated, _, info = env.step(np.zeros(1, np.float32))
    assert info["failure"] is False and terminated is False
    env.unwrapped.state = np.array([0.0, np.nan])
    with pytest.raises(Exception, match="non-finite"):  # CheckedEnv: the NaN is caught at its step
        env.step(np.zeros(1, np.float32))


def test_module_callable_creator_gets_the_stage_env_config_and_pickles():
    creator = pickle.loads(pickle.dumps(OwnEnvCreator(f"{HERE}:make_pendulum", {"python": f"{HERE}:spins_fast"})))
    env = creator({"g": 12.0})
    assert env.unwrapped.g == 12.0
    env.reset(seed=0)
    env.unwrapped.state = np.array([0.0, -7.5])
    *_, terminated, _, info = env.step(np.zeros(1, np.float32))
    assert info["failure"] is True and terminated is True


def test_pendulum_example_by_name_builds_its_registered_env_per_stage():
    assert {"examples/pendulum", "examples/hopper"} <= set(available_experiments())
    experiment = prepare_experiment("examples/pendulum", [], quick=True, num_seeds=None)
    assert experiment["failure"] == {"obs": 2, "above": 6.0}
    pre, fine = build_config(experiment, "pretrain"), build_config(experiment, "finetune")
    assert pre.env == fine.env == "Pendulum-v1|obs2>6.0"
    assert (pre.env_config, fine.env_config) == ({"g": 10.0}, {"g": 11.0})
    # A path works as well as the name.
    by_path = prepare_experiment(str(CONFIG_DIR / "examples" / "pendulum.yaml"), [], quick=True, num_seeds=None)
    assert by_path["env"] == "Pendulum-v1"


def test_hopper_example_stages_differ_in_ctrl_cost_only():
    experiment = prepare_experiment("examples/hopper", [], quick=False, num_seeds=None)
    assert experiment["env"] == "Hopper-v5" and experiment["failure"] == "terminated"
    costs = []
    for stage in ("pretrain", "finetune"):
        env = OwnEnvCreator(experiment["env"], experiment["failure"])(experiment[stage]["env_config"])
        costs.append(env.unwrapped._ctrl_cost_weight)
        assert env.unwrapped._healthy_z_range == (0.7, float("inf"))  # the failure set is the same
        env.close()
    assert costs == [0.001, 0.01]


def test_registered_sqrl_id_keeps_working_without_failure():
    experiment = prepare_experiment("drunk_spider", [], quick=True, num_seeds=None)
    assert "failure" not in experiment
    assert build_config(experiment, "pretrain").env == "sqrl/DrunkSpider-v0"


# --- exit 2 from the CLI, before Ray --------------------------------------------------------------------------
# Every call passes --dry-run: should a check regress, the test fails after a plan, not after a training run.


@pytest.mark.parametrize(
    "top, needle",
    [
        ({"failure": {"obs": 0, "abve": 1.0}}, "Unknown key 'abve' in failure"),
        ({"failure": {"obs": 0, "above": 1.0, "below": 0.0}}, "give above or below, not both"),
        ({"failure": {"info": "cost", "python": f"{HERE}:spins_fast"}}, "exactly one of info, obs, python"),
        # Pendulum's observation is (cos theta, sin theta, theta_dot): flat indices 0..2.
        ({"failure": {"obs": 3, "above": 1.0}}, "failure.obs=3 is out of range"),
        ({"failure": {"python": "no_such_module_sqrl:fell"}}, "failure.python='no_such_module_sqrl:fell'"),
        ({"failure": {"python": f"{HERE}:NOT_CALLABLE"}}, "not callable"),
        ({"failure": {"python": f"{HERE}:needs_five_arguments"}}, "failure.python="),
        ({"failure": {"info": "cost"}}, "failure.info='cost': Pendulum-v1's info never has 'cost'"),
        ({"env": "NoSuchEnv-v0"}, "Unknown env 'NoSuchEnv-v0'"),
        ({"env": "no_such_module_sqrl:make_env"}, "env='no_such_module_sqrl:make_env': module"),
        ({"env": f"{HERE}:make_not_an_env"}, "returned a dict, not a gymnasium.Env"),
        ({"failure": None}, "env='Pendulum-v1' has no info['failure']"),
        ({"env": 3}, "env=3 is invalid"),
    ],
)
def test_bad_own_env_exits_2_naming_the_key_without_ray(tmp_path, capsys, top, needle):
    assert main([_pendulum(tmp_path, **top), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err, err
    assert not ray.is_initialized()


def test_missing_info_key_message_says_how_many_steps_were_probed(tmp_path, capsys):
    assert main([_pendulum(tmp_path, failure={"info": "cost"}), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert f"its reset and {PROBE_STEPS} random steps (pretrain.env_config)" in err
    # The probe looks at the env's own info, before the failure wrapper adds its key: Pendulum's is empty.
    assert "info keys seen: none" in err


def test_failing_predicate_names_the_step_and_the_signature(tmp_path, capsys):
    assert main([_pendulum(tmp_path, failure={"python": f"{HERE}:needs_five_arguments"}), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "raised on Pendulum-v1's step 1 (TypeError" in err
    assert "predicate(obs, reward, terminated, info)" in err


def test_bad_env_config_of_an_own_env_names_the_stage(capsys):
    assert main(["examples/pendulum", "--set", "finetune.env_config.gravity=3.0", "--dry-run"]) == 2
    assert "finetune.env_config={'g': 11.0, 'gravity': 3.0} is invalid for Pendulum-v1" in capsys.readouterr().err


def test_own_creator_and_predicate_validate(tmp_path):
    path = _pendulum(tmp_path, env=f"{HERE}:make_pendulum", failure={"python": f"{HERE}:spins_fast"})
    experiment = prepare_experiment(path, [], quick=True, num_seeds=None)
    assert build_config(experiment, "finetune").env == f"{HERE}:make_pendulum|python.{HERE}:spins_fast"
