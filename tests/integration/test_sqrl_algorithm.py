"""SQRL on RLlib: pretrain -> checkpoint -> fine-tune with 2 EnvRunners x 2 envs each."""

import math

import numpy as np
import pytest
import ray
import torch

from sqrl_rllib.algorithms.sqrl import SQRLConfig


@pytest.fixture(scope="module")
def ray_local():
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def small_config(phase: str, task: str) -> SQRLConfig:
    return (
        SQRLConfig()
        .environment("sqrl/DrunkSpider-v0", env_config={"task": task})
        .env_runners(num_env_runners=2, num_envs_per_env_runner=2, rollout_fragment_length=16)
        .training(num_steps_sampled_before_learning_starts=128, train_batch_size_per_learner=64)
        .reporting(min_sample_timesteps_per_iteration=128, min_time_s_per_iteration=0)
        .sqrl(phase=phase, num_action_samples=8, hidden=(32, 32), safety_update_every=4, safety_steps_per_round=2)
        .debugging(seed=0)
    )


def module_state(algo) -> dict[str, torch.Tensor]:
    return algo.learner_group._learner.module["default_policy"].state_dict()


def optimizer_steps(algo, name: str) -> int:
    """Adam steps taken so far by the learner's optimizer ``name`` (e.g. "policy")."""
    optimizer = algo.learner_group._learner._named_optimizers[f"default_policy_{name}"]
    return int(next(iter(optimizer.state.values()))["step"])


