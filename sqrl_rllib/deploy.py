"""Run an exported SQRL policy with its safety mask: numpy + onnxruntime only (no Ray, no torch).

``python -m sqrl_rllib.export CHECKPOINT OUT_DIR`` writes the folder; then::

    policy = SafePolicy.load(OUT_DIR, seed=0)
    result = policy.act(obs)                       # deterministic: the mean if safe, else the safest
    result = policy.act(obs, deterministic=False)  # K samples, a uniform pick among the safe ones
    env.step(result.action)

The rule is :func:`sqrl_rllib.core.mask.masked_choice` (fine-tuning's selection rule):

* deterministic mode: K candidates, candidate 0 the policy mean tanh(mu), the others draws from pi;
  the mean if Q_safe(s, mean) < eps_safe, else the candidate with the lowest Q_safe (``fallback``);
* K-sample mode: K draws tanh(mu + sigma * n), n ~ N(0, I), from pi; a uniform pick among those with
  Q_safe < eps_safe (a draw from pi restricted to the safe set), else the one with the lowest Q_safe.

The uniform pick is the torch path's: i.i.d. U(0, 1) keys per candidate, the largest key among the
safe candidates wins. Given the same normal draws (``noise``) and keys, :meth:`SafePolicy.act` picks
the same candidate as the RLlib module. Unlike the module's exploration, no widened resampling
(``mask_resample_rounds``) is done: states without a safe candidate fall back at once.
"""

from __future__ import annotations

import json
import pathlib
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort

METADATA_FILE = "safe_policy.json"


@dataclass(frozen=True)
class SafeAction:
    """What :meth:`SafePolicy.act` chose; arrays have a leading batch axis B unless the input was one obs.

    Attributes:
        action: [B, act_dim] float32, in env units (``safe_policy.json``'s ``action_transform`` applied).
        normalized_action: [B, act_dim] float32, the chosen candidate in the policy's [-1, 1].
        q_safe: [B] float32, Q_safe (failure probability) of the chosen candidate.
        fallback: [B] bool, no candidate (deterministic mode: not the mean) was safe; the safest was taken.
        index: [B] int64, the chosen candidate's index among the K (0 is the mean in deterministic mode).
    """

    action: np.ndarray
    normalized_action: np.ndarray
    q_safe: np.ndarray
    fallback: np.ndarray
    index: np.ndarray


