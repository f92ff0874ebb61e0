"""SQRL (Srinivasan et al., "Learning to be Safe") as an RLlib algorithm on the new API stack.

``SQRLConfig`` adds the safety keys to SAC's config; ``SQRL.training_step`` implements Algorithm 1
(pretraining: masked exploration, SAC on D_offline, safety critic on the online buffer D_safe) and
Algorithm 2 (fine-tuning from a pretraining checkpoint with the mask and the Lagrangian term).

Starting fine-tuning from pretraining::

    config = SQRLConfig().environment("sqrl/DrunkSpider-v0", env_config={"task": "finetune"})
    config = config.sqrl(phase="finetune", pretrained_checkpoint="/path/to/pretrain/checkpoint")
    algo = config.build_algo()

restores the policy, the twin critics and their targets, alpha and Q_safe (all of the RLModule's
state) from the checkpoint, and starts nu at ``nu_init`` (``restore_nu=True`` keeps the checkpoint's);
optimizers start fresh (fine-tuning is a new problem with
a new loss, and Adam's moments from pretraining would carry the old task's gradient scale).
The env, its task and eps_safe may all differ from pretraining.

Before saving the pretraining checkpoint, ``algo.fit_safety_critic(num_steps, failure_fraction)``
(or, on a saved checkpoint, ``offline.fit_checkpoint_safety_critic``; the Tune pipeline's
``pretrain.critic_fit``) trains Q_safe further on all of D_offline, failures over-drawn.
"""

from __future__ import annotations

import math
import pathlib
import pickle
from typing import Any

import numpy as np
import torch
from ray.rllib.algorithms.algorithm_config import NotProvided
from ray.rllib.algorithms.sac.sac import SAC, SACConfig
from ray.rllib.core import COMPONENT_LEARNER, COMPONENT_RL_MODULE, DEFAULT_MODULE_ID
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.execution.rollout_ops import synchronous_parallel_sample
from ray.rllib.policy.sample_batch import MultiAgentBatch, SampleBatch
from ray.rllib.utils.metrics import (
    ENV_RUNNER_RESULTS,
    LEARNER_RESULTS,
    NUM_AGENT_STEPS_SAMPLED_LIFETIME,
    NUM_ENV_STEPS_SAMPLED_LIFETIME,
)

from sqrl_rllib.algorithms.sqrl.episodes import dropped_episode, episode_columns
from sqrl_rllib.algorithms.sqrl.inherited_keys import check_inherited_sac_keys
from sqrl_rllib.algorithms.sqrl.keys import check_sqrl_keys, sqrl_defaults
from sqrl_rllib.algorithms.sqrl.torch.sqrl_torch_rl_module import (
    SAFE_ACTIONS,
    SAFE_FAILURE,
    SAFE_NEXT_OBS,
    SAFE_OBS,
    SAFE_TERMINATED,
)
from sqrl_rllib.core.replay import ColumnarReplay, OnlineSafetyBuffer, failure_enriched_sample, mixed_sample
from sqrl_rllib.envs.rllib import register_rllib_envs
from sqrl_rllib.export import CHECKPOINT_MODULE

# Where an RLlib Algorithm checkpoint keeps the RLModule's state.
MODULE_COMPONENT = "/".join(CHECKPOINT_MODULE)
SQRL_STATE = "sqrl"


def stored_replay(checkpoint: str | pathlib.Path) -> dict[str, Any]:
    """The D_offline an SQRL Algorithm ``checkpoint`` stored (``checkpoint_replay``), as ``ColumnarReplay.get_state``
    returns it (``columns``: obs, actions, rewards, next_obs, terminated, failure, oldest first); read without
    building an Algorithm. Raises ValueError for a directory that is not such a checkpoint or holds no replay."""
    path = pathlib.Path(checkpoint) / "algorithm_state.pkl"
    if not path.is_file():
        raise ValueError(f"{str(checkpoint)!r} is not an SQRL Algorithm checkpoint (no {path.name})")
    with path.open("rb") as f:
        buffer = (pickle.load(f).get(SQRL_STATE) or {}).get("offline_buffer")
    if buffer is None:
        raise ValueError(f"{str(checkpoint)!r} was saved without its buffers (checkpoint_replay=False): no D_offline")
    return buffer