def test_pretrain_then_finetune_starts_from_pretrained_weights(ray_local, tmp_path):
    pre = small_config("pretrain", "pretrain").build_algo()
    initial = {k: v.clone() for k, v in module_state(pre).items()}
    mask_active, failures, episodes = [], 0, 0
    for _ in range(3):
        result = pre.train()
        mask_active.append(result["sqrl"]["mask_active"])
        failures += result["sqrl"]["failures"]
        episodes += result["sqrl"]["episodes"]
    # Algorithm 1's warm-up: unmasked until Q_safe's first training round, masked after it.
    assert mask_active[0] == 0.0 and mask_active[-1] == 1.0, mask_active
    assert bool(module_state(pre)["mask_active"])
    # Polyak averaging moves both target networks (a regression: it once never ran).
    for prefix in ("target_qf.", "target_safety_critic."):
        moved = [k for k, v in module_state(pre).items() if k.startswith(prefix) and not torch.equal(v, initial[k])]
        assert moved, f"{prefix} never updated"
    sqrl = result["sqrl"]
    # The failure counts agree with the data: every failed episode left exactly one failing row in D_offline
    # (nothing is evicted at this size), and the per-iteration counts add up to the cumulative ones.
    assert sqrl["cumulative_failures"] == failures == len(pre.offline_buffer.failing_indices())
    assert sqrl["cumulative_episodes"] == episodes > 0
    assert sqrl["cumulative_failure_rate"] == pytest.approx(failures / episodes)
    assert (
        sqrl["offline_buffer_size"]
        == len(pre.offline_buffer)
        == result["env_runners"]["num_env_steps_sampled_lifetime"]
    )
    # The learner cuts its minibatches itself: exactly one optimizer step per counted SGD step, and every
    # SAC step updates alpha too (alpha starts at 1: a temperature that is not trained stays there).
    assert sqrl["num_sgd_steps"] > 0 and sqrl["num_safety_critic_steps"] > 0
    assert optimizer_steps(pre, "policy") == optimizer_steps(pre, "alpha") == sqrl["num_sgd_steps"]
    assert optimizer_steps(pre, "safety") == sqrl["num_safety_critic_steps"]
    assert result["learners"]["default_policy"]["alpha"] != 1.0
    # Once the warm-up is over the remote EnvRunners' mask scores candidates (it logs only when it runs;
    # its values are checked in tests/unit/test_safety_mask_connector.py).
    assert "mask_rejection_rate" in result["env_runners"]
    checkpoint = pre.save_to_path(str(tmp_path / "pretrain"))
    pretrained = {k: v.clone() for k, v in module_state(pre).items()}
    pretrain_replay = pre.offline_buffer.all()

    # Fitting Q_safe further on D_offline moves the safety critic and nothing else.
    with pytest.raises(ValueError, match="failure_fraction"):
        pre.fit_safety_critic(5, failure_fraction=1.0)
    with pytest.raises(ValueError, match="num_steps"):
        pre.fit_safety_critic(0)
    stats = pre.fit_safety_critic(12, chunk=5)
    assert optimizer_steps(pre, "safety") == sqrl["num_safety_critic_steps"] + 12
    assert {"safety_loss", "q_safe_safe_mean"} <= stats.keys()
    fitted = module_state(pre)
    for key, tensor in pretrained.items():
        assert torch.equal(tensor, fitted[key]) != ("safety_critic." in key), key
    pre.stop()

    # restore_nu starts from the checkpoint's nu (1.0), which must lie below nu_max.
    with pytest.raises(ValueError, match="nu_max"):
        small_config("finetune", "finetune").env_runners(num_env_runners=0).sqrl(
            pretrained_checkpoint=checkpoint, nu_init=0.5, nu_max=0.9, restore_nu=True
        ).build_algo()

    # A new eps_safe below every Q_safe of the barely trained critic: the constraint is violated, so
    # dual ascent drives nu up from nu_init (not the checkpoint's 1.0) into the nu_max cap.
    ft_config = small_config("finetune", "finetune").sqrl(
        pretrained_checkpoint=checkpoint, eps_safe=0.001, nu_lr=0.5, nu_init=1.2, nu_max=1.5
    )
    ft = ft_config.build_algo()
    restored = module_state(ft)
    assert len(ft.offline_buffer) == 0  # Algorithm 2: D_offline starts empty
    assert pretrained.keys() == restored.keys()
    assert restored["log_nu"].item() == pytest.approx(math.log(1.2))
    for key, tensor in pretrained.items():
        if key != "log_nu":
            assert torch.equal(tensor, restored[key]), key
    # The EnvRunners act with the pretrained policy and safety critic too.
    runner_states = ft.env_runner_group.foreach_env_runner(
        lambda er: {k: v.clone() for k, v in er.module.state_dict().items()}, local_env_runner=False
    )
    for state in runner_states:
        for key, tensor in state.items():
            assert torch.equal(tensor, pretrained[key]), key
    result = ft.train()
    learner = result["learners"]["default_policy"]
    # log nu moves by ~nu_lr per Adam step: from log 1.2 = 0.18 past log 1.5 = 0.41 in the first steps,
    # then the cap holds it there (uncapped it would reach e^(0.18 + 0.5 n)); a sign-flipped dual loss
    # lowers it below 1.2.
    assert learner["q_safe_policy_mean"] > 0.001
    assert learner["nu"] == pytest.approx(1.5, abs=1e-5)
    assert result["sqrl"]["mask_active"] == 1.0 and "mask_rejection_rate" in result["env_runners"]
    # Fine-tuning keeps Q_safe frozen by default, although the Lagrangian differentiates through it: the
    # same weights (and target), no safety step counted, and its optimizer never stepped.
    assert result["sqrl"]["num_sgd_steps"] > 0 and result["sqrl"]["num_safety_critic_steps"] == 0
    after = module_state(ft)
    for key, tensor in pretrained.items():
        if "safety_critic." in key:
            assert torch.equal(tensor, after[key]), key
    assert not ft.learner_group._learner._named_optimizers["default_policy_safety"].state
    ft.stop()

    # restore_replay: fine-tuning's D_offline starts as the checkpoint's, row for row.
    kept = small_config("finetune", "finetune").env_runners(num_env_runners=0)
    kept = kept.sqrl(pretrained_checkpoint=checkpoint, restore_replay=True).build_algo()
    assert kept.offline_buffer.num_added == len(pretrain_replay["obs"]) > 0
    for name, column in pretrain_replay.items():
        assert np.array_equal(kept.offline_buffer.all()[name], column), name
    kept.stop()

    # A pretraining that continues this one (a curriculum): its weights and data, Algorithm 1 again, and
    # Q_safe keeps learning (it is frozen only while fine-tuning).
    more = small_config("pretrain", "pretrain").env_runners(num_env_runners=0)
    more = more.sqrl(pretrained_checkpoint=checkpoint, restore_replay=True).build_algo()
    assert more.offline_buffer.num_added == len(pretrain_replay["obs"])
    continued = {k: v.clone() for k, v in module_state(more).items()}
    for key, tensor in pretrained.items():
        if key != "log_nu":
            assert torch.equal(tensor, continued[key]), key
    result = more.train()
    assert result["sqrl"]["num_safety_critic_steps"] > 0
    assert more.offline_buffer.num_added > len(pretrain_replay["obs"])
    moved = module_state(more)
    assert any(not torch.equal(continued[k], moved[k]) for k in continued if k.startswith("safety_critic."))
    more.stop()


