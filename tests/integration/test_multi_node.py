"""SQRL on a 2-node Ray cluster (ray.cluster_utils.Cluster): EnvRunners land on both nodes."""

import ray
from ray.cluster_utils import Cluster

from sqrl_rllib.algorithms.sqrl import SQRLConfig


def test_env_runners_span_two_nodes():
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2})
    cluster.add_node(num_cpus=2)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    try:
        assert len([n for n in ray.nodes() if n["Alive"]]) == 2
        algo = (
            SQRLConfig()
            .environment("sqrl/DrunkSpider-v0", env_config={"task": "pretrain"})
            # Two CPUs per runner: each needs a whole node, so the two runners must use both nodes.
            .env_runners(num_env_runners=2, num_envs_per_env_runner=2, num_cpus_per_env_runner=2)
            .training(num_steps_sampled_before_learning_starts=64, train_batch_size_per_learner=32)
            .reporting(min_sample_timesteps_per_iteration=128)
            .sqrl(num_action_samples=4, hidden=(16, 16))
            .build_algo()
        )
        nodes = algo.env_runner_group.foreach_env_runner(
            lambda er: ray.get_runtime_context().get_node_id(), local_env_runner=False
        )
        assert len(set(nodes)) == 2
        result = algo.train()
        assert result["env_runners"]["num_env_steps_sampled_lifetime"] >= 128
        assert result["sqrl"]["num_sgd_steps"] > 0
        algo.stop()
    finally:
        ray.shutdown()
        cluster.shutdown()