class SQRLConfig(SACConfig):
    """Configuration of :class:`SQRL`: SAC's keys plus the safety keys set by :meth:`sqrl`.

    Safety keys (defaults from the paper's appendix B):
        eps_safe (0.1): Q_safe threshold of the mask and the constraint, in (0, 1).
        gamma_safe (0.7): discount of the failure probability, in (0, 1].
        num_action_samples (100): K, candidate actions per env step scored by Q_safe.
        phase ("pretrain"): "pretrain" (Algorithm 1) or "finetune" (Algorithm 2).
        safety_critic_lr (3e-4): Adam learning rate of Q_safe.
        safety_loss ("bce"): "bce" (authors' code, sigmoid cross-entropy) or "mse" (paper).
        safety_target_network (True): Bellman target from a polyak target Q_safe (else live net).
        safety_target_policy ("pi"): a' of the safety target from pi (appendix D, the authors' code) or
            "masked": pi_safe of eq. 5, the mean of Qbar over the safe ones of safety_target_samples
            draws from pi (the critic of the policy that acts; see docs/sqrl_vs_paper.md).
        safety_target_samples (20): draws of a' per next state with safety_target_policy="masked".
        online_buffer_episodes (10): size of D_safe in episodes (latest masked-policy episodes).
        safety_offline_fraction (0.5): share of each Q_safe minibatch drawn from D_offline, which keeps
            the failures D_safe forgets once the policy stops failing (0: D_safe only, as in the paper).
        safety_update_every (1): n_off, SAC steps between two safety-critic rounds.
        safety_steps_per_round (1): safety-critic SGD steps per round (1:1 shares the SAC minibatch).
        finetune_safety_critic (False): keep training Q_safe while fine-tuning.
        mask_warmup_steps (None): pretraining env steps acted by the unmasked policy before the mask
            switches on (Algorithm 1's warm-up); None: until Q_safe's first training round; 0: never.
        mask_resample_rounds (0): widened resampling rounds before the mask falls back to the safest
            sample (the authors' code uses 4).
        nu_init (1.0): initial Lagrange multiplier nu (> 0); fine-tuning starts from it.
        restore_nu (False): fine-tuning keeps the pretraining checkpoint's nu instead of nu_init.
        restore_replay (False): fine-tuning starts D_offline with the checkpoint's transitions (not in
            Algorithm 2, which starts it empty; they keep the pretraining task's rewards).
        nu_lr (3e-4): Adam learning rate of log nu (dual ascent).
        nu_max (None): upper bound on nu; None leaves it unbounded (the paper); must exceed the
            starting nu (nu_init, or the checkpoint's with restore_nu).
        lagrangian (True): add nu * (Q_safe - eps_safe) to the actor loss while fine-tuning.
        pretrain_lagrangian (False): add that term while pretraining too (not in the paper).
        safety_critic (True): train and use Q_safe; False is plain SAC (the 'sac' method), which needs
            mask_enabled, lagrangian and pretrain_lagrangian false.
        method ("sqrl"): the method name the trial runs (``sqrl_rllib.methods``), set by the pipeline;
            reported as the results' ``method`` column.
        mask_enabled (True): apply the mask; False gives plain SAC actions (the SAC baseline).
        updates_per_env_step (1.0): SGD steps per sampled env step.
        replay_capacity (1_000_000): size of D_offline in transitions.
        checkpoint_replay (True): store D_offline and D_safe in checkpoints (False: smaller files).
        pretrained_checkpoint (None): Algorithm checkpoint whose RLModule state starts fine-tuning (or
            a pretraining that continues an earlier one).
        hidden ((256, 256)): hidden layer sizes of every network.
        policy_mean_init_scale (1.0): factor on the initial weights of the policy mean's output units.
        risk_penalty (False): RS: SAC's critic learns from r - nu * Q_safe(s, a), nu by dual ascent.
        lambda_schedule (None): RS only: [start, end, steps], lambda (nu) linear from start to end over the
            stage's first ``steps`` env steps, then held, instead of dual ascent (the authors' RS: 0 to 10).
        reward_scale (1.0): factor on the task reward in SAC's critic target (TF-Agents' reward_scale_factor).
        num_critics (None): N SAC critics in one batched ensemble; None: 2 with twin_q, else 1 (ESAC: 10).
        critic_target_aggregate ("min"): aggregate over the N target critics in the critic target, "min"
            or a percentile in [0, 100] (``sqrl_rllib.core.esac``).
        critic_target_entropy (True): keep SAC's entropy term in the critic target (False: ESAC's hard target).
    """

    def __init__(self, algo_class=None):
        super().__init__(algo_class=algo_class or SQRL)
        for key, value in sqrl_defaults().items():
            setattr(self, key, value)
        # Paper appendix B: 3e-4 for every net, batch 256, soft target updates.
        self.actor_lr = 3e-4
        self.critic_lr = 3e-4
        self.alpha_lr = 3e-4
        self.train_batch_size_per_learner = 256
        self.num_steps_sampled_before_learning_starts = 1000
        self.rollout_fragment_length = 32
        self.tau = 5e-3

    def sqrl(
        self,
        *,
        eps_safe=NotProvided,
        gamma_safe=NotProvided,
        num_action_samples=NotProvided,
        phase=NotProvided,
        safety_critic_lr=NotProvided,
        safety_loss=NotProvided,
        safety_target_network=NotProvided,
        safety_target_policy=NotProvided,
        safety_target_samples=NotProvided,
        online_buffer_episodes=NotProvided,
        safety_offline_fraction=NotProvided,
        safety_update_every=NotProvided,
        safety_steps_per_round=NotProvided,
        finetune_safety_critic=NotProvided,
        mask_warmup_steps=NotProvided,
        mask_resample_rounds=NotProvided,
        nu_init=NotProvided,
        restore_nu=NotProvided,
        restore_replay=NotProvided,
        nu_lr=NotProvided,
        nu_max=NotProvided,
        lagrangian=NotProvided,
        pretrain_lagrangian=NotProvided,
        safety_critic=NotProvided,
        method=NotProvided,
        mask_enabled=NotProvided,
        updates_per_env_step=NotProvided,
        replay_capacity=NotProvided,
        checkpoint_replay=NotProvided,
        pretrained_checkpoint=NotProvided,
        hidden=NotProvided,
        policy_mean_init_scale=NotProvided,
        reward_scale=NotProvided,
        risk_penalty=NotProvided,
        lambda_schedule=NotProvided,
        num_critics=NotProvided,
        critic_target_aggregate=NotProvided,
        critic_target_entropy=NotProvided,
    ) -> SQRLConfig:
        """Set SQRL's safety keys (see the class docstring for meaning and defaults)."""
        for key, value in locals().items():
            if key != "self" and value is not NotProvided:
                setattr(self, key, value)
        return self

    def validate(self) -> None:
        """SAC's checks plus the safety keys; a bad value (or an inherited SAC key SQRL would ignore)
        raises ValueError naming the key."""
        super().validate()
        check_sqrl_keys(self)
        check_inherited_sac_keys(self)

    def get_default_rl_module_spec(self) -> RLModuleSpec:
        """SQRL's torch RLModule."""
        from sqrl_rllib.algorithms.sqrl.torch.sqrl_torch_rl_module import SQRLTorchRLModule

        return RLModuleSpec(module_class=SQRLTorchRLModule)

    @property
    def _model_config_auto_includes(self) -> dict[str, Any]:
        return super()._model_config_auto_includes | {
            "hidden": tuple(self.hidden),
            "policy_mean_init_scale": self.policy_mean_init_scale,
            "initial_alpha": self.initial_alpha,
            "nu_init": self.nu_init,
            # SAC's twin_q=False: a single critic; num_critics (ESAC's ensemble) wins over it.
            "num_critics": self.num_critics or (2 if self.twin_q else 1),
        }

    def get_default_learner_class(self):
        """SQRL's torch Learner."""
        from sqrl_rllib.algorithms.sqrl.torch.sqrl_torch_learner import SQRLTorchLearner

        return SQRLTorchLearner

    def build_module_to_env_connector(self, env=None, spaces=None):
        """RLlib's default pipeline with the safety mask prepended (before ``GetActions``)."""
        from sqrl_rllib.connectors.safety_mask import SafetyMask

        pipeline = super().build_module_to_env_connector(env=env, spaces=spaces)
        pipeline.prepend(
            SafetyMask(
                eps_safe=self.eps_safe,
                num_action_samples=self.num_action_samples,
                phase=self.phase,
                enabled=self.mask_enabled,
                resample_rounds=self.mask_resample_rounds,
            )
        )
        return pipeline


