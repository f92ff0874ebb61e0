"""CPO (constrained policy optimization, Achiam, Held, Tamar & Abbeel 2017) as an RLlib algorithm.

The SQRL paper's on-policy baseline. Cost = the env's failure indicator (``info["failure"]``, which SQRL's
episodes already carry); constraint: the expected discounted episode cost J_C <= d, d = ``cost_limit`` or
eps_safe (``sqrl_rllib.core.cpo.cost_limit_from_eps``; with ``cost_gamma`` 1, as on DrunkSpider whose
gamma is 1, J_C is the probability that an episode fails).

Each ``training_step`` (like RLlib's PPO, on the EnvRunners):

1. samples ``cpo_batch_size`` env steps with the current policy (episode fragments);
2. estimates J_C as the mean discounted cost of the episodes that ended in this batch (their earlier
   fragments' costs are carried over from previous batches), and the mean episode length;
3. hands the batch to :class:`~sqrl_rllib.algorithms.cpo.torch.cpo_torch_learner.CPOTorchLearner`, which
   computes reward and cost GAE advantages with the current value networks, takes one CPO step on the
   Gaussian policy (``sqrl_rllib.core.cpo.cpo_policy_update``: conjugate gradient on the KL's Fisher
   products, the closed-form step of the linearised problem, feasibility recovery, a backtracking line
   search on the KL, the surrogate and the cost surrogate) and fits both value networks;
4. syncs the new policy to the EnvRunners and logs SQRL's ``sqrl/...`` metrics (failures, episodes), so
   the results table, progress lines and TensorBoard tags are those of every other method.

:class:`CPO` reuses SQRL's Algorithm for setup, metrics, checkpoints and the pretraining -> fine-tuning
hand-over (``pretrained_checkpoint`` restores the policy and both value networks; the value optimizers
start fresh), with no replay at all: nothing of a replay is stored in checkpoints, and
``checkpoint_replay`` / ``replay_capacity`` / ``online_buffer_episodes`` have no effect::

    config = CPOConfig().environment("sqrl/DrunkSpider-v0", env_config={"task": "pretrain"})
    algo = config.cpo(cpo_batch_size=4000, cost_limit=0.1).build_algo()
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from ray.rllib.algorithms.algorithm_config import NotProvided
from ray.rllib.core import DEFAULT_MODULE_ID
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.execution.rollout_ops import synchronous_parallel_sample
from ray.rllib.policy.sample_batch import MultiAgentBatch, SampleBatch
from ray.rllib.utils.metrics import ENV_RUNNER_RESULTS, LEARNER_RESULTS

from sqrl_rllib.algorithms.cpo.keys import check_cpo_keys, cpo_defaults
from sqrl_rllib.algorithms.sqrl.episodes import dropped_episode, episode_columns
from sqrl_rllib.algorithms.sqrl.no_safety_critic import NoSafetyCritic, NoSafetyCriticConfig
from sqrl_rllib.algorithms.sqrl.sqrl import SQRL, SQRLConfig
from sqrl_rllib.core.cpo import cost_limit_from_eps

# Batch column of the per-step cost c_t = failure indicator of s_{t+1}.
COSTS = "costs"
CPO_STATE = "cpo"


class CPOConfig(NoSafetyCriticConfig, SQRLConfig):
    """Configuration of :class:`CPO`: SQRL's (SAC's) keys plus CPO's, set by :meth:`cpo`.

    CPO keys (``sqrl_rllib.algorithms.cpo.keys.CPO_KEYS``):
        cpo_batch_size (4000): env steps per iteration, the on-policy batch of one CPO step.
        cost_limit (None): d on J_C; None: eps_safe (so eps_safe is CPO's failure budget per episode).
        cost_gamma (None): discount of the cost (J_C and the cost advantages); None: gamma.
        gae_lambda (0.95), cost_gae_lambda (0.95): GAE lambdas of the reward and the cost advantages.
        max_kl (0.01): trust region delta; cg_iters (10), cg_damping (0.1): the conjugate-gradient solve.
        line_search_decay (0.8), line_search_steps (10): the backtracking line search.
        value_epochs (5): Adam passes over each batch fitting the reward and the cost value networks.
        policy_init_log_std (-0.5): initial log std of the Gaussian policy (state-independent).

    The policy is an unsquashed Gaussian (a tanh MLP mean of ``hidden`` sizes, the authors' 2 x 256 by
    default, and a learned state-independent log std) on [-1, 1]-normalised actions; RLlib clips each
    sample to the box when it maps it onto the env's bounds, while the episodes keep the sample itself,
    so the likelihood ratio and the KL are those of plain Gaussians (the CPO authors' choice).

    Inherited keys CPO reads: ``gamma``, ``critic_lr`` (Adam of both value nets, 1e-3 here),
    ``train_batch_size_per_learner`` (their minibatch size), ``rollout_fragment_length`` ("auto":
    ``cpo_batch_size`` split over the EnvRunners' envs), ``eps_safe`` (the default cost limit),
    ``reward_scale`` (factor on the rewards before GAE; the advantages are normalised, so it only
    rescales the reward value net's targets; the 'cpo' method sets 1), ``hidden``,
    ``policy_mean_init_scale``, ``phase``, ``pretrained_checkpoint`` and ``method`` ("cpo"). The safety
    switches are off (and must stay off); SAC's ``actor_lr``, ``alpha_lr``, ``initial_alpha``, ``tau``,
    ``num_steps_sampled_before_learning_starts`` and SQRL's mask / safety-critic / replay keys are unused
    (CPO learns from its first batch and steps its policy by the trust region, not by a learning rate).
    """

    def __init__(self, algo_class=None):
        super().__init__(algo_class=algo_class or CPO)
        for key, value in cpo_defaults().items():
            setattr(self, key, value)
        self.method = "cpo"
        self.safety_critic = False
        self.mask_enabled = False
        self.lagrangian = False
        self.pretrain_lagrangian = False
        self.critic_lr = 1e-3
        self.gamma = 0.99
        self.rollout_fragment_length = "auto"

    def cpo(
        self,
        *,
        cpo_batch_size=NotProvided,
        cost_limit=NotProvided,
        cost_gamma=NotProvided,
        gae_lambda=NotProvided,
        cost_gae_lambda=NotProvided,
        max_kl=NotProvided,
        cg_iters=NotProvided,
        cg_damping=NotProvided,
        line_search_decay=NotProvided,
        line_search_steps=NotProvided,
        value_epochs=NotProvided,
        policy_init_log_std=NotProvided,
    ) -> CPOConfig:
        """Set CPO's keys (see the class docstring for meaning and defaults)."""
        for key, value in locals().items():
            if key != "self" and value is not NotProvided:
                setattr(self, key, value)
        return self

    def validate(self) -> None:
        """SQRL's checks plus CPO's keys; a bad value raises ValueError naming the key."""
        super().validate()
        check_cpo_keys(self)
        if (self.num_learners or 0) > 1:
            raise ValueError(
                f"CPO config key num_learners={self.num_learners!r} is invalid: CPO's natural-gradient step runs "
                "on one Learner (0 or 1)"
            )

    def effective_cost_gamma(self) -> float:
        """The cost's discount: ``cost_gamma``, else ``gamma``."""
        return float(self.gamma if self.cost_gamma is None else self.cost_gamma)

    def effective_cost_limit(self) -> float:
        """d: ``cost_limit``, else eps_safe through ``cost_limit_from_eps`` (non-conservative: d = eps_safe)."""
        if self.cost_limit is not None:
            return float(self.cost_limit)
        return cost_limit_from_eps(float(self.eps_safe), self.effective_cost_gamma())

    def get_rollout_fragment_length(self, worker_index: int = 0) -> int:
        """With "auto": ``cpo_batch_size`` over all EnvRunners' envs (rounded up), so one round of sampling
        fills the batch; otherwise the set value."""
        if self.rollout_fragment_length == "auto":
            envs = self.num_envs_per_env_runner * max(self.num_env_runners or 0, 1)
            return max(1, math.ceil(self.cpo_batch_size / envs))
        return self.rollout_fragment_length

    def get_default_rl_module_spec(self) -> RLModuleSpec:
        """CPO's torch RLModule."""
        from sqrl_rllib.algorithms.cpo.torch.cpo_torch_rl_module import CPOTorchRLModule

        return RLModuleSpec(module_class=CPOTorchRLModule)

    @property
    def _model_config_auto_includes(self) -> dict[str, Any]:
        return super()._model_config_auto_includes | {"policy_init_log_std": self.policy_init_log_std}

    def get_default_learner_class(self):
        """CPO's torch Learner."""
        from sqrl_rllib.algorithms.cpo.torch.cpo_torch_learner import CPOTorchLearner

        return CPOTorchLearner


class CPO(NoSafetyCritic, SQRL):
    """CPO: on-policy batches, GAE for reward and cost, one trust-region step with a linearised cost constraint."""

    @classmethod
    def get_default_config(cls) -> CPOConfig:
        """A fresh :class:`CPOConfig`."""
        return CPOConfig()

    def setup(self, config) -> None:
        """SQRL's setup (EnvRunners, Learner, counters, pretrained module) without any replay."""
        # J_C of the latest batch that ended an episode, and the mean length of those episodes.
        self._cost_return: float | None = None
        self._episode_length: float | None = None
        # Discounted cost so far of the episodes still running at the end of the last batch (by episode id).
        self._open_costs: dict[str, float] = {}
        super().setup(config)

    def _build_buffers(self) -> None:
        """On-policy: no D_offline, no D_safe."""
        self.offline_buffer = None
        self.safety_buffer = None

    def training_step(self) -> None:
        """Sample ``cpo_batch_size`` on-policy env steps, take one CPO step on them, sync the policy."""
        cfg = self.config
        episodes, env_runner_results = synchronous_parallel_sample(
            worker_set=self.env_runner_group,
            max_env_steps=cfg.cpo_batch_size,
            concat=True,
            sample_timeout_s=cfg.sample_timeout_s,
            _uses_new_env_runners=True,
            _return_metrics=True,
        )
        self.metrics.aggregate(env_runner_results, key=ENV_RUNNER_RESULTS)
        batch, failures, done = self._on_policy_batch(episodes)
        if batch is not None:
            # Before any episode has ended J_C is unknown: the constraint counts as met (c = -d).
            cost_return = 0.0 if self._cost_return is None else self._cost_return
            results = self.learner_group.update(
                batch=batch,
                minibatch_size=None,
                num_epochs=1,
                timesteps=self._timesteps(),
                constraint_value=cost_return - cfg.effective_cost_limit(),
                episode_length=self._episode_length or float(batch.env_steps()),
            )
            self.metrics.aggregate(results, key=LEARNER_RESULTS)
            self._counters["sgd_steps"] += 1
            self.env_runner_group.sync_weights(
                from_worker_or_learner_group=self.learner_group, policies=[DEFAULT_MODULE_ID], inference_only=True
            )
        self._log_safety_metrics(failures, done)
        if self._cost_return is not None:
            self.metrics.log_value(("sqrl", "cpo_cost_return"), self._cost_return, window=1)
            self.metrics.log_value(("sqrl", "cpo_cost_limit"), cfg.effective_cost_limit(), window=1)

    def _on_policy_batch(self, episodes) -> tuple[MultiAgentBatch | None, int, int]:
        """The Learner's batch from the sampled episode chunks, and (failures, episodes ended) in them.

        Each chunk's last row ends GAE's recursion: terminated if the episode terminated, truncated
        otherwise (a time limit, or the chunk was cut and its episode goes on in the next batch). Updates
        the J_C and episode-length estimates from the episodes that ended in this batch (kept from the
        previous batch if none did).
        """
        cfg = self.config
        gamma_c = cfg.effective_cost_gamma()
        columns: list[dict[str, np.ndarray]] = []
        ended_costs, ended_lengths = [], []
        failures = 0
        open_costs: dict[str, float] = {}
        for episode in episodes:
            cols = episode_columns(episode)
            n = len(cols["rewards"])
            dropped = dropped_episode(episode)
            if dropped:  # bad env output ended it (bad_output: drop_episode): no episode cost from it
                self._counters["dropped_episodes"] += 1
                open_costs.pop(episode.id_, None)
                self._open_costs.pop(episode.id_, None)
            if n == 0:
                continue
            truncated = np.zeros(n, np.float32)
            truncated[-1] = 0.0 if episode.is_terminated else 1.0
            cols["truncated"] = truncated
            columns.append(cols)
            self._counters["env_steps"] += n
            # sum_t gamma_c^t c_t over the whole episode, t counted from its start (t_started of the chunk).
            powers = gamma_c ** (episode.t_started + np.arange(n, dtype=np.float64))
            # The cost so far: of an earlier chunk in this batch, else of the previous batch's last chunk.
            earlier = open_costs.pop(episode.id_, None)
            cost = self._open_costs.get(episode.id_, 0.0) if earlier is None else earlier
            cost += float((powers * cols["failure"]).sum())
            if episode.is_done and not dropped:
                ended_costs.append(cost)
                ended_lengths.append(episode.t_started + n)
                failures += int(cols["failure"][-1] > 0.5)
            else:
                open_costs[episode.id_] = cost
        # Only episodes still running carry over (a lost EnvRunner's episodes are dropped here).
        self._open_costs = open_costs
        if ended_costs:
            self._cost_return = float(np.mean(ended_costs))
            self._episode_length = float(np.mean(ended_lengths))
        if not columns:
            return None, failures, len(ended_costs)
        cat = {k: np.concatenate([c[k] for c in columns]) for k in columns[0]}
        batch = SampleBatch(
            {
                Columns.OBS: cat["obs"],
                Columns.ACTIONS: cat["actions"],
                Columns.REWARDS: cat["rewards"],
                Columns.NEXT_OBS: cat["next_obs"],
                Columns.TERMINATEDS: cat["terminated"],
                Columns.TRUNCATEDS: cat["truncated"],
                COSTS: cat["failure"],
            }
        )
        return MultiAgentBatch({DEFAULT_MODULE_ID: batch}, env_steps=len(cat["rewards"])), failures, len(ended_costs)

    # -- checkpoints --------------------------------------------------------------------------
    def get_state(self, components=None, *, not_components=None, **kwargs) -> dict[str, Any]:
        """SQRL's state (counters; CPO has no replay) plus the J_C and episode-length estimates."""
        state = super().get_state(components, not_components=not_components, **kwargs)
        if self._check_component(CPO_STATE, components, not_components):
            state[CPO_STATE] = {"cost_return": self._cost_return, "episode_length": self._episode_length}
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore SQRL's state and CPO's estimates."""
        super().set_state(state)
        cpo_state = state.get(CPO_STATE)
        if cpo_state:
            self._cost_return = cpo_state["cost_return"]
            self._episode_length = cpo_state["episode_length"]
