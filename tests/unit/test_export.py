"""Issue 18, item 3: the ONNX export and ``SafePolicy`` reproduce the RLlib module's safety mask.

One small SQRL RLModule (asymmetric action bounds, so a wrong unsquash shows) is saved as an RLModule
checkpoint and exported through the CLI. eps_safe is set to the median Q_safe of the policy mean over
the test states, so about half of them take the mean and half fall back to the safest sample: both
branches of the deterministic rule are compared with the torch path on the same normal draws.
"""

import json
import pickle
import subprocess
import sys

import gymnasium as gym
import numpy as np
import onnx
import pytest
import torch
from ray.rllib.utils.spaces.space_utils import get_base_struct_from_space, unsquash_action

from sqrl_rllib.algorithms.sqrl.torch.sqrl_torch_rl_module import SQRLTorchRLModule
from sqrl_rllib.core.networks import sample_squashed
from sqrl_rllib.deploy import SafePolicy
from sqrl_rllib.export import ONNX_OPSET, main

OBS_DIM, ACT_DIM, K, N_OBS = 3, 2, 16, 1000
ACTION_SPACE = gym.spaces.Box(np.array([-2.0, 0.0], np.float32), np.array([2.0, 1.0], np.float32))


def observations(n: int = N_OBS, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, OBS_DIM, generator=torch.Generator().manual_seed(seed)) * 4 - 2


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(module, export folder, eps_safe): the module saved with ``save_to_path`` and exported by the CLI."""
    root = tmp_path_factory.mktemp("export")
    torch.manual_seed(0)
    module = SQRLTorchRLModule(
        observation_space=gym.spaces.Box(-2, 2, (OBS_DIM,), np.float32),
        action_space=ACTION_SPACE,
        model_config={"hidden": (16, 16)},
    )
    module.eval()
    obs = observations()
    with torch.no_grad():
        mean_action = module.policy.mean_action(obs)
        eps_safe = float(module.q_safe(obs, mean_action[:, None]).median())
    module.save_to_path(root / "module")
    cmd = [sys.executable, "-m", "sqrl_rllib.export", str(root / "module"), str(root / "out")]
    cmd += ["--eps-safe", repr(eps_safe), "--num-action-samples", str(K)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return module, root / "out", eps_safe


def torch_env_actions(actions: torch.Tensor) -> np.ndarray:
    """What RLlib sends to the env: NormalizeAndClipActions' unsquash of the module's actions."""
    return unsquash_action(actions.numpy(), get_base_struct_from_space(ACTION_SPACE))


def test_deterministic_masked_action_equals_the_modules_on_1000_observations(exported):
    module, out, eps_safe = exported
    obs = observations()
    with torch.no_grad():
        dist_inputs = module.policy.distribution_inputs(obs)
        torch.manual_seed(7)
        actions, _, choice = module.masked_actions(obs, dist_inputs, K, eps_safe, "finetune", explore=False)
    torch.manual_seed(7)
    noise = torch.randn(N_OBS, K, ACT_DIM).numpy()  # sample_squashed's draws (candidate 0 zeroed: the mean)
    result = SafePolicy.load(out).act(obs.numpy(), deterministic=True, noise=noise)
    # eps_safe is the median: a rule that never falls back (or always does) is off on ~500 states.
    assert 0.4 < choice.fallback.float().mean() < 0.6
    np.testing.assert_array_equal(result.fallback, choice.fallback.numpy())
    np.testing.assert_array_equal(result.index, choice.index.numpy())
    np.testing.assert_allclose(result.normalized_action, actions.numpy(), atol=1e-5, rtol=0)
    np.testing.assert_allclose(result.action, torch_env_actions(actions), atol=1e-5, rtol=0)
    np.testing.assert_allclose(result.q_safe, choice.q_safe.numpy(), atol=1e-5, rtol=0)
    # Where the mean is safe the action does not depend on the draws: SafePolicy's own RNG gives it too.
    own = SafePolicy.load(out, seed=1).act(obs.numpy(), deterministic=True)
    mean_safe = ~choice.fallback.numpy()
    np.testing.assert_allclose(own.action[mean_safe], torch_env_actions(actions)[mean_safe], atol=1e-5, rtol=0)


def test_k_sample_mode_picks_the_torch_index_on_the_same_samples(exported):
    module, out, _ = exported
    obs = observations(seed=1)
    with torch.no_grad():
        dist_inputs = module.policy.distribution_inputs(obs)
        q_all = module.q_safe(obs, sample_squashed(dist_inputs, K)[0])
    # A low quantile: some states have no safe sample (fallback), many have a few (the uniform pick matters).
    eps_safe = float(q_all.quantile(0.3))
    with torch.no_grad():
        torch.manual_seed(11)
        actions, _, choice = module.masked_actions(
            obs, dist_inputs, K, eps_safe, "finetune", generator=torch.Generator().manual_seed(12)
        )
        torch.manual_seed(11)
        candidates, _ = sample_squashed(dist_inputs, K)
    keys = torch.rand((N_OBS, K), generator=torch.Generator().manual_seed(12))  # select_action_index's keys
    safe = (q_all < eps_safe).numpy()  # q_all was scored on other draws; only the mix of cases is checked
    mixed = safe.any(1) & ~safe.all(1)
    assert mixed.mean() > 0.2 and 0.02 < (~safe.any(1)).mean() < 0.9, (mixed.mean(), (~safe.any(1)).mean())

    policy = SafePolicy.load(out)
    policy.eps_safe = eps_safe
    picked = policy.select(obs.numpy(), candidates.numpy(), keys=keys.numpy())
    # A different rule (the riskiest safe sample, or no fallback) disagrees on most mixed states.
    np.testing.assert_array_equal(picked.index, choice.index.numpy())
    np.testing.assert_array_equal(picked.fallback, choice.fallback.numpy())
    np.testing.assert_allclose(picked.normalized_action, actions.numpy(), atol=1e-5, rtol=0)
    # act() builds the same candidates from the same normal draws.
    torch.manual_seed(11)
    noise = torch.randn(N_OBS, K, ACT_DIM).numpy()
    acted = policy.act(obs.numpy(), deterministic=False, noise=noise, keys=keys.numpy())
    np.testing.assert_array_equal(acted.index, choice.index.numpy())
    np.testing.assert_allclose(acted.action, torch_env_actions(actions), atol=1e-5, rtol=0)


def test_k_sample_mode_is_seeded_and_takes_safe_samples(exported):
    _, out, eps_safe = exported
    obs = observations(200, seed=2).numpy()
    first = SafePolicy.load(out, seed=3).act(obs, deterministic=False)
    again = SafePolicy.load(out, seed=3).act(obs, deterministic=False)
    other = SafePolicy.load(out, seed=4).act(obs, deterministic=False)
    np.testing.assert_array_equal(first.action, again.action)
    assert (np.abs(first.action - other.action).max(axis=1) > 1e-3).mean() > 0.9  # fresh draws per seed
    assert np.all(first.q_safe[~first.fallback] < eps_safe)
    assert np.all(ACTION_SPACE.low <= first.action) and np.all(first.action <= ACTION_SPACE.high)


def test_single_observation_gives_unbatched_results(exported):
    _, out, _ = exported
    obs = observations(4, seed=3).numpy()
    noise = np.random.default_rng(0).standard_normal((4, K, ACT_DIM)).astype(np.float32)
    policy = SafePolicy.load(out)
    batch = policy.act(obs, deterministic=False, noise=noise, keys=np.full((4, K), 0.5, np.float32))
    one = policy.act(obs[2], deterministic=False, noise=noise[2:3], keys=np.full((1, K), 0.5, np.float32))
    assert one.action.shape == (ACT_DIM,) and one.q_safe.shape == () and one.index.shape == ()
    np.testing.assert_allclose(one.action, batch.action[2], atol=1e-6)
    assert one.index == batch.index[2]


def test_metadata_records_the_mask_the_bounds_and_the_opset(exported):
    module, out, eps_safe = exported
    meta = json.loads((out / "safe_policy.json").read_text())
    assert meta["eps_safe"] == eps_safe and meta["eps_safe_source"] == "--eps-safe"
    assert meta["num_action_samples"] == K
    assert meta["action_low"] == [-2.0, 0.0] and meta["action_high"] == [2.0, 1.0]
    assert meta["action_transform"] == "unsquash"
    assert (meta["obs_dim"], meta["act_dim"], meta["opset"]) == (OBS_DIM, ACT_DIM, ONNX_OPSET)
    assert meta["source_checkpoint"].endswith("module") and meta["sqrl_rllib_version"]
    assert max(meta["export_max_abs_error"].values()) < 1e-5
    for name in ("policy.onnx", "q_safe.onnx"):
        opsets = {o.domain: o.version for o in onnx.load(out / name).opset_import}
        assert opsets[""] == ONNX_OPSET, (name, opsets)


def test_deploy_imports_neither_ray_nor_torch(exported):
    _, out, _ = exported
    code = (
        "import sys, numpy as np\n"
        "from sqrl_rllib.deploy import SafePolicy\n"
        f"policy = SafePolicy.load({str(out)!r}, seed=0)\n"
        f"policy.act(np.zeros({OBS_DIM})); policy.act(np.zeros((5, {OBS_DIM})), deterministic=False)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('ray', 'torch')))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]", result.stdout


def test_export_of_a_non_checkpoint_exits_2(tmp_path):
    (tmp_path / "empty").mkdir()
    cmd = [sys.executable, "-m", "sqrl_rllib.export", str(tmp_path / "empty"), str(tmp_path / "out")]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "is not an RLlib Algorithm or RLModule checkpoint" in result.stderr
    assert not (tmp_path / "out").exists()


def test_export_of_a_non_sqrl_checkpoint_exits_2(tmp_path, capsys):
    # An Algorithm checkpoint of another algorithm: its config has no eps_safe.
    algo = tmp_path / "ppo"
    (algo / "learner_group").mkdir(parents=True)
    (algo / "rllib_checkpoint.json").write_text("{}")
    with open(algo / "class_and_ctor_args.pkl", "wb") as f:
        pickle.dump({"class": "PPO", "ctor_args_and_kwargs": (({"lr": 1e-3},), {})}, f)
    with pytest.raises(SystemExit) as exit_info:
        main([str(algo), str(tmp_path / "out")])
    assert exit_info.value.code == 2
    assert "not of SQRL" in capsys.readouterr().err
    # An RLModule checkpoint of a module that is not SQRL's.
    from ray.rllib.algorithms.ppo.torch.default_ppo_torch_rl_module import DefaultPPOTorchRLModule
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig

    DefaultPPOTorchRLModule(
        observation_space=gym.spaces.Box(-1, 1, (OBS_DIM,), np.float32),
        action_space=ACTION_SPACE,
        model_config=DefaultModelConfig(fcnet_hiddens=[8]),
    ).save_to_path(tmp_path / "ppo_module")
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "ppo_module"), str(tmp_path / "out")])
    assert exit_info.value.code == 2
    assert "not an SQRL module" in capsys.readouterr().err