def test_sac_method_trains_no_safety_critic_and_never_masks(ray_local):
    from sqrl_rllib.methods import METHODS

    algo = small_config("pretrain", "pretrain").sqrl(method="sac", **METHODS["sac"].keys("pretrain")).build_algo()
    before = {k: v.clone() for k, v in module_state(algo).items()}
    for _ in range(3):
        result = algo.train()
    sqrl = result["sqrl"]
    assert sqrl["num_sgd_steps"] > 0 and sqrl["num_safety_critic_steps"] == 0 and sqrl["mask_active"] == 0.0
    after = module_state(algo)
    for name in before:
        changed = not torch.equal(before[name], after[name])
        # The policy and critics learn; Q_safe (and its target) never move; nu stays, no Lagrangian.
        if name.startswith(("safety_critic.", "target_safety_critic.")) or name == "log_nu":
            assert not changed, name
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("policy."))
    assert "safety_loss" not in result["learners"]["default_policy"]
    algo.stop()


def test_esac_method_trains_an_ensemble_of_ten_critics_without_safety(ray_local):
    from sqrl_rllib.methods import METHODS

    keys = METHODS["esac"].keys("pretrain") | {"critic_target_aggregate": 30.0, "critic_target_entropy": False}
    algo = small_config("pretrain", "pretrain").sqrl(method="esac", **keys).build_algo()
    module = algo.learner_group._learner.module["default_policy"].unwrapped()
    assert module.qf.n == 10 and module.target_qf.n == 10
    before = {k: v.clone() for k, v in module_state(algo).items()}
    for _ in range(3):
        result = algo.train()
    after = module_state(algo)
    algo.stop()
    assert result["sqrl"]["num_sgd_steps"] > 0 and result["sqrl"]["mask_active"] == 0.0
    # Every one of the ten critics learns (one batched net: each member's slice of the first layer moves).
    first = next(k for k in before if k.startswith("qf.") and k.endswith("weight"))
    assert all(not torch.equal(before[first][i], after[first][i]) for i in range(10))
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("safety_critic."))


def test_rs_method_penalises_the_critic_by_q_safe_without_masking(ray_local):
    from sqrl_rllib.methods import METHODS

    def run(nu_init: float):
        config = small_config("finetune", "finetune").sqrl(
            method="rs", nu_init=nu_init, **METHODS["rs"].keys("finetune")
        )
        algo = config.build_algo()
        before = {k: v.clone() for k, v in module_state(algo).items()}
        for _ in range(3):
            result = algo.train()
        after = module_state(algo)
        algo.stop()
        stats = result["learners"]["default_policy"]
        assert result["sqrl"]["mask_active"] == 0.0 and result["sqrl"]["num_safety_critic_steps"] == 0
        assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("safety_critic."))
        assert not torch.equal(before["log_nu"], after["log_nu"])  # lambda learns by dual ascent
        return stats["q_mean"]

    # The same seed and data up to the reward: a large lambda * Q_safe (Q_safe ~0.5 untrained) drags Q down.
    assert run(nu_init=50.0) < run(nu_init=1e-3) - 1.0


def test_invalid_config_names_the_key():
    # Without a safety critic nothing may use one.
    with pytest.raises(
        ValueError, match="safety_critic=False is invalid: without a safety critic set mask_enabled=false"
    ):
        SQRLConfig().sqrl(safety_critic=False).validate()
    with pytest.raises(ValueError, match="method"):
        SQRLConfig().sqrl(method="ppo").validate()
    with pytest.raises(ValueError, match="eps_safe"):
        SQRLConfig().sqrl(eps_safe=1.5).validate()
    with pytest.raises(ValueError, match="num_action_samples"):
        SQRLConfig().sqrl(num_action_samples=0).validate()
    with pytest.raises(ValueError, match="phase"):
        SQRLConfig().sqrl(phase="transfer").validate()
    with pytest.raises(ValueError, match="safety_offline_fraction"):
        SQRLConfig().sqrl(safety_offline_fraction=1.5).validate()
    with pytest.raises(ValueError, match="nu_max"):
        SQRLConfig().sqrl(nu_init=5.0, nu_max=2.0).validate()
    with pytest.raises(ValueError, match="num_critics=0 is invalid"):
        SQRLConfig().sqrl(num_critics=0).validate()
    with pytest.raises(ValueError, match="critic_target_aggregate='max' is invalid"):
        SQRLConfig().sqrl(critic_target_aggregate="max").validate()