class SafePolicy:
    """The exported policy pi and safety critic Q_safe with the SQRL mask (see the module docstring).

    Build it with :meth:`load`. ``eps_safe``, ``num_action_samples`` (K) and the action bounds come
    from ``safe_policy.json`` and may be changed on the instance (``policy.eps_safe = 0.05``).
    """

    def __init__(
        self,
        policy_session: ort.InferenceSession,
        q_safe_session: ort.InferenceSession,
        meta: dict,
        seed: int | None = None,
    ):
        self.meta = meta
        self.eps_safe = float(meta["eps_safe"])
        self.num_action_samples = int(meta["num_action_samples"])
        self.obs_dim, self.act_dim = int(meta["obs_dim"]), int(meta["act_dim"])
        self.action_transform = meta["action_transform"]
        bounded = meta["action_low"] is not None
        self.action_low = np.asarray(meta["action_low"], np.float32) if bounded else None
        self.action_high = np.asarray(meta["action_high"], np.float32) if bounded else None
        self._policy = policy_session
        self._q_safe = q_safe_session
        self.rng = np.random.default_rng(seed)

    @classmethod
    def load(cls, out_dir: str | pathlib.Path, seed: int | None = None, num_threads: int = 1) -> SafePolicy:
        """Load an export folder (``policy.onnx``, ``q_safe.onnx``, ``safe_policy.json``).

        Args:
            out_dir: the folder written by ``python -m sqrl_rllib.export``.
            seed: seed of the numpy Generator that draws the candidates and the uniform pick.
            num_threads: onnxruntime intra-op threads per session (1 is fastest for single observations).
        """
        folder = pathlib.Path(out_dir)
        meta = json.loads((folder / METADATA_FILE).read_text())
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(num_threads)
        options.inter_op_num_threads = 1

        def session(name: str) -> ort.InferenceSession:
            return ort.InferenceSession(str(folder / name), sess_options=options, providers=["CPUExecutionProvider"])

        return cls(session(meta["policy_file"]), session(meta["q_safe_file"]), meta, seed)

    def seed(self, seed: int | None) -> None:
        """Restart the Generator of the candidates and the uniform pick from ``seed``."""
        self.rng = np.random.default_rng(seed)

    # -- the two networks -------------------------------------------------------------------
    def distribution(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """pi's pre-tanh Gaussian for obs [B, obs_dim]: mean and log_std, each [B, act_dim] float32."""
        mean, log_std = self._policy.run(None, {"obs": self._batch(obs)})
        return mean, log_std

    def q_safe(self, obs: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        """Q_safe of candidates [B, K, act_dim] (in [-1, 1]) at obs [B, obs_dim]: [B, K] float32."""
        obs = self._batch(obs)
        candidates = np.ascontiguousarray(candidates, dtype=np.float32)
        if candidates.ndim != 3 or candidates.shape[0] != obs.shape[0] or candidates.shape[2] != self.act_dim:
            raise ValueError(f"candidates must be [B={obs.shape[0]}, K, {self.act_dim}], got {candidates.shape}")
        (q,) = self._q_safe.run(None, {"obs": obs, "actions": candidates})
        return q

    # -- the mask ---------------------------------------------------------------------------
    def act(
        self,
        obs: np.ndarray,
        deterministic: bool = True,
        noise: np.ndarray | None = None,
        keys: np.ndarray | None = None,
    ) -> SafeAction:
        """The masked action for obs [obs_dim] (one state) or [B, obs_dim].

        Args:
            obs: observation(s), as the env returns them.
            deterministic: True: the policy mean if it is safe, else the safest of K candidates
                (candidate 0 the mean); False: K draws from pi, a uniform pick among the safe ones.
            noise: optional pre-drawn standard normal draws [B, K, act_dim] (else from ``self.rng``);
                candidate j is tanh(mean + exp(log_std) * noise[:, j]); in deterministic mode
                noise[:, 0] is ignored (candidate 0 is the mean).
            keys: optional pre-drawn U(0, 1) keys [B, K] of the uniform pick (K-sample mode).
        Returns:
            a :class:`SafeAction` (without the batch axis if ``obs`` was a single observation).
        """
        single = np.ndim(obs) == 1
        obs = self._batch(obs)
        mean, log_std = self.distribution(obs)
        k = self.num_action_samples
        if noise is None:
            noise = self.rng.standard_normal((obs.shape[0], k, self.act_dim), dtype=np.float32)
        else:
            noise = np.array(noise, dtype=np.float32)  # a copy: the mean's row is zeroed below
            if noise.shape[:1] != obs.shape[:1] or noise.ndim != 3 or noise.shape[2] != self.act_dim:
                raise ValueError(f"noise must be [B={obs.shape[0]}, K, {self.act_dim}], got {noise.shape}")
        if deterministic:
            noise[:, 0] = 0.0
        candidates = np.tanh(mean[:, None, :] + np.exp(log_std)[:, None, :] * noise)
        result = self.select(obs, candidates, deterministic=deterministic, keys=keys)
        return _unbatch(result) if single else result

    def select(
        self,
        obs: np.ndarray,
        candidates: np.ndarray,
        deterministic: bool = False,
        keys: np.ndarray | None = None,
    ) -> SafeAction:
        """Apply the mask to given candidates [B, K, act_dim] in [-1, 1] at obs [B, obs_dim].

        ``deterministic``: candidate 0 must be the policy mean (as :meth:`act` builds it); it is taken
        if safe, else the lowest Q_safe. Otherwise the K-sample rule with ``keys`` [B, K] (U(0, 1),
        drawn from ``self.rng`` if None), as ``sqrl_rllib.core.mask.select_action_index(.., "finetune")``.
        """
        obs = self._batch(obs)
        candidates = np.asarray(candidates, dtype=np.float32)
        q = self.q_safe(obs, candidates)
        safe = q < self.eps_safe
        safest = q.argmin(axis=1)
        if deterministic:
            fallback = ~safe[:, 0]
            index = np.where(fallback, safest, 0)
        else:
            if keys is None:
                keys = self.rng.random(q.shape, dtype=np.float32)
            keys = np.asarray(keys, dtype=np.float32)
            if keys.shape != q.shape:
                raise ValueError(f"keys must be [B, K] = {q.shape}, got {keys.shape}")
            fallback = ~safe.any(axis=1)
            index = np.where(fallback, safest, np.where(safe, keys, -1.0).argmax(axis=1))
        rows = np.arange(q.shape[0])
        chosen = candidates[rows, index]
        return SafeAction(
            action=self.to_env(chosen),
            normalized_action=chosen,
            q_safe=q[rows, index],
            fallback=fallback,
            index=index.astype(np.int64),
        )

    def to_env(self, normalized_action: np.ndarray) -> np.ndarray:
        """Map actions in [-1, 1] to env units as RLlib's ``NormalizeAndClipActions`` does (float32)."""
        a = np.asarray(normalized_action, dtype=np.float32)
        if self.action_transform == "unsquash":
            a = self.action_low + (a + 1.0) * (self.action_high - self.action_low) / 2.0
            return np.clip(a, self.action_low, self.action_high).astype(np.float32)
        if self.action_transform == "clip":
            return np.clip(a, self.action_low, self.action_high).astype(np.float32)
        return a

    def _batch(self, obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs, dtype=np.float32)
        obs = obs.reshape(1, -1) if obs.ndim == 1 else obs.reshape(obs.shape[0], -1)
        if obs.shape[1] != self.obs_dim:
            raise ValueError(f"observations must have {self.obs_dim} entries, got shape {obs.shape}")
        return obs


def _unbatch(result: SafeAction) -> SafeAction:
    return SafeAction(
        action=result.action[0],
        normalized_action=result.normalized_action[0],
        q_safe=result.q_safe[0],
        fallback=result.fallback[0],
        index=result.index[0],
    )
