"""Issue 18, item 3: exporting a real SQRL Algorithm checkpoint (one training iteration on DrunkSpider)."""

import json

import numpy as np
import pytest
import ray
import torch

from sqrl_rllib.algorithms.sqrl import SQRLConfig
from sqrl_rllib.algorithms.sqrl.sqrl import MODULE_COMPONENT
from sqrl_rllib.deploy import SafePolicy
from sqrl_rllib.export import export_checkpoint, load_sqrl_module, resolve_checkpoint

EPS_SAFE, K = 0.3, 12  # not SQRL's defaults (0.1, 100): the metadata must come from the checkpoint's config


@pytest.fixture(scope="module")
def algorithm_checkpoint(tmp_path_factory):
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    config = (
        SQRLConfig()
        .environment("sqrl/DrunkSpider-v0", env_config={"task": "pretrain"})
        .env_runners(num_env_runners=0, rollout_fragment_length=16)
        .training(num_steps_sampled_before_learning_starts=32, train_batch_size_per_learner=32)
        .reporting(min_sample_timesteps_per_iteration=64, min_time_s_per_iteration=0)
        .sqrl(phase="pretrain", eps_safe=EPS_SAFE, num_action_samples=K, hidden=(16, 16), mask_warmup_steps=0)
        .debugging(seed=0)
    )
    algo = config.build_algo()
    algo.train()
    path = algo.save_to_path(str(tmp_path_factory.mktemp("algo") / "checkpoint"))
    algo.stop()
    yield path
    ray.shutdown()


def test_algorithm_checkpoint_exports_its_config_and_its_masked_policy(algorithm_checkpoint, tmp_path):
    meta = export_checkpoint(algorithm_checkpoint, tmp_path / "out")
    assert json.loads((tmp_path / "out" / "safe_policy.json").read_text()) == meta
    assert (meta["eps_safe"], meta["num_action_samples"]) == (EPS_SAFE, K)
    assert meta["eps_safe_source"] == meta["num_action_samples_source"] == "checkpoint config"
    assert meta["phase"] == "pretrain" and meta["action_transform"] == "unsquash"
    assert (meta["obs_dim"], meta["act_dim"]) == (2, 2)
    # The MultiRLModule folder inside the checkpoint resolves to the same module.
    module_dir, config = resolve_checkpoint(algorithm_checkpoint)
    assert config["eps_safe"] == EPS_SAFE
    assert resolve_checkpoint(f"{algorithm_checkpoint}/{MODULE_COMPONENT}")[0] == module_dir

    module = load_sqrl_module(module_dir)
    obs = torch.rand(300, 2) * torch.tensor([8.0, 7.0])
    with torch.no_grad():
        dist_inputs = module.policy.distribution_inputs(obs)
        torch.manual_seed(0)
        actions, _, choice = module.masked_actions(obs, dist_inputs, K, EPS_SAFE, "pretrain", explore=False)
    torch.manual_seed(0)
    noise = torch.randn(300, K, 2).numpy()
    result = SafePolicy.load(tmp_path / "out").act(obs.numpy(), deterministic=True, noise=noise)
    np.testing.assert_array_equal(result.index, choice.index.numpy())
    np.testing.assert_allclose(result.action, np.clip(actions.numpy(), -1, 1), atol=1e-5, rtol=0)
