"""The pipeline runs CPO's trials from CPOConfig, in their own Tune run per stage (no Ray cluster); CPO's keys."""

from types import SimpleNamespace

import numpy as np
import pytest
from ray.rllib.core.columns import Columns
from ray.rllib.env.single_agent_episode import SingleAgentEpisode
from ray.tune.search.variant_generator import generate_variants

from sqrl_rllib.algorithms.cpo import CPO, CPOConfig
from sqrl_rllib.algorithms.cpo.cpo import COSTS
from sqrl_rllib.algorithms.cpo.keys import CPO_KEYS, check_cpo_keys
from sqrl_rllib.experiments import ExperimentError, prepare_experiment
from sqrl_rllib.methods import CPO_CONFIG, METHODS, PLANNED_METHODS, SQRL_CONFIG, check_methods, load_object
from sqrl_rllib.pipeline import finetune_config, pretrain_config, stage_config_classes

CHECKPOINTS = {(m, s): f"/runs/x/pretrain/{m}_{s}" for m in ("sqrl", "cpo") for s in (0, 1)}


def _variants(config):
    return [cfg for _, cfg in generate_variants(config.to_dict())]


def test_registry_entry():
    cpo = METHODS["cpo"]
    assert "cpo" not in PLANNED_METHODS and check_methods(["cpo"]) == ["cpo"]
    assert cpo.pretrained_by == "cpo" and not cpo.safety_grid and not cpo.critic_fit
    assert load_object(cpo.config_class) is CPOConfig and cpo.own_key_names() is CPO_KEYS
    # No safety switch on in either stage; the experiments' SAC reward scale (drunk_spider: 10) is reset.
    for stage in ("pretrain", "finetune"):
        keys = cpo.keys(stage)
        assert not any(keys[k] for k in ("safety_critic", "mask_enabled", "lagrangian", "pretrain_lagrangian"))
        assert keys["reward_scale"] == 1.0
    assert all(isinstance(help_text, str) and len(help_text) > 20 for _, help_text in CPO_KEYS.values())


def test_cpo_points_get_their_own_config_class_and_algorithm():
    experiment = prepare_experiment("drunk_spider", [], False, None, seeds=[0, 1], methods=["sqrl", "cpo"])
    for stage in ("pretrain", "finetune"):
        assert stage_config_classes(experiment, stage) == [SQRL_CONFIG, CPO_CONFIG]
    cpo = pretrain_config(experiment, [0, 1], CPO_CONFIG)
    assert cpo.algo_class.__name__ == "CPO"
    variants = _variants(cpo)
    assert sorted((v["method"], v["seed"]) for v in variants) == [("cpo", 0), ("cpo", 1)]
    # CPO's own defaults survive the experiment's config; drunk_spider's pretrain_lagrangian / reward_scale do not.
    for v in variants:
        assert v["critic_lr"] == 1e-3 and v["cpo_batch_size"] == 4000 and v["rollout_fragment_length"] == "auto"
        assert v["safety_critic"] is False and v["pretrain_lagrangian"] is False and v["reward_scale"] == 1.0
        assert v["gamma"] == 1.0  # the experiment's training.gamma
    fine = _variants(finetune_config(experiment, [0, 1], CHECKPOINTS, CPO_CONFIG))
    assert sorted((v["method"], v["pretrained_checkpoint"]) for v in fine) == [
        ("cpo", CHECKPOINTS[("cpo", 0)]),
        ("cpo", CHECKPOINTS[("cpo", 1)]),
    ]
    assert all(v["phase"] == "finetune" for v in fine)


def test_cpo_keys_go_under_method_config_and_are_validated():
    overrides = ["method_config.cpo.finetune.cost_limit=0.05", "method_config.cpo.pretrain.cpo_batch_size=1000"]
    experiment = prepare_experiment("drunk_spider", overrides, False, None, seeds=[0], methods=["cpo"])
    (pre,) = _variants(pretrain_config(experiment, [0], CPO_CONFIG))
    (fine,) = _variants(finetune_config(experiment, [0], CHECKPOINTS, CPO_CONFIG))
    assert (pre["cpo_batch_size"], pre["cost_limit"]) == (1000, None)
    assert (fine["cpo_batch_size"], fine["cost_limit"]) == (4000, 0.05)
    with pytest.raises(ExperimentError, match="cost_limit=-1 is invalid"):
        prepare_experiment("drunk_spider", ["method_config.cpo.finetune.cost_limit=-1"], False, None, methods=["cpo"])
    with pytest.raises(ExperimentError, match="max_kl=0 is invalid"):
        prepare_experiment("drunk_spider", ["method_config.cpo.pretrain.max_kl=0"], False, None, methods=["cpo"])
    # A safety switch CPO would ignore is refused by name.
    with pytest.raises(ExperimentError, match="mask_enabled=false"):
        prepare_experiment(
            "drunk_spider", ["method_config.cpo.finetune.mask_enabled=true"], False, None, methods=["cpo"]
        )
    # Another method's config class has no such key.
    with pytest.raises(ExperimentError, match="Unknown key 'cost_limit' in method_config.sqrl.finetune"):
        prepare_experiment("drunk_spider", ["method_config.sqrl.finetune.cost_limit=0.1"], False, None)