def test_a_nan_parameter_stops_training_naming_it(ray_local):
    """Issue 19: a NaN in the networks raises at the next update instead of training on garbage."""
    from sqrl_rllib.core.finite import NonFiniteError

    algo = small_config("pretrain", "pretrain").env_runners(num_env_runners=0).build_algo()
    algo.train()  # learning has started

    def poison(learner):
        with torch.no_grad():
            learner.module["default_policy"].unwrapped().policy.net[0].weight[0, 0] = float("nan")

    algo.learner_group.foreach_learner(poison)
    with pytest.raises(NonFiniteError, match=r"(loss \w+_loss is nan|parameter \S+ has \d+ non-finite)"):
        for _ in range(3):
            algo.train()
    algo.stop()


def test_a_broken_env_stops_sampling_at_the_bad_step(ray_local):
    """Issue 19: an env returning a NaN observation fails at that step, naming the env and the step."""
    import gymnasium as gym
    import numpy as np
    from ray.tune.registry import register_env

    from sqrl_rllib.envs import EnvOutputError, with_failure

    class NanAtStep(gym.Env):
        observation_space = gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        action_space = gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)

        def reset(self, *, seed=None, options=None):
            self.t = 0
            return np.zeros(2, np.float32), {}

        def step(self, action):
            self.t += 1
            obs = np.full(2, np.nan if self.t == 7 else 0.0, np.float32)
            return obs, 0.0, False, self.t >= 20, {}

    register_env("nan_at_step_7", lambda cfg: with_failure(NanAtStep(), lambda obs, r, term, info: False))
    config = small_config("pretrain", "pretrain").environment("nan_at_step_7", env_config={})
    algo = config.env_runners(num_env_runners=0).build_algo()
    with pytest.raises(RuntimeError) as err:  # RLlib's EnvRunner re-raises the env's error as the cause
        algo.train()
    algo.stop()
    assert isinstance(err.value.__cause__, EnvOutputError)
    assert "NanAtStep, step 7: observation has non-finite values" in str(err.value.__cause__)


def test_bad_output_drop_episode_keeps_training_and_counts_the_dropped_episodes(ray_local):
    """Issue 19: with ``bad_output: drop_episode`` an env that sends a NaN observation in every 3rd episode
    does not stop the run: those episodes end at the bad step, are counted apart, and nothing non-finite
    reaches the replay or the weights."""
    import gymnasium as gym
    import numpy as np
    from ray.tune.registry import register_env

    from sqrl_rllib.envs import with_failure
    from sqrl_rllib.envs.checked import pop_bad_output

    class NanEveryThirdEpisode(gym.Env):
        observation_space = gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        action_space = gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)

        def __init__(self):
            self.episode = -1

        def reset(self, *, seed=None, options=None):
            self.t, self.episode = 0, self.episode + 1
            return np.zeros(2, np.float32), {}

        def step(self, action):
            self.t += 1
            broken = self.episode % 3 == 2 and self.t == 5
            obs = np.full(2, np.nan if broken else 0.1 * np.clip(action, -1, 1).sum(), np.float32)
            return obs, float(action[0]), False, self.t >= 10, {}

    def creator(cfg):
        mode, _ = pop_bad_output(cfg)
        return with_failure(NanEveryThirdEpisode(), lambda obs, r, term, info: False, bad_output=mode)

    register_env("nan_every_third_episode", creator)
    config = small_config("pretrain", "pretrain").environment(
        "nan_every_third_episode", env_config={"bad_output": "drop_episode"}
    )
    algo = config.env_runners(num_env_runners=0, num_envs_per_env_runner=1).build_algo()
    try:
        for _ in range(4):
            result = algo.train()
        sqrl = result["sqrl"]
        # 512+ steps of 10-step episodes: ~50 episodes, a third of them dropped at their 5th step.
        assert sqrl["dropped_episodes"] >= 10, sqrl
        assert sqrl["cumulative_episodes"] >= 2 * sqrl["dropped_episodes"] - 2, sqrl
        assert sqrl["num_sgd_steps"] > 0
        stored = algo.offline_buffer.all()
        assert all(np.isfinite(v).all() for v in stored.values())
        # The stand-in transitions (obs repeated, reward 0) are not stored: a dropped episode keeps 4 steps.
        assert len(algo.offline_buffer) == algo._counters["env_steps"]
        assert all(torch.isfinite(p).all() for p in module_state(algo).values())
    finally:
        algo.stop()