class SQRL(SAC):
    """SQRL: SAC with a safety critic, a K-sample safety mask and Lagrangian fine-tuning."""

    @classmethod
    def get_default_config(cls) -> SQRLConfig:
        """A fresh :class:`SQRLConfig`."""
        return SQRLConfig()

    def setup(self, config) -> None:
        """Build RLlib's pieces, the columnar buffers, and load the pretrained module if given."""
        register_rllib_envs()
        super().setup(config)
        # DQN's setup built RLlib's episode replay buffer; SQRL never uses it.
        self.local_replay_buffer = None
        self._build_buffers()
        self._rng = np.random.default_rng(self.config.seed)
        self._counters = {
            "failures": 0,
            "episodes": 0,
            "env_steps": 0,
            "sgd_steps": 0,
            "safety_steps": 0,
            "since_safety": 0,
            "dropped_episodes": 0,
        }
        # Fine-tuning is masked from its first step; pretraining once the warm-up is over.
        self._mask_on = self.config.phase == "finetune"
        if self.config.pretrained_checkpoint:
            self.load_pretrained(self.config.pretrained_checkpoint)

    def _build_buffers(self) -> None:
        """D_offline (columnar replay) and D_safe; an on-policy subclass (CPO) sets both to None."""
        obs_space = self.config.observation_space or self._probe_spaces()[0]
        act_space = self.config.action_space or self._probe_spaces()[1]
        obs_dim, act_dim = int(np.prod(obs_space.shape)), int(np.prod(act_space.shape))
        self.offline_buffer = ColumnarReplay(int(self.config.replay_capacity), obs_dim, act_dim)
        self.safety_buffer = OnlineSafetyBuffer(int(self.config.online_buffer_episodes))

    def _probe_spaces(self):
        spaces = self.env_runner_group.get_spaces()
        return spaces[DEFAULT_MODULE_ID]

    def load_pretrained(self, checkpoint: str | pathlib.Path) -> None:
        """Load the RLModule state (policy, critics, targets, alpha, Q_safe) of a checkpoint.

        nu starts at ``nu_init`` unless ``restore_nu``; either way the starting nu must lie below
        ``nu_max`` (checked here, on the value fine-tuning actually starts from).
        """
        self._restore_module(checkpoint)
        cfg = self.config
        if cfg.restore_replay:
            self._restore_replay(checkpoint)
        if not cfg.restore_nu:
            self.learner_group.foreach_learner(_set_nu, nu=float(cfg.nu_init))
        elif cfg.nu_max is not None:
            nu = next(iter(self.learner_group.foreach_learner(_get_nu))).get()
            if not nu < cfg.nu_max:
                raise ValueError(
                    f"SQRL config key nu_max={cfg.nu_max!r} is invalid: restore_nu starts fine-tuning at the "
                    f"checkpoint's nu={nu:.4g}, which must lie below nu_max"
                )

    def _restore_replay(self, checkpoint: str | pathlib.Path) -> None:
        """Fill D_offline with the transitions an Algorithm ``checkpoint`` stored (``checkpoint_replay``)."""
        if self.offline_buffer is None:
            raise ValueError(f"restore_replay: {type(self).__name__} keeps no D_offline to restore")
        try:
            self.offline_buffer.set_state(stored_replay(checkpoint))
        except ValueError as err:
            raise ValueError(f"restore_replay: {err}") from None

    def _restore_module(self, checkpoint: str | pathlib.Path) -> None:
        """Restore the RLModule state of an Algorithm ``checkpoint`` into the Learners and EnvRunners."""
        path = pathlib.Path(checkpoint) / MODULE_COMPONENT
        if not path.is_dir():
            raise ValueError(f"pretrained_checkpoint={str(checkpoint)!r} holds no RLModule state at {path}")
        self.restore_from_path(path, component=MODULE_COMPONENT)
        # restore_from_path syncs remote EnvRunners with an async call that RLlib drops while an EnvRunner still
        # has the setup's sync in flight (seen: CPO's EnvRunners kept their initial policy); push the restored
        # weights with a blocking call so the first batch is sampled by the pretrained policy.
        if self.env_runner_group.num_remote_env_runners() > 0:
            state = self.learner_group.get_state(
                components=f"{COMPONENT_LEARNER}/{COMPONENT_RL_MODULE}", inference_only=True
            )[COMPONENT_LEARNER]
            weights = {COMPONENT_RL_MODULE: state[COMPONENT_RL_MODULE]}
            self.env_runner_group.foreach_env_runner(lambda er: er.set_state(weights), local_env_runner=False)

    # -- Algorithms 1 and 2 ------------------------------------------------------------------
    def training_step(self) -> None:
        """Sample with the masked policy, store, run SAC steps, then safety-critic rounds."""
        cfg = self.config
        self._end_warmup_if_due()
        episodes, env_runner_results = synchronous_parallel_sample(
            worker_set=self.env_runner_group,
            concat=True,
            sample_timeout_s=cfg.sample_timeout_s,
            _uses_new_env_runners=True,
            _return_metrics=True,
        )
        self.metrics.aggregate(env_runner_results, key=ENV_RUNNER_RESULTS)
        new_steps, failures, done = self._store(episodes)
        if len(self.offline_buffer) >= cfg.num_steps_sampled_before_learning_starts:
            self._update(new_steps)
        # Logged after the update so the SGD steps of this call count in this iteration's result.
        self._log_safety_metrics(failures, done)

    def _end_warmup_if_due(self) -> None:
        """Switch pretraining's mask on once the warm-up is over (Algorithm 1: D_offline starts with pi).

        The switch is the module's ``mask_active`` buffer, set on the Learners and synced to the
        EnvRunners like the weights, so restarted EnvRunners and checkpoints keep it.
        """
        if self._mask_on:
            return
        warmup = self.config.mask_warmup_steps
        due = self._counters["safety_steps"] > 0 if warmup is None else self._counters["env_steps"] >= warmup
        if due:
            self.learner_group.foreach_learner(_activate_mask)
            self.env_runner_group.sync_weights(
                from_worker_or_learner_group=self.learner_group, policies=[DEFAULT_MODULE_ID], inference_only=True
            )
            self._mask_on = True

    def _update(self, new_steps: int) -> None:
        """SAC steps on D_offline (``updates_per_env_step`` per new step), safety-critic rounds on D_safe."""
        cfg = self.config
        batch_size = cfg.train_batch_size_per_learner
        sac_steps = max(1, round(new_steps * cfg.updates_per_env_step))
        trains_safety = cfg.safety_critic and (cfg.phase == "pretrain" or cfg.finetune_safety_critic)
        trains_safety = trains_safety and len(self.safety_buffer) > 0
        self._counters["since_safety"] += sac_steps
        rounds = self._counters["since_safety"] // cfg.safety_update_every
        self._counters["since_safety"] %= cfg.safety_update_every
        safety_steps = rounds * cfg.safety_steps_per_round if trains_safety else 0

        sac_rows = self.offline_buffer.sample(sac_steps * batch_size, self._rng)
        safety_rows = self._safety_rows(safety_steps * batch_size) if safety_steps else None
        self._learn(sac_rows, safety_rows)
        self._counters["sgd_steps"] += sac_steps
        self._counters["safety_steps"] += safety_steps

        self.env_runner_group.sync_weights(
            from_worker_or_learner_group=self.learner_group,
            policies=[DEFAULT_MODULE_ID],
            inference_only=True,
        )

    def _learn(self, sac_rows: dict | None, safety_rows: dict | None) -> dict[str, Any]:
        """SGD on SAC rows and/or safety-critic rows (``train_batch_size_per_learner`` rows per step).

        The one path from sampled rows to the Learner. Equally many rows share each minibatch (one
        forward/backward per SGD step); otherwise each kind gets its own update call. Returns the
        last call's learner results.
        """
        if sac_rows is not None and safety_rows is not None and len(sac_rows["rewards"]) == len(safety_rows["rewards"]):
            batches = [_merge(_train_batch(sac_rows), _safety_batch(safety_rows))]
        else:
            batches = [_train_batch(sac_rows)] if sac_rows is not None else []
            batches += [_safety_batch(safety_rows)] if safety_rows is not None else []
        results: dict[str, Any] = {}
        for batch in batches:
            # minibatch_size=None: the learner cuts the minibatches itself (SQRLTorchLearner._update).
            results = self.learner_group.update(
                batch=batch, minibatch_size=None, num_epochs=1, timesteps=self._timesteps()
            )
            self.metrics.aggregate(results, key=LEARNER_RESULTS)
        return results

    def _timesteps(self) -> dict[str, Any]:
        return {
            NUM_ENV_STEPS_SAMPLED_LIFETIME: self.metrics.peek(
                (ENV_RUNNER_RESULTS, NUM_ENV_STEPS_SAMPLED_LIFETIME), default=0
            ),
            NUM_AGENT_STEPS_SAMPLED_LIFETIME: self.metrics.peek(
                (ENV_RUNNER_RESULTS, NUM_AGENT_STEPS_SAMPLED_LIFETIME), default={}
            ),
        }

    def fit_safety_critic(self, num_steps: int, failure_fraction: float = 0.0, chunk: int = 500) -> dict[str, float]:
        """Train Q_safe alone for ``num_steps`` SGD steps on all of D_offline; returns the last loss stats.

        Meant for the end of pretraining: during Algorithm 1, Q_safe mostly sees the latest episodes,
        and where the final policy rarely goes (the edges of the failure region) it underestimates
        the risk (benchmarks/README.md, "failure pairs"). Here every pretraining transition counts,
        with a share ``failure_fraction`` of each minibatch drawn from the failing ones. The loss,
        gamma_safe and the target network are those of the training rounds; the policy, the SAC
        critics, alpha and nu are not touched, so SAC fine-tuning from the result equals SAC
        fine-tuning from the original checkpoint.
        """
        if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
            raise ValueError(f"fit_safety_critic: num_steps={num_steps!r} must be an integer >= 1")
        if not 0.0 <= failure_fraction < 1.0:
            raise ValueError(f"fit_safety_critic: failure_fraction={failure_fraction!r} must lie in [0, 1)")
        if len(self.offline_buffer) == 0:
            raise ValueError("fit_safety_critic: D_offline is empty (a checkpoint saved with checkpoint_replay=False?)")
        if failure_fraction > 0 and len(self.offline_buffer.failing_indices()) == 0:
            raise ValueError("fit_safety_critic: failure_fraction > 0 but D_offline holds no failure")
        batch_size = self.config.train_batch_size_per_learner
        stats: dict[str, float] = {}
        for start in range(0, num_steps, chunk):
            steps = min(chunk, num_steps - start)
            rows = failure_enriched_sample(self.offline_buffer, steps * batch_size, failure_fraction, self._rng)
            stats = _loss_stats(self._learn(None, rows), safety_only=True)
            self._counters["safety_steps"] += steps
        self.env_runner_group.sync_weights(
            from_worker_or_learner_group=self.learner_group, policies=[DEFAULT_MODULE_ID], inference_only=True
        )
        return stats

    def _safety_rows(self, n: int) -> dict[str, np.ndarray]:
        return mixed_sample(self.safety_buffer, self.offline_buffer, n, self.config.safety_offline_fraction, self._rng)

    def _store(self, episodes) -> tuple[int, int, int]:
        """Add sampled episode chunks to D_offline and D_safe; returns (steps, failures, episodes done)."""
        steps = failures = done = 0
        for episode in episodes:
            cols = episode_columns(episode)
            n = len(cols["rewards"])
            if dropped_episode(episode):
                # Bad env output ended it (bad_output: drop_episode): counted apart, not as an episode.
                self._counters["dropped_episodes"] += 1
            elif episode.is_done:
                done += 1
                failures += int(n > 0 and cols["failure"][-1] > 0.5)
            if n == 0:
                continue
            self.offline_buffer.add(cols)
            self.safety_buffer.add_chunk(episode.id_, cols)
            steps += n
            self._counters["env_steps"] += n
        return steps, failures, done

    def _log_safety_metrics(self, failures: int, done: int) -> None:
        self._counters["failures"] += failures
        self._counters["episodes"] += done
        c = self._counters
        values = {
            "cumulative_failures": c["failures"],
            "cumulative_episodes": c["episodes"],
            "cumulative_failure_rate": c["failures"] / max(c["episodes"], 1),
            "dropped_episodes": c["dropped_episodes"],
            "num_sgd_steps": c["sgd_steps"],
            "num_safety_critic_steps": c["safety_steps"],
            # 0 without replay (CPO), so every method reports the same keys.
            "offline_buffer_size": len(self.offline_buffer) if self.offline_buffer is not None else 0,
            "safety_buffer_size": len(self.safety_buffer) if self.safety_buffer is not None else 0,
        }
        values["mask_active"] = float(self._mask_on and self.config.mask_enabled)
        for key, value in values.items():
            self.metrics.log_value(("sqrl", key), value, window=1)
        # Per-iteration counts (training_step runs several times per iteration): "sum" resets at each reduce.
        self.metrics.log_value(("sqrl", "failures"), failures, reduce="sum")
        self.metrics.log_value(("sqrl", "episodes"), done, reduce="sum")

    # -- checkpoints --------------------------------------------------------------------------
    def get_state(self, components=None, *, not_components=None, **kwargs) -> dict[str, Any]:
        """RLlib's state plus SQRL's counters and (if ``checkpoint_replay``) D_offline and D_safe."""
        state = super().get_state(components, not_components=not_components, **kwargs)
        if self._check_component(SQRL_STATE, components, not_components):
            sqrl_state: dict[str, Any] = {"counters": dict(self._counters)}
            if self.config.checkpoint_replay and self.offline_buffer is not None:
                sqrl_state["offline_buffer"] = self.offline_buffer.get_state()
                sqrl_state["safety_buffer"] = self.safety_buffer.get_state()
            state[SQRL_STATE] = sqrl_state
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore RLlib's state and SQRL's counters and buffers."""
        super().set_state(state)
        sqrl_state = state.get(SQRL_STATE)
        if sqrl_state:
            self._counters.update(sqrl_state["counters"])
            if "offline_buffer" in sqrl_state:
                self.offline_buffer.set_state(sqrl_state["offline_buffer"])
                self.safety_buffer.set_state(sqrl_state["safety_buffer"])

    # -- offline safety data (sqrl_rllib.offline_data, docs/offline_data.md) ---------------------------
    def fit_safety_critic_offline(
        self,
        path: str | pathlib.Path,
        num_steps: int,
        failure_fraction: float = 0.0,
        *,
        include_sac: bool = False,
        window_rows: int = 200_000,
        failure_pool_rows: int = 50_000,
        read_rows: int = 4096,
        passes: int = 1,
    ) -> dict[str, float]:
        """Train Q_safe for ``num_steps`` SGD steps on a Parquet transition dataset, streamed; returns the last
        loss stats.

        ``fit_safety_critic`` on a dataset (``sqrl_rllib.offline_data`` schema, e.g. written by
        ``write_transitions(algo.offline_buffer, path)`` or ``--record-transitions``) instead of D_offline:
        the same Learner update and loss, a share ``failure_fraction`` of each minibatch drawn from the
        failing rows. The dataset is never loaded whole: rows stream through a shuffle window of
        ``window_rows`` (a uniform reservoir of the rows read so far) and a pool of ``failure_pool_rows``
        failing rows (``offline_data.sample_stream``).
        ``include_sac`` also trains the policy, the SAC critics and alpha on the same stream (uniform rows,
        as Algorithm 1's SAC steps draw from D_offline); otherwise only Q_safe and its target change.
        D_offline and D_safe are not touched. Raises ``offline_data.OfflineDataError`` (a ValueError) for a
        dataset that does not fit this algorithm's spaces.
        """
        from sqrl_rllib.offline_data import OfflineDataError, inspect_transitions, sample_stream

        info = inspect_transitions(path)
        if (info.obs_dim, info.act_dim) != (self.offline_buffer.obs_dim, self.offline_buffer.act_dim):
            raise OfflineDataError(
                f"offline data {info.path!r}: columns 'obs' / 'actions' have sizes {info.obs_dim} / {info.act_dim}, "
                f"the algorithm's spaces {self.offline_buffer.obs_dim} / {self.offline_buffer.act_dim}"
            )
        stream = sample_stream(
            path,
            num_steps,
            self.config.train_batch_size_per_learner,
            failure_fraction,
            self._rng,
            window_rows=window_rows,
            failure_pool_rows=failure_pool_rows,
            read_rows=read_rows,
            passes=passes,
            sac_rows=include_sac,
        )
        stats: dict[str, float] = {}
        for chunk in stream:
            stats = _loss_stats(self._learn(chunk.sac_rows, chunk.safety_rows), safety_only=not include_sac)
            self._counters["safety_steps"] += chunk.steps
            self._counters["sgd_steps"] += chunk.steps if include_sac else 0
        self.env_runner_group.sync_weights(
            from_worker_or_learner_group=self.learner_group, policies=[DEFAULT_MODULE_ID], inference_only=True
        )
        return stats


def _loss_stats(results, safety_only: bool) -> dict[str, float]:
    """The module's loss statistics of a ``_learn`` call as floats (only Q_safe's with ``safety_only``)."""
    learner = results[0] if isinstance(results, list) else results
    return {
        key: float(np.asarray(value.peek() if hasattr(value, "peek") else value))
        for key, value in learner.get(DEFAULT_MODULE_ID, {}).items()
        if not safety_only or key.startswith(("safety_loss", "q_safe_"))
    }


def _activate_mask(learner, **kwargs) -> None:
    learner.module[DEFAULT_MODULE_ID].unwrapped().mask_active.fill_(True)


def _set_nu(learner, nu: float, **kwargs) -> None:
    module = learner.module[DEFAULT_MODULE_ID].unwrapped()
    with torch.no_grad():
        module.log_nu.fill_(math.log(nu))


def _get_nu(learner, **kwargs) -> float:
    return float(learner.module[DEFAULT_MODULE_ID].unwrapped().log_nu.detach().exp())


def _train_batch(rows: dict[str, np.ndarray]) -> MultiAgentBatch:
    cols = {
        Columns.OBS: rows["obs"],
        Columns.ACTIONS: rows["actions"],
        Columns.REWARDS: rows["rewards"],
        Columns.NEXT_OBS: rows["next_obs"],
        Columns.TERMINATEDS: rows["terminated"],
    }
    return MultiAgentBatch({DEFAULT_MODULE_ID: SampleBatch(cols)}, env_steps=len(rows["rewards"]))


def _merge(a: MultiAgentBatch, b: MultiAgentBatch) -> MultiAgentBatch:
    """Columns of two equally long single-module batches side by side."""
    cols = {**a.policy_batches[DEFAULT_MODULE_ID], **b.policy_batches[DEFAULT_MODULE_ID]}
    return MultiAgentBatch({DEFAULT_MODULE_ID: SampleBatch(cols)}, env_steps=a.env_steps())


def _safety_batch(rows: dict[str, np.ndarray]) -> MultiAgentBatch:
    cols = {
        SAFE_OBS: rows["obs"],
        SAFE_ACTIONS: rows["actions"],
        SAFE_NEXT_OBS: rows["next_obs"],
        SAFE_FAILURE: rows["failure"],
        SAFE_TERMINATED: rows["terminated"],
    }
    return MultiAgentBatch({DEFAULT_MODULE_ID: SampleBatch(cols)}, env_steps=len(rows["rewards"]))