@pytest.mark.parametrize(
    "keys, message",
    [
        ({"cpo_batch_size": 1}, "cpo_batch_size=1 is invalid"),
        ({"cpo_batch_size": 10.5}, "cpo_batch_size=10.5 is invalid"),
        ({"cost_limit": "low"}, "cost_limit='low' is invalid"),
        ({"cost_gamma": 0.0}, "cost_gamma=0.0 is invalid"),
        ({"gae_lambda": 1.5}, "gae_lambda=1.5 is invalid"),
        ({"cost_gae_lambda": -0.1}, "cost_gae_lambda=-0.1 is invalid"),
        ({"max_kl": 0.0}, "max_kl=0.0 is invalid"),
        ({"cg_iters": 0}, "cg_iters=0 is invalid"),
        ({"cg_damping": -1.0}, "cg_damping=-1.0 is invalid"),
        ({"line_search_decay": 1.0}, "line_search_decay=1.0 is invalid"),
        ({"line_search_steps": 0}, "line_search_steps=0 is invalid"),
        ({"value_epochs": 0}, "value_epochs=0 is invalid"),
        ({"policy_init_log_std": None}, "policy_init_log_std=None is invalid"),
        ({"safety_critic": True}, "safety_critic=True is invalid"),
        ({"num_critics": 10}, "num_critics=10 is invalid"),
        ({"updates_per_env_step": 4.0}, "updates_per_env_step=4.0 is invalid"),
    ],
)
def test_bad_cpo_keys_name_the_key(keys, message):
    with pytest.raises(ValueError, match=message):
        check_cpo_keys(keys)


def test_cost_limit_and_fragment_length_defaults():
    config = CPOConfig()
    check_cpo_keys(config)  # the defaults are valid
    # d defaults to eps_safe (P(episode fails) <= eps_safe with an undiscounted cost); cost_limit wins.
    assert config.sqrl(eps_safe=0.07).effective_cost_limit() == 0.07
    assert config.cpo(cost_limit=0.2).effective_cost_limit() == 0.2
    assert config.effective_cost_gamma() == config.gamma == 0.99
    assert config.cpo(cost_gamma=1.0).effective_cost_gamma() == 1.0
    # "auto": one sampling round fills cpo_batch_size over all EnvRunners' envs (rounded up).
    config = CPOConfig().env_runners(num_env_runners=2, num_envs_per_env_runner=3).cpo(cpo_batch_size=1000)
    assert config.get_rollout_fragment_length(1) == 167
    assert CPOConfig().env_runners(num_env_runners=0).get_rollout_fragment_length() == 4000


def _chunk(id_, t_started, n, failure=False, terminated=False, truncated=False):
    """An episode chunk of n steps from t_started; with ``failure`` its last step fails (and terminates)."""
    infos = [{"failure": False}] * n + [{"failure": failure}]
    return SingleAgentEpisode(
        id_,
        observations=[np.full(2, t_started + i, np.float32) for i in range(n + 1)],
        actions=[np.full(2, 5.0, np.float32)] * n,  # outside [-1, 1]: the batch keeps the unclipped sample
        rewards=[1.0] * n,
        infos=infos,
        terminated=terminated or failure,
        truncated=truncated,
        t_started=t_started,
        len_lookback_buffer=0,
    )


def test_on_policy_batch_counts_each_episode_cost_once_across_batches():
    """J_C = mean over the episodes ended in a batch of gamma_c^T * failure, T counted from the episode's start
    even when its earlier chunks came in an earlier batch; GAE's flags end every chunk."""
    algo = SimpleNamespace(
        config=CPOConfig().training(gamma=0.5),
        _counters={"env_steps": 0},
        _open_costs={},
        _cost_return=None,
        _episode_length=None,
    )
    # Batch 1: "a" fails at its 3rd step (t = 2); "b" runs on (cut); "c" times out without failing.
    batch, failures, done = CPO._on_policy_batch(
        algo, [_chunk("a", 0, 3, failure=True), _chunk("b", 0, 4), _chunk("c", 0, 2, truncated=True)]
    )
    assert (failures, done) == (1, 2) and algo._cost_return == pytest.approx((0.5**2 + 0.0) / 2)
    assert algo._episode_length == pytest.approx(2.5) and set(algo._open_costs) == {"b"}
    rows = batch.policy_batches["default_policy"]
    assert list(rows[Columns.TERMINATEDS]) == [0, 0, 1, 0, 0, 0, 0, 0, 0]
    assert list(rows[Columns.TRUNCATEDS]) == [0, 0, 0, 0, 0, 0, 1, 0, 1]
    assert list(rows[COSTS]) == [0, 0, 1, 0, 0, 0, 0, 0, 0] and (rows[Columns.ACTIONS] == 5.0).all()
    # Batch 2: "b" goes on in two chunks and fails at t = 4 + 2 + 1 = 7; no other episode ends.
    _, failures, done = CPO._on_policy_batch(algo, [_chunk("b", 4, 3), _chunk("b", 7, 1, failure=True)])
    assert (failures, done) == (1, 1) and algo._cost_return == pytest.approx(0.5**7)
    assert algo._episode_length == 8 and algo._open_costs == {} and algo._counters["env_steps"] == 13
    # Batch 3: nothing ends, the estimates stay.
    CPO._on_policy_batch(algo, [_chunk("d", 0, 5)])
    assert algo._cost_return == pytest.approx(0.5**7) and set(algo._open_costs) == {"d"}
